// ZooKeeper actors of a chaos run: fake scheduler servers (one session each, holding their ephemeral node
// with a ds-3 heartbeat), the forced expiry of another client's session, and the registry as it is at
// the end of a run (the ground truth of which incarnations are alive).
import ZooKeeper from 'zookeeper';
import { parseHeartbeat } from '../../lib/registry/heartbeat.ts';
import type { RegistryLayout } from '../../lib/registry/layout.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rejects after `ms`: every wait of the chaos engine is bounded. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Connects with a few attempts: on a loaded machine the handshake can outlast a short session timeout, which
 * the native client reports as an expiry before the session was ever ready.
 */
export async function connectRetrying(
  connectString: string,
  sessionTimeoutMs: number,
  attempts = 5,
): Promise<ZkSession> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await connectZk({ connectString, sessionTimeoutMs, connectTimeoutMs: 15_000 });
    } catch (error: unknown) {
      if (attempt >= attempts) throw error;
      await sleep(300 * attempt);
    }
  }
}

export interface Incarnation {
  readonly czxid: string;
  readonly startupTime: number;
  readonly registeredAt: number;
  removedAt?: number;
}

interface NativeStat {
  czxid: number;
}

/** The promise API of the native client (the `zookeeper` package), as far as the fake servers use it. */
interface NativeClient {
  init(config: object): void;
  close(): void;
  once(event: string, listener: (...args: unknown[]) => void): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
  create(path: string, data: string, flags: number): Promise<string>;
  exists(path: string, watch: boolean): Promise<NativeStat | null>;
  delete_(path: string, version: number): Promise<void>;
}

const NativeClientClass = ZooKeeper as unknown as {
  new (config: object): NativeClient;
  constants: Record<string, number>;
};

/**
 * A DolphinScheduler server as the registry sees it: one session holding one ephemeral node. It uses the
 * native client directly (not ZkSession, which by design gives a session up at the first disconnect): like
 * a real server's client, it reconnects and keeps its session across a ZooKeeper restart.
 */
export class FakeServer {
  readonly incarnations: Incarnation[] = [];
  private client: NativeClient | undefined;

  constructor(
    readonly nodeType: 'master' | 'worker',
    readonly host: string,
    private readonly layout: RegistryLayout,
    private readonly connectString: () => string,
    private readonly sessionTimeoutMs = 12_000,
  ) {}

  get path(): string {
    return this.layout.serverPath(this.nodeType, this.host);
  }

  get current(): Incarnation | undefined {
    const last = this.incarnations[this.incarnations.length - 1];
    return last?.removedAt === undefined ? last : undefined;
  }

  /** Registers a new incarnation that started at `startupTime` (waits for a leftover node of the old one). */
  async register(startupTime: number, timeoutMs = 20_000): Promise<Incarnation> {
    const client = new NativeClientClass({
      connect: this.connectString(),
      timeout: this.sessionTimeoutMs,
      debug_level: 0,
      // The binding gives a handle up after 10 empty reads in a row; a server keeps reconnecting.
      response_counter_limit: 1_000_000,
    });
    try {
      await within(
        new Promise<void>((resolve) => {
          client.once('connect', () => resolve());
          client.init({});
        }),
        15_000,
        `${this.host} connecting`,
      );
      const data = JSON.stringify({
        startupTime,
        reportTime: Date.now(),
        host: this.host.split(':')[0],
        port: Number(this.host.split(':')[1]),
        processId: 4242,
      });
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const created = await within(client.create(this.path, data, ephemeralFlag), 5_000, 'create').then(
          () => true,
          (error: unknown) => {
            if (Date.now() > deadline) throw error;
            return false;
          },
        );
        if (created) break;
        await sleep(200);
      }
      const stat = await within(client.exists(this.path, false), 5_000, `stat ${this.host}`);
      if (stat === null) throw new Error(`${this.host} vanished right after registering`);
      const incarnation: Incarnation = {
        czxid: BigInt(stat.czxid).toString(),
        startupTime,
        registeredAt: Date.now(),
      };
      this.client = client;
      this.incarnations.push(incarnation);
      return incarnation;
    } catch (error: unknown) {
      client.close();
      throw error;
    }
  }

  /**
   * The process dies: its node is deleted (retrying while the client reconnects, e.g. right after a
   * ZooKeeper restart), then its session is closed. A node that cannot be deleted in time goes when the
   * session expires, like a crashed server's.
   */
  async kill(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    const current = this.current;
    if (current !== undefined) current.removedAt = Date.now();
    if (client === undefined) return;
    const deadline = Date.now() + 5_000;
    for (;;) {
      const removed = await within(client.delete_(this.path, -1), 2_000, 'delete').then(
        () => true,
        (error: unknown) =>
          /ZNONODE|-101|no node/i.test(error instanceof Error ? error.message : String(error)),
      );
      if (removed || Date.now() > deadline) break;
      await sleep(100);
    }
    if (current !== undefined) current.removedAt = Date.now();
    client.close();
  }
}

const ephemeralFlag = NativeClientClass.constants.ZOO_EPHEMERAL ?? 1;

interface NativeHandle {
  init(config: object): void;
  close(): void;
  once(event: string, listener: (...args: unknown[]) => void): void;
}

const NativeZooKeeper = ZooKeeper as unknown as new (config: object) => NativeHandle;

/**
 * Expires another client's session from the server side: a second handle resumes it by id and password
 * and closes it (the standard way to force an expiry).
 */
export async function expireSession(connectString: string, session: ZkSession): Promise<void> {
  const handle = new NativeZooKeeper({
    connect: connectString,
    timeout: 10_000,
    debug_level: 0,
    client_id: session.sessionId,
    client_password: session.sessionPassword,
  });
  try {
    await within(
      new Promise<void>((resolve) => {
        handle.once('connect', () => resolve());
        handle.init({});
      }),
      10_000,
      'resuming the session to expire it',
    );
  } finally {
    handle.close();
  }
}

export interface RegisteredServer {
  readonly czxid: string;
  readonly startupTime: number;
}

/** Registered servers by `<type>/<host>` (the registry at the end of a run). */
export async function listRegistry(
  connectString: string,
  layout: RegistryLayout,
): Promise<Map<string, RegisteredServer>> {
  const session = await connectRetrying(connectString, 10_000);
  try {
    const found = new Map<string, RegisteredServer>();
    for (const nodeType of ['master', 'worker'] as const) {
      const parent = layout.parentPath(nodeType);
      for (const name of await session.children(parent)) {
        const node = await session.data(`${parent}/${name}`);
        if (node === null) continue;
        const heartbeat = parseHeartbeat(layout, node.data, { ctime: node.stat.ctime });
        found.set(`${nodeType}/${name}`, { czxid: node.stat.czxid, startupTime: heartbeat.startupTime });
      }
    }
    return found;
  } finally {
    await session.close();
  }
}

/** Deletes a subtree (persistent nodes left by a run). Best effort. */
export async function removeTree(connectString: string, root: string): Promise<void> {
  const session = await connectRetrying(connectString, 10_000);
  try {
    const remove = async (path: string, depth: number): Promise<void> => {
      if (depth > 10) return;
      for (const child of await session.children(path)) await remove(`${path}/${child}`, depth + 1);
      await session.remove(path).catch(() => false);
    };
    if ((await session.exists(root)) !== null) await remove(root, 0);
  } finally {
    await session.close();
  }
}
