// The outbox (DESIGN section 5): commands are written to the commands table inside the failover
// transaction, with an outbox record listing them; then they are sent to the commands queue; then the
// record is marked enqueued. A crash between those steps leaves the record `pending`; the next failover run
// for the same host (deliverPendingCommands) or the sweep (resendPendingCommands) sends its commands again
// with the same deduplication ids.

import {
  type CommandDelivery,
  CommandSendError,
  type OutboxBatch,
  type PendingDelivery,
  type PendingFilter,
} from '../failover/ports.ts';
import { failpoint } from '../faults.ts';
import { type Log, silentLog } from '../observability.ts';
import type { CommandStore } from '../store/dynamodb/commands.ts';
import type { CommandQueue } from './commands.ts';

export interface OutboxDeps {
  commands: CommandStore;
  queue: CommandQueue;
  log?: Log;
}

/**
 * Sends one outbox record's commands, then marks the record enqueued, or, when some could not be sent,
 * leaves it pending with only those (and the unsendable ones) listed. Returns how many were enqueued;
 * throws CommandSendError when some could not be sent.
 */
export async function deliverCommands(
  deps: OutboxDeps,
  batch: OutboxBatch,
  now: () => number,
): Promise<number> {
  const { outboxId, commands, unsendable = [] } = batch;
  if (commands.length === 0) return 0;
  // Written by a commit whose response was lost: its record is found through the commands.
  if (outboxId === undefined)
    return deliverRecordsOf(
      deps,
      commands.map((c) => c.id),
      now,
    );
  await failpoint('before-outbox-send');
  const { sent, failed } = await deps.queue.send(commands);
  await failpoint('after-outbox-send');
  await failpoint('before-mark-enqueued');
  const remaining = [...failed.map((f) => f.id), ...unsendable];
  if (remaining.length === 0) await deps.commands.markEnqueued(outboxId, now());
  else if (sent.length > 0) await deps.commands.keepPending(outboxId, remaining);
  if (failed.length > 0) throw new CommandSendError(failed);
  return sent.length;
}

/**
 * Delivers what a transaction reported as failed had written after all (a lost commit response): the
 * pending outbox records listing these commands, read consistently, each sent and marked like any other.
 */
export async function deliverRecordsOf(
  deps: OutboxDeps,
  commandIds: readonly string[],
  now: () => number,
): Promise<number> {
  let enqueued = 0;
  const failed: Array<{ id: string; reason: string }> = [];
  for (const batch of await deps.commands.pendingRecordsOf(commandIds)) {
    try {
      enqueued += await deliverCommands(deps, batch, now);
    } catch (error: unknown) {
      if (!(error instanceof CommandSendError)) throw error;
      failed.push(...error.failed);
    }
  }
  if (failed.length > 0) throw new CommandSendError(failed);
  return enqueued;
}

/**
 * Sends the commands of every pending outbox record matching `filter` (`pageSize` records per page, up to
 * about `limit` commands). Returns how many were enqueued.
 */
export async function deliverPendingCommands(
  deps: OutboxDeps,
  filter: PendingFilter,
  now: () => number,
  options: { pageSize?: number; limit?: number } = {},
): Promise<{ enqueued: number; failed: Array<{ id: string; reason: string }>; malformed: number }> {
  const log = deps.log ?? silentLog;
  const totals = { enqueued: 0, failed: [] as Array<{ id: string; reason: string }>, malformed: 0 };
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  let cursor: string | undefined;
  let seen = 0;
  do {
    const page = await deps.commands.pendingPage(filter, options.pageSize ?? 10, cursor);
    cursor = page.cursor;
    if (page.malformed.length > 0) {
      totals.malformed += page.malformed.length;
      log.error('pending command is malformed', {
        ids: page.malformed.slice(0, 10),
        count: page.malformed.length,
      });
    }
    for (const batch of page.batches) {
      if (seen >= limit) break;
      seen += batch.commands.length;
      try {
        totals.enqueued += await deliverCommands(deps, batch, now);
      } catch (error: unknown) {
        if (!(error instanceof CommandSendError)) throw error;
        totals.failed.push(...error.failed);
        totals.enqueued += batch.commands.length - error.failed.length;
        log.warn('pending commands could not be re-sent', { failed: error.failed.slice(0, 10) });
      }
    }
  } while (cursor !== undefined && seen < limit);
  return totals;
}

/**
 * For the sweep: re-sends commands written more than `olderThanMs` ago and never marked enqueued (a
 * failover run that crashed between its transaction and its queue send). Younger ones are left to the run
 * that wrote them. Same deduplication id as the first send, so SQS drops a duplicate within 5 minutes and
 * consumers recognise a later one by the command id.
 */
export async function resendPendingCommands(options: {
  commands: CommandStore;
  queue: CommandQueue;
  now: number;
  olderThanMs: number;
  limit?: number;
  log?: Log;
}): Promise<{ resent: number; failed: number; malformed: number }> {
  const { enqueued, failed, malformed } = await deliverPendingCommands(
    { commands: options.commands, queue: options.queue, log: options.log },
    { createdBefore: options.now - options.olderThanMs },
    () => options.now,
    { limit: options.limit },
  );
  return { resent: enqueued, failed: failed.length, malformed };
}

/** The failover core's delivery for the DynamoDB store: the outbox and the commands queue. */
export class OutboxCommandDelivery implements CommandDelivery {
  constructor(private readonly deps: OutboxDeps) {}

  deliver(batch: OutboxBatch, now: () => number): Promise<number> {
    return deliverCommands(this.deps, batch, now);
  }

  deliverPending(filter: PendingFilter, now: () => number): Promise<PendingDelivery> {
    return deliverPendingCommands(this.deps, filter, now);
  }
}
