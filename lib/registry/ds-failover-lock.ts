import { type GuardHold, GuardLostError, type HostGuard } from '../failover/ports.ts';
import { parseServerName } from '../hosts.ts';
import type { NodeType } from '../messages.ts';
import { type MutexHold, tryLockMutex } from './curator-mutex.ts';
import { createLayout, InvalidLayoutError } from './layout.ts';
import type { RegistryLogger } from './zk-client.ts';
import type { ZkSessionProvider } from './zk-session-provider.ts';

/**
 * DolphinScheduler's own master failover lock (DESIGN D3): while we fail a dead master over in its
 * database, we hold the lock its masters take for the same host, so the two failovers never overlap. A
 * master that takes it after us finds none of the host's instances left.
 *
 * 3.1.1-3.1.9 `<root>/lock/failover/masters/<ip:port>`, 3.2.x `<root>/lock/master-failover/<ip:port>`,
 * both Curator mutexes. Workers have no failover lock in these releases.
 */

export const dsReleases = ['3.1', '3.2'] as const;
export type DsRelease = (typeof dsReleases)[number];

/** The lock path of one master's failover: the exact host, never a prefix (#18197). */
export function dsMasterFailoverLockPath(root: string, version: DsRelease, host: string): string {
  return `${masterFailoverLocksPath(root, version)}/${requireServerName(host)}`;
}

function requireServerName(host: string): string {
  if (parseServerName(host) === null) {
    throw new InvalidLayoutError(`not a server name (ip:port): ${JSON.stringify(host)}`);
  }
  return host;
}

/** The directory of the per-master locks; throws InvalidLayoutError for a bad root or release. */
function masterFailoverLocksPath(root: string, version: DsRelease): string {
  const normalizedRoot = createLayout({ root }).root;
  switch (version) {
    case '3.1':
      return `${normalizedRoot}/lock/failover/masters`;
    case '3.2':
      return `${normalizedRoot}/lock/master-failover`;
    default:
      throw new InvalidLayoutError(`unknown DolphinScheduler release ${JSON.stringify(version)}`);
  }
}

export interface DsFailoverLockGuardOptions {
  /** The registry root (`/dolphinscheduler`, the Curator namespace). */
  root: string;
  version: DsRelease;
  logger?: RegistryLogger;
}

export class DsFailoverLockGuard implements HostGuard {
  readonly #sessions: ZkSessionProvider;
  readonly #options: DsFailoverLockGuardOptions;

  constructor(sessions: ZkSessionProvider, options: DsFailoverLockGuardOptions) {
    masterFailoverLocksPath(options.root, options.version); // a bad setting fails here, at cold start
    this.#sessions = sessions;
    this.#options = options;
  }

  /** Masters: DolphinScheduler's lock if free now, else null. Workers: a hold that guards nothing. */
  async tryAcquire(nodeType: NodeType, host: string): Promise<GuardHold | null> {
    if (nodeType === 'worker') {
      requireServerName(host);
      return unguarded;
    }
    const path = dsMasterFailoverLockPath(this.#options.root, this.#options.version, host);
    // A session found lost on the first try (a thawed container) is replaced once; our node, if it was
    // created before the loss, goes with the old session and at worst makes this attempt return null.
    const mutex = await this.#sessions.withSession((session) => tryLockMutex(session, path));
    if (mutex === null) {
      this.#options.logger?.info('dolphinscheduler failover lock held by another', { host, path });
      return null;
    }
    return new MutexGuardHold(mutex);
  }
}

/** DolphinScheduler 3.1/3.2 take no lock to fail a worker over: there is nothing to hold. */
const unguarded: GuardHold = {
  assertHeld: () => undefined,
  release: async () => undefined,
};

class MutexGuardHold implements GuardHold {
  readonly #mutex: MutexHold;

  constructor(mutex: MutexHold) {
    this.#mutex = mutex;
  }

  assertHeld(): void {
    // A disconnected session may come back, but the server may have expired it meanwhile and a master may
    // hold the lock now: from the first loss on the lock is not ours to trust.
    if (!this.#mutex.isHeld()) {
      throw new GuardLostError(`DolphinScheduler failover lock ${this.#mutex.lockPath} is no longer held`);
    }
  }

  release(): Promise<void> {
    return this.#mutex.release();
  }
}
