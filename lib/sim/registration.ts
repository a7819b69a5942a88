// A server's registration as DolphinScheduler does it: one ZooKeeper session, an ephemeral node under it.
// Unlike the controller's own single-use sessions (lib/registry/zk-client.ts), a server's client rides out
// a disconnect and keeps its session if it reconnects in time (as Curator does): only an expired (or
// closed) session ends a registration. Uses the native binding directly for that reason.
import ZooKeeper from 'zookeeper';

interface NativeStat {
  readonly czxid: number;
}

interface NativeZk {
  init(config: object): void;
  close(): void;
  on(event: 'connect' | 'connecting', listener: () => void): void;
  on(event: 'close', listener: (client: unknown, code: unknown) => void): void;
  create(path: string, data: string, flags: number): Promise<string>;
  set(path: string, data: string, version: number): Promise<unknown>;
  exists(path: string, watch: boolean): Promise<NativeStat | null>;
  get_children(path: string, watch: boolean): Promise<string[]>;
  get(path: string, watch: boolean): Promise<[NativeStat, Buffer | string | null]>;
  readonly client_id: string;
  readonly timeout: number;
}

const Native = ZooKeeper as unknown as {
  new (config: object): NativeZk;
  readonly constants: Readonly<Record<string, number>>;
};
const constant = (name: string): number => {
  const value = Native.constants[name];
  if (typeof value !== 'number') throw new Error(`zookeeper binding lacks ${name}`);
  return value;
};
const EPHEMERAL = constant('ZOO_EPHEMERAL');
const PERSISTENT = constant('ZOO_PERSISTENT');
const EXPIRED = constant('ZOO_EXPIRED_SESSION_STATE');

export interface Registration {
  readonly czxid: string;
  readonly sessionId: string;
  readonly negotiatedTimeoutMs: number;
  /** Resolves when the session is over (expired, closed): the node is gone or about to be. */
  readonly ended: Promise<{ reason: 'expired' | 'closed' }>;
  setData(data: string): Promise<void>;
  children(path: string): Promise<string[]>;
  /** A node's data as text (null when the node is gone or the session over). */
  data(path: string): Promise<string | null>;
  /** A clean shutdown: the node goes away at once. */
  close(): void;
}

function codeOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function ensureParents(zk: NativeZk, path: string): Promise<void> {
  const parts = path.split('/').filter((p) => p !== '');
  for (let i = 1; i < parts.length; i += 1) {
    const dir = `/${parts.slice(0, i).join('/')}`;
    try {
      await zk.create(dir, '', PERSISTENT);
    } catch (error: unknown) {
      if (!/ZNODEEXISTS|-110/.test(codeOf(error))) throw error;
    }
  }
}

/** Connects a session and creates the ephemeral node (retrying while a node of an older session lingers). */
export async function register(options: {
  connectString: string;
  sessionTimeoutMs: number;
  path: string;
  data: string;
}): Promise<Registration> {
  const zk = new Native({
    connect: options.connectString,
    timeout: options.sessionTimeoutMs,
    debug_level: 0,
    // The binding would close the handle after a few empty reads; a server's client keeps reconnecting.
    response_counter_limit: 1_000_000,
  });
  let resolveEnded!: (value: { reason: 'expired' | 'closed' }) => void;
  const ended = new Promise<{ reason: 'expired' | 'closed' }>((r) => {
    resolveEnded = r;
  });
  let closed = false;
  zk.on('close', (_client, code) => {
    closed = true;
    resolveEnded({ reason: Number(code) === EXPIRED ? 'expired' : 'closed' });
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      zk.close();
      reject(new Error(`could not connect to ZooKeeper at ${options.connectString}`));
    }, 10_000);
    zk.on('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    zk.init({});
  });
  try {
    await ensureParents(zk, options.path);
    for (let attempt = 0; ; attempt += 1) {
      try {
        await zk.create(options.path, options.data, EPHEMERAL);
        break;
      } catch (error: unknown) {
        // The node of an earlier session of ours is there until that session expires.
        if (!/ZNODEEXISTS|-110/.test(codeOf(error)) || attempt > 150) throw error;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const stat = await zk.exists(options.path, false);
    return {
      czxid: String(stat?.czxid ?? 0),
      sessionId: zk.client_id,
      negotiatedTimeoutMs: zk.timeout,
      ended,
      setData: async (data) => {
        if (!closed) await zk.set(options.path, data, -1);
      },
      children: (path) => (closed ? Promise.resolve([]) : zk.get_children(path, false)),
      data: async (path) => {
        if (closed) return null;
        try {
          const [, data] = await zk.get(path, false);
          return data === null ? '' : data.toString();
        } catch (error: unknown) {
          if (/ZNONODE|-101/.test(codeOf(error))) return null;
          throw error;
        }
      },
      close: () => {
        if (!closed) zk.close();
        closed = true;
      },
    };
  } catch (error: unknown) {
    zk.close();
    throw error;
  }
}
