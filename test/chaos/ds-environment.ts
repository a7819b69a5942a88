// What the chaos runs on DolphinScheduler's database share, started once per dialect: the local stack
// (ZooKeeper, DynamoDB Local for the lease locks and the run journal, the SQS emulator for the failover
// queue), a real PostgreSQL or MariaDB with DolphinScheduler's schema and the harness's audit triggers,
// a loopback TCP proxy in front of the database for the function (latency, cut connections) and one in
// front of ZooKeeper for the function (a cut loses its session), the AWS fault proxies, the registry
// agent (fake servers, the watcher) and the DolphinScheduler agent (the simulated 3.2 masters). The
// failover runtimes are started per run: their settings (time zone, registry root) are the run's.
import { PurgeQueueCommand } from '@aws-sdk/client-sqs';
import {
  applyDolphinSchedulerSchema,
  type Dialect,
  type LocalDatabase,
  startLocalDatabase,
} from '../../lib/local/database.ts';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { startTcpProxy, type TcpProxy } from '../../lib/local/tcp-proxy.ts';
import { RegistryAgent } from './agent-client.ts';
import { DsAgent } from './ds-agent-client.ts';
import { emptyTables, installAudit, openTaggedDatabase, type TaggedDatabase } from './ds-db.ts';
import {
  clearTable,
  failoverRuntimeOptions,
  failoverVisibilitySeconds,
  type RuntimeLabel,
} from './environment.ts';
import { type FaultProxy, startFaultProxy } from './fault-proxy.ts';

/** What a failover runtime of one run is given. */
export interface DsRuntimeSettings {
  readonly label: RuntimeLabel;
  readonly timeZone: string;
  readonly root: string;
  readonly zkSessionTimeoutMs: number;
  readonly scanSpan: number;
  readonly leaseMs: number;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
  readonly deadlineMarginMs: number;
  readonly failpoints?: string;
  readonly eventSource: boolean;
  readonly maxContainers: number;
  readonly sqsConcurrency: number;
}

export class DsChaosEnvironment {
  private logSink: ((runtime: RuntimeLabel, line: string) => void) | undefined;
  private restarting: Promise<void> | undefined;

  private constructor(
    readonly dialect: Dialect,
    readonly stack: LocalStack,
    readonly database: LocalDatabase,
    /** The function's way to the database: latency and cuts. */
    readonly dbProxy: TcpProxy,
    /** The function's way to ZooKeeper: a cut loses its session. */
    readonly zkProxy: TcpProxy,
    readonly dynamoProxy: FaultProxy,
    readonly sqsProxy: FaultProxy,
    readonly agent: RegistryAgent,
    readonly dsAgent: DsAgent,
    /** The harness's seeding and reads (`chaos-harness`). */
    readonly harness: TaggedDatabase,
    /** The scheduler's concurrent changes (`chaos-scheduler`) and the competing lock holders. */
    readonly scheduler: TaggedDatabase,
  ) {}

  static async start(dialect: Dialect): Promise<DsChaosEnvironment> {
    // The stack first: it ends leftover children of this process, a database started before it included.
    const stack = await startLocalStack({
      zookeeperSize: 1,
      queueOverrides: { FailoverQueue: { VisibilityTimeout: String(failoverVisibilitySeconds) } },
    });
    const started: Array<() => Promise<unknown>> = [() => stack.stop()];
    try {
      const database = await startLocalDatabase(dialect);
      started.unshift(() => database.stop());
      await applyDolphinSchedulerSchema(database.url);
      const dbUrl = new URL(database.url);
      const dbProxy = await startTcpProxy({ target: { host: dbUrl.hostname, port: Number(dbUrl.port) } });
      started.unshift(() => dbProxy.stop());
      const [zkHost = '127.0.0.1', zkPort = '2181'] =
        stack.zookeeper.connectString.split(',')[0]?.split(':') ?? [];
      const zkProxy = await startTcpProxy({ target: { host: zkHost, port: Number(zkPort) } });
      started.unshift(() => zkProxy.stop());
      const dynamoProxy = await startFaultProxy({ service: 'dynamodb', upstream: stack.info.dynamodb });
      started.unshift(() => dynamoProxy.close());
      const sqsProxy = await startFaultProxy({
        service: 'sqs',
        upstream: stack.info.sqs,
        rewriteOwnOrigin: true,
      });
      started.unshift(() => sqsProxy.close());
      const { tables, queues } = stack.info;
      const agent = await RegistryAgent.start({
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
          locks: tables.locks,
        },
        queues: { failover: queues.failover, commands: queues.commands },
      });
      started.unshift(() => agent.stop());
      const dsAgent = await DsAgent.start({ url: database.url, dialect });
      started.unshift(() => dsAgent.stop());
      const harness = openTaggedDatabase(database.url, dialect, 'chaos-harness', 4);
      started.unshift(() => harness.close());
      const scheduler = openTaggedDatabase(database.url, dialect, 'chaos-scheduler', 6);
      started.unshift(() => scheduler.close());
      await installAudit(harness);
      return new DsChaosEnvironment(
        dialect,
        stack,
        database,
        dbProxy,
        zkProxy,
        dynamoProxy,
        sqsProxy,
        agent,
        dsAgent,
        harness,
        scheduler,
      );
    } catch (error: unknown) {
      for (const stop of started) await stop().catch(() => undefined);
      throw error;
    }
  }

  setLogSink(sink: ((runtime: RuntimeLabel, line: string) => void) | undefined): void {
    this.logSink = sink;
  }

  /** A failover runtime of the DolphinScheduler store for one run: its database and ZooKeeper via the proxies. */
  startRuntime(settings: DsRuntimeSettings): LocalRuntime {
    const options = failoverRuntimeOptions(this.stack, this.dynamoProxy, this.sqsProxy, {
      env: {
        STORE: 'dolphinscheduler',
        DS_DATABASE_URL: this.dbProxy.proxiedUrl(this.database.url),
        DS_TIME_ZONE: settings.timeZone,
        DS_VERSION: '3.2',
        DS_SCAN_SPAN: String(settings.scanSpan),
        DS_POOL_MAX: String(settings.concurrency + 2),
        REGISTRY_ROOT: settings.root,
        REGISTRY_LAYOUT: 'ds-3',
        ZK_CONNECT: `127.0.0.1:${this.zkProxy.port}`,
        ZK_SESSION_TIMEOUT_MS: String(settings.zkSessionTimeoutMs),
        LOCK_LEASE_MS: String(settings.leaseMs),
        FAILOVER_BATCH_SIZE: String(settings.batchSize),
        FAILOVER_CONCURRENCY: String(settings.concurrency),
        DEADLINE_MARGIN_MS: String(settings.deadlineMarginMs),
        ...(settings.failpoints === undefined ? {} : { ZKF_FAILPOINTS: settings.failpoints }),
      },
      timeoutMs: settings.timeoutMs,
      eventSources: settings.eventSource,
      maxContainers: settings.maxContainers,
      sqsConcurrency: settings.sqsConcurrency,
      onLog: (line) => this.logSink?.(settings.label, line),
    });
    return startLocalRuntime(this.stack, options);
  }

  /** Restarts the database server (clean fast shutdown), down for `downMs`; one restart at a time. */
  restartDatabase(downMs: number): Promise<void> {
    this.restarting ??= this.database.restart({ downMs }).finally(() => {
      this.restarting = undefined;
    });
    return this.restarting;
  }

  /** Resolves once no restart is in progress (the server accepts clients). */
  async databaseUp(): Promise<void> {
    await this.restarting?.catch(() => undefined);
  }

  /** Empties the DynamoDB tables, the queues and the database's tables (between runs). */
  async reset(): Promise<void> {
    const { dynamodb, sqs } = this.stack.clients;
    const tables = this.stack.info.tables;
    await Promise.all(
      (
        [
          [tables.instances, 'id'],
          [tables.tasks, 'id'],
          [tables.commands, 'id'],
          [tables.locks, 'name'],
          [tables.servers, 'id'],
        ] as const
      ).map(([table, key]) => clearTable(dynamodb, table, key)),
    );
    const queues = this.stack.info.queues;
    await Promise.all(
      [queues.failover, queues.failoverDlq, queues.commands, queues.commandsDlq].map((url) =>
        sqs.send(new PurgeQueueCommand({ QueueUrl: url })),
      ),
    );
    await this.databaseUp();
    await emptyTables(this.harness);
  }

  async stop(): Promise<void> {
    this.logSink = undefined;
    await this.databaseUp();
    await this.dsAgent.stop().catch(() => undefined);
    await this.agent.stop().catch(() => undefined);
    await Promise.allSettled([this.harness.close(), this.scheduler.close()]);
    await Promise.allSettled([
      this.dbProxy.stop(),
      this.zkProxy.stop(),
      this.dynamoProxy.close(),
      this.sqsProxy.close(),
    ]);
    await this.database.stop().catch(() => undefined);
    await this.stack.stop();
  }
}
