// Shared pieces of the watcher and sweep integration tests: registered servers that behave like real
// DolphinScheduler servers, a reader of the failover queue, and watch windows run in this process.
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import ZooKeeper from 'zookeeper';
import { childMarker, type ManagedProcess, startProcess } from '../../lib/local/processes.ts';
import type { LocalStack } from '../../lib/local/stack.ts';
import { type FailoverRequest, parseFailoverRequest } from '../../lib/messages.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { createLayout, type LayoutName, type RegistryLayout } from '../../lib/registry/layout.ts';
import type { RelayedRemoval } from '../../lib/registry/relay.ts';
import {
  runWatchWindow,
  type WatchWindowDeps,
  type WatchWindowSummary,
} from '../../lib/registry/watch-window.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export const ds3Heartbeat = (startupTime: number) =>
  JSON.stringify({ startupTime, reportTime: startupTime + 1_000, host: 'x', port: 1, processId: 7 });

/** A ds-1.3 CSV heartbeat whose startTime (UTC) is `startupTime` rounded down to the second. */
export const ds13Heartbeat = (startupTime: number) =>
  `0.1,0.5,1.2,3.5,10.0,0.3,${new Date(startupTime).toISOString().slice(0, 19).replace('T', ' ')},2024-05-01 00:00:10,0,4242`;

// --- registered servers ---------------------------------------------------------------------------------

interface NativeZk {
  init(config: object): void;
  close(): void;
  once(event: string, listener: (...args: unknown[]) => void): void;
}
const Native = ZooKeeper as unknown as new (config: object) => NativeZk;

/** Ends a session from the server side: a second handle resumes it by id and password, then closes it. */
export async function expireSession(connectString: string, session: ZkSession): Promise<void> {
  const zk = new Native({
    connect: connectString,
    timeout: 10_000,
    debug_level: 0,
    client_id: session.sessionId,
    client_password: session.sessionPassword,
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('could not resume the session to expire it')), 10_000);
    zk.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    zk.init({});
  });
  zk.close();
}

export interface ServerProcess {
  readonly process: ManagedProcess;
  /** Deletes the node (a clean shutdown) and waits until ZooKeeper confirmed it. */
  unregister(): Promise<void>;
}

/**
 * A server in its own process (its ZooKeeper client alone there, as in a real server), holding one
 * ephemeral node. SIGKILL it and the node disappears only when the session expires, as when a real server
 * process dies; SIGUSR2 makes it delete its node (a clean shutdown).
 */
export async function startServerProcess(
  connectString: string,
  path: string,
  data: string,
  sessionTimeoutMs: number,
): Promise<ServerProcess> {
  const script = `
    import ZooKeeper from 'zookeeper';
    const zk = new ZooKeeper({
      connect: ${JSON.stringify(connectString)},
      timeout: ${sessionTimeoutMs},
      debug_level: 0,
      response_counter_limit: 1000000,
    });
    zk.once('connect', async () => {
      await zk.create(${JSON.stringify(path)}, ${JSON.stringify(data)}, ZooKeeper.constants.ZOO_EPHEMERAL);
      console.log('registered ' + zk.client_id);
    });
    zk.on('close', (_zk, code) => console.log('closed ' + code));
    process.on('SIGUSR2', async () => {
      for (;;) {
        try {
          await zk.delete_(${JSON.stringify(path)}, -1);
          break;
        } catch (error) {
          if (String(error).includes('-101')) break;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      console.log('unregistered');
    });
    zk.init({});
    setInterval(() => {}, 60_000);
  `;
  const waiters = new Map<string, () => void>();
  const waitFor = (prefix: string, ms: number, what: string) =>
    within(
      new Promise<void>((resolve) => {
        waiters.set(prefix, resolve);
      }),
      ms,
      what,
    );
  const registered = waitFor('registered', 15_000, 'the server process to register');
  const proc = startProcess(
    'test-server',
    process.execPath,
    [`--title=${childMarker}`, '--input-type=module', '-e', script],
    {
      cwd: new URL('../..', import.meta.url).pathname,
      onLine: (line) => {
        for (const [prefix, resolve] of waiters) if (line.startsWith(prefix)) resolve();
      },
    },
  );
  try {
    await registered;
  } catch (error: unknown) {
    await proc.kill();
    throw new Error(`${error instanceof Error ? error.message : String(error)}:\n${proc.tail()}`);
  }
  return {
    process: proc,
    unregister: async () => {
      const done = waitFor('unregistered', 60_000, 'the server process to unregister');
      proc.child.kill('SIGUSR2');
      await done;
    },
  };
}

// --- the failover queue ---------------------------------------------------------------------------------

export interface ReceivedRequest {
  readonly request: FailoverRequest;
  /** When the queue accepted it (epoch ms). */
  readonly sentAt: number;
  readonly dedupId: string;
}

/** Reads (and deletes) every failover request, keeping them for the tests to look at. */
export class FailoverQueueReader {
  readonly received: ReceivedRequest[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly stack: LocalStack) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const sqs = this.stack.clients.sqs;
    const url = this.stack.info.queues.failover;
    while (!this.stopped) {
      const out = await sqs
        .send(
          new ReceiveMessageCommand({
            QueueUrl: url,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ['All'],
          }),
        )
        .catch(() => undefined);
      const messages = out?.Messages ?? [];
      for (const m of messages) {
        const parsed = parseFailoverRequest(m.Body ?? '');
        if (!parsed.ok) throw new Error(`a malformed failover request was sent: ${parsed.reason}`);
        this.received.push({
          request: parsed.value,
          sentAt: Number(m.Attributes?.SentTimestamp ?? Number.NaN),
          dedupId: m.Attributes?.MessageDeduplicationId ?? '',
        });
      }
      if (messages.length > 0) {
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: url,
            Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
          }),
        );
      }
    }
  }

  forHost(host: string): FailoverRequest[] {
    return this.received.filter((r) => r.request.host === host).map((r) => r.request);
  }

  waitForHost(host: string, timeoutMs = 10_000): Promise<FailoverRequest> {
    return eventually(`a failover request for ${host}`, () => this.forHost(host)[0], timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

// --- watch windows in this process ----------------------------------------------------------------------

export interface WindowHandle {
  readonly sessions: ZkSession[];
  readonly relayed: RelayedRemoval[];
  /** Ends the window and returns its summary. */
  stop(): Promise<WatchWindowSummary>;
  readonly done: Promise<WatchWindowSummary>;
}

export interface WindowOptions {
  layout?: LayoutName;
  root: string;
  durationMs?: number;
  deadServerMarkers?: boolean;
  sessionTimeoutMs?: number;
  connectString?: string;
  connectTimeoutMs?: number;
}

export function layoutOf(options: Pick<WindowOptions, 'layout' | 'root'>): RegistryLayout {
  return createLayout({ name: options.layout ?? 'ds-3', root: options.root });
}

export function windowDeps(
  stack: LocalStack,
  options: WindowOptions,
  sessions: ZkSession[] = [],
  relayed: RelayedRemoval[] = [],
): WatchWindowDeps {
  return {
    connect: async (timeoutMs) => {
      const session = await connectZk({
        connectString: options.connectString ?? stack.zookeeper.connectString,
        sessionTimeoutMs: options.sessionTimeoutMs ?? 4_000,
        connectTimeoutMs: timeoutMs,
      });
      sessions.push(session);
      return session;
    },
    layout: layoutOf(options),
    store: new DynamoServerStore(stack.clients.dynamodb, stack.info.tables.servers),
    queue: new SqsFailoverRequestQueue(stack.clients.sqs, stack.info.queues.failover),
    deadServerMarkers: options.deadServerMarkers,
    onRelayed: (removal) => relayed.push(removal),
  };
}

/** Starts a watch window in this process (like one watcher invocation). */
export function startWindow(stack: LocalStack, options: WindowOptions): WindowHandle {
  const sessions: ZkSession[] = [];
  const relayed: RelayedRemoval[] = [];
  const controller = new AbortController();
  const done = runWatchWindow(windowDeps(stack, options, sessions, relayed), {
    endAt: Date.now() + (options.durationMs ?? 30_000),
    signal: controller.signal,
    connectTimeoutMs: options.connectTimeoutMs,
  });
  return {
    sessions,
    relayed,
    done,
    stop: async () => {
      controller.abort();
      return done;
    },
  };
}

export function serverStore(stack: LocalStack): DynamoServerStore {
  return new DynamoServerStore(stack.clients.dynamodb, stack.info.tables.servers);
}

/** Waits until the mirror shows the server alive (the window listed it). */
export function mirrored(stack: LocalStack, id: string, timeoutMs = 10_000) {
  const store = serverStore(stack);
  return eventually(
    `mirror row ${id}`,
    async () => {
      const row = await store.get(id);
      return row?.alive === true ? row : undefined;
    },
    timeoutMs,
  );
}
