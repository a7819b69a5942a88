// One SQS batch of failover requests -> a partial batch response. Each record is validated at the edge;
// poison goes to the DLQ and counts as processed; a held lock or an error fails only that record (and,
// FIFO, the later records of its message group), with its visibility shortened to when a retry makes sense.
import type { SQSBatchItemFailure, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { parseFailoverRequest } from '../messages.ts';
import { describeError, FailoverMetric, type Log, type MetricSink } from '../observability.ts';
import {
  type Budget,
  type FailoverDeps,
  type FailoverOutcome,
  failOverHost,
  invocationBudget,
} from './fail-over-host.ts';
import type { FailoverRecordControl } from './ports.ts';

export interface BatchDeps {
  failover: FailoverDeps;
  records: FailoverRecordControl;
  metrics: MetricSink;
  log: Log;
  /** Stop taking new pages when less than this is left of the invocation. */
  deadlineMarginMs: number;
}

export interface InvocationContext {
  getRemainingTimeInMillis(): number;
}

/** Retry delay after an unexpected error: 5, 10, 20, 40, 80 s by receive count (then the DLQ takes it). */
export function errorRetrySeconds(receiveCount: number): number {
  const n = Number.isFinite(receiveCount) && receiveCount >= 1 ? Math.floor(receiveCount) : 1;
  return Math.min(300, 5 * 2 ** Math.min(n - 1, 6));
}

/** Retry delay when the lock is held: about when its lease runs out, at least 1 s. */
export function lockRetrySeconds(retryAfterMs: number): number {
  return Math.min(900, Math.max(1, Math.ceil(retryAfterMs / 1000)));
}

export async function processFailoverBatch(
  event: SQSEvent,
  context: InvocationContext,
  deps: BatchDeps,
): Promise<SQSBatchResponse> {
  const budget = invocationBudget(() => context.getRemainingTimeInMillis(), deps.deadlineMarginMs);
  const batchItemFailures: SQSBatchItemFailure[] = [];
  const failedGroups = new Set<string>();
  for (const record of event.Records ?? []) {
    const group = record.attributes?.MessageGroupId;
    // FIFO: a later message of a group whose earlier message failed must not overtake it.
    let ok = false;
    if (group === undefined || !failedGroups.has(group)) {
      ok = await processRecord(record, budget, deps);
    }
    if (!ok) {
      batchItemFailures.push({ itemIdentifier: record.messageId });
      if (group !== undefined) failedGroups.add(group);
    }
  }
  return { batchItemFailures };
}

/** True when the record is done with (processed, continued, or dead-lettered). */
async function processRecord(record: SQSRecord, budget: Budget, deps: BatchDeps): Promise<boolean> {
  const { log, metrics } = deps;
  const messageId = record.messageId;
  const parsed = parseFailoverRequest(record.body);
  if (!parsed.ok) {
    metrics.count(FailoverMetric.PoisonMessages, 1);
    log.warn('poison message rejected', { messageId, reason: parsed.reason });
    try {
      await deps.records.deadLetter(
        {
          messageId,
          body: record.body,
          groupId: record.attributes?.MessageGroupId,
          receiveCount: record.attributes?.ApproximateReceiveCount,
        },
        parsed.reason,
      );
      return true;
    } catch (error: unknown) {
      // It reaches the DLQ by redrive after maxReceiveCount instead.
      log.error('poison message could not be dead-lettered', { messageId, ...describeError(error) });
      return false;
    }
  }
  const request = parsed.value;
  const keys = { messageId, nodeType: request.nodeType, host: request.host, attempt: request.attempt };
  const started = Date.now();
  let outcome: FailoverOutcome;
  try {
    outcome = await failOverHost(request, deps.failover, budget);
  } catch (error: unknown) {
    metrics.count(FailoverMetric.FailedRequests, 1);
    log.error('failover failed; the record will be retried', { ...keys, ...describeError(error) });
    await retryAfter(record, errorRetrySeconds(Number(record.attributes?.ApproximateReceiveCount)), deps);
    return false;
  } finally {
    metrics.milliseconds(FailoverMetric.FailoverDuration, Date.now() - started);
  }
  switch (outcome.status) {
    case 'lock-held':
      metrics.count(FailoverMetric.LockContention, 1);
      log.info('lock held by another run; retry later', { ...keys, retryAfterMs: outcome.retryAfterMs });
      await retryAfter(record, lockRetrySeconds(outcome.retryAfterMs), deps);
      return false;
    case 'lock-lost':
      metrics.count(FailoverMetric.LockContention, 1);
      recordStats(outcome.stats, request.nodeType, deps.metrics);
      await retryAfter(record, 1, deps);
      return false;
    case 'continued':
      metrics.count(FailoverMetric.Continuations, 1);
      recordStats(outcome.stats, request.nodeType, deps.metrics);
      return true;
    case 'done':
      recordStats(outcome.stats, request.nodeType, deps.metrics);
      return true;
    case 'acknowledged':
      metrics.count(FailoverMetric.WorkerRemovalsAcknowledged, 1);
      return true;
  }
}

function recordStats(
  stats: { failedOver: number; commandsEnqueued: number; skipped: Partial<Record<string, number>> },
  nodeType: 'master' | 'worker',
  metrics: MetricSink,
): void {
  metrics.count(
    nodeType === 'master' ? FailoverMetric.InstancesFailedOver : FailoverMetric.TasksFailedOver,
    stats.failedOver,
  );
  metrics.count(FailoverMetric.CommandsEnqueued, stats.commandsEnqueued);
  const skipped = Object.values(stats.skipped).reduce<number>((sum, n) => sum + (n ?? 0), 0);
  metrics.count(FailoverMetric.SkippedItems, skipped);
}

async function retryAfter(record: SQSRecord, seconds: number, deps: BatchDeps): Promise<void> {
  try {
    await deps.records.retryAfter(record.receiptHandle, seconds);
  } catch (error: unknown) {
    // The queue's own visibility timeout applies instead.
    deps.log.warn('could not shorten the retry delay', {
      messageId: record.messageId,
      ...describeError(error),
    });
  }
}
