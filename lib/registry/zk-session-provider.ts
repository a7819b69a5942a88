import type { Registry } from './registry-config.ts';
import { ZkConnectError, type ZkSession, ZkSessionLostError } from './zk-client.ts';

/**
 * One ZooKeeper session per container, connected on first use and replaced after a loss (a session is
 * single-use: see zk-client.ts). Built on `registryFromConfig`, so the connect string, digest credentials
 * and session timeout are the registry's settings.
 */
export interface ZkSessionProviderOptions {
  /** How long one connect may take before ZkConnectError. */
  connectTimeoutMs: number;
}

export class ZkSessionProvider {
  readonly #registry: Pick<Registry, 'connect'>;
  readonly #connectTimeoutMs: number;
  #current: Promise<ZkSession> | undefined;
  #closed = false;

  constructor(registry: Pick<Registry, 'connect'>, options: ZkSessionProviderOptions) {
    this.#registry = registry;
    this.#connectTimeoutMs = options.connectTimeoutMs;
  }

  /** The live session, or a new one when there is none yet or the last one was lost. */
  async session(): Promise<ZkSession> {
    if (this.#closed) throw new ZkConnectError('the ZooKeeper session provider is closed');
    const current = this.#current;
    if (current !== undefined) {
      const session = await current.catch(() => undefined);
      if (session !== undefined && !session.isLost) return session;
      // Another caller may have replaced it while we waited.
      if (this.#current !== current) return this.session();
    }
    const next = this.#registry.connect(this.#connectTimeoutMs);
    this.#current = next;
    // A failed connect is not kept: the next call tries again.
    next.catch(() => {
      if (this.#current === next) this.#current = undefined;
    });
    return next;
  }

  /**
   * Runs `work` with the live session, once more with a new session when the session turned out to be lost
   * (a container thawed after its session expired finds out only on its first request). `work` must be
   * safe to repeat.
   */
  async withSession<T>(work: (session: ZkSession) => Promise<T>): Promise<T> {
    try {
      return await work(await this.session());
    } catch (error: unknown) {
      if (!(error instanceof ZkSessionLostError)) throw error;
      return work(await this.session());
    }
  }

  /** Closes the current session (its ephemeral nodes go at once); later calls to `session` fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const current = this.#current;
    this.#current = undefined;
    const session = await current?.catch(() => undefined);
    await session?.close();
  }
}
