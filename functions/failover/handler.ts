// SQS-triggered failover function: one failover request per record, partial batch response.
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { dynamoDbClient, sqsClient } from '../../lib/aws.ts';
import { loadConfig } from '../../lib/config.ts';
import { systemClock } from '../../lib/failover/fail-over-host.ts';
import { type BatchDeps, processFailoverBatch } from '../../lib/failover/process-batch.ts';
import { metricSink } from '../../lib/observability.ts';
import { SqsCommandQueue } from '../../lib/queue/commands.ts';
import { SqsFailoverRecordControl } from '../../lib/queue/failover-records.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { DynamoCommandStore } from '../../lib/store/commands.ts';
import { DynamoInstanceStore } from '../../lib/store/instances.ts';
import { DynamoLockStore } from '../../lib/store/locks.ts';
import { DynamoServerMirror } from '../../lib/store/server-mirror.ts';
import { DynamoTaskStore } from '../../lib/store/tasks.ts';

const config = loadConfig([
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

const deps: BatchDeps = {
  failover: {
    instances: new DynamoInstanceStore(dynamodb, {
      instances: config.INSTANCES_TABLE,
      commands: config.COMMANDS_TABLE,
    }),
    tasks: new DynamoTaskStore(dynamodb, { tasks: config.TASKS_TABLE, commands: config.COMMANDS_TABLE }),
    commands: new DynamoCommandStore(dynamodb, config.COMMANDS_TABLE),
    locks: new DynamoLockStore(dynamodb, config.LOCKS_TABLE),
    servers: new DynamoServerMirror(dynamodb, config.SERVERS_TABLE),
    commandQueue: new SqsCommandQueue(sqs, config.COMMANDS_QUEUE_URL),
    requestQueue: new SqsFailoverRequestQueue(sqs, config.FAILOVER_QUEUE_URL),
    clock: systemClock,
    log: logger,
    settings: {
      leaseMs: config.LOCK_LEASE_MS,
      batchSize: config.FAILOVER_BATCH_SIZE,
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
