// The outbox (DESIGN section 5): commands are written to the commands table inside the failover
// transaction, then sent to the commands queue, then marked enqueued. A crash between those steps leaves
// the command `pending`; the next failover run for the same host (deliverPendingCommands) or the sweep
// (resendPendingCommands) sends it again with the same deduplication id.
import { failpoint } from '../faults.ts';
import type { CommandMessage } from '../messages.ts';
import { type Log, silentLog } from '../observability.ts';
import type { CommandStore, PendingFilter } from '../store/commands.ts';
import type { CommandQueue } from './commands.ts';

/** Some commands could not be put on the queue; they stay pending (the retry or the sweep re-sends them). */
export class CommandSendError extends Error {
  constructor(readonly failed: ReadonlyArray<{ id: string; reason: string }>) {
    super(`${failed.length} command(s) could not be enqueued: ${failed[0]?.reason ?? ''}`);
    this.name = 'CommandSendError';
  }
}

export interface OutboxDeps {
  commands: CommandStore;
  queue: CommandQueue;
  log?: Log;
}

/**
 * Sends written commands and marks the accepted ones enqueued. Returns how many were enqueued; throws
 * CommandSendError (after marking the others) when some could not be sent.
 */
export async function deliverCommands(
  deps: OutboxDeps,
  messages: readonly CommandMessage[],
  now: () => number,
): Promise<number> {
  if (messages.length === 0) return 0;
  await failpoint('before-outbox-send');
  const { sent, failed } = await deps.queue.send(messages);
  await failpoint('after-outbox-send');
  await failpoint('before-mark-enqueued');
  const accepted = new Set(sent);
  await deps.commands.markEnqueued(
    messages.filter((m) => accepted.has(m.id)),
    now(),
  );
  if (failed.length > 0) throw new CommandSendError(failed);
  return sent.length;
}

/** Sends every pending command matching `filter` (page by page). Returns how many were enqueued. */
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
    const page = await deps.commands.pendingPage(filter, options.pageSize ?? 100, cursor);
    cursor = page.cursor;
    if (page.malformed.length > 0) {
      totals.malformed += page.malformed.length;
      log.error('pending command is malformed', {
        ids: page.malformed.slice(0, 10),
        count: page.malformed.length,
      });
    }
    const batch = page.commands.slice(0, Math.max(0, limit - seen));
    seen += batch.length;
    if (batch.length === 0) continue;
    try {
      totals.enqueued += await deliverCommands(deps, batch, now);
    } catch (error: unknown) {
      if (!(error instanceof CommandSendError)) throw error;
      totals.failed.push(...error.failed);
      totals.enqueued += batch.length - error.failed.length;
      log.warn('pending commands could not be re-sent', { failed: error.failed.slice(0, 10) });
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
