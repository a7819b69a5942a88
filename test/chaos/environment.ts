// What the chaos runs share, started once: the local stack (ZooKeeper, DynamoDB Local, the SQS emulator,
// the tables and queues of serverless.yml), a fault proxy in front of DynamoDB and one in front of SQS,
// the "healthy" failover runtime (the real handler in child processes, consuming the failover queue, its
// AWS calls through the proxies), and on demand a 3-node ZooKeeper ensemble. Between runs the tables and
// queues are emptied; each run uses its own registry root and its own hosts.
import {
  type AttributeValue,
  BatchWriteItemCommand,
  type DynamoDBClient,
  ScanCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { PurgeQueueCommand } from '@aws-sdk/client-sqs';
import { type LocalRuntime, type RuntimeOptions, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../../lib/local/zookeeper.ts';
import { RegistryAgent } from './agent-client.ts';
import { type FaultProxy, startFaultProxy } from './fault-proxy.ts';

/** Settings of the healthy failover runtime (the same for every run). */
export const healthySettings = {
  leaseMs: 2_000,
  batchSize: 8,
  concurrency: 3,
  timeoutMs: 20_000,
  deadlineMarginMs: 4_000,
} as const;

/** The failover queue's visibility timeout (s): a crashed batch comes back this fast. */
export const failoverVisibilitySeconds = 5;

export type RuntimeLabel = 'healthy' | 'faulty';

export interface ChaosEnvironmentOptions {
  /** Where container log lines go (the current run picks them up). */
  readonly onLog?: (runtime: RuntimeLabel, line: string) => void;
}

export class ChaosEnvironment {
  private ensembleCluster: ZooKeeperCluster | undefined;
  private logSink: ((runtime: RuntimeLabel, line: string) => void) | undefined;
  private constructor(
    readonly stack: LocalStack,
    readonly dynamoProxy: FaultProxy,
    readonly sqsProxy: FaultProxy,
    readonly healthy: LocalRuntime,
    /** Every ZooKeeper client of the suite lives in this process (see registry-agent.ts for why). */
    readonly agent: RegistryAgent,
  ) {}

  static async start(options: ChaosEnvironmentOptions = {}): Promise<ChaosEnvironment> {
    const stack = await startLocalStack({
      zookeeperSize: 1,
      queueOverrides: { FailoverQueue: { VisibilityTimeout: String(failoverVisibilitySeconds) } },
    });
    let dynamoProxy: FaultProxy | undefined;
    let sqsProxy: FaultProxy | undefined;
    let agent: RegistryAgent | undefined;
    try {
      dynamoProxy = await startFaultProxy({ service: 'dynamodb', upstream: stack.info.dynamodb });
      sqsProxy = await startFaultProxy({ service: 'sqs', upstream: stack.info.sqs, rewriteOwnOrigin: true });
      const { tables, queues } = stack.info;
      agent = await RegistryAgent.start({
        region: stack.info.region,
        endpoints: {
          dynamodb: stack.info.dynamodb,
          sqs: stack.info.sqs,
          proxiedDynamodb: dynamoProxy.endpoint,
          proxiedSqs: sqsProxy.endpoint,
        },
        tables: {
          instances: tables.instances,
          tasks: tables.tasks,
          commands: tables.commands,
          servers: tables.servers,
        },
        queues: { failover: queues.failover, commands: queues.commands },
      });
      let env: ChaosEnvironment | undefined;
      const healthy = startLocalRuntime(
        stack,
        failoverRuntimeOptions(stack, dynamoProxy, sqsProxy, {
          env: {
            LOCK_LEASE_MS: String(healthySettings.leaseMs),
            FAILOVER_BATCH_SIZE: String(healthySettings.batchSize),
            FAILOVER_CONCURRENCY: String(healthySettings.concurrency),
            DEADLINE_MARGIN_MS: String(healthySettings.deadlineMarginMs),
          },
          timeoutMs: healthySettings.timeoutMs,
          eventSources: true,
          maxContainers: 4,
          onLog: (line) => {
            options.onLog?.('healthy', line);
            env?.logSink?.('healthy', line);
          },
        }),
      );
      env = new ChaosEnvironment(stack, dynamoProxy, sqsProxy, healthy, agent);
      return env;
    } catch (error: unknown) {
      await agent?.stop();
      await dynamoProxy?.close();
      await sqsProxy?.close();
      await stack.stop();
      throw error;
    }
  }

  /** Routes container log lines to the current run. */
  setLogSink(sink: ((runtime: RuntimeLabel, line: string) => void) | undefined): void {
    this.logSink = sink;
  }

  /** A failover runtime with fault injection (its own containers, settings and failpoints). */
  startFaultyRuntime(settings: {
    failpoints: string;
    leaseMs: number;
    batchSize: number;
    concurrency: number;
    timeoutMs: number;
    deadlineMarginMs: number;
    eventSource: boolean;
  }): LocalRuntime {
    return startLocalRuntime(
      this.stack,
      failoverRuntimeOptions(this.stack, this.dynamoProxy, this.sqsProxy, {
        env: {
          ZKF_FAILPOINTS: settings.failpoints,
          LOCK_LEASE_MS: String(settings.leaseMs),
          FAILOVER_BATCH_SIZE: String(settings.batchSize),
          FAILOVER_CONCURRENCY: String(settings.concurrency),
          DEADLINE_MARGIN_MS: String(settings.deadlineMarginMs),
        },
        timeoutMs: settings.timeoutMs,
        eventSources: settings.eventSource,
        maxContainers: 2,
        sqsConcurrency: 2,
        onLog: (line) => this.logSink?.('faulty', line),
      }),
    );
  }

  /** The 3-node ensemble, started on first use and kept for later runs. */
  async ensemble(): Promise<ZooKeeperCluster> {
    this.ensembleCluster ??= await startZooKeeper({ size: 3 });
    return this.ensembleCluster;
  }

  get ensembleStarted(): boolean {
    return this.ensembleCluster !== undefined;
  }

  /** Empties every table and queue (between runs). */
  async reset(): Promise<void> {
    const { dynamodb, sqs } = this.stack.clients;
    const tables = this.stack.info.tables;
    const keys: Array<[string, string]> = [
      [tables.instances, 'id'],
      [tables.tasks, 'id'],
      [tables.commands, 'id'],
      [tables.locks, 'name'],
      [tables.servers, 'id'],
    ];
    await Promise.all(keys.map(([table, key]) => clearTable(dynamodb, table, key)));
    const queues = this.stack.info.queues;
    await Promise.all(
      [queues.failover, queues.failoverDlq, queues.commands, queues.commandsDlq].map((url) =>
        sqs.send(new PurgeQueueCommand({ QueueUrl: url })),
      ),
    );
  }

  async stop(): Promise<void> {
    this.logSink = undefined;
    await this.agent.stop().catch(() => undefined);
    await this.healthy.stop().catch(() => undefined);
    await Promise.allSettled([this.dynamoProxy.close(), this.sqsProxy.close()]);
    await this.ensembleCluster?.stop().catch(() => undefined);
    await this.stack.stop();
  }
}

/** Runtime options for a failover runtime whose AWS calls (DynamoDB and SQS) go through the proxies. */
export function failoverRuntimeOptions(
  stack: LocalStack,
  dynamoProxy: FaultProxy,
  sqsProxy: FaultProxy,
  options: {
    env: Record<string, string>;
    timeoutMs: number;
    eventSources: boolean;
    maxContainers: number;
    sqsConcurrency?: number;
    onLog: (line: string) => void;
  },
): RuntimeOptions {
  const queues = stack.info.queues;
  return {
    functions: ['failover'],
    eventSources: options.eventSources,
    maxContainers: options.maxContainers,
    ...(options.sqsConcurrency === undefined ? {} : { sqsConcurrency: options.sqsConcurrency }),
    timeoutMs: { failover: options.timeoutMs },
    env: {
      failover: {
        AWS_ENDPOINT_URL_DYNAMODB: dynamoProxy.endpoint,
        AWS_ENDPOINT_URL_SQS: sqsProxy.endpoint,
        FAILOVER_QUEUE_URL: sqsProxy.proxiedUrl(queues.failover),
        FAILOVER_DLQ_URL: sqsProxy.proxiedUrl(queues.failoverDlq),
        COMMANDS_QUEUE_URL: sqsProxy.proxiedUrl(queues.commands),
        POWERTOOLS_METRICS_DISABLED: 'true',
        ...options.env,
      },
    },
    onLog: (_name, line) => options.onLog(line),
  };
}

export async function clearTable(dynamodb: DynamoDBClient, table: string, key: string): Promise<void> {
  let start: Record<string, AttributeValue> | undefined;
  for (let page = 0; page < 1_000; page += 1) {
    const out = await dynamodb.send(
      new ScanCommand({
        TableName: table,
        ProjectionExpression: '#k',
        ExpressionAttributeNames: { '#k': key },
        ExclusiveStartKey: start,
      }),
    );
    const deletes: WriteRequest[] = (out.Items ?? []).map((item) => ({ DeleteRequest: { Key: item } }));
    for (let i = 0; i < deletes.length; i += 25) {
      let batch: WriteRequest[] = deletes.slice(i, i + 25);
      for (let attempt = 0; batch.length > 0 && attempt < 20; attempt += 1) {
        const result = await dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [table]: batch } }));
        batch = result.UnprocessedItems?.[table] ?? [];
      }
    }
    start = out.LastEvaluatedKey;
    if (start === undefined) return;
  }
}
