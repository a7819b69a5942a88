// The plan of one chaos run on DolphinScheduler's own database (the `dolphinscheduler` store, DESIGN
// section 10), drawn from its seed before anything runs: the cluster, the workload in
// t_ds_process_instance, the failover runtimes' settings, the AWS fault profiles, the simulated
// DolphinScheduler 3.2 masters (their own failover on node removal and on their periodic check, their
// command consumers), and a timeline mixing the DynamoDB suite's faults with database and ZooKeeper
// faults. Pure: the same seed gives the same plan (the dialect is the caller's, not the seed's).
import type { FailoverKind, RequestSource } from '../../lib/messages.ts';
import type { FaultKind, ServiceFaults } from './fault-proxy.ts';
import { hostileBodies } from './hostile-bodies.ts';
import { Prng } from './prng.ts';
import type { ServerFate } from './scenario.ts';

export interface DsServerPlan {
  /** Abstract name (`m0`, `w1`); the run binds it to a concrete `ip:port`. */
  readonly name: string;
  readonly nodeType: 'master' | 'worker';
  /** The first incarnation started this long before the run. */
  readonly ageMs: number;
  readonly fate: ServerFate;
}

export type DsOwner =
  | { readonly kind: 'server'; readonly server: string; readonly incarnation: 'first' | 'second' }
  /** A master host that is not registered (died before the run): only a request or DolphinScheduler's check covers it. */
  | { readonly kind: 'stale-host'; readonly index: number }
  /** Host 'NULL', failed over earlier: its recovery command is pending in t_ds_command (seeded). */
  | { readonly kind: 'unowned' }
  /**
   * Executing with no owner and no command, which the sweep repairs (D5): host 'NULL' with no command
   * (#13355), or host SQL NULL (it breaks DolphinScheduler's periodic check on every cycle).
   */
  | { readonly kind: 'to-repair'; readonly host: 'NULL' | null };

export interface DsInstancePlan {
  /** Abstract key (`pi7`). */
  readonly key: string;
  readonly owner: DsOwner;
  /** Stored state code. */
  readonly state: number;
  /** Has a restart_time (restarted within its incarnation). */
  readonly restarted: boolean;
  /** Its command_param carries StartParams (copied into the recovery command). */
  readonly startParams: boolean;
  /** Its workflow has a schedule (the command then carries schedule_timezone, values as strings). */
  readonly scheduled: boolean;
  /** process_instance_priority (null: SQL NULL, the command then takes the default 2). */
  readonly priority: number | null;
  readonly testFlag: number | null;
  /** Position of the start time within its incarnation's lifetime, 0..1. */
  readonly age: number;
}

export interface DsTaskPlan {
  readonly key: string;
  readonly worker: string;
  readonly state: number;
}

export type DsVia = 'queue' | 'invoke-healthy' | 'invoke-faulty';

export interface DsRequestVariant {
  readonly kind: FailoverKind;
  readonly source: Exclude<RequestSource, 'continuation'>;
  readonly identity: 'known' | 'null';
  /** Where observedAt lies between the kill and the restart (or now), 0..1. */
  readonly observed: number;
}

/** A change the scheduler makes to an executing instance, conditional on it not being failed over yet. */
export type DsChange =
  /** A live master takes it (host := that master, restart_time := now). */
  | 'claim'
  /** The restarted master's new incarnation restarts it (restart_time := now, host kept). */
  | 'claim-self'
  /** A user stopped it and its master finished that (state := STOP, 5: no longer executing). */
  | 'stop'
  /** A user asked to stop it (state := READY_STOP, 4: still executing, still to fail over). */
  | 'ready-stop';

export type DsAction =
  | { readonly at: number; readonly kind: 'kill-server'; readonly server: string }
  | {
      readonly at: number;
      readonly kind: 'restart-server';
      readonly server: string;
      readonly duringFailoverDelayMs?: number;
    }
  | {
      readonly at: number;
      readonly kind: 'extra-requests';
      readonly server: string;
      readonly copies: readonly DsRequestVariant[];
      readonly via: DsVia;
    }
  | { readonly at: number; readonly kind: 'bogus-request'; readonly server: string; readonly via: DsVia }
  /** The request the sweep would send for a stale host (kind Orphaned, no identity). */
  | { readonly at: number; readonly kind: 'orphan-request'; readonly index: number; readonly via: DsVia }
  | {
      readonly at: number;
      readonly kind: 'concurrent-invokes';
      readonly servers: readonly string[];
      readonly count: number;
      readonly target: 'healthy' | 'faulty' | 'both';
    }
  | {
      readonly at: number;
      readonly kind: 'kill-containers';
      readonly target: 'healthy' | 'faulty';
      readonly afterStartMs?: number;
    }
  | { readonly at: number; readonly kind: 'zk-restart'; readonly downMs: number }
  | { readonly at: number; readonly kind: 'watcher-expire' }
  | { readonly at: number; readonly kind: 'watcher-overlap'; readonly durationMs: number }
  | {
      readonly at: number;
      readonly kind: 'mutate-item';
      readonly item: string;
      readonly change: DsChange;
      readonly afterFailoverStartMs?: number;
    }
  | { readonly at: number; readonly kind: 'zombie-takeover'; readonly afterLeaseMs: number }
  | { readonly at: number; readonly kind: 'poison'; readonly bodies: readonly string[]; readonly via: DsVia }
  | {
      readonly at: number;
      readonly kind: 'outage';
      readonly service: 'dynamodb' | 'sqs';
      readonly fault: 'server-error' | 'timeout' | 'throttle';
      readonly ms: number;
    }
  /** The failover function's database connections killed (pg_terminate_backend / KILL), mid-transaction when busy. */
  | {
      readonly at: number;
      readonly kind: 'db-kill-connections';
      readonly which: 'busy' | 'all';
      readonly afterFailoverStartMs?: number;
    }
  /** Its running statements cancelled (SQLSTATE 57014 / ER_QUERY_INTERRUPTED: what a statement timeout raises). */
  | { readonly at: number; readonly kind: 'db-cancel-statements'; readonly afterFailoverStartMs?: number }
  /** Its connections cut on the network (the loopback proxy in front of the database). */
  | { readonly at: number; readonly kind: 'db-drop-connections'; readonly afterFailoverStartMs?: number }
  /** The database server restarted (clean fast shutdown), down for downMs. */
  | { readonly at: number; readonly kind: 'db-restart'; readonly downMs: number }
  /** A slow database: this round trip added to every exchange of the function's connections, for a while. */
  | { readonly at: number; readonly kind: 'db-slow'; readonly roundTripMs: number; readonly ms: number }
  /** A competing transaction holds row locks on a dying master's instances (lock waits, lock timeouts). */
  | {
      readonly at: number;
      readonly kind: 'db-lock-hold';
      readonly server: string;
      readonly rows: number;
      readonly holdMs: number;
    }
  /** The failover function's ZooKeeper connections cut: its session is lost, its lock nodes expire. */
  | { readonly at: number; readonly kind: 'zk-cut-function'; readonly afterFailoverStartMs?: number }
  /**
   * The function loses its ZooKeeper session while it holds DolphinScheduler's lock for `server` and a
   * write is blocked on a row lock; a DolphinScheduler master waits for that lock meanwhile.
   */
  | {
      readonly at: number;
      readonly kind: 'session-loss-under-lock';
      readonly server: string;
      readonly cutAfterMs: number;
      readonly holdMs: number;
    }
  /** A live DolphinScheduler master runs its periodic failover check (3.2, every 10 minutes). */
  | { readonly at: number; readonly kind: 'ds-periodic-check' }
  /** A sweep (DESIGN D5) during the chaos, racing the failover runs, its AWS calls faulted too. */
  | { readonly at: number; readonly kind: 'sweep' }
  /**
   * Directed: as `server` is removed, every DynamoDB call is slow for `holdMs` (held, then applied) while a
   * function is invoked for it and a DolphinScheduler master fails it over at once: the function reads its
   * first page before its lease is granted, and by then the rows it read were failed over (and, when the
   * master restarts, taken back by its new incarnation).
   */
  | { readonly at: number; readonly kind: 'stale-read'; readonly server: string; readonly holdMs: number };

export interface DsFaultyRuntimePlan {
  readonly failpoints: string;
  readonly leaseMs: number;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
  readonly deadlineMarginMs: number;
  readonly eventSource: boolean;
}

export interface DsRunPlan {
  readonly seed: number;
  /** DolphinScheduler's time zone (DS_TIME_ZONE): stored times are wall times in it. */
  readonly timeZone: string;
  readonly servers: readonly DsServerPlan[];
  readonly staleHosts: number;
  readonly instances: readonly DsInstancePlan[];
  readonly tasks: readonly DsTaskPlan[];
  /** The failover functions: ZooKeeper session timeout, page span, the healthy runtime's batches. */
  readonly functions: {
    readonly zkSessionTimeoutMs: number;
    readonly scanSpan: number;
    readonly batchSize: number;
    readonly concurrency: number;
  };
  readonly faulty: DsFaultyRuntimePlan | null;
  readonly proxy: { readonly dynamodb: ServiceFaults | null; readonly sqs: ServiceFaults | null };
  /** Round trip added to the function's database connections for the whole run (0: none). */
  readonly databaseRoundTripMs: number;
  /** The simulated DolphinScheduler 3.2 masters. */
  readonly ds: {
    /** Every live master runs its own failover of a removed master, this long after the removal. */
    readonly onRemovalDelayMs: number | null;
    /** The masters consume t_ds_command every this many ms (null: commands stay pending). */
    readonly consumeEveryMs: number | null;
  };
  readonly chaosMs: number;
  readonly actions: readonly DsAction[];
}

export const dsFailpointNames = [
  'after-lock',
  'after-page-read',
  'after-transaction',
  'before-release',
] as const;

/** DolphinScheduler's time zones: east and west of UTC (a zone misread as UTC errs one way or the other). */
export const dsTimeZones = [
  'Asia/Shanghai',
  'America/Los_Angeles',
  'UTC',
  'Europe/Berlin',
  'America/Sao_Paulo',
  'Asia/Kolkata',
] as const;

const executingStates = [0, 1, 2, 4, 12] as const;
const finishedStates = [3, 5, 6, 7, 14, 15, 16, 17] as const;
const taskStates = [0, 1, 6, 7, 8, 12, 17] as const;

function faultProfile(rng: Prng): ServiceFaults | null {
  const rate = rng.weighted<number>([
    [0, 4],
    [0.03, 3],
    [0.08, 2],
    [0.15, 1],
  ]);
  if (rate === 0) return null;
  const kinds: Partial<Record<FaultKind, number>> = {};
  for (const kind of ['throttle', 'server-error', 'timeout', 'reply-lost', 'slow'] as const) {
    if (rng.chance(0.7)) kinds[kind] = rng.int(1, 4);
  }
  if (Object.keys(kinds).length === 0) kinds['reply-lost'] = 1;
  return { rate, kinds, holdMs: [rng.int(50, 200), rng.int(300, 1_000)] };
}

function failpointSpec(rng: Prng, leaseMs: number): string {
  const names = rng.sample(
    dsFailpointNames,
    rng.weighted([
      [1, 5],
      [2, 3],
    ]),
  );
  return names
    .map((name) => {
      const action = rng.weighted<string>([
        ['exit', 6],
        ['throw', 2],
        [`delay-${leaseMs + rng.int(300, 2_000)}`, 3],
      ]);
      const repeat = action === 'exit' && rng.chance(0.2) ? '+' : '';
      return `${name}=${rng.int(1, 4)}${repeat}:${action}`;
    })
    .join(',');
}

export function planDsRun(seed: number): DsRunPlan {
  const root = new Prng(seed);
  const rng = root.fork('ds-cluster');
  const timeZone = rng.pick(dsTimeZones);

  // --- cluster ------------------------------------------------------------------------------------
  const servers: DsServerPlan[] = [];
  const addServers = (n: number, prefix: string, nodeType: 'master' | 'worker') => {
    for (let i = 0; i < n; i += 1) {
      const fate = rng.weighted<ServerFate>([
        ['lives', 4],
        ['dies', 3],
        ['restarts', 3],
      ]);
      servers.push({ name: `${prefix}${i}`, nodeType, ageMs: rng.int(60_000, 6 * 3_600_000), fate });
    }
  };
  addServers(rng.int(2, 4), 'm', 'master');
  addServers(rng.int(0, 2), 'w', 'worker');
  const masters = servers.filter((s) => s.nodeType === 'master');
  // A live master to consume and fail over, and a master that dies: otherwise there is nothing to test.
  if (!masters.some((s) => s.fate === 'lives')) {
    const i = servers.indexOf(masters[0] as DsServerPlan);
    servers[i] = { ...(servers[i] as DsServerPlan), fate: 'lives' };
  }
  if (!masters.some((s) => s.fate !== 'lives')) {
    const i = servers.indexOf(masters[masters.length - 1] as DsServerPlan);
    servers[i] = { ...(servers[i] as DsServerPlan), fate: rng.pick(['dies', 'restarts'] as const) };
  }
  const staleHosts = rng.chance(0.3) ? rng.int(1, 2) : 0;

  // --- workload -----------------------------------------------------------------------------------
  const wl = root.fork('ds-workload');
  const instances: DsInstancePlan[] = [];
  const scheduledRate = wl.chance(0.4) ? 0.3 : 0;
  const addInstance = (owner: DsOwner, executing: boolean) => {
    instances.push({
      key: `pi${instances.length}`,
      owner,
      state: executing ? wl.pick(executingStates) : wl.pick(finishedStates),
      restarted: wl.chance(0.2),
      startParams: wl.chance(0.4),
      scheduled: wl.chance(scheduledRate),
      priority: wl.chance(0.1) ? null : wl.int(0, 4),
      testFlag: wl.chance(0.1) ? null : wl.pick([0, 1]),
      age: wl.float(),
    });
  };
  for (const server of servers.filter((s) => s.nodeType === 'master')) {
    for (let i = 0, n = wl.int(3, 30); i < n; i += 1) {
      addInstance({ kind: 'server', server: server.name, incarnation: 'first' }, wl.chance(0.75));
    }
    if (server.fate === 'restarts') {
      for (let i = 0, m = wl.int(0, 6); i < m; i += 1) {
        addInstance({ kind: 'server', server: server.name, incarnation: 'second' }, wl.chance(0.8));
      }
    }
  }
  for (let h = 0; h < staleHosts; h += 1) {
    for (let i = 0, n = wl.int(2, 10); i < n; i += 1)
      addInstance({ kind: 'stale-host', index: h }, wl.chance(0.8));
  }
  for (let i = 0, n = wl.int(0, 4); i < n; i += 1) addInstance({ kind: 'unowned' }, true);
  // Work for the sweep to repair (its own stream: the plans of earlier seeds stay as they were).
  const rp = root.fork('ds-repairs');
  if (rp.chance(0.3)) {
    for (let i = 0, n = rp.int(1, 3); i < n; i += 1) {
      instances.push({
        key: `pi${instances.length}`,
        owner: { kind: 'to-repair', host: rp.chance(0.4) ? null : 'NULL' },
        state: rp.pick(executingStates),
        restarted: false,
        startParams: rp.chance(0.4),
        scheduled: false,
        priority: rp.int(0, 4),
        testFlag: rp.pick([0, 1]),
        age: rp.float(),
      });
    }
  }
  const tasks: DsTaskPlan[] = [];
  for (const worker of servers.filter((s) => s.nodeType === 'worker')) {
    for (let i = 0, n = wl.int(1, 6); i < n; i += 1) {
      tasks.push({ key: `ti${tasks.length}`, worker: worker.name, state: wl.pick(taskStates) });
    }
  }

  // --- runtimes, proxies, database ----------------------------------------------------------------
  const rt = root.fork('ds-runtime');
  const functions = {
    zkSessionTimeoutMs: rt.int(800, 3_000),
    scanSpan: rt.pick([20, 60, 200, 50_000]),
    batchSize: rt.int(3, 12),
    concurrency: rt.int(1, 4),
  };
  let faulty: DsFaultyRuntimePlan | null = null;
  if (rt.chance(0.75)) {
    const leaseMs = rt.int(500, 1_500);
    const timeoutMs = rt.int(3_000, 8_000);
    faulty = {
      failpoints: failpointSpec(rt, leaseMs),
      leaseMs,
      batchSize: rt.int(2, 10),
      concurrency: rt.int(1, 4),
      timeoutMs,
      deadlineMarginMs: rt.chance(0.35) ? timeoutMs - rt.int(50, 400) : rt.int(500, 1_500),
      eventSource: rt.chance(0.7),
    };
  }
  const px = root.fork('ds-proxy');
  const proxy = { dynamodb: faultProfile(px), sqs: faultProfile(px) };
  const databaseRoundTripMs = px.weighted<number>([
    [0, 5],
    [px.int(1, 5), 3],
    [px.int(10, 30), 2],
  ]);

  // --- DolphinScheduler's masters -----------------------------------------------------------------
  const dsr = root.fork('ds-masters');
  const ds = {
    onRemovalDelayMs: dsr.chance(0.6) ? dsr.int(0, 1_200) : null,
    consumeEveryMs: dsr.chance(0.7) ? dsr.int(100, 600) : null,
  };

  // --- timeline -----------------------------------------------------------------------------------
  const tl = root.fork('ds-timeline');
  const chaosMs = tl.int(2_500, 4_000);
  const actions: DsAction[] = [];
  const live = servers.filter((s) => s.fate === 'lives');
  const dying = servers.filter((s) => s.fate !== 'lives');
  const dyingMasters = dying.filter((s) => s.nodeType === 'master');
  const via = (): DsVia =>
    tl.weighted<DsVia>([
      ['queue', 3],
      ['invoke-healthy', 2],
      ['invoke-faulty', faulty === null ? 0 : 2],
    ]);
  const afterStart = (p: number) => (tl.chance(p) ? { afterFailoverStartMs: tl.int(0, 120) } : {});
  for (const server of dying) {
    const killAt = tl.int(0, Math.floor(chaosMs * 0.5));
    actions.push({ at: killAt, kind: 'kill-server', server: server.name });
    let restartAt = chaosMs;
    if (server.fate === 'restarts') {
      restartAt = killAt + tl.int(30, 1_500);
      actions.push({
        at: restartAt,
        kind: 'restart-server',
        server: server.name,
        ...(tl.chance(0.5) ? { duringFailoverDelayMs: tl.int(0, 200) } : {}),
      });
    }
    if (tl.chance(0.5)) {
      const copies: DsRequestVariant[] = [];
      for (let i = 0, n = tl.int(1, 4); i < n; i += 1) {
        copies.push({
          kind: tl.pick(['NodeRemoved', 'Orphaned'] as const),
          source: tl.pick(['watcher', 'sweep', 'operator'] as const),
          identity: tl.chance(0.7) ? 'known' : 'null',
          observed: tl.float(),
        });
      }
      actions.push({
        at: tl.int(killAt + 1, Math.max(killAt + 1, chaosMs)),
        kind: 'extra-requests',
        server: server.name,
        copies,
        via: via(),
      });
    }
    if (server.nodeType !== 'master') continue;
    const candidates = instances.filter(
      (i) =>
        i.owner.kind === 'server' &&
        i.owner.server === server.name &&
        i.owner.incarnation === 'first' &&
        (executingStates as readonly number[]).includes(i.state),
    );
    for (const item of tl.sample(
      candidates,
      tl.weighted([
        [0, 2],
        [1, 2],
        [3, 1],
      ]),
    )) {
      const change = tl.weighted<DsChange>([
        ['claim', live.some((s) => s.nodeType === 'master') ? 3 : 0],
        ['claim-self', server.fate === 'restarts' ? 3 : 0],
        ['stop', 1],
        ['ready-stop', item.state === 4 ? 0 : 1],
      ]);
      const from = change === 'claim-self' ? restartAt : killAt;
      actions.push({
        at: tl.int(from, from + 1_200),
        kind: 'mutate-item',
        item: item.key,
        change,
        // Often a few ms after a failover of the host started: between that run's read and its write.
        ...afterStart(0.5),
      });
    }
  }
  for (let h = 0; h < staleHosts; h += 1) {
    actions.push({ at: tl.int(0, chaosMs), kind: 'orphan-request', index: h, via: via() });
  }
  if (live.some((s) => s.nodeType === 'master') && tl.chance(0.25)) {
    const target = tl.pick(live.filter((s) => s.nodeType === 'master'));
    actions.push({ at: tl.int(0, chaosMs), kind: 'bogus-request', server: target.name, via: via() });
  }
  for (
    let i = 0,
      n = tl.weighted([
        [0, 2],
        [1, 3],
        [2, 1],
      ]);
    i < n;
    i += 1
  ) {
    actions.push({
      at: tl.int(0, chaosMs),
      kind: 'concurrent-invokes',
      servers: tl.sample(
        dying.map((s) => s.name),
        tl.int(1, Math.max(1, dying.length)),
      ),
      count: tl.int(2, 4),
      target: faulty === null ? 'healthy' : tl.pick(['healthy', 'faulty', 'both'] as const),
    });
  }
  if (faulty?.failpoints.includes(':delay-')) {
    actions.push({
      at: tl.int(0, Math.floor(chaosMs / 2)),
      kind: 'zombie-takeover',
      afterLeaseMs: tl.int(50, 400),
    });
  }
  if (faulty !== null) {
    for (let i = 0, n = tl.int(0, 2); i < n; i += 1) {
      actions.push({
        at: tl.int(0, chaosMs),
        kind: 'kill-containers',
        target: 'faulty',
        ...(tl.chance(0.7) ? { afterStartMs: tl.int(0, 250) } : {}),
      });
    }
  }
  if (tl.chance(0.25)) {
    actions.push({
      at: tl.int(0, chaosMs),
      kind: 'kill-containers',
      target: 'healthy',
      ...(tl.chance(0.7) ? { afterStartMs: tl.int(0, 250) } : {}),
    });
  }
  if (tl.chance(0.2))
    actions.push({ at: tl.int(0, chaosMs), kind: 'zk-restart', downMs: tl.int(200, 1_500) });
  if (tl.chance(0.2)) actions.push({ at: tl.int(0, chaosMs), kind: 'watcher-expire' });
  if (tl.chance(0.2)) {
    actions.push({ at: tl.int(0, chaosMs), kind: 'watcher-overlap', durationMs: tl.int(500, 3_000) });
  }
  if (tl.chance(0.1)) {
    const bodies = tl.sample(
      hostileBodies().map((b) => b.body),
      tl.int(1, 3),
    );
    actions.push({ at: tl.int(0, chaosMs), kind: 'poison', bodies, via: via() });
  }
  for (const service of ['dynamodb', 'sqs'] as const) {
    if (tl.chance(0.1)) {
      actions.push({
        at: tl.int(0, chaosMs),
        kind: 'outage',
        service,
        fault: tl.pick(['server-error', 'timeout', 'throttle'] as const),
        ms: tl.int(200, 1_500),
      });
    }
  }

  // --- database and ZooKeeper faults of the DolphinScheduler store ---------------------------------
  const db = root.fork('ds-database');
  for (
    let i = 0,
      n = db.weighted([
        [0, 2],
        [1, 3],
        [2, 1],
      ]);
    i < n;
    i += 1
  ) {
    actions.push({
      at: db.int(0, chaosMs),
      kind: 'db-kill-connections',
      which: db.chance(0.7) ? 'busy' : 'all',
      ...(db.chance(0.6) ? { afterFailoverStartMs: db.int(0, 150) } : {}),
    });
  }
  if (db.chance(0.35)) {
    actions.push({
      at: db.int(0, chaosMs),
      kind: 'db-cancel-statements',
      ...(db.chance(0.6) ? { afterFailoverStartMs: db.int(0, 150) } : {}),
    });
  }
  if (db.chance(0.4)) {
    actions.push({
      at: db.int(0, chaosMs),
      kind: 'db-drop-connections',
      ...(db.chance(0.6) ? { afterFailoverStartMs: db.int(0, 150) } : {}),
    });
  }
  if (db.chance(0.2))
    actions.push({ at: db.int(0, chaosMs), kind: 'db-restart', downMs: db.int(300, 2_000) });
  if (db.chance(0.3)) {
    actions.push({
      at: db.int(0, chaosMs),
      kind: 'db-slow',
      roundTripMs: db.int(20, 120),
      ms: db.int(300, 2_000),
    });
  }
  if (dyingMasters.length > 0 && db.chance(0.35)) {
    actions.push({
      at: db.int(0, Math.floor(chaosMs / 2)),
      kind: 'db-lock-hold',
      server: db.pick(dyingMasters).name,
      rows: db.int(1, 5),
      // Now and then past the function's lock timeout (10 s): its statement fails and is retried.
      holdMs: db.chance(0.2) ? db.int(10_500, 12_000) : db.int(200, 4_000),
    });
  }
  if (db.chance(0.3)) {
    actions.push({
      at: db.int(0, chaosMs),
      kind: 'zk-cut-function',
      ...(db.chance(0.7) ? { afterFailoverStartMs: db.int(0, 150) } : {}),
    });
  }
  // Directed: the function loses its session while it holds DolphinScheduler's lock and a write waits
  // for a row lock; a DolphinScheduler master waits for that lock meanwhile.
  let sessionLoss = false;
  if (dyingMasters.length > 0 && db.chance(0.15)) {
    sessionLoss = true;
    const server = db.pick(dyingMasters);
    const kill = actions.find((a) => a.kind === 'kill-server' && a.server === server.name);
    actions.push({
      at: Math.max(0, (kill?.at ?? 0) - 1),
      kind: 'session-loss-under-lock',
      server: server.name,
      cutAfterMs: db.int(0, 300),
      holdMs: db.int(3_500, 6_000),
    });
  }
  if (live.some((s) => s.nodeType === 'master')) {
    for (
      let i = 0,
        n = db.weighted([
          [0, 3],
          [1, 2],
          [2, 1],
        ]);
      i < n;
      i += 1
    ) {
      actions.push({ at: db.int(0, chaosMs + 1_000), kind: 'ds-periodic-check' });
    }
  }
  const stale = root.fork('ds-stale');
  let staleRead = false;
  if (dyingMasters.length > 0 && live.some((s) => s.nodeType === 'master') && stale.chance(0.15)) {
    staleRead = true;
    const server = stale.pick(dyingMasters);
    const kill = actions.find((a) => a.kind === 'kill-server' && a.server === server.name);
    actions.push({
      at: kill?.at ?? 0,
      kind: 'stale-read',
      server: server.name,
      holdMs: stale.int(1_500, 2_500),
    });
  }
  if (root.fork('ds-sweep').chance(0.3)) {
    actions.push({ at: root.fork('ds-sweep-at').int(0, chaosMs), kind: 'sweep' });
  }
  actions.sort((a, b) => a.at - b.at);
  return {
    seed,
    timeZone,
    servers,
    staleHosts,
    instances,
    tasks,
    functions,
    faulty,
    proxy,
    databaseRoundTripMs,
    // The directed session loss needs a master waiting for the lock: DolphinScheduler's own failover on
    // removal, late enough for the function to take the lock first.
    ds: {
      ...ds,
      ...(sessionLoss ? { onRemovalDelayMs: Math.max(ds.onRemovalDelayMs ?? 0, 600) } : {}),
      // The stale read's restarted master takes its instances back quickly.
      ...(staleRead ? { consumeEveryMs: Math.min(ds.consumeEveryMs ?? 150, 150) } : {}),
    },
    chaosMs,
    actions,
  };
}

/** Every fault kind a DolphinScheduler plan can exercise (docs/chaos.md describes each). */
export const allDsFaultKinds = [
  'bogus-request',
  'concurrent-invokes',
  'continuations',
  'db-cancel-statements',
  'db-drop-connections',
  'db-kill-connections',
  'db-lock-hold',
  'db-lock-timeout',
  'db-restart',
  'db-slow',
  'ds-consumers',
  'ds-failover-on-removal',
  'ds-periodic-check',
  'dynamodb-faults',
  'extra-requests',
  'failpoint-exit',
  'failpoint-throw',
  'failpoint-zombie',
  'kill-containers',
  'kill-server',
  'mutate-item',
  'orphan-request',
  'outage',
  'poison',
  'restart-during-failover',
  'restart-server',
  'scheduled-workflows',
  'session-loss-under-lock',
  'sqs-faults',
  'stale-read',
  'sweep',
  'sweep-repairs',
  'watcher-expire',
  'watcher-overlap',
  'zk-cut-function',
  'zk-restart',
  'zombie-takeover',
] as const;

export function dsFaultKindsOf(plan: DsRunPlan): string[] {
  const kinds = new Set<string>();
  for (const a of plan.actions) {
    if (a.kind === 'restart-server' && a.duringFailoverDelayMs !== undefined)
      kinds.add('restart-during-failover');
    if (a.kind === 'db-lock-hold' && a.holdMs > 10_000) kinds.add('db-lock-timeout');
    kinds.add(a.kind);
  }
  if (plan.databaseRoundTripMs > 0) kinds.add('db-slow');
  if (plan.ds.onRemovalDelayMs !== null) kinds.add('ds-failover-on-removal');
  if (plan.ds.consumeEveryMs !== null) kinds.add('ds-consumers');
  if (plan.instances.some((i) => i.scheduled)) kinds.add('scheduled-workflows');
  if (plan.instances.some((i) => i.owner.kind === 'to-repair')) kinds.add('sweep-repairs');
  if (plan.faulty !== null) {
    for (const entry of plan.faulty.failpoints.split(',')) {
      const action = entry.split(':')[1] ?? '';
      kinds.add(action.startsWith('delay') ? 'failpoint-zombie' : `failpoint-${action}`);
    }
    if (plan.faulty.deadlineMarginMs > plan.faulty.timeoutMs - 500) kinds.add('continuations');
  }
  if (plan.proxy.dynamodb !== null) kinds.add('dynamodb-faults');
  if (plan.proxy.sqs !== null) kinds.add('sqs-faults');
  return [...kinds].sort();
}
