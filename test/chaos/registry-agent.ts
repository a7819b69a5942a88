// The chaos suite's ZooKeeper side, in its own process: the fake scheduler servers, the watcher windows and
// the sweep (the real lib/registry and lib/sweep code), registry listings and session expiry.
//
// Why a separate process: the native ZooKeeper client is built without SOCK_CLOEXEC, so its sockets leak
// into every child a process spawns. The chaos process spawns Lambda containers and ZooKeeper servers all
// the time; once such a child holds a copy of a closed client socket, the parent's epoll keeps reporting it
// and libuv spins at 100% CPU. This process never spawns anything.
//
// Protocol (IPC): requests `{ id, op, args }` -> `{ id, ok, value | error }`; events `{ event, ... }`.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { FailoverRequestQueue } from '../../lib/failover/ports.ts';
import type { FailoverRequestInput } from '../../lib/messages.ts';
import { silentLog } from '../../lib/observability.ts';
import { SqsCommandQueue } from '../../lib/queue/commands.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { resendPendingCommands } from '../../lib/queue/outbox.ts';
import { createLayout, type RegistryLayout } from '../../lib/registry/layout.ts';
import { runWatchWindow, type WatchWindowDeps } from '../../lib/registry/watch-window.ts';
import { connectZk, type RegistryLogger, type ZkSession } from '../../lib/registry/zk-client.ts';
import type { Dialect } from '../../lib/store/dolphinscheduler/database.ts';
import { DynamoCommandStore } from '../../lib/store/dynamodb/commands.ts';
import { DynamoExecutingWork } from '../../lib/store/dynamodb/executing-work.ts';
import { DynamoLockStore } from '../../lib/store/dynamodb/locks.ts';
import { DynamoRepairLedger } from '../../lib/store/dynamodb/repair-ledger.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';
import { dolphinSchedulerSweepParts } from '../../lib/stores.ts';
import { runSweep } from '../../lib/sweep/sweep.ts';
import { openTaggedDatabase, type TaggedDatabase } from './ds-db.ts';
import {
  connectRetrying,
  expireSession,
  FakeServer,
  listRegistry,
  removeTree,
  sleep,
} from './registry-actors.ts';

export interface AgentConfig {
  readonly region: string;
  readonly endpoints: {
    readonly dynamodb: string;
    readonly sqs: string;
    readonly proxiedDynamodb: string;
    readonly proxiedSqs: string;
  };
  readonly tables: { instances: string; tasks: string; commands: string; servers: string; locks?: string };
  readonly queues: { failover: string; commands: string };
}

export interface AgentTarget {
  /** ZooKeeper connect string. */
  readonly connect: string;
  /** Registry root of the run. */
  readonly root: string;
}

export type AgentEvent =
  | { event: 'journal'; at: number; producer: string; request: FailoverRequestInput }
  | { event: 'log'; line: string };

type Clients = { dynamodb: DynamoDBClient; sqs: SQSClient };

const send = (message: unknown) => process.send?.(message);

let config: AgentConfig | undefined;
let direct: Clients | undefined;
let proxied: Clients | undefined;
const servers = new Map<string, FakeServer>();
const watcherSessions: ZkSession[] = [];
const windows = new Set<AbortController>();
let watcherLoop: { stop: () => void; done: Promise<void> } | undefined;
/** The DolphinScheduler sweep's database (one pool for the agent's life). */
let sweepDatabase: TaggedDatabase | undefined;

function requireConfig(): { config: AgentConfig; direct: Clients; proxied: Clients } {
  if (config === undefined || direct === undefined || proxied === undefined) {
    throw new Error('the agent is not initialised');
  }
  return { config, direct, proxied };
}

function logger(source: string): RegistryLogger {
  const log = (level: string) => (message: string, data?: Record<string, unknown>) =>
    send({
      event: 'log',
      line: `${source} ${level}: ${message} ${data === undefined ? '' : JSON.stringify(data).slice(0, 300)}`,
    });
  return { info: log('info'), warn: log('warn'), error: log('error') };
}

function journaled(producer: string, queue: FailoverRequestQueue): FailoverRequestQueue {
  return {
    send: async (requests) => {
      const at = Date.now();
      try {
        await queue.send(requests);
      } finally {
        for (const request of requests) send({ event: 'journal', at, producer, request });
      }
    },
  };
}

function layoutOf(target: AgentTarget): RegistryLayout {
  return createLayout({ name: 'ds-3', root: target.root });
}

function watcherDeps(target: AgentTarget): WatchWindowDeps {
  const { config: c, proxied: p } = requireConfig();
  return {
    connect: async (timeoutMs) => {
      const session = await connectZk({
        connectString: target.connect,
        sessionTimeoutMs: 4_000,
        connectTimeoutMs: timeoutMs,
      });
      watcherSessions.push(session);
      return session;
    },
    layout: layoutOf(target),
    store: new DynamoServerStore(p.dynamodb, c.tables.servers),
    queue: journaled('watcher', new SqsFailoverRequestQueue(p.sqs, c.queues.failover)),
    source: 'watcher',
    logger: logger('watcher'),
  };
}

function startWindow(target: AgentTarget, durationMs: number): Promise<unknown> {
  const controller = new AbortController();
  windows.add(controller);
  return runWatchWindow(watcherDeps(target), {
    endAt: Date.now() + durationMs,
    signal: controller.signal,
    // Chaos time scale: a request left pending by a failed send is re-sent after 1 s, not 15 s.
    pendingResendAfterMs: 1_000,
    connectTimeoutMs: 3_000,
  }).finally(() => windows.delete(controller));
}

const ops: Record<string, (args: never) => Promise<unknown>> = {
  async init(args: AgentConfig) {
    config = args;
    const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
    const client = (dynamodb: string, sqs: string): Clients => ({
      dynamodb: new DynamoDBClient({ endpoint: dynamodb, region: args.region, credentials, maxAttempts: 5 }),
      sqs: new SQSClient({ endpoint: sqs, region: args.region, credentials, maxAttempts: 5 }),
    });
    direct = client(args.endpoints.dynamodb, args.endpoints.sqs);
    proxied = client(args.endpoints.proxiedDynamodb, args.endpoints.proxiedSqs);
    return true;
  },

  async prepare(args: AgentTarget) {
    await removeTree(args.connect, args.root);
    const layout = layoutOf(args);
    const admin = await connectRetrying(args.connect, 10_000);
    try {
      await admin.mkdirp(layout.parentPath('master'));
      await admin.mkdirp(layout.parentPath('worker'));
    } finally {
      await admin.close();
    }
    return true;
  },

  async register(
    args: AgentTarget & { key: string; nodeType: 'master' | 'worker'; host: string; startupTime: number },
  ) {
    let server = servers.get(args.key);
    if (server === undefined) {
      server = new FakeServer(args.nodeType, args.host, layoutOf(args), () => args.connect);
      servers.set(args.key, server);
    }
    if (server.current !== undefined) await server.kill();
    return server.register(args.startupTime);
  },

  async kill(args: { key: string }) {
    const server = servers.get(args.key);
    if (server === undefined) return null;
    await server.kill();
    return server.incarnations[server.incarnations.length - 1]?.removedAt ?? Date.now();
  },

  async killAll() {
    await Promise.allSettled([...servers.values()].map((s) => s.kill()));
    servers.clear();
    return true;
  },

  async startWatcher(args: AgentTarget) {
    let stopped = false;
    const done = (async () => {
      for (let i = 0; i < 100 && !stopped; i += 1) {
        try {
          await startWindow(args, 300_000);
        } catch (error: unknown) {
          send({
            event: 'log',
            line: `watcher window ended: ${error instanceof Error ? error.message : String(error)}`,
          });
          await sleep(200);
        }
      }
    })();
    watcherLoop = {
      stop: () => {
        stopped = true;
      },
      done,
    };
    return true;
  },

  async overlapWindow(args: AgentTarget & { durationMs: number }) {
    await startWindow(args, args.durationMs).catch(() => undefined);
    return true;
  },

  async expireWatcher(args: { connect: string }) {
    const session = [...watcherSessions].reverse().find((s) => !s.isLost);
    if (session === undefined) return null;
    await expireSession(args.connect, session);
    return session.sessionId;
  },

  async stopWatcher() {
    watcherLoop?.stop();
    for (const controller of windows) controller.abort();
    await Promise.race([watcherLoop?.done, sleep(20_000)]);
    watcherLoop = undefined;
    await Promise.allSettled(watcherSessions.splice(0).map((s) => s.close()));
    return true;
  },

  async sweep(args: AgentTarget & { via: 'proxied' | 'direct'; endInMs: number }) {
    const { config: c, direct: d, proxied: p } = requireConfig();
    const clients = args.via === 'proxied' ? p : d;
    try {
      return await runSweep(
        {
          connect: (timeoutMs) =>
            connectZk({ connectString: args.connect, sessionTimeoutMs: 4_000, connectTimeoutMs: timeoutMs }),
          layout: layoutOf(args),
          store: new DynamoServerStore(clients.dynamodb, c.tables.servers),
          queue: journaled('sweep', new SqsFailoverRequestQueue(clients.sqs, c.queues.failover)),
          work: new DynamoExecutingWork(clients.dynamodb, {
            instancesTable: c.tables.instances,
            tasksTable: c.tables.tasks,
          }),
          logger: logger('sweep'),
          // Chaos time scale: the grace periods that protect in-flight work are compressed to 0. The chaos is
          // over when the sweep settles a run, and a race with a live run is deduplicated anyway.
          resendPendingCommands: () =>
            resendPendingCommands({
              commands: new DynamoCommandStore(clients.dynamodb, c.tables.commands),
              queue: new SqsCommandQueue(clients.sqs, c.queues.commands),
              now: Date.now(),
              olderThanMs: 0,
              log: silentLog,
            }),
        },
        { endAt: Date.now() + args.endInMs, discover: true, removalGraceMs: 0, connectTimeoutMs: 3_000 },
      );
    } catch (error: unknown) {
      return { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    }
  },

  /**
   * The sweep on DolphinScheduler's database (D5), its grace periods compressed to 0 like `sweep`. Its
   * database connections are tagged `zk-sweep`, so that the audit log tells its repairs apart.
   */
  async dsSweep(
    args: AgentTarget & {
      via: 'proxied' | 'direct';
      endInMs: number;
      database: { url: string; dialect: Dialect };
      timeZone: string;
    },
  ) {
    const { config: c, direct: d, proxied: p } = requireConfig();
    const clients = args.via === 'proxied' ? p : d;
    if (c.tables.locks === undefined) throw new Error('the agent was started without the locks table');
    sweepDatabase ??= openTaggedDatabase(args.database.url, args.database.dialect, 'zk-sweep', 4);
    try {
      return await runSweep(
        {
          connect: (timeoutMs) =>
            connectZk({ connectString: args.connect, sessionTimeoutMs: 4_000, connectTimeoutMs: timeoutMs }),
          layout: layoutOf(args),
          store: new DynamoServerStore(clients.dynamodb, c.tables.servers),
          queue: journaled('sweep', new SqsFailoverRequestQueue(clients.sqs, c.queues.failover)),
          ...dolphinSchedulerSweepParts({
            database: sweepDatabase,
            timeZone: args.timeZone,
            ledger: new DynamoRepairLedger(clients.dynamodb, c.tables.servers),
            locks: new DynamoLockStore(clients.dynamodb, c.tables.locks),
            graceMs: 0,
          }),
          logger: logger('sweep'),
        },
        { endAt: Date.now() + args.endInMs, discover: true, removalGraceMs: 0, connectTimeoutMs: 3_000 },
      );
    } catch (error: unknown) {
      return { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    }
  },

  async listRegistry(args: AgentTarget) {
    return [...(await listRegistry(args.connect, layoutOf(args))).entries()];
  },

  async removeTree(args: AgentTarget) {
    await removeTree(args.connect, args.root);
    return true;
  },
};

process.on('message', (message: { id?: number; op?: string; args?: unknown }) => {
  const { id, op } = message ?? {};
  if (typeof id !== 'number' || typeof op !== 'string') return;
  const handler = ops[op];
  if (handler === undefined) {
    send({ id, ok: false, error: `unknown operation ${op}` });
    return;
  }
  handler(message.args as never).then(
    (value) => send({ id, ok: true, value }),
    (error: unknown) =>
      send({
        id,
        ok: false,
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      }),
  );
});

// The parent went away: nothing left to serve.
process.on('disconnect', () => process.exit(0));
send({ event: 'ready' });
