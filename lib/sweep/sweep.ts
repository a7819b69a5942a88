import type { FailoverRequestQueue } from '../failover/ports.ts';
import { type FailoverRequestInput, isHostPort, type NodeType } from '../messages.ts';
import type { RegistryLayout } from '../registry/layout.ts';
import { RegistryView } from '../registry/listing.ts';
import { type MembershipStore, type MirrorRow, serverId, sweepKey } from '../registry/membership.ts';
import { MembershipRelay } from '../registry/relay.ts';
import {
  type RegistryLogger,
  ZkConnectError,
  type ZkSession,
  ZkSessionLostError,
} from '../registry/zk-client.ts';
import {
  type DiscoveryCheckpoint,
  type ExecutingHostScan,
  type ExecutingWork,
  isHostScan,
} from './executing-work.ts';

/**
 * The sweep (F6): executing work whose host is not a live registry member is an orphan; request its
 * failover, one request per host. Cost model (docs/watcher.md):
 *
 * - the live set is one fresh ZooKeeper listing (no watches), compared by exact host;
 * - the mirror (one row per server ever seen) names the candidate hosts: removed servers whose work was
 *   not yet found clean, and live servers that restarted and were not yet checked for work older than
 *   their startup (#11445: a restarted server's new work is never a candidate);
 * - each candidate costs one `Query byHost` probe that stops at the first executing item, resumes from a
 *   saved cursor when time runs out, and is not repeated once clean for that incarnation;
 * - a full discovery (parallel Scan of the byHost indexes, projecting only `host`, checkpointed) runs only
 *   the first time, when an earlier pass is unfinished, or when asked (`discover: true`).
 */

export interface SweepBookkeeping {
  saveSweepProgress(row: MirrorRow, cursor: string | null, now: number): Promise<void>;
  loadDiscoveryCheckpoint(): Promise<DiscoveryCheckpoint | undefined>;
  saveDiscoveryCheckpoint(checkpoint: DiscoveryCheckpoint): Promise<void>;
}

export interface SweepDeps {
  readonly connect: (timeoutMs: number) => Promise<ZkSession>;
  readonly layout: RegistryLayout;
  readonly timeZoneOffsetMinutes?: number;
  readonly store: MembershipStore & SweepBookkeeping;
  readonly queue: FailoverRequestQueue;
  /** The store's executing work: probed per host (DynamoDB), or listed by host in one pass (D5). */
  readonly work: ExecutingWork | ExecutingHostScan;
  readonly clock?: () => number;
  readonly logger?: RegistryLogger;
  /** Outbox repair (F6): re-sends recovery commands written but never enqueued. */
  readonly resendPendingCommands?: () => Promise<unknown>;
  /** Repair of executing work left without an owner and without a command (D5). */
  readonly repairUnowned?: () => Promise<unknown>;
}

export interface SweepOptions {
  /** Epoch ms by which the sweep must be done (deadline minus a margin). */
  readonly endAt: number;
  /** Start a full discovery pass (or continue an unfinished one). */
  readonly discover?: boolean;
  /** A server removed this recently is left to the watcher's request. Default 10 minutes. */
  readonly removalGraceMs?: number;
  readonly connectTimeoutMs?: number;
  /** Probes in flight at once. Default 8. */
  readonly probeConcurrency?: number;
}

export interface OrphanHost {
  readonly nodeType: NodeType;
  readonly host: string;
  /** How it was found. */
  readonly via: 'probe' | 'discovery';
}

export interface SweepSummary {
  /** Whether a fresh registry listing was had: without one no host is judged. */
  registry: 'listed' | 'unavailable';
  liveServers: number;
  /** Removals the sweep's own reconcile relayed (a watcher outage), re-sent leftovers included. */
  removalsRelayed: number;
  probes: number;
  probesUnfinished: number;
  discovery: 'skipped' | 'partial' | 'complete';
  orphans: OrphanHost[];
  /** Orphan hosts whose name a failover request cannot carry. */
  unsendable: number;
  commands?: unknown;
  /** The one-pass host listing's cost (stores that list executing hosts, D5). */
  scan?: { durationMs: number; executingItems: number; hosts: number };
  repairs?: unknown;
}

interface Probe {
  readonly row: MirrorRow;
  /** F3 bound for a live, restarted server. */
  readonly olderThan?: number;
}

export async function runSweep(deps: SweepDeps, options: SweepOptions): Promise<SweepSummary> {
  const clock = deps.clock ?? Date.now;
  const summary: SweepSummary = {
    registry: 'unavailable',
    liveServers: 0,
    removalsRelayed: 0,
    probes: 0,
    probesUnfinished: 0,
    discovery: 'skipped',
    orphans: [],
    unsendable: 0,
  };

  if (deps.resendPendingCommands !== undefined) {
    try {
      summary.commands = await deps.resendPendingCommands();
    } catch (error: unknown) {
      deps.logger?.error('outbox re-send failed', { error: describe(error) });
    }
  }

  // The orphan requests are observations of this listing: they carry its time, not the time they are sent.
  // A server that registers again after the listing (while the probes run) and starts new work is newer than
  // the observation, so F3's observation bound protects that work even before the mirror shows it.
  const listedAt = clock();
  const view = await listRegistry(deps, options, clock);
  const relay = new MembershipRelay({
    store: deps.store,
    queue: deps.queue,
    clock,
    source: 'sweep',
    logger: deps.logger,
  });
  await relay.load();
  if (view !== undefined) {
    const reconciled = await relay.reconcile(view.servers(), view.covers);
    summary.removalsRelayed += reconciled.relayed.length;
  }
  summary.removalsRelayed += (await relay.resendPending(15_000)).length;
  if (view === undefined) return summary;
  summary.registry = 'listed';

  const live = view.liveHosts();
  summary.liveServers = live.master.size + live.worker.size;
  const isLive = (nodeType: NodeType, host: string) => live[nodeType].has(host);
  const now = clock();
  const grace = options.removalGraceMs ?? 10 * 60_000;
  const recentlyRemoved = (row: MirrorRow | undefined) =>
    row !== undefined && !row.alive && row.removedAt !== undefined && now - row.removedAt < grace;

  if (isHostScan(deps.work)) {
    await requestOrphans(deps, summary, await scanOrphans(deps.work, summary, isLive), relay, listedAt);
    await runRepairs(deps, summary);
    return summary;
  }

  const work = deps.work;
  const probes = new Map<string, Probe>();
  const addProbe = (row: MirrorRow) => {
    if (probes.has(row.id) || row.sweptFor === sweepKey(row)) return;
    if (isLive(row.nodeType, row.host)) {
      // A live server: only a restarted one can have work older than its startup.
      if (row.alive && row.startupTime !== null) probes.set(row.id, { row, olderThan: row.startupTime });
    } else if (!recentlyRemoved(row)) {
      if (row.alive)
        deps.logger?.warn('mirror shows a server live that the registry does not', { id: row.id });
      probes.set(row.id, { row });
    }
  };
  for (const row of relay.rows.values()) {
    if (!isLive(row.nodeType, row.host) || row.previousCzxid !== undefined) addProbe(row);
  }

  const direct = new Map<string, OrphanHost>();
  const checkpoint = await deps.store.loadDiscoveryCheckpoint();
  if (options.discover === true || checkpoint?.completedAt === undefined) {
    const fresh = checkpoint === undefined || checkpoint.completedAt !== undefined;
    // Discovery gets half of the time; the probes it leads to need the rest.
    const step = await work.discover(fresh ? {} : checkpoint.cursors, now + (options.endAt - now) / 2);
    await deps.store.saveDiscoveryCheckpoint({
      cursors: step.cursors,
      startedAt: fresh ? now : checkpoint.startedAt,
      ...(step.done ? { completedAt: clock() } : {}),
    });
    summary.discovery = step.done ? 'complete' : 'partial';
    for (const { nodeType, host } of step.hosts) {
      const id = serverId(nodeType, host);
      const row = relay.rows.get(id);
      if (isLive(nodeType, host)) {
        if (row !== undefined) addProbe(row);
      } else if (!recentlyRemoved(row)) {
        // An executing item of a host that is not live: an orphan, whatever the mirror says.
        direct.set(id, { nodeType, host, via: 'discovery' });
        probes.delete(id);
      }
    }
  }

  const orphans = [...direct.values()];
  const queue = [...probes.values()];
  const probeOne = async (probe: Probe) => {
    const { row } = probe;
    const key = sweepKey(row);
    const result = await work.probeHost(row.nodeType, row.host, {
      olderThan: probe.olderThan,
      cursor: row.sweepCursor?.for === key ? row.sweepCursor.key : undefined,
      endAt: options.endAt,
    });
    summary.probes += 1;
    if (result.kind === 'found') orphans.push({ nodeType: row.nodeType, host: row.host, via: 'probe' });
    else if (result.kind === 'clean') await deps.store.saveSweepProgress(row, null, clock());
    else {
      summary.probesUnfinished += 1;
      await deps.store.saveSweepProgress(row, result.cursor, clock());
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(options.probeConcurrency ?? 8, queue.length) }, async () => {
      for (let probe = queue.shift(); probe !== undefined; probe = queue.shift()) {
        if (clock() >= options.endAt) return;
        await probeOne(probe);
      }
    }),
  );

  await requestOrphans(deps, summary, orphans, relay, listedAt);
  return summary;
}

/**
 * D5: every host with executing work that is not registered (exact match) is an orphan. A registered
 * host's work is its own: a restarted server's older work is left to its removal's failover (the watcher
 * relays it), since a DolphinScheduler master that reconnected after its session expired keeps running its
 * workflows under a new startup time.
 */
async function scanOrphans(
  work: ExecutingHostScan,
  summary: SweepSummary,
  isLive: (nodeType: NodeType, host: string) => boolean,
): Promise<OrphanHost[]> {
  const scan = await work.scanExecutingHosts();
  summary.scan = { ...scan.cost, hosts: scan.hosts.length };
  return scan.hosts
    .filter(({ nodeType, host }) => !isLive(nodeType, host))
    .map(({ nodeType, host }) => ({ nodeType, host, via: 'discovery' as const }));
}

async function runRepairs(deps: SweepDeps, summary: SweepSummary): Promise<void> {
  if (deps.repairUnowned === undefined) return;
  try {
    summary.repairs = await deps.repairUnowned();
  } catch (error: unknown) {
    deps.logger?.error('repair of unowned work failed', { error: describe(error) });
  }
}

async function requestOrphans(
  deps: SweepDeps,
  summary: SweepSummary,
  orphans: readonly OrphanHost[],
  relay: MembershipRelay,
  listedAt: number,
): Promise<void> {
  const requests: FailoverRequestInput[] = [];
  for (const orphan of orphans) {
    if (!isHostPort(orphan.host)) {
      summary.unsendable += 1;
      deps.logger?.warn('orphan host cannot be named in a failover request', {
        nodeType: orphan.nodeType,
        host: JSON.stringify(orphan.host).slice(0, 200),
      });
      continue;
    }
    summary.orphans.push(orphan);
    requests.push(orphanRequest(orphan, relay.rows.get(serverId(orphan.nodeType, orphan.host)), listedAt));
  }
  await deps.queue.send(requests);
  for (const request of requests) {
    deps.logger?.info('orphan failover requested', {
      nodeType: request.nodeType,
      host: request.host,
      czxid: request.czxid,
    });
  }
}

/**
 * The request for an orphan host: for a server that is not live, its last incarnation; for a live,
 * restarted one, the incarnation before (its own work is protected by F3 with the mirror).
 */
export function orphanRequest(
  orphan: Pick<OrphanHost, 'nodeType' | 'host'>,
  row: MirrorRow | undefined,
  observedAt: number,
): FailoverRequestInput {
  const ownIncarnation = row !== undefined && !row.alive;
  const czxid = row === undefined ? null : ownIncarnation ? row.czxid : (row.previousCzxid ?? null);
  const startupTime =
    row === undefined ? null : ownIncarnation ? row.startupTime : (row.previousStartupTime ?? null);
  return {
    kind: 'Orphaned',
    nodeType: orphan.nodeType,
    host: orphan.host,
    czxid,
    startupTime,
    observedAt,
    source: 'sweep',
  };
}

async function listRegistry(
  deps: SweepDeps,
  options: SweepOptions,
  clock: () => number,
): Promise<RegistryView | undefined> {
  let session: ZkSession;
  try {
    session = await deps.connect(
      Math.min(options.connectTimeoutMs ?? 5_000, Math.max(1, options.endAt - clock())),
    );
  } catch (error: unknown) {
    if (!(error instanceof ZkConnectError)) throw error;
    deps.logger?.error('zookeeper not reachable: no host can be judged, orphans left for the next sweep', {
      error: error.message,
    });
    return undefined;
  }
  try {
    const view = new RegistryView(session, {
      layout: deps.layout,
      timeZoneOffsetMinutes: deps.timeZoneOffsetMinutes,
      logger: deps.logger,
    });
    await view.listAll();
    return session.isLost ? undefined : view;
  } catch (error: unknown) {
    if (!(error instanceof ZkSessionLostError)) throw error;
    deps.logger?.error('zookeeper session lost while listing: orphans left for the next sweep', {
      error: error.message,
    });
    return undefined;
  } finally {
    await session.close();
  }
}

function describe(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message}`.slice(0, 500)
    : String(error).slice(0, 500);
}
