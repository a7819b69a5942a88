import type { FailoverRequestInput, NodeType, RequestSource } from '../messages.ts';

/**
 * Membership: what the registry shows (servers and their incarnations) against what the mirror recorded,
 * and the writes that bring the mirror up to date. Pure: no I/O, no clock (time is an argument).
 *
 * Rules (DESIGN.md sections 3 and 6):
 * - A server is `<type>/<host>`; its incarnation is the czxid of its node (ds-1.3 workers: of the first
 *   node of the newest session among its group nodes; the worker is one server, alive while any group
 *   node of it is registered).
 * - Incarnations only move forward: an observation older than the mirror's is stale and ignored.
 * - A removal is final for its czxid; it is emitted by the write that flips the row from alive to removed,
 *   or by the write that records the next incarnation of a server whose row was alive (a restart).
 * - A removal is only inferred from absence when the listing provably came after the incarnation's node
 *   was created (the parent's pzxid is at least the czxid): a listing older than the mirror row must not
 *   turn a new server into a removed one.
 */

export interface NodeObservation {
  /** Full znode path. */
  readonly path: string;
  /** The directory the node was listed in. */
  readonly parent: string;
  readonly nodeType: NodeType;
  /** Exact registered name (`ip:port`). */
  readonly host: string;
  /** ds-1.3 worker group; undefined otherwise. */
  readonly group?: string;
  readonly czxid: string;
  /** Owning session (hex), '0' for a persistent node. */
  readonly ephemeralOwner: string;
  readonly ctime: number;
  readonly startupTime: number;
  readonly startupTimeSource: 'heartbeat' | 'ctime';
}

/** One server as the registry shows it now. */
export interface ServerObservation {
  readonly id: string;
  readonly nodeType: NodeType;
  readonly host: string;
  readonly czxid: string;
  readonly ephemeralOwner: string;
  readonly startupTime: number;
  readonly startupTimeSource: 'heartbeat' | 'ctime';
  /** The directory holding the node whose czxid identifies the incarnation (the pzxid check uses it). */
  readonly anchor: string;
  /** ds-1.3 worker groups (sorted); empty otherwise. */
  readonly groups: readonly string[];
}

/** A failover request written into a mirror row by the flip, until it is known to be on the queue. */
export type PendingRequest = FailoverRequestInput & { readonly czxid: string };

/** The mirror row of one server (servers table). */
export interface MirrorRow {
  readonly id: string;
  readonly nodeType: NodeType;
  readonly host: string;
  /** The current (alive) or last (removed) incarnation. */
  readonly czxid: string;
  readonly startupTime: number | null;
  readonly startupTimeSource?: 'heartbeat' | 'ctime';
  readonly alive: boolean;
  readonly seenAt: number;
  readonly removedAt?: number;
  readonly ephemeralOwner?: string;
  readonly anchor?: string;
  readonly groups?: readonly string[];
  readonly previousCzxid?: string;
  readonly previousStartupTime?: number;
  /** Requests flipped but not yet confirmed sent, by removed czxid. Undefined = the row has no map yet. */
  readonly pending?: ReadonlyMap<string, PendingRequest>;
  /** Sweep bookkeeping: the probe (`sweepKey`) last found clean, and when. */
  readonly sweptFor?: string;
  readonly sweptAt?: number;
  /** Sweep bookkeeping: where an unfinished probe resumes. */
  readonly sweepCursor?: { readonly for: string; readonly key: string };
}

/**
 * Which sweep probe a row calls for: the work of its removed incarnation (`dead`), or the work a live,
 * restarted server left from before its startup (`live`). Progress and results are kept per key.
 */
export function sweepKey(row: Pick<MirrorRow, 'czxid' | 'alive'>): string {
  return `${row.czxid}/${row.alive ? 'live' : 'dead'}`;
}

/** The membership mirror (servers table), as the watcher and the sweep use it. */
export interface MembershipStore {
  /** Every server row (consistent read). */
  scan(): Promise<MirrorRow[]>;
  get(id: string): Promise<MirrorRow | undefined>;
  /**
   * Writes one action, conditional on the row it was planned from (absent for `register`; same czxid and
   * alive otherwise). A removal is stored in the row's pending map in the same write. Returns the row as
   * written, or null when the condition failed (someone else wrote first).
   */
  apply(action: MembershipAction, now: number): Promise<MirrorRow | null>;
  /** Forgets a pending request once it is on the queue. */
  clearPending(id: string, czxid: string): Promise<void>;
}

/** What to write for one server. Every write is conditional on the row read (czxid and alive). */
export type MembershipAction =
  | { readonly kind: 'register'; readonly server: ServerObservation }
  | {
      readonly kind: 'replace';
      readonly row: MirrorRow;
      readonly server: ServerObservation;
      /** The removal of the row's incarnation when it was alive (a restart), else null. */
      readonly removal: PendingRequest | null;
    }
  | { readonly kind: 'remove'; readonly row: MirrorRow; readonly removal: PendingRequest }
  | { readonly kind: 'refresh'; readonly row: MirrorRow; readonly server: ServerObservation };

export function serverId(nodeType: NodeType, host: string): string {
  return `${nodeType}/${host}`;
}

/** -1, 0, 1 for decimal zxid strings (exact, whatever their length). */
export function compareZxid(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Groups node observations into servers. A server with one node takes that node's identity. A ds-1.3
 * worker with several group nodes takes the newest session (the owner of its highest czxid) and, among that
 * session's nodes, the oldest one as its incarnation; nodes of an older session of the same name (the
 * moment of a restart) are left out.
 */
export function serversFromNodes(nodes: Iterable<NodeObservation>): Map<string, ServerObservation> {
  const byServer = new Map<string, NodeObservation[]>();
  for (const node of nodes) {
    const id = serverId(node.nodeType, node.host);
    const list = byServer.get(id);
    if (list === undefined) byServer.set(id, [node]);
    else list.push(node);
  }
  const servers = new Map<string, ServerObservation>();
  for (const [id, list] of byServer) {
    const newest = list.reduce((a, b) => (compareZxid(b.czxid, a.czxid) > 0 ? b : a));
    const session = list.filter((n) => n.ephemeralOwner === newest.ephemeralOwner);
    const first = session.reduce((a, b) => (compareZxid(b.czxid, a.czxid) < 0 ? b : a));
    // The startup time of a heartbeat beats the ctime fallback of a sibling node of the same session.
    const timed = session.find((n) => n.startupTimeSource === 'heartbeat') ?? first;
    const groups = session.flatMap((n) => (n.group === undefined ? [] : [n.group])).sort();
    servers.set(id, {
      id,
      nodeType: first.nodeType,
      host: first.host,
      czxid: first.czxid,
      ephemeralOwner: first.ephemeralOwner,
      startupTime: timed.startupTime,
      startupTimeSource: timed.startupTimeSource,
      anchor: first.parent,
      groups: [...new Set(groups)],
    });
  }
  return servers;
}

/** The request that reports the removal of a row's incarnation. */
export function removalRequest(row: MirrorRow, observedAt: number, source: RequestSource): PendingRequest {
  return {
    kind: 'NodeRemoved',
    nodeType: row.nodeType,
    host: row.host,
    czxid: row.czxid,
    startupTime: row.startupTime,
    observedAt,
    source,
  };
}

/** How long a row's `seenAt` may age before a listing refreshes it (bounds writes per listing). */
export const seenAtRefreshMs = 10 * 60_000;

/**
 * The write (if any) for a server present in the listing. The same session means the same process, hence
 * the same incarnation, even when it re-created its node (or a ds-1.3 worker lost one of its group nodes):
 * the row keeps its czxid and anchor then, so a later removal is reported for the incarnation first seen.
 */
export function planPresent(
  row: MirrorRow | undefined,
  server: ServerObservation,
  now: number,
  source: RequestSource,
): MembershipAction | null {
  if (row === undefined) return { kind: 'register', server };
  const order = compareZxid(server.czxid, row.czxid);
  const sameSession =
    server.ephemeralOwner !== '0' &&
    row.ephemeralOwner !== undefined &&
    row.ephemeralOwner === server.ephemeralOwner;
  if (row.alive && (order === 0 || sameSession)) {
    return needsRefresh(row, server, now) ? { kind: 'refresh', row, server } : null;
  }
  // A node older than the recorded incarnation (a stale listing), or the removed incarnation itself: a
  // recorded removal is final.
  if (order <= 0) return null;
  return { kind: 'replace', row, server, removal: row.alive ? removalRequest(row, now, source) : null };
}

function needsRefresh(row: MirrorRow, server: ServerObservation, now: number): boolean {
  const heartbeatArrived = row.startupTimeSource !== 'heartbeat' && server.startupTimeSource === 'heartbeat';
  const groupsChanged = (row.groups ?? []).join('\n') !== server.groups.join('\n');
  return (
    heartbeatArrived ||
    groupsChanged ||
    row.startupTime === null ||
    row.ephemeralOwner === undefined ||
    row.anchor === undefined ||
    now - row.seenAt >= seenAtRefreshMs
  );
}

/**
 * The write (if any) for a mirror row whose server is absent from the listing. `covered` says whether the
 * listing provably came after the creation of the row's incarnation (see `listingCovers`).
 */
export function planAbsent(
  row: MirrorRow,
  covered: boolean,
  now: number,
  source: RequestSource,
): MembershipAction | null {
  if (!row.alive || !covered) return null;
  return { kind: 'remove', row, removal: removalRequest(row, now, source) };
}

/** One directory as listed: its children and its stat at that moment. */
export interface ParentListing {
  readonly path: string;
  /** False when the directory did not exist. */
  readonly exists: boolean;
  readonly pzxid: string;
  readonly cversion: number;
  readonly names: readonly string[];
}

/** Whether a listing may declare a row's incarnation removed. */
export type ListingCoverage = (row: MirrorRow) => boolean;

/**
 * True when the listing of the row's anchor directory happened after the row's incarnation was created, so
 * that its absence there means it was deleted. A directory's pzxid is the zxid of its last child creation
 * or deletion: the creation of the node is visible in any listing whose pzxid is at least its czxid. A
 * ds-1.3 group directory that is gone had to lose its children first: then the listing of its parent
 * covers the row if that parent's pzxid is at least the czxid.
 */
export function listingCovers(
  row: MirrorRow,
  parents: ReadonlyMap<string, ParentListing>,
  anchorFallback: (row: MirrorRow) => string | undefined,
): boolean {
  const anchor = row.anchor ?? anchorFallback(row);
  if (anchor === undefined) return false;
  const listed = parents.get(anchor);
  if (listed?.exists === true) return compareZxid(listed.pzxid, row.czxid) >= 0;
  const slash = anchor.lastIndexOf('/');
  const grandparent = parents.get(anchor.slice(0, slash));
  return (
    grandparent?.exists === true &&
    !grandparent.names.includes(anchor.slice(slash + 1)) &&
    compareZxid(grandparent.pzxid, row.czxid) >= 0
  );
}

export interface ReconcileInput {
  /** Servers present in the listing. */
  readonly servers: ReadonlyMap<string, ServerObservation>;
  /** The mirror as last known. */
  readonly rows: ReadonlyMap<string, MirrorRow>;
  /** Whether the listing covers a row (see `listingCovers`). */
  readonly covers: ListingCoverage;
  readonly now: number;
  readonly source: RequestSource;
}

/** Every write that brings the mirror in line with the listing, at most one per server. */
export function planReconcile(input: ReconcileInput): MembershipAction[] {
  const actions: MembershipAction[] = [];
  for (const server of input.servers.values()) {
    const action = planPresent(input.rows.get(server.id), server, input.now, input.source);
    if (action !== null) actions.push(action);
  }
  for (const row of input.rows.values()) {
    if (input.servers.has(row.id)) continue;
    const action = planAbsent(row, input.covers(row), input.now, input.source);
    if (action !== null) actions.push(action);
  }
  return actions;
}
