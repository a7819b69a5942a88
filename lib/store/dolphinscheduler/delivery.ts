// Delivery on DolphinScheduler's own database (DESIGN D6): the command row is the delivery, since its
// masters poll `t_ds_command`. What is left is to record each committed batch where operators and tests
// can read it (the run journal) and in the log. A journal that cannot be written is logged, never fatal:
// the failover itself is already committed, and the database stays the truth.
import type {
  CommandDelivery,
  OutboxBatch,
  PendingDelivery,
  RunJournal,
  RunRecord,
} from '../../failover/ports.ts';
import { describeError, type Log, silentLog } from '../../observability.ts';

/** Committed batches whose journal record may be outstanding before the failover's writes wait. */
export const DS_DELIVERY_BACKLOG = 64;

export class DsCommandDelivery implements CommandDelivery {
  /**
   * What waits for delivery here is a record of ids (the commands are already in the database), and a
   * coalescing journal writes one record for all the batches that wait: they need not hold writes back.
   */
  readonly backlog = DS_DELIVERY_BACKLOG;

  constructor(
    private readonly journal: RunJournal | undefined,
    private readonly log: Log = silentLog,
  ) {}

  async deliver(batch: OutboxBatch, now: () => number): Promise<number> {
    const receipts = batch.receipts ?? [];
    const stamp = batch.stamp;
    if (stamp !== undefined && receipts.length > 0) {
      const keys = { host: stamp.host, fence: stamp.fence, lockName: stamp.lockName };
      this.log.info('failover batch committed', {
        ...keys,
        instanceIds: receipts.map((r) => r.itemId),
        commandIds: receipts.map((r) => r.commandId),
      });
      try {
        await this.journal?.record({ ...keys, receipts, writtenAt: now() });
      } catch (error: unknown) {
        this.log.warn('failover batch could not be journalled', { ...keys, ...describeError(error) });
      }
    }
    return receipts.length;
  }

  /** Nothing is ever pending: a command row exists exactly when its instance's failover committed. */
  async deliverPending(): Promise<PendingDelivery> {
    return { enqueued: 0, failed: [] };
  }
}

export interface CoalescingJournalOptions {
  /** Journal writes in flight at once (default 2). */
  inFlight?: number;
  /** Most receipts in one written record (default 2,000: about 100 KB with 19-digit ids). */
  maxReceipts?: number;
}

interface Group extends RunRecord {
  key: string;
  waiters: Array<{ resolve: () => void; reject: (reason: unknown) => void }>;
}

/**
 * A run journal that writes fewer, larger records when batches commit faster than records are written:
 * a record goes out at once while fewer than `inFlight` writes are under way; otherwise it joins the next
 * record of the same run (lock and fence), which goes out when a write ends. Each `record` resolves once a
 * written record holds its receipts (or rejects with that write's error). Idle, every batch is its own
 * record, as soon as it commits; busy, the journal costs one write per `inFlight` round trip instead of
 * one per batch, so it keeps up with any rate of commits.
 */
export class CoalescingJournal implements RunJournal {
  readonly #inFlight: number;
  readonly #maxReceipts: number;
  /** Records waiting for a free write, oldest first. */
  readonly #queue: Group[] = [];
  /** Per run (lock and fence), its waiting record that still takes receipts. */
  readonly #open = new Map<string, Group>();
  #writing = 0;

  constructor(
    private readonly inner: RunJournal,
    options: CoalescingJournalOptions = {},
  ) {
    this.#inFlight = Math.max(1, options.inFlight ?? 2);
    this.#maxReceipts = Math.max(1, options.maxReceipts ?? 2_000);
  }

  record(entry: RunRecord): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const key = `${entry.lockName}\n${entry.fence}`;
      let group = this.#open.get(key);
      if (group === undefined || group.receipts.length + entry.receipts.length > this.#maxReceipts) {
        group = { ...entry, receipts: [], key, waiters: [] };
        this.#queue.push(group);
        this.#open.set(key, group);
      }
      group.receipts.push(...entry.receipts);
      group.writtenAt = Math.max(group.writtenAt, entry.writtenAt);
      group.waiters.push({ resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#writing < this.#inFlight) {
      const group = this.#queue.shift();
      if (group === undefined) return;
      if (this.#open.get(group.key) === group) this.#open.delete(group.key);
      this.#writing += 1;
      const { key: _key, waiters, ...record } = group;
      this.inner
        .record(record)
        .then(
          () => {
            for (const w of waiters) w.resolve();
          },
          (reason: unknown) => {
            for (const w of waiters) w.reject(reason);
          },
        )
        .finally(() => {
          this.#writing -= 1;
          this.#pump();
        });
    }
  }
}
