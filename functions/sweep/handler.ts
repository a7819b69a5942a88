// Scheduled: fails over orphans (executing work of hosts that are not live, F6), repairs the membership
// mirror and re-sends requests and commands left pending (lib/sweep/sweep.ts); on DolphinScheduler's
// database (STORE=dolphinscheduler) it also repairs instances left without an owner and a command (D5).
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { dynamoDbClient, sqsClient } from '../../lib/aws.ts';
import { loadConfig, loadDolphinSchedulerConfig } from '../../lib/config.ts';
import { SqsCommandQueue } from '../../lib/queue/commands.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { resendPendingCommands } from '../../lib/queue/outbox.ts';
import { registryFromConfig, registryLogger, registrySettings } from '../../lib/registry/registry-config.ts';
import { awsSecretSources } from '../../lib/secrets.ts';
import { DynamoCommandStore } from '../../lib/store/dynamodb/commands.ts';
import { DynamoExecutingWork } from '../../lib/store/dynamodb/executing-work.ts';
import { DynamoLockStore } from '../../lib/store/dynamodb/locks.ts';
import { DynamoRepairLedger } from '../../lib/store/dynamodb/repair-ledger.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';
import { dolphinSchedulerDatabase, dolphinSchedulerSweepParts } from '../../lib/stores.ts';
import { runSweep, type SweepDeps, type SweepSummary } from '../../lib/sweep/sweep.ts';

const config = loadConfig([
  ...registrySettings,
  'STORE',
  'SERVERS_TABLE',
  'INSTANCES_TABLE',
  'TASKS_TABLE',
  'COMMANDS_TABLE',
  'LOCKS_TABLE',
  'FAILOVER_QUEUE_URL',
  'COMMANDS_QUEUE_URL',
  'DEADLINE_MARGIN_MS',
]);
const logger = new Logger();
const metrics = new Metrics();
const log = registryLogger(logger);
const dynamodb = dynamoDbClient();
/** Commands younger than this may still be sent by the failover run that wrote them. */
const outboxGraceMs = 60_000;

/** What the sweep asks of the store the configuration names (STORE), and the store's repairs. */
function storeParts(): Pick<SweepDeps, 'work' | 'resendPendingCommands' | 'repairUnowned'> {
  if (config.STORE === 'dynamodb') {
    const commands = new DynamoCommandStore(dynamodb, config.COMMANDS_TABLE);
    const commandQueue = new SqsCommandQueue(sqsClient(), config.COMMANDS_QUEUE_URL);
    return {
      work: new DynamoExecutingWork(dynamodb, {
        instancesTable: config.INSTANCES_TABLE,
        tasksTable: config.TASKS_TABLE,
      }),
      resendPendingCommands: () =>
        resendPendingCommands({
          commands,
          queue: commandQueue,
          now: Date.now(),
          olderThanMs: outboxGraceMs,
          log: logger,
        }),
    };
  }
  const ds = loadDolphinSchedulerConfig();
  const secrets = awsSecretSources();
  return dolphinSchedulerSweepParts({
    database: dolphinSchedulerDatabase(ds, (arn) => secrets.secret(arn)),
    timeZone: ds.timeZone,
    ledger: new DynamoRepairLedger(dynamodb, config.SERVERS_TABLE),
    locks: new DynamoLockStore(dynamodb, config.LOCKS_TABLE),
    graceMs: ds.repairGraceMs,
    log: logger,
  });
}

const deps: SweepDeps = {
  ...registryFromConfig(config, log),
  store: new DynamoServerStore(dynamodb, config.SERVERS_TABLE),
  queue: new SqsFailoverRequestQueue(sqsClient(), config.FAILOVER_QUEUE_URL),
  ...storeParts(),
  logger: log,
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
