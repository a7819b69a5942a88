import type { FailoverRequestQueue } from '../failover/ports.ts';
import type { RequestSource } from '../messages.ts';
import type { RegistryLayout } from './layout.ts';
import { RegistryView } from './listing.ts';
import type { MembershipStore } from './membership.ts';
import { MembershipRelay, type RelayedRemoval } from './relay.ts';
import {
  type RegistryLogger,
  ZkConnectError,
  ZkError,
  ZkNodeExistsError,
  type ZkSession,
  ZkSessionLostError,
} from './zk-client.ts';

/** A whole window passed without one complete registry listing: nothing was watched (alarm on it). */
export class WatchWindowError extends Error {
  override readonly name = 'WatchWindowError';
}

/**
 * One watcher invocation (DESIGN.md section 6): connect, list the registry with watches, reconcile the
 * mirror (removals that happened while nobody watched are relayed now), then relay each removal as its
 * watch fires, until `endAt`. A lost session (disconnect, expiry, server restart) ends its part of the
 * window at once: nothing seen through it after the loss is reconciled, and if time remains a new session
 * starts with a fresh, complete listing.
 */

export interface WatchWindowDeps {
  /** Opens a new session; rejects (ZkConnectError) when none is ready within `timeoutMs`. */
  readonly connect: (timeoutMs: number) => Promise<ZkSession>;
  readonly layout: RegistryLayout;
  readonly timeZoneOffsetMinutes?: number;
  readonly store: MembershipStore;
  readonly queue: FailoverRequestQueue;
  readonly clock?: () => number;
  readonly logger?: RegistryLogger;
  /** F9: write `<root>/dead-servers/<type>_<host>` after a removal (older layouts). Off by default. */
  readonly deadServerMarkers?: boolean;
  /** Each removal once it is on the queue (metrics). */
  readonly onRelayed?: (removal: RelayedRemoval) => void;
  readonly source?: RequestSource;
}

export interface WatchWindowOptions {
  /** Epoch ms at which the window closes (the function's deadline minus a margin). */
  readonly endAt: number;
  /**
   * Longest wait for one connection attempt. Default 3 s: connecting takes milliseconds, and a handle's
   * attempt can stall after it moved from a dead ensemble member to the next one; a new handle starts clean.
   */
  readonly connectTimeoutMs?: number;
  /** Pending requests older than this are someone else's leftovers and are sent again. Default 15 s. */
  readonly pendingResendAfterMs?: number;
  /** Ends the window early (tests, shutdown). */
  readonly signal?: AbortSignal;
}

export interface WatchWindowSummary {
  readonly sessions: number;
  /** Complete listings that were reconciled (one per session, plus re-listings after watches). */
  readonly reconciles: number;
  readonly sessionLosses: number;
  readonly connectFailures: number;
  /** Sessions ended by a ZooKeeper error other than a loss (no permission, timeout). */
  readonly listingFailures: number;
  /** Removals this invocation flipped and put on the queue (re-sent leftovers included). */
  readonly removalsRelayed: number;
  readonly mirrorWrites: number;
}

/** Ends the window when less than this is left: not enough for a connection and a listing. */
const minimumSessionMs = 500;
const retryDelayMs = 1_000;

export async function runWatchWindow(
  deps: WatchWindowDeps,
  options: WatchWindowOptions,
): Promise<WatchWindowSummary> {
  const clock = deps.clock ?? Date.now;
  const relay = new MembershipRelay({
    store: deps.store,
    queue: deps.queue,
    clock,
    source: deps.source ?? 'watcher',
    logger: deps.logger,
  });
  const summary = {
    sessions: 0,
    reconciles: 0,
    sessionLosses: 0,
    connectFailures: 0,
    listingFailures: 0,
    removalsRelayed: 0,
    mirrorWrites: 0,
  };
  const relayed = (removals: readonly RelayedRemoval[]) => {
    summary.removalsRelayed += removals.length;
    for (const removal of removals) {
      deps.logger?.info('failover request relayed', {
        host: removal.request.host,
        nodeType: removal.request.nodeType,
        czxid: removal.request.czxid,
        cause: removal.cause,
        detectionDelayMs: removal.detectedAt === undefined ? undefined : removal.sentAt - removal.detectedAt,
      });
      deps.onRelayed?.(removal);
    }
  };
  let lastProblem: Error | undefined;
  const pause = () => sleep(Math.min(retryDelayMs, Math.max(0, options.endAt - clock())));
  while (options.endAt - clock() > minimumSessionMs && !aborted(options)) {
    let session: ZkSession;
    try {
      session = await deps.connect(Math.min(options.connectTimeoutMs ?? 3_000, options.endAt - clock()));
    } catch (error: unknown) {
      if (!(error instanceof ZkConnectError)) throw error;
      lastProblem = error;
      summary.connectFailures += 1;
      deps.logger?.warn('zookeeper not reachable, retrying', { error: error.message });
      await pause();
      continue;
    }
    summary.sessions += 1;
    let outcome: SessionOutcome;
    try {
      outcome = await watchSession(session, deps, options, relay, clock, summary, relayed);
    } catch (error: unknown) {
      if (!(error instanceof ZkError)) throw error;
      // Not a loss, but the listing cannot go on (no permission, a server-side timeout): start over.
      lastProblem = error;
      summary.listingFailures += 1;
      deps.logger?.error('registry listing failed', { error: error.message, code: error.codeName });
      outcome = 'failed';
    } finally {
      await session.close();
    }
    if (outcome === 'deadline') break;
    if (outcome === 'lost') summary.sessionLosses += 1;
    else await pause();
  }
  // Sends that failed stay pending in the mirror; one last try before handing over to the next invocation.
  relayed(await relay.retryUnsent());
  if (summary.reconciles === 0 && !aborted(options)) {
    throw new WatchWindowError('no complete registry listing during the whole watch window', {
      cause: lastProblem,
    });
  }
  return summary;
}

type SessionOutcome = 'lost' | 'deadline' | 'failed';

async function watchSession(
  session: ZkSession,
  deps: WatchWindowDeps,
  options: WatchWindowOptions,
  relay: MembershipRelay,
  clock: () => number,
  summary: { reconciles: number; mirrorWrites: number },
  relayed: (removals: readonly RelayedRemoval[]) => void,
): Promise<SessionOutcome> {
  const dirty = new Map<string, number>();
  let wake: () => void = () => undefined;
  const view = new RegistryView(session, {
    layout: deps.layout,
    timeZoneOffsetMinutes: deps.timeZoneOffsetMinutes,
    logger: deps.logger,
    onChange: (path) => {
      if (!dirty.has(path)) dirty.set(path, clock());
      wake();
    },
  });
  const reconcile = async (detectedAt?: number): Promise<boolean> => {
    const result = await relay.reconcile(view.servers(), view.covers, detectedAt);
    summary.reconciles += 1;
    summary.mirrorWrites += result.written;
    relayed(result.relayed);
    if (deps.deadServerMarkers === true) {
      await markDeadServers(session, deps, view, result.relayed);
    }
    return result.failed === 0 && relay.unsentCount === 0;
  };

  try {
    // The mirror may be read before or after the listing: removals are only inferred for incarnations the
    // listing provably saw created (pzxid), so the order does not matter and both go in parallel.
    await Promise.all([view.listAll(), relay.load()]);
  } catch (error: unknown) {
    if (error instanceof ZkSessionLostError || session.isLost) return 'lost';
    throw error;
  }
  if (session.isLost) return 'lost';
  let settled = await reconcile();
  relayed(await relay.resendPending(options.pendingResendAfterMs ?? 15_000));

  for (;;) {
    if (session.isLost) return 'lost';
    const remaining = options.endAt - clock();
    if (remaining <= 0 || aborted(options)) return 'deadline';
    if (dirty.size === 0) {
      // Wait for a watch, the loss of the session, the deadline, or (after a failed write) a retry.
      const woken = new Promise<void>((resolve) => {
        wake = resolve;
      });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, settled ? remaining : Math.min(remaining, retryDelayMs));
      });
      const onAbort = () => wake();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      await Promise.race([woken, session.lost, timeout]);
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      wake = () => undefined;
      if (session.isLost) return 'lost';
      if (aborted(options)) return 'deadline';
      if (dirty.size === 0) {
        if (!settled && options.endAt > clock()) {
          relayed(await relay.retryUnsent());
          settled = await reconcile();
        }
        continue;
      }
    }
    const paths = [...dirty.entries()];
    dirty.clear();
    const detectedAt = Math.min(...paths.map(([, at]) => at));
    try {
      for (const [path] of paths) await view.relist(path);
    } catch (error: unknown) {
      if (error instanceof ZkSessionLostError || session.isLost) return 'lost';
      throw error;
    }
    if (session.isLost) return 'lost';
    settled = await reconcile(detectedAt);
  }
}

/**
 * F9: a persistent marker per removed server, written only while the server's node is still absent (a
 * server that is back already is not dead). Best effort: a failure is logged, the removal stands.
 */
async function markDeadServers(
  session: ZkSession,
  deps: WatchWindowDeps,
  view: RegistryView,
  removals: readonly RelayedRemoval[],
): Promise<void> {
  const servers = view.servers();
  for (const removal of removals) {
    if (removal.cause === 'restarted' || servers.has(removal.id)) continue;
    const { nodeType, host } = removal.request;
    try {
      const row = await deps.store.get(removal.id);
      const groups =
        nodeType === 'worker' && deps.layout.workersHaveGroups ? (row?.groups ?? []) : [undefined];
      const present = await Promise.all(
        groups.map((group) => session.exists(deps.layout.serverPath(nodeType, host, group))),
      );
      if (present.some((stat) => stat !== null)) continue;
      await session.create(deps.layout.deadServerPath(nodeType, host), '', { persistent: true });
      deps.logger?.info('dead-server marker written', { nodeType, host });
    } catch (error: unknown) {
      if (error instanceof ZkNodeExistsError) continue;
      deps.logger?.warn('dead-server marker not written', {
        nodeType,
        host,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
}

function aborted(options: WatchWindowOptions): boolean {
  return options.signal?.aborted === true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
