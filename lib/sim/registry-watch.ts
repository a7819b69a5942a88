// The demo's own raw ZooKeeper watch on the server directories: the reference clock for "node gone",
// independent of the watcher function (the same measure as the detection target of DESIGN section 8).
import { createLayout } from '../registry/layout.ts';
import { connectZk, type ZkSession } from '../registry/zk-client.ts';

export interface RegistryWatch {
  stop(): Promise<void>;
}

export interface RegistryWatchOptions {
  zookeeper: string;
  registryRoot: string;
  onGone(nodeType: 'master' | 'worker', host: string, at: number): void;
  onAdded(nodeType: 'master' | 'worker', host: string, at: number): void;
  onProblem(message: string): void;
}

export async function watchRegistry(options: RegistryWatchOptions): Promise<RegistryWatch> {
  const layout = createLayout({ name: 'ds-3', root: options.registryRoot });
  let stopped = false;
  let session: ZkSession | undefined;
  const known = { master: new Set<string>(), worker: new Set<string>() };

  const list = async (current: ZkSession, nodeType: 'master' | 'worker', firedAt: number): Promise<void> => {
    if (stopped || current.isLost) return;
    let names: string[];
    try {
      names = await current.children(
        layout.parentPath(nodeType),
        () => void list(current, nodeType, Date.now()),
      );
    } catch {
      return; // the session is gone: `connect` starts a new one with a fresh listing
    }
    const now = new Set(names);
    for (const host of known[nodeType]) if (!now.has(host)) options.onGone(nodeType, host, firedAt);
    for (const host of now) if (!known[nodeType].has(host)) options.onAdded(nodeType, host, firedAt);
    known[nodeType] = now;
  };

  const connect = async (): Promise<void> => {
    while (!stopped) {
      try {
        const current = await connectZk({
          connectString: options.zookeeper,
          sessionTimeoutMs: 10_000,
          connectTimeoutMs: 5_000,
        });
        session = current;
        await Promise.all([list(current, 'master', Date.now()), list(current, 'worker', Date.now())]);
        void current.lost.then(() => {
          if (stopped) return;
          options.onProblem('the demo lost its own ZooKeeper session; watching again');
          void connect();
        });
        return;
      } catch (error: unknown) {
        options.onProblem(`registry watch: ${error instanceof Error ? error.message : String(error)}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };

  await connect();
  return {
    async stop() {
      stopped = true;
      await session?.close().catch(() => undefined);
    },
  };
}
