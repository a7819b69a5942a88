// The plan of one chaos run, drawn from its seed before anything runs: the cluster (masters and workers
// registered in ZooKeeper), the workload (process instances and task instances in every state, some
// unowned, some of incarnations that will die, some started by a new incarnation after a restart), the
// settings of the fault-injecting failover runtime, the fault profile of the AWS proxies, and a timeline
// of actions (kills, restarts, duplicate and bogus requests, concurrent invocations, ZooKeeper faults,
// concurrent changes by the scheduler). Pure: the same seed gives the same plan.
import { EXECUTING_PROCESS_STATES, TASK_FAILOVER_STATES } from '../../lib/failover/rules.ts';
import type { FailoverKind, NodeType, RequestSource } from '../../lib/messages.ts';
import type { FaultKind, ServiceFaults } from './fault-proxy.ts';
import { hostileBodies } from './hostile-bodies.ts';
import { Prng } from './prng.ts';

export type ServerFate = 'lives' | 'dies' | 'restarts';

export interface ServerPlan {
  /** Abstract name (`m0`, `w1`); the run binds it to a concrete `ip:port`. */
  readonly name: string;
  readonly nodeType: NodeType;
  /** The first incarnation started this long before the run. */
  readonly ageMs: number;
  readonly fate: ServerFate;
}

export type ItemOwner =
  /** A registered server (by name) and which of its incarnations started the item. */
  | { readonly kind: 'server'; readonly server: string; readonly incarnation: 'first' | 'second' }
  /** A host that is not registered and never was while the mirror existed (F6 discovery). */
  | { readonly kind: 'stale-host'; readonly index: number }
  /** No host: already failed over or never assigned. */
  | { readonly kind: 'unowned' };

export interface ItemPlan {
  /** Abstract key (`pi7`, `ti3`). */
  readonly key: string;
  readonly type: 'instance' | 'task';
  readonly owner: ItemOwner;
  readonly state: string;
  /** failoverCount already recorded (0 = attribute absent). */
  readonly previousFailovers: number;
  /** Instances: has a restartTime (restarted by its incarnation). */
  readonly restarted: boolean;
  /** Instances: a commandParam with StartParams to copy into the recovery command. */
  readonly startParams: boolean;
  /** Position of the start (submit) time within its incarnation's lifetime, 0..1. */
  readonly age: number;
  /** Tasks: the process instance (key) it belongs to. */
  readonly processInstance?: string;
}

export interface RequestVariant {
  readonly kind: FailoverKind;
  readonly source: Exclude<RequestSource, 'continuation'>;
  /** Carry the dead incarnation's czxid and startupTime, or nulls (as the sweep does for unknown hosts). */
  readonly identity: 'known' | 'null';
  /** Where observedAt lies between the kill and the restart (or now), 0..1. */
  readonly observed: number;
}

export type Via = 'queue' | 'invoke-healthy' | 'invoke-faulty';

export type Action =
  | { readonly at: number; readonly kind: 'kill-server'; readonly server: string }
  | {
      readonly at: number;
      readonly kind: 'restart-server';
      readonly server: string;
      /** Restart as soon as the host's own failover starts (+ this delay), instead of at `at`. */
      readonly duringFailoverDelayMs?: number;
    }
  | {
      readonly at: number;
      readonly kind: 'extra-requests';
      readonly server: string;
      readonly copies: readonly RequestVariant[];
      readonly via: Via;
    }
  /** A request (operator error) for a server that is alive: F3 must protect all its work. */
  | { readonly at: number; readonly kind: 'bogus-request'; readonly server: string; readonly via: Via }
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
      /** Kill this long after the next failover run of that runtime starts (else at `at`). */
      readonly afterStartMs?: number;
    }
  | { readonly at: number; readonly kind: 'zk-restart'; readonly downMs: number }
  | { readonly at: number; readonly kind: 'zk-member-kill'; readonly member: number; readonly downMs: number }
  | { readonly at: number; readonly kind: 'watcher-expire' }
  | { readonly at: number; readonly kind: 'watcher-overlap'; readonly durationMs: number }
  /**
   * The scheduler changes an item concurrently (conditional on it not being failed over yet): a live
   * master restarts an instance (`claim`), the new incarnation of its own host restarts it (`claim-self`),
   * a user stops it (`stop`), a task is re-dispatched to a live worker (`redispatch`).
   */
  | {
      readonly at: number;
      readonly kind: 'mutate-item';
      readonly item: string;
      readonly change: 'claim' | 'claim-self' | 'stop' | 'redispatch';
      /** Change it this long after a failover of its host starts (between that run's read and its write). */
      readonly afterFailoverStartMs?: number;
    }
  /**
   * A healthy function takes the lock over while a fault-injecting one stalls (its `delay` failpoint) past
   * its lease: the stalled holder wakes up as a zombie.
   */
  | { readonly at: number; readonly kind: 'zombie-takeover'; readonly afterLeaseMs: number }
  | { readonly at: number; readonly kind: 'poison'; readonly bodies: readonly string[]; readonly via: Via }
  | {
      readonly at: number;
      readonly kind: 'outage';
      readonly service: 'dynamodb' | 'sqs';
      readonly fault: 'server-error' | 'timeout' | 'throttle';
      readonly ms: number;
    }
  /** A sweep during the chaos (its grace periods compressed), racing the failover runs. */
  | { readonly at: number; readonly kind: 'sweep' };

export interface FaultyRuntimePlan {
  /** ZKF_FAILPOINTS of its containers. */
  readonly failpoints: string;
  readonly leaseMs: number;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
  readonly deadlineMarginMs: number;
  /** Whether it also consumes the failover queue (else only direct invocations reach it). */
  readonly eventSource: boolean;
}

export interface RunPlan {
  readonly seed: number;
  /** A 3-node ZooKeeper ensemble instead of the standalone server. */
  readonly ensemble: boolean;
  readonly servers: readonly ServerPlan[];
  readonly staleHosts: number;
  readonly items: readonly ItemPlan[];
  readonly faulty: FaultyRuntimePlan | null;
  readonly proxy: { readonly dynamodb: ServiceFaults | null; readonly sqs: ServiceFaults | null };
  /** Length of the chaos phase (ms); every action's `at` is within it. */
  readonly chaosMs: number;
  readonly actions: readonly Action[];
}

export const failpointNames = [
  'after-lock',
  'after-page-read',
  'after-transaction',
  'before-outbox-send',
  'after-outbox-send',
  'before-mark-enqueued',
  'before-release',
] as const;

const nonExecutingProcessStates = ['SUCCESS', 'FAILURE', 'STOP', 'PAUSE', 'KILL', 'NEED_FAULT_TOLERANCE'];
const nonExecutingTaskStates = ['SUCCESS', 'FAILURE', 'KILL', 'NEED_FAULT_TOLERANCE', 'PAUSE'];

function faultProfile(rng: Prng): ServiceFaults | null {
  const rate = rng.weighted<number>([
    [0, 3],
    [0.03, 3],
    [0.08, 3],
    [0.15, 2],
    [0.25, 1],
  ]);
  if (rate === 0) return null;
  const kinds: Partial<Record<FaultKind, number>> = {};
  for (const kind of ['throttle', 'server-error', 'timeout', 'reply-lost', 'slow'] as const) {
    if (rng.chance(0.75)) kinds[kind] = rng.int(1, 4);
  }
  if (Object.keys(kinds).length === 0) kinds['reply-lost'] = 1;
  return { rate, kinds, holdMs: [rng.int(50, 200), rng.int(300, 1_200)] };
}

function failpointSpec(rng: Prng, leaseMs: number): string {
  const entries: string[] = [];
  const names = rng.sample(
    failpointNames,
    rng.weighted([
      [1, 5],
      [2, 3],
      [3, 1],
    ]),
  );
  for (const name of names) {
    const action = rng.weighted<string>([
      ['exit', 6],
      ['throw', 2],
      // Longer than the lease: the holder wakes up as a zombie after someone else took the lock over.
      [`delay-${leaseMs + rng.int(300, 2_000)}`, 3],
    ]);
    const repeat = action === 'exit' && rng.chance(0.2) ? '+' : '';
    entries.push(`${name}=${rng.int(1, 4)}${repeat}:${action}`);
  }
  return entries.join(',');
}

/** Draws the plan of the run with this seed. */
export function planRun(seed: number): RunPlan {
  const root = new Prng(seed);
  const rng = root.fork('cluster');
  const ensemble = rng.chance(0.2);

  // --- cluster ------------------------------------------------------------------------------------
  const servers: ServerPlan[] = [];
  const fates = (n: number, prefix: string, nodeType: NodeType) => {
    for (let i = 0; i < n; i += 1) {
      const fate = rng.weighted<ServerFate>([
        ['lives', 4],
        ['dies', 3],
        ['restarts', 3],
      ]);
      servers.push({ name: `${prefix}${i}`, nodeType, ageMs: rng.int(60_000, 6 * 3_600_000), fate });
    }
  };
  fates(rng.int(2, 4), 'm', 'master');
  fates(rng.int(1, 3), 'w', 'worker');
  // Someone must stay alive to take work over, and someone must die, or there is nothing to test.
  const masters = servers.filter((s) => s.nodeType === 'master');
  if (!masters.some((s) => s.fate === 'lives')) {
    const i = servers.indexOf(masters[0] as ServerPlan);
    servers[i] = { ...(servers[i] as ServerPlan), fate: 'lives' };
  }
  if (!servers.some((s) => s.fate !== 'lives')) {
    const i = servers.findIndex((s) => s.nodeType === 'worker');
    servers[i] = { ...(servers[i] as ServerPlan), fate: rng.pick(['dies', 'restarts'] as const) };
  }
  const staleHosts = rng.chance(0.3) ? rng.int(1, 2) : 0;

  // --- workload -----------------------------------------------------------------------------------
  const wl = root.fork('workload');
  const items: ItemPlan[] = [];
  let instanceCount = 0;
  let taskCount = 0;
  const instanceKeys: string[] = [];
  const addInstance = (owner: ItemOwner, executing: boolean) => {
    const key = `pi${instanceCount++}`;
    instanceKeys.push(key);
    items.push({
      key,
      type: 'instance',
      owner,
      state: executing ? wl.pick(EXECUTING_PROCESS_STATES) : wl.pick(nonExecutingProcessStates),
      previousFailovers: wl.chance(0.15) ? wl.int(1, 3) : 0,
      restarted: wl.chance(0.2),
      startParams: wl.chance(0.3),
      age: wl.float(),
    });
  };
  const addTask = (owner: ItemOwner, executing: boolean) => {
    items.push({
      key: `ti${taskCount++}`,
      type: 'task',
      owner,
      state: executing ? wl.pick(TASK_FAILOVER_STATES) : wl.pick(nonExecutingTaskStates),
      previousFailovers: wl.chance(0.1) ? wl.int(1, 2) : 0,
      restarted: false,
      startParams: false,
      age: wl.float(),
      processInstance: instanceKeys.length > 0 ? wl.pick(instanceKeys) : 'pi-external',
    });
  };
  for (const server of servers) {
    const add = server.nodeType === 'master' ? addInstance : addTask;
    const n = wl.int(3, server.nodeType === 'master' ? 30 : 20);
    for (let i = 0; i < n; i += 1) {
      add({ kind: 'server', server: server.name, incarnation: 'first' }, wl.chance(0.75));
    }
    if (server.fate === 'restarts') {
      for (let i = 0, m = wl.int(0, 8); i < m; i += 1) {
        add({ kind: 'server', server: server.name, incarnation: 'second' }, wl.chance(0.8));
      }
    }
  }
  for (let h = 0; h < staleHosts; h += 1) {
    for (let i = 0, n = wl.int(2, 10); i < n; i += 1) {
      if (h % 2 === 0) addInstance({ kind: 'stale-host', index: h }, wl.chance(0.8));
      else addTask({ kind: 'stale-host', index: h }, wl.chance(0.8));
    }
  }
  for (let i = 0, n = wl.int(0, 5); i < n; i += 1) addInstance({ kind: 'unowned' }, wl.chance(0.7));
  for (let i = 0, n = wl.int(0, 3); i < n; i += 1) addTask({ kind: 'unowned' }, wl.chance(0.7));

  // --- runtimes and proxies -----------------------------------------------------------------------
  const rt = root.fork('runtime');
  let faulty: FaultyRuntimePlan | null = null;
  if (rt.chance(0.85)) {
    const leaseMs = rt.int(500, 1_500);
    const timeoutMs = rt.int(3_000, 8_000);
    faulty = {
      failpoints: failpointSpec(rt, leaseMs),
      leaseMs,
      batchSize: rt.int(2, 10),
      concurrency: rt.int(1, 4),
      timeoutMs,
      // Sometimes so close to the timeout that every invocation continues after one page.
      deadlineMarginMs: rt.chance(0.4) ? timeoutMs - rt.int(50, 400) : rt.int(500, 1_500),
      eventSource: rt.chance(0.7),
    };
  }
  const px = root.fork('proxy');
  const proxy = { dynamodb: faultProfile(px), sqs: faultProfile(px) };

  // --- timeline -----------------------------------------------------------------------------------
  const tl = root.fork('timeline');
  const chaosMs = tl.int(2_500, 4_000);
  const actions: Action[] = [];
  const live = servers.filter((s) => s.fate === 'lives');
  const dying = servers.filter((s) => s.fate !== 'lives');
  const via = (): Via =>
    tl.weighted<Via>([
      ['queue', 3],
      ['invoke-healthy', 2],
      ['invoke-faulty', faulty === null ? 0 : 2],
    ]);
  for (const server of dying) {
    const killAt = tl.int(0, Math.floor(chaosMs * 0.6));
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
    if (tl.chance(0.6)) {
      const copies: RequestVariant[] = [];
      for (let i = 0, n = tl.int(1, 4); i < n; i += 1) {
        copies.push({
          kind: tl.pick(['NodeRemoved', 'Orphaned'] as const),
          source: tl.pick(['watcher', 'sweep', 'operator'] as const),
          identity: tl.chance(0.7) ? 'known' : 'null',
          observed: tl.float(),
        });
      }
      // Anywhere from just after the kill to the end: before or after the watcher's own request.
      actions.push({
        at: tl.int(killAt + 1, Math.max(killAt + 1, chaosMs)),
        kind: 'extra-requests',
        server: server.name,
        copies,
        via: via(),
      });
    }
    // The scheduler changes some of the dying incarnation's executing work while it is failed over.
    const candidates = items.filter(
      (i) =>
        i.owner.kind === 'server' &&
        i.owner.server === server.name &&
        i.owner.incarnation === 'first' &&
        (i.type === 'instance' ? isExecutingInstance(i.state) : isExecutingTask(i.state)),
    );
    for (const item of tl.sample(
      candidates,
      tl.weighted([
        [0, 2],
        [1, 2],
        [3, 1],
      ]),
    )) {
      const change =
        item.type === 'task'
          ? 'redispatch'
          : tl.weighted<'claim' | 'claim-self' | 'stop'>([
              ['claim', 3],
              ['claim-self', server.fate === 'restarts' ? 3 : 0],
              ['stop', 1],
            ]);
      if (change === 'redispatch' && !live.some((s) => s.nodeType === 'worker')) continue;
      const from = change === 'claim-self' ? restartAt : killAt;
      actions.push({
        at: tl.int(from, from + 1_200),
        kind: 'mutate-item',
        item: item.key,
        change,
        ...(change !== 'claim-self' && tl.chance(0.5) ? { afterFailoverStartMs: tl.int(0, 60) } : {}),
      });
    }
  }
  if (live.length > 0 && tl.chance(0.3)) {
    actions.push({ at: tl.int(0, chaosMs), kind: 'bogus-request', server: tl.pick(live).name, via: via() });
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
    for (let i = 0, n = tl.int(1, 2); i < n; i += 1) {
      actions.push({
        at: tl.int(0, Math.floor(chaosMs / 2)),
        kind: 'zombie-takeover',
        afterLeaseMs: tl.int(50, 400),
      });
    }
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
  if (ensemble) {
    if (tl.chance(0.8)) {
      actions.push({
        at: tl.int(0, chaosMs),
        kind: 'zk-member-kill',
        member: tl.int(0, 2),
        downMs: tl.int(300, 2_500),
      });
    }
  } else if (tl.chance(0.3)) {
    actions.push({ at: tl.int(0, chaosMs), kind: 'zk-restart', downMs: tl.int(200, 1_500) });
  }
  if (tl.chance(0.3)) actions.push({ at: tl.int(0, chaosMs), kind: 'watcher-expire' });
  if (tl.chance(0.3)) {
    actions.push({ at: tl.int(0, chaosMs), kind: 'watcher-overlap', durationMs: tl.int(500, 3_000) });
  }
  if (tl.chance(0.25)) {
    const bodies = tl.sample(
      hostileBodies().map((b) => b.body),
      tl.int(1, 4),
    );
    actions.push({ at: tl.int(0, chaosMs), kind: 'poison', bodies, via: via() });
  }
  for (const service of ['dynamodb', 'sqs'] as const) {
    if (tl.chance(0.15)) {
      actions.push({
        at: tl.int(0, chaosMs),
        kind: 'outage',
        service,
        fault: tl.pick(['server-error', 'timeout', 'throttle'] as const),
        ms: tl.int(200, 1_500),
      });
    }
  }
  if (tl.chance(0.3)) actions.push({ at: tl.int(0, chaosMs), kind: 'sweep' });
  actions.sort((a, b) => a.at - b.at);

  return { seed, ensemble, servers, staleHosts, items, faulty, proxy, chaosMs, actions };
}

function isExecutingInstance(state: string): boolean {
  return (EXECUTING_PROCESS_STATES as readonly string[]).includes(state);
}

function isExecutingTask(state: string): boolean {
  return (TASK_FAILOVER_STATES as readonly string[]).includes(state);
}

/** Every fault kind a plan can exercise (docs/chaos.md describes each). */
export const allFaultKinds = [
  'bogus-request',
  'concurrent-invokes',
  'continuations',
  'dynamodb-reply-lost',
  'dynamodb-server-error',
  'dynamodb-slow',
  'dynamodb-throttle',
  'dynamodb-timeout',
  'ensemble',
  'extra-requests',
  'failpoint-exit',
  'failpoint-throw',
  'failpoint-zombie',
  'kill-containers',
  'kill-server',
  'mutate-item',
  'outage',
  'poison',
  'restart-during-failover',
  'restart-server',
  'sqs-reply-lost',
  'sqs-server-error',
  'sqs-slow',
  'sqs-throttle',
  'sqs-timeout',
  'sweep',
  'watcher-expire',
  'watcher-overlap',
  'zk-member-kill',
  'zk-restart',
  'zombie-takeover',
] as const;

/** Which fault kinds a plan exercises (for coverage reports and the CI seed set). */
export function faultKindsOf(plan: RunPlan): string[] {
  const kinds = new Set<string>();
  for (const a of plan.actions) {
    if (a.kind === 'restart-server' && a.duringFailoverDelayMs !== undefined)
      kinds.add('restart-during-failover');
    kinds.add(a.kind);
  }
  if (plan.ensemble) kinds.add('ensemble');
  if (plan.faulty !== null) {
    for (const entry of plan.faulty.failpoints.split(',')) {
      const action = entry.split(':')[1] ?? '';
      kinds.add(action.startsWith('delay') ? 'failpoint-zombie' : `failpoint-${action}`);
    }
    if (plan.faulty.deadlineMarginMs > plan.faulty.timeoutMs - 500) kinds.add('continuations');
  }
  for (const service of ['dynamodb', 'sqs'] as const) {
    const faults = plan.proxy[service];
    if (faults === null) continue;
    for (const [kind, weight] of Object.entries(faults.kinds)) {
      if ((weight ?? 0) > 0) kinds.add(`${service}-${kind}`);
    }
  }
  return [...kinds].sort();
}
