// Structured logging and metrics as small ports, so lib code stays free of Powertools and of `console`.
// Powertools' Logger satisfies `Log` as is; `metricSink` adapts Powertools' Metrics.
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { MetricUnit } from '@aws-lambda-powertools/metrics';

/** Constant message, data in keys (`log.info('instance failed over', { id, host })`). */
export interface Log {
  debug(message: string, ...data: Record<string, unknown>[]): void;
  info(message: string, ...data: Record<string, unknown>[]): void;
  warn(message: string, ...data: Record<string, unknown>[]): void;
  error(message: string, ...data: Record<string, unknown>[]): void;
}

/** A Log that drops everything (tests, callers that do not care). */
export const silentLog: Log = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** The failover function's metrics (CloudWatch EMF, namespace from POWERTOOLS_METRICS_NAMESPACE). */
export const FailoverMetric = {
  InstancesFailedOver: 'InstancesFailedOver',
  TasksFailedOver: 'TasksFailedOver',
  CommandsEnqueued: 'CommandsEnqueued',
  LockContention: 'LockContention',
  PoisonMessages: 'PoisonMessages',
  Continuations: 'Continuations',
  SkippedItems: 'SkippedItems',
  FailedRequests: 'FailedRequests',
  FailoverDuration: 'FailoverDuration',
  /** Worker removals acknowledged without writing, where the scheduler fails worker tasks over (D4). */
  WorkerRemovalsAcknowledged: 'WorkerRemovalsAcknowledged',
} as const;
export type FailoverMetricName = (typeof FailoverMetric)[keyof typeof FailoverMetric];

export interface MetricSink {
  count(name: FailoverMetricName, value: number): void;
  milliseconds(name: FailoverMetricName, value: number): void;
}

export const silentMetrics: MetricSink = { count: () => undefined, milliseconds: () => undefined };

/** Adapts Powertools Metrics; zero counts are skipped to keep the EMF blobs small. */
export function metricSink(metrics: Metrics): MetricSink {
  return {
    count: (name, value) => {
      if (value !== 0) metrics.addMetric(name, MetricUnit.Count, value);
    },
    milliseconds: (name, value) => metrics.addMetric(name, MetricUnit.Milliseconds, value),
  };
}

/** A short, log-safe description of a caught value. */
export function describeError(error: unknown): { errorName: string; errorMessage: string } {
  if (error instanceof Error) return { errorName: error.name, errorMessage: error.message.slice(0, 1000) };
  return { errorName: typeof error, errorMessage: String(error).slice(0, 1000) };
}
