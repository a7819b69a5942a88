// The failover of one host (DESIGN sections 2 and 5): under the host's fenced lease lock, page through the
// host's executing items, write each eligible one's failover and its command in one transaction (several
// items per transaction, several transactions at once), then deliver the commands (DynamoDB store: put them
// on the queue, outbox; DolphinScheduler store: the written row is the delivery, the run is recorded).
// Where the scheduler has a failover lock of its own (DESIGN D3), it is held while the store is written.
// Near the invocation's deadline it stops between pages and sends a continuation request.
import { randomUUID } from 'node:crypto';
import { failpoint } from '../faults.ts';
import {
  type CommandMessage,
  type FailoverRequest,
  type RecoveryCommand,
  RecoveryCommandSchema,
  type TaskFailoverNotice,
  TaskFailoverNoticeSchema,
} from '../messages.ts';
import { describeError, type Log } from '../observability.ts';
import { backoffMs, chunk, sleep } from './concurrency.ts';
import {
  type Checkpoint,
  type CommandDelivery,
  CommandSendError,
  type FailoverRequestQueue,
  type FailoverWrite,
  type FenceStamp,
  failoverLockName,
  type GuardHold,
  type HostGuard,
  type HostItemStore,
  type Lease,
  type LivenessSource,
  LockLostError,
  type LockStore,
  type OutboxBatch,
  type Page,
} from './ports.ts';
import {
  buildRecoveryCommand,
  buildTaskNotice,
  type FailoverBounds,
  type FailoverDecision,
  type FailoverSkipReason,
  failoverGeneration,
  type LiveIncarnation,
  type ProcessInstance,
  processFailoverDecision,
  type TaskInstance,
  taskFailoverDecision,
} from './rules.ts';

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface FailoverSettings {
  leaseMs: number;
  /** Items per transaction (each item is two writes: its update and its command). */
  batchSize: number;
  /** Transactions in flight at once. */
  concurrency: number;
  /** Items read per page (default batchSize * concurrency). */
  pageSize?: number;
}

export interface FailoverDeps {
  instances: HostItemStore<ProcessInstance, RecoveryCommand>;
  /**
   * Absent where the scheduler fails its workers' tasks over itself (DolphinScheduler's own database,
   * DESIGN D4): a worker request is then acknowledged and nothing is written.
   */
  tasks?: HostItemStore<TaskInstance, TaskFailoverNotice>;
  delivery: CommandDelivery;
  /** Largest command (JSON bytes) the delivery takes; a larger one is refused before it is written. */
  maxCommandBytes: number;
  locks: LockStore;
  liveness: LivenessSource;
  /** The scheduler's own failover lock, held while writing (DESIGN D3); absent when it has none. */
  guard?: HostGuard;
  requestQueue: FailoverRequestQueue;
  clock: Clock;
  log: Log;
  settings: FailoverSettings;
  /** Lock owner id per attempt (default: a random UUID). */
  newOwner?: () => string;
}

/** When the scheduler's own lock is held, try again after about this long. */
export const GUARD_RETRY_MS = 5_000;

/** Decides, before each page, whether the invocation should stop and hand over to a continuation. */
export interface Budget {
  shouldStop(): boolean;
}

/**
 * Stop when less than `marginMs` of the invocation is left, except that every invocation processes at
 * least one page: a continuation chain always makes progress, whatever the margin.
 */
export function invocationBudget(remainingMs: () => number, marginMs: number): Budget {
  let progressed = false;
  return {
    shouldStop() {
      if (remainingMs() >= marginMs || !progressed) {
        progressed = true;
        return false;
      }
      return true;
    },
  };
}

/** Why an item was not failed over by this run. */
export type SkipReason =
  | FailoverSkipReason
  /** The item breaks the data contract (logged). */
  | 'malformed'
  /** Its command cannot be written or sent (too large, refused by DynamoDB). */
  | 'invalid'
  /** It vanished between the read and the write. */
  | 'gone'
  /** It kept changing under us; the sweep will find it again if it still needs failover. */
  | 'contended'
  /** It no longer matched when the batch was written (a store that writes only the rows still matching). */
  | 'changed';

export interface FailoverStats {
  failedOver: number;
  commandsEnqueued: number;
  skipped: Partial<Record<SkipReason, number>>;
  pages: number;
  transactions: number;
  retries: number;
}

export type FailoverOutcome =
  | { status: 'done'; fence: number; stats: FailoverStats }
  | { status: 'continued'; fence: number; stats: FailoverStats; next: FailoverRequest }
  /** Someone else holds the host's lock: retry in about `retryAfterMs`. */
  | { status: 'lock-held'; retryAfterMs: number; holderFence?: number }
  /** Our lease was taken over mid-run: the newer holder owns the work. */
  | { status: 'lock-lost'; fence: number; stats: FailoverStats }
  /** A worker request where the scheduler fails worker tasks over itself (DESIGN D4): nothing written. */
  | { status: 'acknowledged'; reason: string };

/** Transactions kept being cancelled for transient reasons. */
export class TransactionRetryError extends Error {
  constructor(rounds: number, reasons: readonly string[]) {
    super(`failover transaction still cancelled after ${rounds} rounds (${reasons.join(', ')})`);
    this.name = 'TransactionRetryError';
  }
}

const MAX_ROUNDS = 10;
/** How often one item may be re-read and retried after its condition failed, within one batch. */
const MAX_REREADS = 3;

/** The identity of a continuation chain (one original request and its continuations), with the attempt. */
export function checkpointKey(request: FailoverRequest, attempt: number): string {
  return [request.kind, request.czxid ?? '-', request.startupTime ?? '-', request.observedAt, attempt].join(
    '/',
  );
}

interface Target<T extends { id: string }, M extends CommandMessage> {
  store: HostItemStore<T, M>;
  messageType: M['type'];
  decide(item: T, host: string, live: LiveIncarnation, bounds: FailoverBounds): FailoverDecision;
  build(item: T, stamp: FenceStamp): M;
  validate(message: M): boolean;
}

function masterTarget(deps: FailoverDeps): Target<ProcessInstance, RecoveryCommand> {
  return {
    store: deps.instances,
    messageType: 'RecoveryCommand',
    decide: processFailoverDecision,
    build: (item, stamp) =>
      buildRecoveryCommand(item, { fence: stamp.fence, now: stamp.now, deadHost: stamp.host }),
    validate: (message) => RecoveryCommandSchema.safeParse(message).success,
  };
}

function workerTarget(
  tasks: HostItemStore<TaskInstance, TaskFailoverNotice>,
): Target<TaskInstance, TaskFailoverNotice> {
  return {
    store: tasks,
    messageType: 'TaskFailover',
    decide: taskFailoverDecision,
    build: (item, stamp) =>
      buildTaskNotice(item, { fence: stamp.fence, now: stamp.now, deadWorker: stamp.host }),
    validate: (message) => TaskFailoverNoticeSchema.safeParse(message).success,
  };
}

/**
 * Fails over one host (master: F1-F4; worker: F5) for one request. Never waits for a held lock. Throws on
 * errors that a retry may cure (the lock is released on the way out, leaving a checkpoint).
 */
export async function failOverHost(
  request: FailoverRequest,
  deps: FailoverDeps,
  budget: Budget,
): Promise<FailoverOutcome> {
  if (request.nodeType === 'master') return runFailover(request, deps, budget, masterTarget(deps));
  if (deps.tasks === undefined) {
    deps.log.info('worker removal acknowledged; the scheduler fails its tasks over', {
      host: request.host,
      kind: request.kind,
    });
    return { status: 'acknowledged', reason: WORKER_FAILOVER_BY_SCHEDULER };
  }
  return runFailover(request, deps, budget, workerTarget(deps.tasks));
}

export const WORKER_FAILOVER_BY_SCHEDULER =
  'worker tasks are failed over by the live masters and with their workflows (DESIGN D4): no task row written';

async function runFailover<T extends { id: string }, M extends CommandMessage>(
  request: FailoverRequest,
  deps: FailoverDeps,
  budget: Budget,
  target: Target<T, M>,
): Promise<FailoverOutcome> {
  const { locks, clock, log, settings } = deps;
  const lockName = failoverLockName(request.nodeType, request.host);
  const owner = (deps.newOwner ?? randomUUID)();
  const pageSize = settings.pageSize ?? settings.batchSize * settings.concurrency;
  // Reads have no effect, so the liveness and the first page are read while the lock is taken: a failover
  // then writes one round trip sooner. Both are dropped when the lock is held elsewhere, and the page when
  // the lock's checkpoint says to resume further on (a continuation always does: it reads from there). A
  // page read just before the previous holder's last writes can only list items that are no longer
  // eligible: their conditional writes fail, and the re-read skips them.
  const readPage = (from: string | undefined) => {
    const read = target.store.pageByHost(request.host, pageSize, from);
    read.catch(() => undefined); // observed when used
    return read;
  };
  const firstPage = request.source === 'continuation' ? undefined : readPage(undefined);
  const liveRead = deps.liveness.liveIncarnation(request.nodeType, request.host);
  liveRead.catch(() => undefined); // observed below
  const acquired = await locks.acquire(lockName, owner, settings.leaseMs, clock.now());
  if (!acquired.acquired) {
    return {
      status: 'lock-held',
      retryAfterMs: Math.max(0, acquired.heldUntil - clock.now()),
      ...(acquired.fence === undefined ? {} : { holderFence: acquired.fence }),
    };
  }
  let lease: Lease = acquired.lease;
  // The scheduler's own lock, taken after ours so that our functions never contend for it with each other;
  // when a master of the scheduler holds it, ours is given back (its checkpoint kept) and the request waits.
  let hold: GuardHold | null | undefined;
  try {
    hold = deps.guard ? await deps.guard.tryAcquire(request.nodeType, request.host) : undefined;
  } catch (error: unknown) {
    await locks.release(lease, acquired.checkpoint).catch(() => undefined);
    throw error;
  }
  if (hold === null) {
    await locks.release(lease, acquired.checkpoint);
    log.info("the scheduler's own failover lock is held; retry later", {
      nodeType: request.nodeType,
      host: request.host,
    });
    return { status: 'lock-held', retryAfterMs: GUARD_RETRY_MS };
  }
  const guardHold = hold;
  const stats: FailoverStats = {
    failedOver: 0,
    commandsEnqueued: 0,
    skipped: {},
    pages: 0,
    transactions: 0,
    retries: 0,
  };
  const logKeys = {
    nodeType: request.nodeType,
    host: request.host,
    fence: lease.fence,
    attempt: request.attempt,
  };
  const now = () => clock.now();
  const pipeline = new WritePipeline<T, M>(target, deps, stats);
  // Where this run resumes, and where a retry of the same attempt may resume if this run fails.
  const resumeKey = checkpointKey(request, request.attempt);
  let cursor = acquired.checkpoint?.key === resumeKey ? acquired.checkpoint.cursor : undefined;
  let released = false;
  const release = async (checkpoint?: Checkpoint) => {
    released = true;
    await guardHold?.release();
    await failpoint('before-release');
    if (!(await locks.release(lease, checkpoint))) log.warn('lock was taken over before release', logKeys);
  };
  try {
    await failpoint('after-lock');
    log.info('failover started', { ...logKeys, kind: request.kind, resumed: cursor !== undefined });
    // The next page is read while this one is written (a page read ahead and not used is dropped), so the
    // transactions in flight never wait for a read.
    let readAhead: Promise<Page<T>> | undefined =
      cursor === undefined ? (firstPage ?? readPage(undefined)) : readPage(cursor);
    // Commands an earlier run for this host wrote but did not get onto the queue (crash, failed send) are
    // sent alongside this run's: they are other items' commands, so their order does not matter. The run
    // does not end (nor hand over to a continuation) before they are on the queue.
    pipeline.resend(
      deps.delivery.deliverPending({ failedHost: request.host, type: target.messageType }, now),
      (enqueued) => {
        if (enqueued > 0) log.info('re-sent pending commands', { ...logKeys, count: enqueued });
      },
    );
    const live = await liveRead;
    const bounds: FailoverBounds = { observedAt: request.observedAt };
    for (let page = 0; ; page += 1) {
      if (budget.shouldStop()) {
        await pipeline.drain();
        const next: FailoverRequest = { ...request, source: 'continuation', attempt: request.attempt + 1 };
        // Release first: if the send fails or we die now, this record is retried and redoes the step.
        await release(cursor === undefined ? undefined : { key: checkpointKey(next, next.attempt), cursor });
        await deps.requestQueue.send([next]);
        log.info('failover continues in a new invocation', {
          ...logKeys,
          ...stats,
          nextAttempt: next.attempt,
        });
        return { status: 'continued', fence: lease.fence, stats, next };
      }
      // Renewed once half the lease is used, which keeps it held without a gap while the run progresses,
      // and after any pause of half a lease or more (a zombie learns here that it lost the lock).
      if (page > 0 && clock.now() >= lease.expiresAt - settings.leaseMs / 2) {
        lease = await locks.renew(lease, settings.leaseMs, clock.now());
      }
      const items = await (readAhead ?? readPage(cursor));
      readAhead = undefined;
      await failpoint('after-page-read');
      if (items.cursor !== undefined) readAhead = readPage(items.cursor);
      stats.pages += 1;
      for (const bad of items.malformed) {
        count(stats, 'malformed');
        log.warn('item breaks the data contract', { ...logKeys, id: bad.id, problem: bad.problem });
      }
      const eligible: T[] = [];
      for (const item of items.items) {
        const decision = target.decide(item, request.host, live, bounds);
        if (decision.eligible) eligible.push(item);
        else count(stats, decision.reason);
      }
      const stamp: FenceStamp = {
        host: request.host,
        fence: lease.fence,
        lockName,
        now: clock.now(),
        ...startedBefore(live, bounds),
      };
      await pipeline.submit(cursor, chunk(eligible, settings.batchSize), {
        stamp,
        live,
        bounds,
        ...(guardHold ? { guard: guardHold } : {}),
      });
      log.debug('page submitted', { ...logKeys, page, read: items.items.length, eligible: eligible.length });
      cursor = items.cursor;
      if (cursor === undefined || pipeline.failed) break;
    }
    await pipeline.drain();
    await release();
    log.info('failover done', { ...logKeys, ...stats });
    return { status: 'done', fence: lease.fence, stats };
  } catch (error: unknown) {
    if (error instanceof LockLostError) {
      released = true;
      await pipeline.settle();
      log.warn('lock lost mid-run; the newer holder continues', { ...logKeys, ...stats });
      return { status: 'lock-lost', fence: lease.fence, stats };
    }
    throw error;
  } finally {
    // Nothing of ours may still be writing or sending once the lock is released.
    await pipeline.settle();
    await guardHold?.release().catch((error: unknown) => {
      log.warn("the scheduler's failover lock could not be released", {
        ...logKeys,
        ...describeError(error),
      });
    });
    if (!released) {
      // Failing: keep the resume point of this attempt (the oldest page not fully written) for its retry.
      const resumeAt = pipeline.oldestOpenPage(cursor);
      await release(resumeAt === undefined ? undefined : { key: resumeKey, cursor: resumeAt }).catch(
        (error: unknown) => log.warn('lock release failed', { ...logKeys, ...describeError(error) }),
      );
    }
  }
}

interface BatchContext {
  stamp: FenceStamp;
  live: LiveIncarnation;
  bounds: FailoverBounds;
  /** Checked before every write: the scheduler's lock must still be ours. */
  guard?: GuardHold;
}

/** F3 as one bound for stores that state it in their write condition (FenceStamp.startedBefore). */
function startedBefore(live: LiveIncarnation, bounds: FailoverBounds): { startedBefore?: number } {
  const candidates = [live?.startupTime, bounds.observedAt].filter(
    (t): t is number => t !== undefined && Number.isFinite(t),
  );
  // A live incarnation with an unknown startup: nothing is provably older (the decision skips every item).
  if (live !== null && !Number.isFinite(live.startupTime)) return { startedBefore: Number.NEGATIVE_INFINITY };
  return candidates.length === 0 ? {} : { startedBefore: Math.min(...candidates) };
}

/**
 * Keeps up to `concurrency` failover transactions in flight across page boundaries (a page's slowest
 * transaction does not hold the next page back), and streams what they wrote to the outbox: each committed
 * transaction's commands are sent and its outbox record marked enqueued at once, up to `concurrency`
 * deliveries in flight, while later transactions run. Tracks which pages are fully written, so a failed run
 * can leave a checkpoint that skips only finished work.
 */
class WritePipeline<T extends { id: string }, M extends CommandMessage> {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly deliveries = new Set<Promise<void>>();
  private readonly pages: Array<{ start: string | undefined; open: number; failed: boolean }> = [];
  private written: OutboxBatch[] = [];
  private error: { reason: unknown } | undefined;

  constructor(
    private readonly target: Target<T, M>,
    private readonly deps: FailoverDeps,
    private readonly stats: FailoverStats,
  ) {}

  get failed(): boolean {
    return this.error !== undefined;
  }

  /** Starts the batches of one page (read from `start`), waiting for free slots; returns once all started. */
  async submit(start: string | undefined, batches: readonly T[][], context: BatchContext): Promise<void> {
    const page = { start, open: 0, failed: false };
    this.pages.push(page);
    const { concurrency } = this.deps.settings;
    const backlog = this.deps.delivery.backlog ?? concurrency;
    for (const batch of batches) {
      // Deliveries bound the commands held in memory: when they lag, the transactions wait for them.
      while (this.inFlight.size >= concurrency || this.deliveries.size > backlog) {
        await Promise.race([...this.inFlight, ...this.deliveries]);
      }
      if (this.error) break;
      page.open += 1;
      const run: Promise<void> = commitBatch(this.target, batch, context, this.stats, this.deps)
        .then(
          (written) => {
            for (const batch of written) this.stats.failedOver += batch.commands.length;
            this.written.push(...written);
            this.deliver();
          },
          (reason: unknown) => {
            this.error ??= { reason };
            page.failed = true;
          },
        )
        .finally(() => {
          page.open -= 1;
          this.inFlight.delete(run);
        });
      this.inFlight.add(run);
    }
    this.forgetFinishedPages();
  }

  /**
   * Tracks the re-send of an earlier run's pending commands like one more delivery: drained with the rest,
   * and a command it could not send fails the run (its record stays pending for the retry).
   */
  resend(
    delivery: Promise<{ enqueued: number; failed: ReadonlyArray<{ id: string; reason: string }> }>,
    onSent: (enqueued: number) => void,
  ): void {
    this.track(
      delivery.then(({ enqueued, failed }) => {
        this.stats.commandsEnqueued += enqueued;
        onSent(enqueued);
        if (failed.length > 0) throw new CommandSendError(failed);
      }),
    );
  }

  /** Waits for every transaction and delivery; throws the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    if (this.error) throw this.error.reason;
  }

  /** Waits for everything in flight, without throwing (cleanup after an error). */
  async settle(): Promise<void> {
    await Promise.all(this.inFlight);
    this.deliver();
    await Promise.all(this.deliveries);
  }

  /** The start cursor of the oldest page not fully written (or `next` when every page is done). */
  oldestOpenPage(next: string | undefined): string | undefined {
    this.forgetFinishedPages();
    return this.pages.length > 0 ? this.pages[0]?.start : next;
  }

  private forgetFinishedPages(): void {
    while (this.pages.length > 0 && this.pages[0]?.open === 0 && !this.pages[0]?.failed) this.pages.shift();
  }

  /**
   * Starts sending what is written, one committed transaction per delivery. A failed delivery fails the
   * run; its outbox record stays pending for the retry (or the sweep) to send.
   */
  private deliver(): void {
    for (const batch of this.written.splice(0)) {
      this.track(
        this.deps.delivery
          .deliver(batch, () => this.deps.clock.now())
          .then((enqueued) => {
            this.stats.commandsEnqueued += enqueued;
          }),
      );
    }
  }

  /** Counts `delivery` in flight until it settles; its failure fails the run. */
  private track(delivery: Promise<void>): void {
    const tracked: Promise<void> = delivery
      .catch((reason: unknown) => {
        this.error ??= { reason };
      })
      .finally(() => this.deliveries.delete(tracked));
    this.deliveries.add(tracked);
  }
}

function count(stats: FailoverStats, reason: SkipReason): void {
  stats.skipped[reason] = (stats.skipped[reason] ?? 0) + 1;
}

function prepare<T extends { id: string }, M extends CommandMessage>(
  target: Target<T, M>,
  item: T,
  stamp: FenceStamp,
  stats: FailoverStats,
  deps: Pick<FailoverDeps, 'log' | 'maxCommandBytes'>,
): FailoverWrite<T, M> | undefined {
  const { log } = deps;
  const message = target.build(item, stamp);
  if (
    !target.validate(message) ||
    Buffer.byteLength(JSON.stringify(message), 'utf8') > deps.maxCommandBytes
  ) {
    count(stats, 'invalid');
    log.error('command for item is invalid or too large; item left as is', { id: item.id, host: stamp.host });
    return undefined;
  }
  return { item, generation: failoverGeneration(item as { failoverCount?: number }), message };
}

/** Was this item already written by this very holding (a commit whose response we never saw)? */
function isOwnWrite(item: object, generation: number, stamp: FenceStamp): boolean {
  const seen = item as { failoverCount?: number; fence?: number; fenceLock?: string };
  return seen.failoverCount === generation && seen.fence === stamp.fence && seen.fenceLock === stamp.lockName;
}

/**
 * Writes one batch (one transaction when all goes well). On cancellation: items whose condition failed
 * are re-read and re-decided (still eligible -> retried with the fresh state; ours already -> counted as
 * written; otherwise skipped); the rest is retried, after a jittered backoff for conflicts and throttling.
 * Returns the commands that are now written: per committed transaction with its outbox record, and the
 * ones found already written by this holding without one (their record is looked up when delivered).
 */
async function commitBatch<T extends { id: string }, M extends CommandMessage>(
  target: Target<T, M>,
  items: readonly T[],
  context: BatchContext,
  stats: FailoverStats,
  deps: Pick<FailoverDeps, 'log' | 'maxCommandBytes'>,
): Promise<OutboxBatch[]> {
  const { log } = deps;
  const { stamp, live, bounds } = context;
  const written: OutboxBatch[] = [];
  const own: M[] = [];
  const result = () => (own.length > 0 ? [...written, { commands: own }] : written);
  let pending = items.flatMap((item) => prepare(target, item, stamp, stats, deps) ?? []);
  const rereads = new Map<string, number>();
  const reasons: string[] = [];
  for (let round = 1; pending.length > 0; round += 1) {
    if (round > MAX_ROUNDS) throw new TransactionRetryError(MAX_ROUNDS, reasons);
    // Losing the scheduler's lock stops the writes (DESIGN D3): the run fails and its record is retried. It is
    // checked again between the batch's writes and its commit: a session lost while the batch waited (a row
    // lock, a slow database) rolls the batch back, where a master that took the lock meanwhile would write
    // the same rows again. The ZooKeeper client declares its session lost after two thirds of the session
    // timeout without the server; the server expires it after the whole timeout: a check that passes leaves
    // the commit at least a third of it.
    const guard = context.guard;
    guard?.assertHeld();
    const outcome = await target.store.failOver(
      pending,
      stamp,
      guard ? { beforeCommit: () => guard.assertHeld() } : undefined,
    );
    stats.transactions += 1;
    if (outcome.status === 'committed') {
      await failpoint('after-transaction');
      const notWritten = new Set(outcome.notWritten ?? []);
      for (const _ of notWritten) count(stats, 'changed');
      written.push({
        ...(outcome.outboxId === undefined ? {} : { outboxId: outcome.outboxId }),
        commands: pending.filter((w) => !notWritten.has(w.item.id)).map((w) => w.message),
        ...(outcome.receipts === undefined ? {} : { receipts: outcome.receipts }),
        stamp,
      });
      return result();
    }
    if (outcome.status === 'invalid') {
      if (pending.length === 1) {
        count(stats, 'invalid');
        log.error('failover write refused; item left as is', {
          id: pending[0]?.item.id,
          reason: outcome.reason,
        });
        return result();
      }
      // Find the culprit: each item on its own.
      for (const w of pending) {
        written.push(...(await commitBatch(target, [w.item], context, stats, deps)));
      }
      return result();
    }
    stats.retries += 1;
    reasons.push(...outcome.reasons);
    const failed = new Set(outcome.conditionFailed);
    const next = pending.filter((w) => !failed.has(w.item.id));
    if (failed.size > 0) {
      const fresh = await target.store.getMany([...failed]);
      for (const w of pending) {
        if (!failed.has(w.item.id)) continue;
        const current = fresh.get(w.item.id);
        if (current === undefined) {
          count(stats, 'gone');
          continue;
        }
        if (isOwnWrite(current, w.generation, stamp)) {
          own.push(w.message);
          continue;
        }
        const decision = target.decide(current, stamp.host, live, bounds);
        const rereadCount = (rereads.get(w.item.id) ?? 0) + 1;
        rereads.set(w.item.id, rereadCount);
        if (!decision.eligible) {
          count(stats, decision.reason);
          log.debug('item no longer eligible', { id: w.item.id, reason: decision.reason });
        } else if (rereadCount > MAX_REREADS) {
          count(stats, 'contended');
          log.warn('item kept changing; left to the sweep', { id: w.item.id, host: stamp.host });
        } else {
          const retry = prepare(target, current, stamp, stats, deps);
          if (retry) next.push(retry);
        }
      }
    }
    if (outcome.retryable) await sleep(backoffMs(round, 25, 1_000));
    pending = next;
  }
  return result();
}
