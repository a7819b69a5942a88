// The simulated DolphinScheduler cluster, demo side: one child process per server (lib/sim/server.ts),
// started through the local stack's process registry so that no run leaves one behind. The processes are
// spawned, load their modules (meanwhile the demo starts the functions), then are told to register.
import { join } from 'node:path';
import { childMarker, type ManagedProcess, startProcess } from '../local/processes.ts';
import { projectRoot } from '../local/service.ts';
import type { LocalStack } from '../local/stack.ts';
import type { SimServer } from './options.ts';
import { asSimReport, type SimReport, type SimServerConfig } from './protocol.ts';

export interface ClusterOptions {
  /** On DolphinScheduler's database: the servers load its heartbeat and (masters) its command consumer. */
  dolphinScheduler?: boolean;
  /** Every report of every server, as it arrives. */
  onReport(server: SimServer, report: SimReport): void;
  /** Lines a server printed (errors, mostly). */
  onLine?(server: SimServer, line: string): void;
}

export interface RegisterOptions {
  sessionTimeoutMs: number;
  heartbeatMs?: number;
  /** What the servers report as their startup time (default: now). */
  startupTime?: number;
  /**
   * Each server's startup time is later by this times its index (masters and workers each 1, 2, ...):
   * DolphinScheduler 3.2 orders its masters' command slots by startup time.
   */
  startupStaggerMs?: number;
  /** On DolphinScheduler's database: the release's heartbeats; masters consume `t_ds_command`. */
  dolphinScheduler?: { version: '3.1' | '3.2'; timeZone: string; databaseUrl: string };
}

export interface RunningServer {
  readonly server: SimServer;
  readonly process: ManagedProcess;
  /** The latest registration (a session loss leads to a new one). */
  registration?: Extract<SimReport, { type: 'registered' }>;
}

export interface SimCluster {
  readonly servers: ReadonlyMap<string, RunningServer>;
  /** Sends each server its configuration; resolves once every one has registered its node. */
  register(stack: LocalStack, options: RegisterOptions): Promise<void>;
  /** SIGKILL: the process dies at once, its ZooKeeper session expires after its timeout. Returns when. */
  kill(name: string): Promise<number>;
  stop(): Promise<void>;
}

const localCredentials = { accessKeyId: 'local', secretAccessKey: 'local' };

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Spawns one process per server; they load their modules and wait for `register`. */
export function spawnCluster(servers: readonly SimServer[], options: ClusterOptions): SimCluster {
  const running = new Map<string, RunningServer>();
  const loaded: Promise<void>[] = [];
  const registered: Promise<void>[] = [];
  for (const server of servers) {
    const proc = startProcess(
      `sim-${server.name}`,
      process.execPath,
      [
        '--import',
        'tsx',
        `--title=${childMarker}`,
        join(import.meta.dirname, 'server.ts'),
        ...(server.nodeType === 'master' ? ['--master'] : []),
        ...(options.dolphinScheduler === true ? ['--ds'] : []),
      ],
      {
        cwd: projectRoot,
        ipc: true,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', TZ: 'UTC' },
        onLine: (line) => options.onLine?.(server, line),
      },
    );
    const entry: RunningServer = { server, process: proc };
    running.set(server.name, entry);
    const exited = new Promise<never>((_, reject) =>
      proc.child.once('exit', () =>
        reject(new Error(`simulated ${server.name} exited before registering:\n${proc.tail()}`)),
      ),
    );
    exited.catch(() => undefined);
    const once = (type: SimReport['type']) =>
      Promise.race([
        new Promise<void>((resolve) => {
          proc.child.on('message', (message: unknown) => {
            if (asSimReport(message)?.type === type) resolve();
          });
        }),
        exited,
      ]);
    const loading = once('loaded');
    const registering = once('registered');
    // Awaited in `register`; until then (or if it never comes: Ctrl-C) an early exit is no unhandled rejection.
    loading.catch(() => undefined);
    registering.catch(() => undefined);
    loaded.push(loading);
    registered.push(registering);
    proc.child.on('message', (message: unknown) => {
      const report = asSimReport(message);
      if (report === undefined || report.type === 'loaded') return;
      if (report.type === 'registered') entry.registration = report;
      options.onReport(server, report);
    });
  }
  return {
    servers: running,
    async register(stack, registerOptions) {
      await within(Promise.all(loaded), 60_000, 'the simulated servers did not load');
      const { info } = stack;
      const ds = registerOptions.dolphinScheduler;
      const base = registerOptions.startupTime ?? Date.now();
      for (const { server, process: proc } of running.values()) {
        const dsConfig =
          ds === undefined
            ? undefined
            : {
                version: ds.version,
                timeZone: ds.timeZone,
                ...(server.nodeType === 'master' ? { databaseUrl: ds.databaseUrl } : {}),
              };
        const config: SimServerConfig = {
          name: server.name,
          nodeType: server.nodeType,
          host: server.host,
          zookeeper: info.zookeeper,
          registryRoot: info.registryRoot,
          sessionTimeoutMs: registerOptions.sessionTimeoutMs,
          heartbeatMs: registerOptions.heartbeatMs ?? 1_000,
          startupTime: base + server.index * (registerOptions.startupStaggerMs ?? 0),
          ...(dsConfig !== undefined ? { dolphinScheduler: dsConfig } : {}),
          ...(server.nodeType === 'master' && dsConfig === undefined
            ? {
                consume: {
                  region: info.region,
                  dynamodbEndpoint: info.dynamodb,
                  sqsEndpoint: info.sqs,
                  credentials: localCredentials,
                  commandsQueueUrl: info.queues.commands,
                  instancesTable: info.tables.instances,
                  tasksTable: info.tables.tasks,
                },
              }
            : {}),
        };
        proc.child.send({ type: 'start', config });
      }
      await within(Promise.all(registered), 30_000, 'the simulated servers did not register');
    },
    async kill(name) {
      const entry = running.get(name);
      if (entry === undefined) throw new Error(`no simulated server ${name}`);
      const at = Date.now();
      await entry.process.kill();
      return at;
    },
    async stop() {
      await Promise.all([...running.values()].map((r) => r.process.stop(3_000)));
    },
  };
}
