// Scheduled: fails over orphans (executing work of hosts that are not live, F6), repairs the membership
// mirror and re-sends requests and commands left pending (lib/sweep/sweep.ts).
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { dynamoDbClient, sqsClient } from '../../lib/aws.ts';
import { loadConfig } from '../../lib/config.ts';
import { SqsCommandQueue } from '../../lib/queue/commands.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { resendPendingCommands } from '../../lib/queue/outbox.ts';
import { registryFromConfig, registryLogger, registrySettings } from '../../lib/registry/registry-config.ts';
import { DynamoCommandStore } from '../../lib/store/dynamodb/commands.ts';
import { DynamoExecutingWork } from '../../lib/store/dynamodb/executing-work.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';
import { runSweep, type SweepSummary } from '../../lib/sweep/sweep.ts';

const config = loadConfig([
  ...registrySettings,
  'SERVERS_TABLE',
  'INSTANCES_TABLE',
  'TASKS_TABLE',
  'COMMANDS_TABLE',
  'FAILOVER_QUEUE_URL',
  'COMMANDS_QUEUE_URL',
  'DEADLINE_MARGIN_MS',
]);
const logger = new Logger();
const metrics = new Metrics();
const log = registryLogger(logger);
const commands = new DynamoCommandStore(dynamoDbClient(), config.COMMANDS_TABLE);
const commandQueue = new SqsCommandQueue(sqsClient(), config.COMMANDS_QUEUE_URL);
/** Commands younger than this may still be sent by the failover run that wrote them. */
const outboxGraceMs = 60_000;
const deps = {
  ...registryFromConfig(config, log),
  store: new DynamoServerStore(dynamoDbClient(), config.SERVERS_TABLE),
  queue: new SqsFailoverRequestQueue(sqsClient(), config.FAILOVER_QUEUE_URL),
  work: new DynamoExecutingWork(dynamoDbClient(), {
    instancesTable: config.INSTANCES_TABLE,
    tasksTable: config.TASKS_TABLE,
  }),
  logger: log,
  resendPendingCommands: () =>
    resendPendingCommands({
      commands,
      queue: commandQueue,
      now: Date.now(),
      olderThanMs: outboxGraceMs,
      log: logger,
    }),
};

/** A scheduled event, or `{ "discover": true }` from an operator to start a full discovery pass. */
const SweepEventSchema = z.looseObject({ discover: z.boolean().optional() });

export const handler = middy(async (event: unknown, context: Context): Promise<SweepSummary> => {
  const parsed = SweepEventSchema.safeParse(event);
  const discover = parsed.success && parsed.data.discover === true;
  const endAt = Date.now() + context.getRemainingTimeInMillis() - config.DEADLINE_MARGIN_MS;
  const summary = await runSweep(deps, { endAt, discover });
  metrics.addMetric('OrphanHosts', MetricUnit.Count, summary.orphans.length);
  metrics.addMetric('RemovalsRelayed', MetricUnit.Count, summary.removalsRelayed);
  if (summary.registry === 'unavailable') metrics.addMetric('RegistryUnavailable', MetricUnit.Count, 1);
  logger.info('sweep done', { ...summary });
  return summary;
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));
