// `--host` and `--type`: validated exactly as the failover requests are (lib/messages.ts), and the node
// type taken from the membership mirror when the operator does not give it.
import { isHostPort, type NodeType } from '../messages.ts';
import type { MirrorRow } from '../registry/membership.ts';
import { DynamoServerStore } from '../store/dynamodb/servers.ts';
import { UsageError } from './args.ts';
import type { Target } from './target.ts';

export function hostOption(options: ReadonlyMap<string, string>, command: string): string {
  const host = options.get('host');
  if (host === undefined) throw new UsageError(`\`zkf ${command}\` needs --host <ip:port>`, command);
  if (!isHostPort(host)) {
    throw new UsageError(
      `--host must be "ip:port" or "hostname:port" exactly as registered (port 1-65535), got ${JSON.stringify(host)}`,
      command,
    );
  }
  return host;
}

export function typeOption(options: ReadonlyMap<string, string>, command: string): NodeType | undefined {
  const type = options.get('type');
  if (type === undefined || type === 'master' || type === 'worker') return type;
  throw new UsageError(`--type must be master or worker, got ${JSON.stringify(type)}`, command);
}

export interface HostIdentity {
  nodeType: NodeType;
  /** The mirror row of `<type>/<host>`, if the watcher ever saw the server. */
  row: MirrorRow | undefined;
  /** How the type was decided. */
  typeSource: 'option' | 'mirror';
}

/** The node type (given, or the only one the mirror knows for the host) and its mirror row. */
export async function identifyHost(
  target: Target,
  host: string,
  type: NodeType | undefined,
  command: string,
): Promise<HostIdentity> {
  const store = new DynamoServerStore(target.dynamodb, target.tables.servers);
  const [master, worker] = await Promise.all([store.get(`master/${host}`), store.get(`worker/${host}`)]);
  if (type !== undefined)
    return { nodeType: type, row: type === 'master' ? master : worker, typeSource: 'option' };
  if (master !== undefined && worker === undefined)
    return { nodeType: 'master', row: master, typeSource: 'mirror' };
  if (worker !== undefined && master === undefined)
    return { nodeType: 'worker', row: worker, typeSource: 'mirror' };
  throw new UsageError(
    master === undefined
      ? `the servers mirror does not know ${host}: say --type master or --type worker`
      : `${host} is both a master and a worker in the servers mirror: say --type master or --type worker`,
    command,
  );
}
