import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import {
  childMarker,
  freePort,
  localStateDir,
  type ManagedProcess,
  startProcess,
  waitUntil,
} from './processes.ts';

/** The Debian `zookeeper` package's server jar (its manifest carries the class path). */
export const zookeeperJar = '/usr/share/java/zookeeper.jar';

export interface ZooKeeperNode {
  readonly id: number;
  readonly clientPort: number;
  /** Stops the server (SIGTERM). The data directory is kept so `start()` brings the same node back. */
  stop(): Promise<void>;
  /** SIGKILL: a crashed server. */
  kill(): Promise<void>;
  start(): Promise<void>;
  running(): boolean;
}

export interface ZooKeeperCluster {
  /** `host:port[,host:port...]` for clients. */
  readonly connectString: string;
  readonly nodes: readonly ZooKeeperNode[];
  stop(): Promise<void>;
}

export interface ZooKeeperOptions {
  /** 1 = standalone (ZooKeeperServerMain); 3 = a quorum on loopback (QuorumPeerMain). */
  size?: 1 | 3;
  tickTimeMs?: number;
  startDeadlineMs?: number;
}

/** Sends a four-letter word and returns the reply, or '' on any failure (probe semantics). */
export function fourLetterWord(port: number, word: string, timeoutMs = 1_000): Promise<string> {
  return new Promise((resolveReply) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = () => {
      socket.destroy();
      resolveReply(reply);
    };
    socket.setTimeout(timeoutMs, done);
    socket.on('connect', () => socket.write(word));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
    });
    socket.on('end', done);
    socket.on('error', done);
  });
}

/** Starts ZooKeeper on free loopback ports; every node answers `srvr` (and has a quorum role) before this resolves. */
export async function startZooKeeper(options: ZooKeeperOptions = {}): Promise<ZooKeeperCluster> {
  if (!existsSync(zookeeperJar)) {
    throw new Error(`ZooKeeper is not installed (${zookeeperJar} missing): run \`npm run setup:system\``);
  }
  const size = options.size ?? 1;
  const tickTime = options.tickTimeMs ?? 200;
  const deadline = options.startDeadlineMs ?? 30_000;
  const baseDir = join(localStateDir, `zookeeper-${process.pid}-${Date.now().toString(36)}`);
  const ports = await Promise.all(
    Array.from({ length: size }, async () => ({
      client: await freePort(),
      peer: await freePort(),
      election: await freePort(),
    })),
  );
  const nodes = ports.map((p, index) => {
    const id = index + 1;
    const dataDir = join(baseDir, `node-${id}`);
    mkdirSync(dataDir, { recursive: true });
    const lines = [
      `tickTime=${tickTime}`,
      `initLimit=${size === 1 ? 5 : 50}`,
      `syncLimit=${size === 1 ? 5 : 25}`,
      `dataDir=${dataDir}`,
      `clientPort=${p.client}`,
      'clientPortAddress=127.0.0.1',
      'admin.enableServer=false',
      '4lw.commands.whitelist=srvr,ruok,mntr,stat,cons',
      `minSessionTimeout=${tickTime * 2}`,
      'maxSessionTimeout=60000',
      'maxClientCnxns=0',
      'autopurge.purgeInterval=0',
    ];
    if (size > 1) {
      writeFileSync(join(dataDir, 'myid'), `${id}\n`);
      ports.forEach((q, j) => {
        lines.push(`server.${j + 1}=127.0.0.1:${q.peer}:${q.election}`);
      });
    }
    const cfg = join(dataDir, 'zoo.cfg');
    writeFileSync(cfg, `${lines.join('\n')}\n`);
    const mainClass =
      size === 1
        ? 'org.apache.zookeeper.server.ZooKeeperServerMain'
        : 'org.apache.zookeeper.server.quorum.QuorumPeerMain';
    let proc: ManagedProcess | undefined;
    const node: ZooKeeperNode = {
      id,
      clientPort: p.client,
      running: () => proc !== undefined && !proc.exited(),
      async start() {
        if (node.running()) return;
        proc = startProcess(
          `zookeeper-${id}`,
          'java',
          [
            `-D${childMarker}`,
            '-Xmx256m',
            '-XX:+UseSerialGC',
            '-Dzookeeper.admin.enableServer=false',
            '-Dlogback.configurationFile=/dev/null',
            '-Dzookeeper.jmx.log4j.disable=true',
            '-cp',
            zookeeperJar,
            mainClass,
            cfg,
          ],
          { env: { ...process.env, JAVA_TOOL_OPTIONS: '' } },
        );
        const started = proc;
        // Standalone: ready when `srvr` answers. Quorum: the caller waits for all (roles need a majority).
        if (size === 1) {
          await waitUntil(
            `ZooKeeper on 127.0.0.1:${p.client}`,
            async () => (await fourLetterWord(p.client, 'srvr', 500)).includes('Zookeeper version'),
            deadline,
            started,
          );
        }
      },
      async stop() {
        await proc?.stop(5_000);
      },
      async kill() {
        await proc?.kill();
      },
    };
    return node;
  });
  try {
    await Promise.all(nodes.map((n) => n.start()));
    if (size > 1) {
      await Promise.all(
        nodes.map((n) =>
          waitUntil(
            `ZooKeeper quorum member ${n.id} on 127.0.0.1:${n.clientPort}`,
            async () => /Mode: (leader|follower)/.test(await fourLetterWord(n.clientPort, 'srvr', 500)),
            deadline,
          ),
        ),
      );
    }
  } catch (error: unknown) {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(baseDir, { recursive: true, force: true });
    throw error;
  }
  return {
    connectString: nodes.map((n) => `127.0.0.1:${n.clientPort}`).join(','),
    nodes,
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(baseDir, { recursive: true, force: true });
    },
  };
}
