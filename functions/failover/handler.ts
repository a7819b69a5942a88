// SQS-triggered failover function: one failover request per record, partial batch response, on the store
// the configuration names (STORE: the DynamoDB tables, or DolphinScheduler's own database).
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { dynamoDbClient, sqsClient } from '../../lib/aws.ts';
import { loadConfig, loadDolphinSchedulerConfig } from '../../lib/config.ts';
import { systemClock } from '../../lib/failover/fail-over-host.ts';
import { type BatchDeps, processFailoverBatch } from '../../lib/failover/process-batch.ts';
import { metricSink } from '../../lib/observability.ts';
import { SqsFailoverRecordControl } from '../../lib/queue/failover-records.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { registryFromConfig, registryLogger, registrySettings } from '../../lib/registry/registry-config.ts';
import { ZkSessionProvider } from '../../lib/registry/zk-session-provider.ts';
import { awsSecretSources } from '../../lib/secrets.ts';
import { DynamoLockStore } from '../../lib/store/dynamodb/locks.ts';
import { DynamoRunJournal } from '../../lib/store/dynamodb/run-journal.ts';
import {
  dolphinSchedulerDatabase,
  dolphinSchedulerFailoverPorts,
  dynamoFailoverPorts,
  type FailoverStorePorts,
} from '../../lib/stores.ts';

const config = loadConfig([
  'STORE',
  'INSTANCES_TABLE',
  'TASKS_TABLE',
  'COMMANDS_TABLE',
  'LOCKS_TABLE',
  'SERVERS_TABLE',
  'FAILOVER_QUEUE_URL',
  'FAILOVER_DLQ_URL',
  'COMMANDS_QUEUE_URL',
  'LOCK_LEASE_MS',
  'FAILOVER_BATCH_SIZE',
  'FAILOVER_CONCURRENCY',
  'DEADLINE_MARGIN_MS',
]);
const logger = new Logger();
const metrics = new Metrics();
const dynamodb = dynamoDbClient();
const sqs = sqsClient();

/** DolphinScheduler's database settings, when it is the store (STORE=dolphinscheduler). */
const ds = config.STORE === 'dolphinscheduler' ? loadDolphinSchedulerConfig() : undefined;

/** The store the configuration names, wired once per container. */
function storePorts(): FailoverStorePorts {
  if (ds === undefined) {
    return dynamoFailoverPorts(
      { dynamodb, sqs },
      {
        instancesTable: config.INSTANCES_TABLE,
        tasksTable: config.TASKS_TABLE,
        commandsTable: config.COMMANDS_TABLE,
        serversTable: config.SERVERS_TABLE,
        commandsQueueUrl: config.COMMANDS_QUEUE_URL,
      },
      logger,
    );
  }
  const registryLog = registryLogger(logger);
  const registry = registryFromConfig(loadConfig(registrySettings), registryLog);
  const secrets = awsSecretSources();
  return dolphinSchedulerFailoverPorts({
    database: dolphinSchedulerDatabase(ds, (arn) => secrets.secret(arn)),
    timeZone: ds.timeZone,
    scanSpan: ds.scanSpan,
    zookeeper: new ZkSessionProvider(registry, { connectTimeoutMs: 10_000 }),
    layout: registry.layout,
    version: ds.version,
    journal: new DynamoRunJournal(dynamodb, config.COMMANDS_TABLE),
    log: logger,
    registryLog,
  });
}

const deps: BatchDeps = {
  failover: {
    ...storePorts(),
    locks: new DynamoLockStore(dynamodb, config.LOCKS_TABLE),
    requestQueue: new SqsFailoverRequestQueue(sqs, config.FAILOVER_QUEUE_URL),
    clock: systemClock,
    log: logger,
    settings: {
      leaseMs: config.LOCK_LEASE_MS,
      batchSize: ds?.batchSize ?? config.FAILOVER_BATCH_SIZE,
      concurrency: config.FAILOVER_CONCURRENCY,
    },
  },
  records: new SqsFailoverRecordControl(sqs, {
    queue: config.FAILOVER_QUEUE_URL,
    deadLetterQueue: config.FAILOVER_DLQ_URL,
  }),
  metrics: metricSink(metrics),
  log: logger,
  deadlineMarginMs: config.DEADLINE_MARGIN_MS,
};

export const handler = middy(
  (event: SQSEvent, context: Context): Promise<SQSBatchResponse> =>
    processFailoverBatch(event, context, deps),
)
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));
