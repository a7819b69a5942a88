import type { NodeType } from '../messages.ts';
import { parseHeartbeat } from './heartbeat.ts';
import { isValidGroupName, parseServerName, type RegistryLayout } from './layout.ts';
import {
  type ListingCoverage,
  listingCovers,
  type MirrorRow,
  type NodeObservation,
  type ParentListing,
  type ServerObservation,
  serversFromNodes,
} from './membership.ts';
import type { RegistryLogger, ZkSession } from './zk-client.ts';

/**
 * The registry as one session sees it: the server directories with their children (listed with the
 * parent's stat) and each node's stat and heartbeat. Built by `listAll`, kept current by `relist` after a
 * watch fired. A view belongs to one session: when that session is lost, the view is dropped, never
 * reconciled (a listing cut short by a loss is not a listing).
 */

export interface RegistryViewOptions {
  readonly layout: RegistryLayout;
  /** ds-1.3 CSV heartbeats: minutes east of UTC. */
  readonly timeZoneOffsetMinutes?: number;
  readonly logger?: RegistryLogger;
  /** Called once per watch that fired, with the directory to list again. Omit for a one-off listing. */
  readonly onChange?: (path: string) => void;
}

type DirectoryKind =
  | { readonly kind: 'servers'; readonly nodeType: NodeType; readonly group?: string }
  | { readonly kind: 'groups' };

/** Directories and what they hold, per layout. */
function topDirectories(layout: RegistryLayout): Array<[string, DirectoryKind]> {
  return [
    [layout.parentPath('master'), { kind: 'servers', nodeType: 'master' }],
    [
      layout.parentPath('worker'),
      layout.workersHaveGroups ? { kind: 'groups' } : { kind: 'servers', nodeType: 'worker' },
    ],
  ];
}

const absent = (path: string): ParentListing => ({
  path,
  exists: false,
  pzxid: '0',
  cversion: 0,
  names: [],
});

export class RegistryView {
  readonly #session: ZkSession;
  readonly #options: RegistryViewOptions;
  readonly #directories = new Map<string, DirectoryKind>();
  readonly #parents = new Map<string, ParentListing>();
  /** By znode path. */
  readonly #nodes = new Map<string, NodeObservation>();
  readonly #oddNamesLogged = new Set<string>();

  constructor(session: ZkSession, options: RegistryViewOptions) {
    this.#session = session;
    this.#options = options;
  }

  get parents(): ReadonlyMap<string, ParentListing> {
    return this.#parents;
  }

  get nodes(): ReadonlyMap<string, NodeObservation> {
    return this.#nodes;
  }

  /** Lists both server directories (and ds-1.3 worker groups) with watches, and every node's stat and data. */
  async listAll(): Promise<void> {
    await Promise.all(
      topDirectories(this.#options.layout).map(([path, kind]) => {
        this.#directories.set(path, kind);
        return this.relist(path);
      }),
    );
  }

  /** Lists one directory again (its watch fired) and reads the nodes that are new or were re-created. */
  async relist(path: string): Promise<void> {
    const kind = this.#directories.get(path);
    if (kind === undefined) return;
    const onChange = this.#options.onChange;
    const listed = await this.#session.childrenWithStat(
      path,
      onChange === undefined ? undefined : () => onChange(path),
    );
    const previous = this.#parents.get(path);
    if (listed === null) {
      this.#parents.set(path, absent(path));
      if (kind.kind === 'groups') {
        for (const name of previous?.names ?? []) this.#forgetDirectory(`${path}/${name}`);
      } else {
        this.#forgetNodesUnder(path);
      }
      return;
    }
    const names = listed.children.filter((name) => this.#acceptName(path, kind, name));
    const listing: ParentListing = {
      path,
      exists: true,
      pzxid: listed.stat.pzxid,
      cversion: listed.stat.cversion,
      names,
    };
    const before = new Set(previous?.exists === true ? previous.names : []);
    const now = new Set(names);
    const added = names.filter((name) => !before.has(name));
    const removed = [...before].filter((name) => !now.has(name));
    if (kind.kind === 'groups') {
      this.#parents.set(path, listing);
      for (const name of removed) this.#forgetDirectory(`${path}/${name}`);
      await Promise.all(
        added.map((group) => {
          const groupPath = `${path}/${group}`;
          this.#directories.set(groupPath, { kind: 'servers', nodeType: 'worker', group });
          return this.relist(groupPath);
        }),
      );
      return;
    }
    for (const name of removed) this.#nodes.delete(`${path}/${name}`);
    // Every child creation and deletion bumps cversion: more changes than the names show means some
    // names were deleted and created again in between (a restart), so every node is read again.
    const hidden =
      previous?.exists !== true || listed.stat.cversion - previous.cversion !== added.length + removed.length;
    const toRead = hidden ? names : added;
    const observed = await Promise.all(toRead.map((name) => this.#readNode(path, kind, name)));
    for (const [index, name] of toRead.entries()) {
      const node = observed[index];
      if (node === undefined || node === null) this.#nodes.delete(`${path}/${name}`);
      else this.#nodes.set(node.path, node);
    }
    this.#parents.set(path, listing);
  }

  /** Servers present now, one per `<type>/<host>` (a ds-1.3 worker in several groups is one server). */
  servers(): Map<string, ServerObservation> {
    return serversFromNodes(this.#nodes.values());
  }

  /** Hosts registered now, by type, exact names. */
  liveHosts(): Record<NodeType, Set<string>> {
    const live: Record<NodeType, Set<string>> = { master: new Set(), worker: new Set() };
    for (const node of this.#nodes.values()) live[node.nodeType].add(node.host);
    return live;
  }

  /** Whether this view may declare the row's incarnation removed (see `listingCovers`). */
  readonly covers: ListingCoverage = (row: MirrorRow) =>
    listingCovers(row, this.#parents, (r) =>
      // Rows written before anchors existed: only an ungrouped directory identifies the node's place.
      r.nodeType === 'worker' && this.#options.layout.workersHaveGroups
        ? undefined
        : this.#options.layout.parentPath(r.nodeType),
    );

  async #readNode(
    parent: string,
    kind: Extract<DirectoryKind, { kind: 'servers' }>,
    name: string,
  ): Promise<NodeObservation | null> {
    return readServerNode(this.#session, this.#options, {
      path: `${parent}/${name}`,
      parent,
      nodeType: kind.nodeType,
      host: name,
      group: kind.group,
    });
  }

  #acceptName(parent: string, kind: DirectoryKind, name: string): boolean {
    const key = `${parent}/${name}`;
    if (kind.kind === 'groups') {
      if (isValidGroupName(name)) return true;
      this.#logOdd(key, 'ignoring an odd worker group name', parent, name);
      return false;
    }
    if (parseServerName(name) === null) {
      this.#logOdd(key, 'ignoring an odd registry node name', parent, name);
      return false;
    }
    return true;
  }

  #logOdd(key: string, message: string, parent: string, name: string): void {
    if (this.#oddNamesLogged.has(key)) return;
    this.#oddNamesLogged.add(key);
    this.#options.logger?.warn(message, { parent, name: JSON.stringify(name).slice(0, 200) });
  }

  #forgetNodesUnder(parent: string): void {
    for (const path of [...this.#nodes.keys()]) {
      if (path.startsWith(`${parent}/`)) this.#nodes.delete(path);
    }
  }

  #forgetDirectory(path: string): void {
    this.#directories.delete(path);
    this.#parents.delete(path);
    this.#forgetNodesUnder(path);
  }
}

/**
 * One server node as observed now (null when absent): its identity, stat and heartbeat startup time (the
 * node's ctime while the heartbeat is empty or unusable; an unusable one is logged).
 */
export async function readServerNode(
  session: ZkSession,
  options: Pick<RegistryViewOptions, 'layout' | 'timeZoneOffsetMinutes' | 'logger'>,
  node: Pick<NodeObservation, 'path' | 'parent' | 'nodeType' | 'host' | 'group'>,
): Promise<NodeObservation | null> {
  const read = await session.data(node.path);
  if (read === null) return null;
  const heartbeat = parseHeartbeat(options.layout, read.data, {
    ctime: read.stat.ctime,
    timeZoneOffsetMinutes: options.timeZoneOffsetMinutes,
  });
  if (heartbeat.problem !== undefined && read.data !== null && read.data.length > 0) {
    options.logger?.warn('unusable heartbeat, startup time taken from ctime', {
      path: node.path,
      problem: heartbeat.problem,
    });
  }
  return {
    ...node,
    czxid: read.stat.czxid,
    ephemeralOwner: read.stat.ephemeralOwner,
    ctime: read.stat.ctime,
    startupTime: heartbeat.startupTime,
    startupTimeSource: heartbeat.startupTimeSource,
  };
}
