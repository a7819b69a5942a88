import { parseServerName, type ServerName } from '../hosts.ts';

export { parseServerName, type ServerName };

/**
 * Registry layouts (DESIGN.md section 3). Pure: path building and strict parsing of znode names.
 *
 * `ds-3`:   <root>/nodes/master/<ip:port>, <root>/nodes/worker/<ip:port>
 * `ds-1.3`: <root>/nodes/master/<ip:port>, <root>/nodes/worker/<group>/<ip:port> (one node per group;
 *           a worker registered in several groups is still ONE server)
 * Both:     <root>/dead-servers/<master|worker>_<ip:port> (F9 markers)
 */

export const layoutNames = ['ds-3', 'ds-1.3'] as const;
export type LayoutName = (typeof layoutNames)[number];
export const nodeTypes = ['master', 'worker'] as const;
export type NodeType = (typeof nodeTypes)[number];

export const defaultLayoutName: LayoutName = 'ds-3';
export const defaultRegistryRoot = '/dolphinscheduler';

export interface DeadServerName {
  readonly nodeType: NodeType;
  readonly server: ServerName;
}

export interface RegistryLayout {
  readonly name: LayoutName;
  /** Normalized root, e.g. `/dolphinscheduler` (`''` when the root is `/`). */
  readonly root: string;
  /** ds-1.3 registers workers one level deeper, under their group names. */
  readonly workersHaveGroups: boolean;
  /** `<root>/nodes/master` or `<root>/nodes/worker`: the node whose children are watched. */
  parentPath(nodeType: NodeType): string;
  /** `<root>/nodes/worker/<group>` (ds-1.3 only). */
  workerGroupPath(group: string): string;
  /** Path of one server's ephemeral node. A ds-1.3 worker needs its group. */
  serverPath(nodeType: NodeType, host: string, group?: string): string;
  /** `<root>/dead-servers` */
  readonly deadServersPath: string;
  /** `<root>/dead-servers/<master|worker>_<ip:port>` */
  deadServerPath(nodeType: NodeType, host: string): string;
}

export class InvalidLayoutError extends Error {
  override readonly name = 'InvalidLayoutError';
}

export interface LayoutOptions {
  name?: LayoutName;
  root?: string;
}

/** A ds-1.3 worker group name: one path segment, printable, not `.`/`..`. */
export function isValidGroupName(group: string): boolean {
  return (
    typeof group === 'string' &&
    group.length > 0 &&
    group.length <= 255 &&
    group !== '.' &&
    group !== '..' &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
    !/[/\u0000-\u001f\u007f]/.test(group) &&
    group.trim() === group
  );
}

/** Parses a dead-server marker child name `master_10.0.0.1:5678`; null for anything else. */
export function parseDeadServerName(name: string): DeadServerName | null {
  if (typeof name !== 'string') return null;
  const underscore = name.indexOf('_');
  if (underscore <= 0) return null;
  const nodeType = name.slice(0, underscore);
  if (nodeType !== 'master' && nodeType !== 'worker') return null;
  const server = parseServerName(name.slice(underscore + 1));
  return server === null ? null : { nodeType, server };
}

function normalizeRoot(root: string): string {
  if (typeof root !== 'string' || !root.startsWith('/')) {
    throw new InvalidLayoutError(
      `registry root must be an absolute ZooKeeper path, got ${JSON.stringify(root)}`,
    );
  }
  const trimmed = root.length > 1 && root.endsWith('/') ? root.slice(0, -1) : root;
  if (trimmed === '/') return '';
  const segments = trimmed.slice(1).split('/');
  // `/zookeeper` is the server's own reserved subtree.
  if (segments[0] === 'zookeeper' || !segments.every(isValidGroupName)) {
    throw new InvalidLayoutError(`registry root has an invalid segment: ${JSON.stringify(root)}`);
  }
  return trimmed;
}

function requireServer(host: string): string {
  if (parseServerName(host) === null) {
    throw new InvalidLayoutError(`not a server name (ip:port): ${JSON.stringify(host)}`);
  }
  return host;
}

/** Builds a layout; throws InvalidLayoutError for a bad name or root (configuration errors fail fast). */
export function createLayout(options: LayoutOptions = {}): RegistryLayout {
  const name = options.name ?? defaultLayoutName;
  if (!layoutNames.includes(name)) {
    throw new InvalidLayoutError(
      `unknown registry layout ${JSON.stringify(name)} (use ${layoutNames.join(' or ')})`,
    );
  }
  const root = normalizeRoot(options.root ?? defaultRegistryRoot);
  const workersHaveGroups = name === 'ds-1.3';
  const parentPath = (nodeType: NodeType): string => `${root}/nodes/${nodeType}`;
  const workerGroupPath = (group: string): string => {
    if (!workersHaveGroups) throw new InvalidLayoutError(`layout ${name} has no worker groups`);
    if (!isValidGroupName(group))
      throw new InvalidLayoutError(`invalid worker group ${JSON.stringify(group)}`);
    return `${parentPath('worker')}/${group}`;
  };
  const deadServersPath = `${root}/dead-servers`;
  return {
    name,
    root,
    workersHaveGroups,
    parentPath,
    workerGroupPath,
    serverPath(nodeType, host, group) {
      requireServer(host);
      if (nodeType === 'worker' && workersHaveGroups) {
        if (group === undefined) throw new InvalidLayoutError(`layout ${name} needs the worker's group`);
        return `${workerGroupPath(group)}/${host}`;
      }
      if (group !== undefined) throw new InvalidLayoutError(`layout ${name} has no ${nodeType} groups`);
      return `${parentPath(nodeType)}/${host}`;
    },
    deadServersPath,
    deadServerPath(nodeType, host) {
      return `${deadServersPath}/${nodeType}_${requireServer(host)}`;
    },
  };
}
