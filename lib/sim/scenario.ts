// The `npm start` scenario: local stack, functions, simulated cluster, seed, kill, watch, verdict.
// Every resource started is registered for cleanup in reverse order, whatever happens (Ctrl-C included).
// What depends on the store (where the work is seeded, polled and judged) is a StoreDriver: the DynamoDB
// tables (below) or DolphinScheduler's own database (lib/sim/ds-scenario.ts).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { queueDepth } from '../cli/inspect.ts';
import { localStateDir } from '../local/processes.ts';
import { type LocalRuntime, startLocalRuntime } from '../local/runtime.ts';
import { type LocalStack, startLocalStack } from '../local/stack.ts';
import { DynamoServerStore } from '../store/dynamodb/servers.ts';
import { spawnCluster } from './cluster.ts';
import type { StoreDriver } from './driver.ts';
import { dolphinSchedulerDriver } from './ds-scenario.ts';
import { checkInvariants, type FinalState } from './invariants.ts';
import { DemoMonitor } from './monitor.ts';
import { type DemoOptions, type SimServer, topology } from './options.ts';
import { countExecuting, scanAll, scanCommands } from './readers.ts';
import { watchRegistry } from './registry-watch.ts';
import { buildWork, executingByHost, putWork, type SeededWork } from './seed.ts';
import { liveView, type Output, palette, plainView, renderSummary } from './view.ts';

/** Watcher every 20 s with a 25 s timeout and a 2 s margin: 23 s windows, overlapping by 3 s. */
export const demoSchedule = {
  watcherEveryMs: 20_000,
  watcherTimeoutMs: 25_000,
  watcherMarginMs: 2_000,
  sweepEveryMs: 30_000,
} as const;

export interface DemoIo {
  out: Output;
  err: Output;
  columns(): number;
  /** Aborted on Ctrl-C / SIGTERM. */
  signal: AbortSignal;
}

export class DemoInterruptedError extends Error {
  constructor() {
    super('interrupted');
    this.name = 'DemoInterruptedError';
  }
}

/** Where `--keep` leaves the READY endpoints for `zkf --ready <file>`. */
export const demoReadyFile = join(localStateDir, 'demo-ready.json');

/** Runs the scenario; resolves with the exit code (0: every invariant holds). */
export async function runDemo(options: DemoOptions, io: DemoIo): Promise<number> {
  const cleanups: Array<() => Promise<void>> = [];
  const p = palette(options.color);
  const servers = topology(options.masters, options.workers);
  const ds = options.dolphinScheduler;
  const monitor = new DemoMonitor(servers, ds === undefined ? 'dynamodb' : 'dolphinscheduler');
  const view = options.live ? liveView(monitor, io.out, p, io.columns) : plainView(monitor, io.out, p);
  let viewClosed = false;
  const closeView = () => {
    if (!viewClosed) view.close();
    viewClosed = true;
    monitor.muted = true;
  };
  const checkpoint = () => {
    if (io.signal.aborted) throw new DemoInterruptedError();
  };
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        io.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      io.signal.addEventListener('abort', done, { once: true });
    });
  // From Ctrl-C on, what the dying processes do is not part of the story.
  io.signal.addEventListener(
    'abort',
    () => {
      monitor.event('interrupted: stopping everything', 'warn');
      monitor.phase = 'stopping';
      closeView();
    },
    { once: true },
  );
  try {
    monitor.phase = 'starting the local stack';
    monitor.event(
      ds === undefined
        ? 'starting the local stack: ZooKeeper, DynamoDB Local, SQS emulator ...'
        : `starting the local stack: ZooKeeper, DynamoDB Local, SQS emulator and ${
            ds.dialect === 'postgresql' ? 'PostgreSQL' : 'MariaDB'
          } with DolphinScheduler's tables ...`,
    );
    const stack = await startLocalStack(
      ds === undefined
        ? {}
        : {
            dolphinScheduler: {
              database: { start: ds.dialect },
              timeZone: ds.timeZone,
              version: ds.version,
            },
          },
    );
    cleanups.push(() => stack.stop());
    const driver =
      ds === undefined
        ? dynamoDriver(stack, options.instances)
        : await dolphinSchedulerDriver(stack, {
            ...ds,
            instances: options.instances,
            history: options.history,
          });
    cleanups.push(() => driver.close());
    // The servers start once the stack is up: spawned during its start, they would compete for the CPU with
    // its Java processes, which must be ready within their start deadline (a loaded 2-core machine).
    const cluster = spawnCluster(servers, {
      dolphinScheduler: ds !== undefined,
      onReport: (server, report) => monitor.report(server, report),
      onLine: (server, line) => {
        if (options.verbose) io.err.write(`[${server.name}] ${line}\n`);
      },
    });
    cleanups.push(() => cluster.stop());
    checkpoint();
    monitor.event(driver.stackLine());

    // The watcher and the failover function start now (their cold start overlaps the registration and the
    // seeding); the sweep only once the servers are registered and the work seeded, or its first run could
    // judge the work of servers that are not registered yet as orphans.
    const functions = startFunctions(stack, monitor, io, ['watcher', 'failover'], options.verbose);
    cleanups.push(() => functions.stop());

    monitor.phase = 'registering the simulated cluster, seeding';
    const [, seeded] = await Promise.all([
      cluster.register(stack, {
        sessionTimeoutMs: options.sessionTimeoutMs,
        // As if the cluster had been up for two hours: the seeded work (started during the last hour)
        // belongs to the servers' current incarnations.
        startupTime: Date.now() - 2 * 3_600_000,
        ...driver.register,
      }),
      driver.seed(servers, Date.now()),
    ]);
    checkpoint();
    const negotiated = [...monitor.servers.values()][0]?.negotiatedTimeoutMs ?? options.sessionTimeoutMs;
    monitor.event(
      `cluster registered: ${options.masters} masters, ${options.workers} workers, each a process with its own ZooKeeper session (timeout ${negotiated} ms), ${driver.serversLine}`,
    );
    monitor.noteSeed(seeded.instanceHosts, seeded.taskHosts);
    monitor.event(seeded.text);
    const { executing } = seeded;
    const watch = await watchRegistry({
      zookeeper: stack.info.zookeeper,
      registryRoot: stack.info.registryRoot,
      onGone: (type, host, at) => monitor.nodeGone(type, host, at),
      onAdded: (type, host, at) => monitor.nodeAdded(type, host, at),
      onProblem: (message) => monitor.event(message, 'warn'),
    });
    cleanups.push(() => watch.stop());
    const sweep = startFunctions(stack, monitor, io, ['sweep'], options.verbose);
    cleanups.push(() => sweep.stop());
    monitor.event(
      `functions running on the local Lambda runtime: watcher every ${demoSchedule.watcherEveryMs / 1000} s (timeout ${
        demoSchedule.watcherTimeoutMs / 1000
      } s, overlapping windows), sweep every ${demoSchedule.sweepEveryMs / 1000} s, failover on the failover queue`,
    );
    checkpoint();
    const poller = startPolling(stack, driver, monitor, servers, options.live);
    cleanups.push(async () => poller.stop());
    await waitForMirror(stack, monitor, servers, io.signal);
    checkpoint();
    monitor.event(`watcher mirrored all ${servers.length} servers: the registry is watched`);
    await poller.pollOnce();
    view.line(perHostLine(monitor, 'executing before'));

    const victims = options.kill
      .map((name) => servers.find((s) => s.name === name))
      .filter((s) => s !== undefined);
    if (victims.length > 0) {
      monitor.phase = 'failing over';
      for (const [i, victim] of victims.entries()) {
        if (i > 0) await pause(1_500);
        checkpoint();
        const pid = cluster.servers.get(victim.name)?.process.pid ?? 0;
        const at = await cluster.kill(victim.name);
        monitor.killed(victim, at, executing.get(victim.host) ?? 0, pid);
      }
      const deadline = Date.now() + options.settleTimeoutMs;
      while (!monitor.settled() && Date.now() < deadline) {
        await pause(100);
        checkpoint();
      }
      if (!monitor.settled())
        monitor.event(`gave up waiting after ${options.settleTimeoutMs / 1000} s`, 'error');
      // Let late duplicates (if any) show up before judging.
      await pause(1_000);
    } else {
      monitor.phase = 'watching (nothing killed)';
      await pause(3_000);
    }
    checkpoint();
    monitor.phase = 'checking invariants';
    await poller.pollOnce();
    poller.stop();
    view.line(perHostLine(monitor, 'executing after'));
    const disturbed = new Map(
      [...monitor.servers.values()]
        .filter((s) => s.sessionLosses > 0 && s.status === 'live' && s.startupTime !== undefined)
        .map((s) => [s.server.host, { startupTime: s.startupTime ?? 0 }]),
    );
    const checks = await driver.verdict({ servers, killed: victims, disturbed, monitor });
    monitor.phase = checks.every((c) => c.ok) ? 'done: all invariants hold' : 'done: invariants broken';
    closeView();
    for (const line of renderSummary(monitor, checks, p)) io.out.write(`${line}\n`);
    const code = checks.every((c) => c.ok) ? 0 : 1;
    if (options.keep) {
      const ready = JSON.stringify(driver.ready());
      mkdirSync(localStateDir, { recursive: true });
      writeFileSync(demoReadyFile, `${ready}\n`);
      io.out.write(`\nREADY ${ready}\n`);
      io.out.write(
        `Everything keeps running (the live servers, the functions, the stack). Try:\n` +
          `  node bin/zkf.mjs --ready ${demoReadyFile} status\n` +
          `  node bin/zkf.mjs --ready ${demoReadyFile} plan --host ${servers[0]?.host ?? '10.0.1.1:5678'}\n` +
          `Ctrl-C stops everything.\n`,
      );
      await new Promise<void>((resolve) =>
        io.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
    }
    return code;
  } catch (error: unknown) {
    closeView();
    // Interrupted: whatever failed meanwhile failed because everything is being stopped.
    if (error instanceof DemoInterruptedError || io.signal.aborted) return 130;
    throw error;
  } finally {
    closeView();
    monitor.phase = 'stopping';
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}

/** The DynamoDB store (DESIGN section 4): work in the instances and tasks tables, commands on the queue. */
function dynamoDriver(stack: LocalStack, instances: number): StoreDriver {
  const { dynamodb } = stack.clients;
  const { tables } = stack.info;
  let work: SeededWork | undefined;
  return {
    store: 'dynamodb',
    stackLine: () =>
      `stack ready: ZooKeeper ${stack.info.zookeeper}, DynamoDB ${stack.info.dynamodb}, SQS ${stack.info.sqs}`,
    serversLine: 'ds-3 heartbeats every 1 s',
    register: {},
    async seed(servers, now) {
      const seeded = buildWork(servers, instances, now);
      work = seeded;
      await putWork(dynamodb, tables, seeded);
      const executing = executingByHost(seeded);
      const total = (type: 'master' | 'worker') =>
        servers.filter((s) => s.nodeType === type).reduce((n, s) => n + (executing.get(s.host) ?? 0), 0);
      return {
        executing,
        instanceHosts: new Map(seeded.instances.map((i) => [i.id, i.host ?? ''])),
        taskHosts: new Map(seeded.tasks.map((t) => [t.id, t.host ?? ''])),
        text: `seeded ${seeded.instances.length} process instances (${total('master')} executing) and ${seeded.tasks.length} task instances (${total('worker')} executing)`,
      };
    },
    async poll(monitor, which) {
      const at = Date.now();
      const counts = await Promise.all(
        which.map((s) =>
          countExecuting(
            dynamodb,
            s.nodeType === 'master' ? tables.instances : tables.tasks,
            s.nodeType === 'master' ? 'instances' : 'tasks',
            s.host,
          ),
        ),
      );
      for (const [i, s] of which.entries()) monitor.executing(s.host, counts[i] ?? 0, at);
    },
    async verdict({ servers, killed, disturbed, monitor }) {
      return checkInvariants({
        servers,
        killed,
        disturbed,
        seeded: work ?? { instances: [], tasks: [] },
        final: await readFinalState(stack),
        applied: { takeovers: monitor.takeovers, redispatches: monitor.redispatches },
      });
    },
    ready: () => ({ ...stack.info }),
    close: async () => undefined,
  };
}

function startFunctions(
  stack: LocalStack,
  monitor: DemoMonitor,
  io: DemoIo,
  functions: readonly string[],
  verbose: boolean,
): LocalRuntime {
  const runtime = startLocalRuntime(stack, {
    functions: [...functions],
    scheduleMs: { watcher: demoSchedule.watcherEveryMs, sweep: demoSchedule.sweepEveryMs },
    timeoutMs: { watcher: demoSchedule.watcherTimeoutMs },
    env: { watcher: { WATCH_MARGIN_MS: String(demoSchedule.watcherMarginMs) } },
    onLog: (fn, line) => {
      monitor.functionLog(fn, line);
      if (verbose) io.err.write(`[${fn}] ${line}\n`);
    },
    onInvocation: (r) => monitor.invocation(r.functionName, r.outcome, r.error),
  });
  // Two warm failover containers (an empty batch each), as a function in steady use would have: the
  // timeline then shows the failover itself rather than this machine's cold start of a TypeScript container.
  // The second one starts once the first holds its container, so that it gets a container of its own.
  if (functions.includes('failover')) {
    const warm = () => runtime.invoke('failover', { Records: [] }).catch(() => undefined);
    void warm();
    setImmediate(() => void warm());
  }
  return runtime;
}

interface Poller {
  /** One full poll: every server's executing items and the mirror. */
  pollOnce(): Promise<void>;
  stop(): void;
}

/**
 * Executing items per host every 400 ms (the rewrite progress, and the per-host view), and the mirror every
 * 2 s. The store shares this machine with the failover (DynamoDB Local is CPU-bound): the plain view, which
 * shows only the killed servers' progress, polls only them.
 */
function startPolling(
  stack: LocalStack,
  driver: StoreDriver,
  monitor: DemoMonitor,
  servers: readonly SimServer[],
  everyServer: boolean,
): Poller {
  const mirror = new DynamoServerStore(stack.clients.dynamodb, stack.info.tables.servers);
  let stopped = false;
  let running: Promise<void> | undefined;
  const poll = async (which: readonly SimServer[], withMirror: boolean) => {
    await driver.poll(monitor, which);
    if (withMirror) for (const row of await mirror.scan()) monitor.mirror(row.host, row.alive);
  };
  const loop = async () => {
    for (let round = 0; !stopped; round += 1) {
      const which = everyServer ? servers : servers.filter((s) => monitor.failovers.has(s.host));
      running = poll(which, everyServer && round % 5 === 0).catch(() => undefined);
      await running;
      await new Promise((r) => setTimeout(r, 400));
    }
  };
  void loop();
  return {
    pollOnce: async () => {
      await running;
      await poll(servers, true);
    },
    stop: () => {
      stopped = true;
    },
  };
}

/** Until the watcher's mirror shows every server alive with its current incarnation. */
async function waitForMirror(
  stack: LocalStack,
  monitor: DemoMonitor,
  servers: readonly SimServer[],
  signal: AbortSignal,
): Promise<void> {
  monitor.phase = 'waiting for the watcher to mirror the registry';
  const mirror = new DynamoServerStore(stack.clients.dynamodb, stack.info.tables.servers);
  const deadline = Date.now() + 60_000;
  while (!signal.aborted) {
    const rows = new Map((await mirror.scan()).map((r) => [r.id, r]));
    const missing = servers.filter((s) => {
      const row = rows.get(`${s.nodeType}/${s.host}`);
      return row === undefined || !row.alive || row.czxid !== monitor.servers.get(s.host)?.czxid;
    });
    if (missing.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`the watcher did not mirror ${missing.map((s) => s.name).join(', ')} within 60 s`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function readFinalState(stack: LocalStack): Promise<FinalState> {
  const { dynamodb, sqs } = stack.clients;
  const { tables, queues } = stack.info;
  const [instances, tasks, commands, ...depths] = await Promise.all([
    scanAll(dynamodb, tables.instances),
    scanAll(dynamodb, tables.tasks),
    scanCommands(dynamodb, tables.commands),
    queueDepth(sqs, queues.failover),
    queueDepth(sqs, queues.failoverDlq),
    queueDepth(sqs, queues.commands),
    queueDepth(sqs, queues.commandsDlq),
  ]);
  const total = (i: number) => {
    const d = depths[i];
    return d === undefined ? 0 : d.visible + d.inFlight + d.delayed;
  };
  return {
    instances,
    tasks,
    commands,
    queues: { failover: total(0), failoverDlq: total(1), commands: total(2), commandsDlq: total(3) },
  };
}

function perHostLine(monitor: DemoMonitor, label: string): string {
  const cells = [...monitor.servers.values()].map((s) => `${s.server.name} ${s.executing ?? '?'}`);
  return `${label}: ${cells.join(' | ')}`;
}
