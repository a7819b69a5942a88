// The simulated Apache DolphinScheduler 3.2 masters of a chaos run (lib/sim/ds-master.ts), in a process of
// their own: their ZooKeeper sessions cannot live in the chaos process, which spawns containers and servers
// (see registry-agent.ts for why). This process spawns nothing.
//
// What they do, as 3.2 does: on a master's removal every live master runs its own failover of that host
// under DolphinScheduler's ZooKeeper mutex (same path, unconditional full-row writes); now and then a
// master runs its periodic check; every registered master consumes t_ds_command in its slot, taking
// instances over. Each failover's hold of the mutex is recorded (when it was acquired and released), so
// that the invariants can tell a duplicate caused by a write under DolphinScheduler's lock from one of
// DolphinScheduler's own making.
//
// Protocol (IPC): requests `{ id, op, args }` -> `{ id, ok, value | error }`; events `{ event, ... }`.
import { contendersInOrder } from '../../lib/registry/curator-mutex.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { SimulatedDsMaster } from '../../lib/sim/ds-master.ts';
import type { Dialect } from '../../lib/store/dolphinscheduler/database.ts';
import { openTaggedDatabase, type TaggedDatabase } from './ds-db.ts';

export interface DsAgentRun {
  readonly connect: string;
  readonly root: string;
  readonly timeZone: string;
  /** Instances each live master runs in memory (its own executing work), by host. */
  readonly running: Readonly<Record<string, readonly number[]>>;
  /** How long a master waits for the failover lock before giving up (the real one waits for ever). */
  readonly lockTimeoutMs: number;
}

export interface DsLockHold {
  readonly master: string;
  readonly deadHost: string;
  readonly acquiredAt: number;
  releasedAt?: number;
}

export type DsAgentEvent =
  | { event: 'log'; line: string }
  | { event: 'ds'; at: number; what: string; hosts: string[] };

const send = (message: unknown) => process.send?.(message);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let db: TaggedDatabase | undefined;
let run: DsAgentRun | undefined;
const sessions = new Map<string, Promise<ZkSession>>();
/** One simulated master per incarnation (`host@startupTime`): a restarted master is a new process. */
const masters = new Map<string, SimulatedDsMaster>();
const holds: DsLockHold[] = [];
const inFlight = new Set<Promise<unknown>>();
let consumer: { stop: () => void; done: Promise<void> } | undefined;
/** The consumers skip their rounds until this time (busy masters). */
let pausedUntil = 0;

function note(what: string, hosts: string[]): void {
  send({ event: 'ds', at: Date.now(), what, hosts });
}

function requireRun(): { db: TaggedDatabase; run: DsAgentRun } {
  if (db === undefined || run === undefined) throw new Error('the DolphinScheduler agent has no run');
  return { db, run };
}

/** The master's ZooKeeper session (one per master host, replaced once lost: DolphinScheduler reconnects). */
async function sessionOf(host: string): Promise<ZkSession> {
  const { run: r } = requireRun();
  const existing = sessions.get(host);
  if (existing !== undefined) {
    const session = await existing.catch(() => undefined);
    if (session !== undefined && !session.isLost) return session;
  }
  const next = connectZk({ connectString: r.connect, sessionTimeoutMs: 15_000, connectTimeoutMs: 5_000 });
  sessions.set(host, next);
  next.catch(() => sessions.delete(host));
  return next;
}

/**
 * The session as a simulated master sees it, recording its holds of DolphinScheduler's master failover
 * mutex: acquired when its lock node becomes the lowest, released when it deletes the node (or, with a lost
 * session, when the operation ends). Every method runs on the real session.
 */
function observed(session: ZkSession, master: string, opHolds: DsLockHold[]): ZkSession {
  const { run: r } = requireRun();
  const locks = `${r.root}/lock/master-failover/`;
  const ours = new Map<string, { lockPath: string; hold?: DsLockHold }>();
  return new Proxy(session, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      const call = value as (...a: unknown[]) => Promise<unknown>;
      if (prop === 'create') {
        return async (...args: unknown[]) => {
          const path = String(await call.apply(target, args));
          if (path.startsWith(locks)) ours.set(path, { lockPath: path.slice(0, path.lastIndexOf('/')) });
          return path;
        };
      }
      if (prop === 'children') {
        return async (...args: unknown[]) => {
          const children = (await call.apply(target, args)) as string[];
          for (const [path, node] of ours) {
            if (node.lockPath !== args[0] || node.hold !== undefined) continue;
            if (contendersInOrder(children)[0] === path.slice(path.lastIndexOf('/') + 1)) {
              node.hold = {
                master,
                deadHost: node.lockPath.slice(locks.length),
                acquiredAt: Date.now(),
              };
              opHolds.push(node.hold);
              holds.push(node.hold);
            }
          }
          return children;
        };
      }
      if (prop === 'remove') {
        return async (...args: unknown[]) => {
          try {
            return await call.apply(target, args);
          } finally {
            const node = ours.get(String(args[0]));
            if (node?.hold !== undefined) node.hold.releasedAt ??= Date.now();
          }
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
}

/** Ends the holds of an operation that are still open (a lost session releases nothing itself). */
function closeHolds(opHolds: readonly DsLockHold[]): void {
  for (const hold of opHolds) hold.releasedAt ??= Date.now();
}

/** The registered masters, by startup time (DolphinScheduler's slot order), with their heartbeat. */
async function registeredMasters(): Promise<Array<{ host: string; startupTime: number }>> {
  const { run: r } = requireRun();
  const session = await sessionOf('registry-reader');
  const dir = `${r.root}/nodes/master`;
  const found: Array<{ host: string; startupTime: number }> = [];
  for (const name of await session.children(dir)) {
    const node = await session.data(`${dir}/${name}`).catch(() => null);
    if (node === null) continue;
    try {
      const heartbeat = JSON.parse(node.data?.toString('utf8') ?? '') as { startupTime?: unknown };
      if (typeof heartbeat.startupTime === 'number')
        found.push({ host: name, startupTime: heartbeat.startupTime });
    } catch {
      // an empty or foreign node: not a master DolphinScheduler would count
    }
  }
  return found.sort((a, b) => a.startupTime - b.startupTime || a.host.localeCompare(b.host));
}

async function masterOf(host: string, startupTime: number): Promise<SimulatedDsMaster> {
  const { db: database, run: r } = requireRun();
  const key = `${host}@${startupTime}`;
  let master = masters.get(key);
  if (master === undefined) {
    master = new SimulatedDsMaster({
      db: database,
      session: await sessionOf(host),
      root: r.root,
      host,
      timeZone: r.timeZone,
      runningInstanceIds: r.running[host] ?? [],
      lockTimeoutMs: r.lockTimeoutMs,
    });
    masters.set(key, master);
  }
  return master;
}

function track<T>(promise: Promise<T>): Promise<T> {
  const guarded = promise.catch(() => undefined);
  inFlight.add(guarded);
  void guarded.finally(() => inFlight.delete(guarded));
  return promise;
}

/** A simulated master of this incarnation whose session records its failover lock holds. */
async function observedMaster(masterHost: string, opHolds: DsLockHold[]): Promise<SimulatedDsMaster | null> {
  const { db: database, run: r } = requireRun();
  const live = (await registeredMasters()).find((m) => m.host === masterHost);
  if (live === undefined) return null;
  const base = await masterOf(masterHost, live.startupTime);
  return new SimulatedDsMaster({
    db: database,
    session: observed(await sessionOf(masterHost), masterHost, opHolds),
    root: r.root,
    host: masterHost,
    timeZone: r.timeZone,
    runningInstanceIds: base.running,
    lockTimeoutMs: r.lockTimeoutMs,
  });
}

async function failOverAs(masterHost: string, deadHost: string): Promise<unknown> {
  const opHolds: DsLockHold[] = [];
  const master = await observedMaster(masterHost, opHolds);
  if (master === null) return { skipped: 'not registered' };
  try {
    const result = await master.failOverMaster(deadHost);
    note(
      `dolphinscheduler ${masterHost} failed over ${deadHost}: ${result.failedOver.length} instance(s)` +
        `${result.skipped.length > 0 ? `, ${result.skipped.length} skipped` : ''}` +
        `${result.error ? `, error ${result.error.message.slice(0, 200)}` : ''}`,
      [masterHost, deadHost],
    );
    return {
      failedOver: result.failedOver,
      commandIds: result.commandIds,
      skipped: result.skipped.length,
      error: result.error?.message,
    };
  } finally {
    closeHolds(opHolds);
  }
}

const ops: Record<string, (args: never) => Promise<unknown>> = {
  async init(args: { url: string; dialect: Dialect }) {
    db = openTaggedDatabase(args.url, args.dialect, 'ds-master', 8);
    return true;
  },

  async begin(args: DsAgentRun) {
    run = args;
    holds.length = 0;
    masters.clear();
    return true;
  },

  /** On a master's removal: this live master runs 3.2's failover of `deadHost` (waits for the mutex). */
  async failOver(args: { master: string; deadHost: string }) {
    return track(failOverAs(args.master, args.deadHost));
  },

  /** The 10-minute check of a live master (3.2's substring liveness test included). */
  async periodicCheck(args: { master: string }) {
    return track(
      (async () => {
        const opHolds: DsLockHold[] = [];
        const master = await observedMaster(args.master, opHolds);
        if (master === null) return { skipped: 'not registered' };
        try {
          const out = await master.periodicCheck();
          note(
            `dolphinscheduler ${args.master} periodic check: hosts [${out.hosts.join(', ')}], ` +
              `${out.results.reduce((n, r) => n + r.failedOver.length, 0)} instance(s) failed over`,
            [args.master, ...out.hosts],
          );
          return { hosts: out.hosts };
        } catch (error: unknown) {
          note(`dolphinscheduler ${args.master} periodic check threw: ${String(error)}`, [args.master]);
          return { error: String(error) };
        } finally {
          closeHolds(opHolds);
        }
      })(),
    );
  },

  /**
   * The registered masters consume their slots of t_ds_command every `everyMs` (one registry read a round;
   * slots among every registered master, as 3.2 computes them). Only `consumers` take commands: masters
   * that do not die in the run (an instance taken over by a master that dies later would need a second
   * failover, which the invariants do not model).
   */
  async startConsumers(args: {
    everyMs: number;
    consumers: ReadonlyArray<{ host: string; minStartupTime: number }>;
  }) {
    let stopped = false;
    const done = (async () => {
      for (let round = 0; !stopped && round < 100_000; round += 1) {
        if (Date.now() < pausedUntil) {
          await sleep(Math.min(args.everyMs, pausedUntil - Date.now()));
          continue;
        }
        try {
          const live = await registeredMasters();
          await Promise.all(
            live.map(async ({ host, startupTime }, slot) => {
              const allowed = args.consumers.some((c) => c.host === host && startupTime >= c.minStartupTime);
              if (!allowed) return;
              const master = await masterOf(host, startupTime);
              const out = await master.consumeCommands({ slot, totalSlot: live.length });
              if (out.tookOver.length > 0) {
                note(
                  `dolphinscheduler ${host} took over ${out.tookOver.map((t) => `${t.instanceId} (command ${t.commandId})`).join(', ')}`,
                  [host],
                );
              }
              if (out.movedToErrorCommand.length > 0 || out.error !== undefined) {
                note(
                  `dolphinscheduler ${host} could not handle command(s) ${out.movedToErrorCommand
                    .map((m) => `${m.commandId}: ${m.message} ${m.cause?.message ?? ''}`)
                    .join('; ')} ${out.error?.message ?? ''}`,
                  [host],
                );
              }
            }),
          );
        } catch (error: unknown) {
          send({
            event: 'log',
            line: `consumer round failed: ${error instanceof Error ? error.message : String(error)}`,
          });
        }
        await sleep(args.everyMs);
      }
    })();
    consumer = {
      stop: () => {
        stopped = true;
      },
      done,
    };
    return true;
  },

  /** The masters take no command for this long (busy with other work). */
  async pauseConsumers(args: { ms: number }) {
    pausedUntil = Date.now() + args.ms;
    return true;
  },

  async stopConsumers() {
    consumer?.stop();
    await Promise.race([consumer?.done, sleep(20_000)]);
    consumer = undefined;
    return true;
  },

  /** Failovers and checks still running (the consumers are not counted). */
  async busy() {
    return inFlight.size;
  },

  async lockHolds() {
    return holds;
  },

  async connectionIds() {
    return db === undefined ? [] : [...db.connectionIds()];
  },

  /** Lock nodes left under the master failover locks (a holder that is gone must leave none). */
  async lockNodes(args: { root: string }) {
    const session = await sessionOf('registry-reader');
    const dir = `${args.root}/lock/master-failover`;
    const left: string[] = [];
    const hosts = await session.children(dir).catch(() => [] as string[]);
    for (const host of hosts) {
      for (const child of await session.children(`${dir}/${host}`).catch(() => [] as string[])) {
        left.push(`${host}/${child}`);
      }
    }
    return left;
  },

  async end() {
    consumer?.stop();
    await Promise.race([Promise.all([consumer?.done, ...inFlight]), sleep(30_000)]);
    consumer = undefined;
    const all = [...sessions.values()];
    sessions.clear();
    masters.clear();
    await Promise.allSettled(all.map(async (s) => (await s).close()));
    run = undefined;
    return true;
  },

  async close() {
    await db?.close();
    db = undefined;
    return true;
  },
};

process.on('message', (message: { id?: number; op?: string; args?: unknown }) => {
  const { id, op } = message ?? {};
  if (typeof id !== 'number' || typeof op !== 'string') return;
  const handler = ops[op];
  if (handler === undefined) {
    send({ id, ok: false, error: `unknown operation ${op}` });
    return;
  }
  handler(message.args as never).then(
    (value) => send({ id, ok: true, value }),
    (error: unknown) =>
      send({
        id,
        ok: false,
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      }),
  );
});

process.on('disconnect', () => process.exit(0));
// A stray rejection (a lost session's late callback) must not end the masters: log it and go on.
process.on('unhandledRejection', (reason: unknown) => {
  console.error(
    `unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`,
  );
});
process.on('uncaughtException', (error: Error) => {
  console.error(`uncaught exception: ${error.stack ?? error.message}`);
});
send({ event: 'ready' });
