// Delivery on DolphinScheduler's own database (DESIGN D6): the command row is the delivery, since its
// masters poll `t_ds_command`. What is left is to record each committed batch where operators and tests
// can read it (the run journal) and in the log. A journal that cannot be written is logged, never fatal:
// the failover itself is already committed, and the database stays the truth.
import type { CommandDelivery, OutboxBatch, PendingDelivery, RunJournal } from '../../failover/ports.ts';
import { describeError, type Log, silentLog } from '../../observability.ts';

export class DsCommandDelivery implements CommandDelivery {
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
