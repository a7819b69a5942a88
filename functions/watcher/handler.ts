// Scheduled every minute: holds ZooKeeper watches until shortly before its deadline and relays each
// removal to the failover queue (DESIGN.md section 6; lib/registry/watch-window.ts).
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { dynamoDbClient, sqsClient } from '../../lib/aws.ts';
import { loadConfig } from '../../lib/config.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { registryFromConfig, registryLogger, registrySettings } from '../../lib/registry/registry-config.ts';
import { runWatchWindow, type WatchWindowSummary } from '../../lib/registry/watch-window.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';

const config = loadConfig([
  ...registrySettings,
  'SERVERS_TABLE',
  'FAILOVER_QUEUE_URL',
  'DEAD_SERVER_MARKERS',
  'WATCH_MARGIN_MS',
]);
const logger = new Logger();
const metrics = new Metrics();
const log = registryLogger(logger);
const registry = registryFromConfig(config, log);
const deps = {
  ...registry,
  store: new DynamoServerStore(dynamoDbClient(), config.SERVERS_TABLE),
  queue: new SqsFailoverRequestQueue(sqsClient(), config.FAILOVER_QUEUE_URL),
  logger: log,
  deadServerMarkers: config.DEAD_SERVER_MARKERS,
  onRelayed: (removal: { sentAt: number; detectedAt?: number }) => {
    metrics.addMetric('RemovalsRelayed', MetricUnit.Count, 1);
    if (removal.detectedAt !== undefined) {
      metrics.addMetric('DetectionDelay', MetricUnit.Milliseconds, removal.sentAt - removal.detectedAt);
    }
    // Published at once: the window lasts most of a minute.
    metrics.publishStoredMetrics();
  },
};

export const handler = middy(async (_event: unknown, context: Context): Promise<WatchWindowSummary> => {
  const endAt = Date.now() + context.getRemainingTimeInMillis() - config.WATCH_MARGIN_MS;
  const summary = await runWatchWindow(deps, { endAt });
  logger.info('watch window closed', { ...summary });
  return summary;
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));
