import type { LivenessSource } from '../failover/ports.ts';
import type { LiveIncarnation } from '../failover/rules.ts';
import type { NodeType } from '../messages.ts';
import { isValidGroupName, type RegistryLayout } from './layout.ts';
import { readServerNode } from './listing.ts';
import { type NodeObservation, serverId, serversFromNodes } from './membership.ts';
import type { RegistryLogger, ZkSession } from './zk-client.ts';
import type { ZkSessionProvider } from './zk-session-provider.ts';

/**
 * The incarnation a server has registered now (F3), read from ZooKeeper itself rather than from the
 * membership mirror: the node at `<root>/nodes/<type>/<ip:port>` (ds-1.3 workers: one per group, one
 * server), its heartbeat's startup time, or its ctime while the heartbeat is empty.
 */

export interface ZkLivenessOptions {
  readonly layout: RegistryLayout;
  /** ds-1.3 CSV heartbeats: minutes east of UTC. */
  readonly timeZoneOffsetMinutes?: number;
  readonly logger?: RegistryLogger;
}

export class ZkLiveness implements LivenessSource {
  readonly #sessions: ZkSessionProvider;
  readonly #options: ZkLivenessOptions;

  constructor(sessions: ZkSessionProvider, options: ZkLivenessOptions) {
    this.#sessions = sessions;
    this.#options = options;
  }

  async liveIncarnation(type: NodeType, host: string): Promise<LiveIncarnation> {
    const { layout } = this.#options;
    const nodes = await this.#sessions.withSession(async (session) => {
      if (type === 'worker' && layout.workersHaveGroups) {
        const groups = (await session.children(layout.parentPath('worker'))).filter(isValidGroupName);
        const paths = groups.map((group) => ({ group, path: layout.serverPath('worker', host, group) }));
        return Promise.all(paths.map(({ group, path }) => this.#readNode(session, type, host, path, group)));
      }
      return [await this.#readNode(session, type, host, layout.serverPath(type, host))];
    });
    const server = serversFromNodes(nodes.filter((node) => node !== null)).get(serverId(type, host));
    return server === undefined ? null : { startupTime: server.startupTime };
  }

  #readNode(
    session: ZkSession,
    nodeType: NodeType,
    host: string,
    path: string,
    group?: string,
  ): Promise<NodeObservation | null> {
    return readServerNode(session, this.#options, {
      path,
      parent: path.slice(0, path.lastIndexOf('/')),
      nodeType,
      host,
      ...(group === undefined ? {} : { group }),
    });
  }
}
