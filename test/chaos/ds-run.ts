// One chaos run on DolphinScheduler's own database: register the plan's servers, seed t_ds_process_instance
// as DolphinScheduler 3.2 writes it, start the failover runtimes of the run (the real handler with
// STORE=dolphinscheduler in local Lambda containers, its database and ZooKeeper behind loopback proxies),
// play the timeline (kills, restarts, duplicate requests, crashes, database and ZooKeeper faults,
// DolphinScheduler's own masters failing over and consuming), heal, settle, then read the database and
// check the invariants (ds-invariants.ts).
import { type AttributeValue, ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { FailoverRequestQueue } from '../../lib/failover/ports.ts';
import type { LocalRuntime } from '../../lib/local/runtime.ts';
import {
  type FailoverRequest,
  type FailoverRequestInput,
  FailoverRequestSchema,
} from '../../lib/messages.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { epochOfWallClock, wallClock } from '../../lib/sim/ds-master.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';
import type { SweepSummary } from '../../lib/sweep/sweep.ts';
import type { AgentEvent } from './agent-client.ts';
import type { DsAgentEvent } from './ds-agent.ts';
import {
  cancelStatements,
  functionConnections,
  holdRowLocks,
  killConnections,
  readCommandLog,
  readInstanceLog,
  sqlFor,
} from './ds-db.ts';
import type { DsChaosEnvironment } from './ds-environment.ts';
import {
  checkDsInvariants,
  type DsCheckResult,
  type DsJournalEntry,
  type DsObservations,
  type DsOrigin,
  type DsTrackedInstance,
  type Row,
} from './ds-invariants.ts';
import type {
  DsAction,
  DsChange,
  DsInstancePlan,
  DsRequestVariant,
  DsRunPlan,
  DsVia,
} from './ds-scenario.ts';
import type { RuntimeLabel } from './environment.ts';
import { Prng } from './prng.ts';
import { type Incarnation, sleep, within } from './registry-actors.ts';
import type { AgentTarget } from './registry-agent.ts';
import { compactLog, consumeQueue, safeJson, scanAll, sqsEvent } from './run.ts';

export interface DsRunOptions {
  /** Distinguishes the hosts and registry root of runs in one process. */
  readonly slot: number;
  readonly settleMs?: number;
  readonly trace?: (line: string) => void;
}

export interface DsRunReport {
  readonly seed: number;
  readonly dialect: 'postgresql' | 'mysql';
  readonly plan: DsRunPlan;
  readonly hosts: Readonly<Record<string, string>>;
  readonly violations: DsCheckResult['violations'];
  /** Outcomes of DolphinScheduler's own routine (its known races), not charged to the function. */
  readonly dolphinScheduler: DsCheckResult['dolphinScheduler'];
  readonly summary: DsCheckResult['summary'] | undefined;
  readonly events: Array<{ t: number; what: string }>;
  readonly durations: Record<string, number>;
  readonly invocations: Record<string, Record<string, number>>;
  readonly logMessages: Record<string, number>;
  readonly logTail: string[];
  /** Faults that took effect (connections killed, statements cancelled, ...). */
  readonly faults: Record<string, number>;
  readonly deadLettered: number;
  /** For each instance or host a violation names: its history from the audit log, requests, log lines. */
  readonly diagnostics: Record<string, string[]>;
}

interface LogEvent {
  readonly runtime: RuntimeLabel;
  readonly message: string;
  readonly host?: string;
  readonly at: number;
}

class ServerHandle {
  readonly incarnations: Incarnation[] = [];
  constructor(
    readonly name: string,
    readonly nodeType: 'master' | 'worker',
    readonly host: string,
  ) {}

  get current(): Incarnation | undefined {
    const last = this.incarnations[this.incarnations.length - 1];
    return last?.removedAt === undefined ? last : undefined;
  }
}

const EXECUTING = [0, 1, 2, 4, 12];
/** The columns the harness writes when it seeds an instance (the rest take their defaults). */
const instanceColumns = [
  'name',
  'process_definition_code',
  'process_definition_version',
  'project_code',
  'state',
  'state_history',
  'recovery',
  'start_time',
  'run_times',
  'host',
  'command_type',
  'command_param',
  'task_depend_type',
  'max_try_times',
  'failure_strategy',
  'warning_type',
  'command_start_time',
  'global_params',
  'flag',
  'is_sub_process',
  'executor_id',
  'executor_name',
  'history_cmd',
  'process_instance_priority',
  'worker_group',
  'environment_code',
  'timeout',
  'tenant_code',
  'var_pool',
  'dry_run',
  'next_process_instance_id',
  'restart_time',
  'test_flag',
] as const;

export async function executeDsRun(
  env: DsChaosEnvironment,
  plan: DsRunPlan,
  options: DsRunOptions,
): Promise<DsRunReport> {
  return new DsChaosRun(env, plan, options).execute();
}

class DsChaosRun {
  private readonly started = Date.now();
  private chaosStart = this.started;
  private readonly events: Array<{ at: number; what: string }> = [];
  private readonly logTail: string[] = [];
  private readonly logCounts: Record<string, number> = {};
  private readonly logHistory: LogEvent[] = [];
  private readonly logWaiters = new Set<{
    match: (e: LogEvent) => boolean;
    resolve: (hit: boolean) => void;
  }>();
  private readonly hostLogs = new Map<string, string[]>();
  private readonly journalLines = new Map<string, string[]>();
  private readonly root: string;
  private readonly hosts = new Map<string, string>();
  private readonly servers = new Map<string, ServerHandle>();
  private readonly killedAt = new Map<string, Promise<number>>();
  private readonly killedResolvers = new Map<string, (at: number) => void>();
  private readonly serverOps = new Map<string, Promise<void>>();
  private readonly tracked = new Map<number, DsTrackedInstance>();
  private readonly keyToId = new Map<string, number>();
  private readonly taskSeeds = new Map<number, Row>();
  private readonly pending = new Set<Promise<unknown>>();
  /** DolphinScheduler actor operations and faults that outlive the chaos phase (lock holds, restarts). */
  private readonly background = new Set<Promise<unknown>>();
  private readonly faults: Record<string, number> = {};
  private readonly exec: Prng;
  private readonly durations: Record<string, number> = {};
  private readonly diagnostics: Record<string, string[]> = {};
  private healthy: LocalRuntime | undefined;
  private faulty: LocalRuntime | undefined;
  private zkGate: Promise<void> = Promise.resolve();
  private scheduleCodes = new Map<number, string>();
  private deadLettered = 0;
  private releaseHolds: Array<() => void> = [];

  constructor(
    private readonly env: DsChaosEnvironment,
    private readonly plan: DsRunPlan,
    private readonly options: DsRunOptions,
  ) {
    this.root = `/chaos/ds${options.slot}`;
    this.exec = new Prng(plan.seed).fork('ds-execution');
    const base = this.base();
    plan.servers.forEach((server, i) => {
      this.hosts.set(server.name, `${base}.${i + 1}:${server.nodeType === 'master' ? 5678 : 1234}`);
    });
  }

  private base(): string {
    return `10.${150 + (Math.floor(this.options.slot / 250) % 100)}.${this.options.slot % 250}`;
  }

  // --- bookkeeping ----------------------------------------------------------------------------------

  private note(what: string): void {
    this.events.push({ at: Date.now(), what });
    this.options.trace?.(`  [${Date.now() - this.started} ms] ${what}`);
  }

  private count(fault: string, n = 1): void {
    this.faults[fault] = (this.faults[fault] ?? 0) + n;
  }

  private target(): AgentTarget {
    return { connect: this.env.stack.zookeeper.connectString, root: this.root };
  }

  private hostOf(server: string): string {
    const host = this.hosts.get(server);
    if (host === undefined) throw new Error(`no server ${server} in the plan`);
    return host;
  }

  private staleHost(index: number): string {
    return `${this.base()}.${200 + index}:5678`;
  }

  private recordRequest(at: number, producer: string, r: FailoverRequestInput): void {
    const lines = this.journalLines.get(r.host) ?? [];
    if (lines.length < 100) {
      lines.push(
        `+${at - this.chaosStart} ms ${producer}: ${r.source}/${r.kind} czxid ${r.czxid} startupTime ${r.startupTime} ` +
          `observedAt +${r.observedAt - this.chaosStart} ms attempt ${r.attempt ?? 0}`,
      );
    }
    this.journalLines.set(r.host, lines);
  }

  private onAgentEvent(event: AgentEvent | DsAgentEvent): void {
    if (event.event === 'log') {
      if (event.line.startsWith('ds-agent exited')) this.note(event.line.slice(0, 800));
      this.logTail.push(event.line.length > 600 ? `${event.line.slice(0, 600)}...` : event.line);
      if (this.logTail.length > 300) this.logTail.shift();
      return;
    }
    if (event.event === 'ds') {
      this.note(event.what);
      for (const host of event.hosts) {
        const lines = this.hostLogs.get(host) ?? [];
        if (lines.length < 200) lines.push(`+${event.at - this.chaosStart} ms ${event.what}`);
        this.hostLogs.set(host, lines);
      }
      return;
    }
    this.recordRequest(event.at, event.producer, event.request);
  }

  private onLog(runtime: RuntimeLabel, line: string): void {
    this.logTail.push(`${runtime}: ${line.length > 600 ? `${line.slice(0, 600)}...` : line}`);
    if (this.logTail.length > 300) this.logTail.shift();
    if (!line.startsWith('{')) return;
    const parsed = safeJson(line) as
      | (Record<string, unknown> & { message?: unknown; host?: unknown })
      | undefined;
    if (parsed === undefined || typeof parsed.message !== 'string') return;
    this.logCounts[parsed.message] = (this.logCounts[parsed.message] ?? 0) + 1;
    const event: LogEvent = {
      runtime,
      message: parsed.message,
      at: Date.now(),
      ...(typeof parsed.host === 'string' ? { host: parsed.host } : {}),
    };
    if (this.logHistory.length < 5_000) this.logHistory.push(event);
    if (event.host !== undefined) {
      const lines = this.hostLogs.get(event.host) ?? [];
      if (lines.length < 200)
        lines.push(`+${event.at - this.chaosStart} ms ${runtime}: ${compactLog(parsed)}`);
      this.hostLogs.set(event.host, lines);
    }
    for (const waiter of [...this.logWaiters]) {
      if (waiter.match(event)) {
        this.logWaiters.delete(waiter);
        waiter.resolve(true);
      }
    }
  }

  private waitForLog(match: (e: LogEvent) => boolean, timeoutMs: number, since?: number): Promise<boolean> {
    if (since !== undefined && this.logHistory.some((e) => e.at >= since && match(e)))
      return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = { match, resolve };
      this.logWaiters.add(waiter);
      setTimeout(
        () => {
          if (this.logWaiters.delete(waiter)) resolve(false);
        },
        Math.max(0, timeoutMs),
      );
    });
  }

  /** Waits for the next failover start (of `host`, or any), or until the chaos phase is over. */
  private async afterFailoverStart(delayMs: number | undefined, host?: string): Promise<void> {
    if (delayMs === undefined) return;
    await this.waitForLog(
      (e) => e.message === 'failover started' && (host === undefined || e.host === host),
      Math.max(500, this.chaosStart + this.plan.chaosMs - Date.now()),
    );
    await sleep(delayMs);
  }

  private track(promise: Promise<unknown>, into: Set<Promise<unknown>> = this.pending): void {
    const guarded = promise.catch(() => undefined);
    into.add(guarded);
    void guarded.finally(() => into.delete(guarded));
  }

  private serverOp(name: string, op: () => Promise<void>): Promise<void> {
    const next = (this.serverOps.get(name) ?? Promise.resolve()).then(op, op);
    this.serverOps.set(
      name,
      next.catch(() => undefined),
    );
    return next;
  }

  private get db() {
    return this.env.harness;
  }

  private q(text: string): string {
    return sqlFor(this.env.dialect, text);
  }

  // --- the run --------------------------------------------------------------------------------------

  async execute(): Promise<DsRunReport> {
    const violations: DsCheckResult['violations'] = [];
    let dolphinScheduler: DsCheckResult['dolphinScheduler'] = [];
    let summary: DsCheckResult['summary'] | undefined;
    this.env.setLogSink((runtime, line) => this.onLog(runtime, line));
    this.env.agent.onEvent = (event) => this.onAgentEvent(event);
    this.env.dsAgent.onEvent = (event) => this.onAgentEvent(event);
    let settled: { settled: boolean; problem?: string } = {
      settled: false,
      problem: 'the run did not get to settle',
    };
    try {
      let phase = Date.now();
      await within(this.setup(), 120_000, 'setup');
      this.durations.setup = Date.now() - phase;
      phase = Date.now();
      this.chaosStart = phase;
      await this.chaos();
      this.durations.chaos = Date.now() - phase;
      phase = Date.now();
      await within(this.heal(), 60_000, 'heal');
      settled = await this.settle();
      this.durations.settle = Date.now() - phase;
      phase = Date.now();
      const observations = await within(this.observe(settled), 60_000, 'observe');
      const result = checkDsInvariants(observations);
      violations.push(...result.violations);
      dolphinScheduler = result.dolphinScheduler;
      summary = result.summary;
      await this.diagnose([...result.violations, ...result.dolphinScheduler], observations);
      this.durations.check = Date.now() - phase;
    } catch (error: unknown) {
      violations.push({
        invariant: 'the run completes',
        subject: 'chaos engine',
        detail:
          error instanceof Error
            ? `${error.name}: ${error.message} ${(error.stack ?? '').split('\n').slice(1, 6).join(' <')}`
            : String(error),
      });
    } finally {
      const phase = Date.now();
      await within(this.cleanup(), 120_000, 'cleanup').catch((error: unknown) => {
        violations.push({
          invariant: 'the run cleans up',
          subject: 'chaos engine',
          detail: error instanceof Error ? error.message : String(error),
        });
      });
      this.durations.cleanup = Date.now() - phase;
      this.durations.total = Date.now() - this.started;
      this.env.setLogSink(undefined);
      this.env.agent.onEvent = undefined;
      this.env.dsAgent.onEvent = undefined;
    }
    return {
      seed: this.plan.seed,
      dialect: this.env.dialect,
      plan: this.plan,
      hosts: Object.fromEntries(this.hosts),
      violations,
      dolphinScheduler,
      summary,
      events: this.events.map((e) => ({ t: e.at - this.chaosStart, what: e.what })),
      durations: this.durations,
      invocations: this.invocationOutcomes(),
      logMessages: this.logCounts,
      logTail: this.logTail,
      faults: this.faults,
      deadLettered: this.deadLettered,
      diagnostics: this.diagnostics,
    };
  }

  private invocationOutcomes(): Record<string, Record<string, number>> {
    const tally = (records: ReadonlyArray<{ outcome: string }>) => {
      const out: Record<string, number> = {};
      for (const r of records) out[r.outcome] = (out[r.outcome] ?? 0) + 1;
      return out;
    };
    return {
      healthy: tally(this.healthy?.invocations() ?? []),
      faulty: tally(this.faulty?.invocations() ?? []),
    };
  }

  // --- setup ------------------------------------------------------------------------------------------

  private async setup(): Promise<void> {
    await this.env.agent.ensureRunning();
    await this.env.dsAgent.ensureRunning();
    await this.env.agent.prepare(this.target());
    const now = Date.now();
    await Promise.all(
      this.plan.servers.map(async (server) => {
        const handle = new ServerHandle(server.name, server.nodeType, this.hostOf(server.name));
        this.servers.set(server.name, handle);
        if (server.fate !== 'lives') {
          this.killedAt.set(
            server.name,
            new Promise((resolve) => this.killedResolvers.set(server.name, resolve)),
          );
        }
        handle.incarnations.push(await this.register(handle, now - server.ageMs));
      }),
    );
    this.note(
      `registered ${this.plan.servers.map((s) => `${s.name}=${this.hostOf(s.name)} (${s.fate})`).join(', ')}; ` +
        `time zone ${this.plan.timeZone}`,
    );
    await this.seedSchedules();
    await this.seedInstances(
      this.plan.instances.filter((i) => !(i.owner.kind === 'server' && i.owner.incarnation === 'second')),
      now,
    );
    await this.seedTasks();
    await this.env.agent.startWatcher(this.target());
    await this.waitForMirror();
    const running: Record<string, number[]> = {};
    for (const instance of this.tracked.values()) {
      if (instance.origin === 'live' && EXECUTING.includes(Number(instance.reference.state))) {
        const host = String(instance.reference.host);
        running[host] = [...(running[host] ?? []), instance.id];
      }
    }
    await this.env.dsAgent.begin({
      connect: this.env.stack.zookeeper.connectString,
      root: this.root,
      timeZone: this.plan.timeZone,
      running,
      lockTimeoutMs: 30_000,
    });
    const f = this.plan.functions;
    this.healthy = this.env.startRuntime({
      label: 'healthy',
      timeZone: this.plan.timeZone,
      root: this.root,
      zkSessionTimeoutMs: f.zkSessionTimeoutMs,
      scanSpan: f.scanSpan,
      leaseMs: 2_000,
      batchSize: f.batchSize,
      concurrency: f.concurrency,
      timeoutMs: 20_000,
      deadlineMarginMs: 4_000,
      eventSource: true,
      maxContainers: 3,
      sqsConcurrency: 2,
    });
    if (this.plan.faulty !== null) {
      const p = this.plan.faulty;
      this.faulty = this.env.startRuntime({
        label: 'faulty',
        timeZone: this.plan.timeZone,
        root: this.root,
        zkSessionTimeoutMs: f.zkSessionTimeoutMs,
        scanSpan: f.scanSpan,
        leaseMs: p.leaseMs,
        batchSize: p.batchSize,
        concurrency: p.concurrency,
        timeoutMs: p.timeoutMs,
        deadlineMarginMs: p.deadlineMarginMs,
        failpoints: p.failpoints,
        eventSource: p.eventSource,
        maxContainers: 2,
        sqsConcurrency: 2,
      });
    }
    // Warm containers: a removal is then failed over at the speed of a warm function, not a cold start.
    await Promise.all([0, 1, 2].map(() => this.healthy?.invoke('failover', { Records: [] })));
    if (this.plan.ds.consumeEveryMs !== null) {
      // Masters that do not die in the run consume: the live ones, and restarted ones once back.
      const setupEnd = Date.now();
      const consumers = this.plan.servers
        .filter((s) => s.nodeType === 'master' && s.fate !== 'dies')
        .map((s) => ({ host: this.hostOf(s.name), minStartupTime: s.fate === 'lives' ? 0 : setupEnd }));
      await this.env.dsAgent.startConsumers(this.plan.ds.consumeEveryMs, consumers);
    }
    this.env.dbProxy.roundTripMs = this.plan.databaseRoundTripMs;
    this.env.dynamoProxy.configure(this.plan.proxy.dynamodb, (this.plan.seed ^ 0xd1d1) >>> 0);
    this.env.sqsProxy.configure(this.plan.proxy.sqs, (this.plan.seed ^ 0x5a5a) >>> 0);
  }

  private register(server: ServerHandle, startupTime: number): Promise<Incarnation> {
    return this.env.agent.register(this.target(), {
      key: `ds${this.options.slot}/${server.name}`,
      nodeType: server.nodeType,
      host: server.host,
      startupTime,
    });
  }

  private async waitForMirror(): Promise<void> {
    const store = new DynamoServerStore(this.env.stack.clients.dynamodb, this.env.stack.info.tables.servers);
    const deadline = Date.now() + 30_000;
    for (const [name, fake] of this.servers) {
      for (;;) {
        const row = await store.get(`${fake.nodeType}/${fake.host}`);
        if (row?.alive === true && row.czxid === fake.current?.czxid) break;
        if (Date.now() > deadline) throw new Error(`the mirror never showed ${name} (${fake.host}) alive`);
        await sleep(50);
      }
    }
  }

  /** A stored time for an instant: whole seconds on MySQL, rounded the way that keeps the instant exact. */
  private storedTime(epochMs: number, round: 'down' | 'up'): number {
    if (this.env.dialect !== 'mysql') return epochMs;
    return round === 'down' ? Math.floor(epochMs / 1000) * 1000 : Math.ceil(epochMs / 1000) * 1000;
  }

  private wall(epochMs: number): string {
    const text = wallClock(epochMs, this.plan.timeZone);
    return this.env.dialect === 'mysql' ? text.slice(0, 19) : text;
  }

  private definitionCode(plan: DsInstancePlan, n: number): number {
    return plan.scheduled
      ? 7_000_000_000 + this.options.slot * 10 + (n % 3)
      : 9_000_000_000 + this.options.slot * 10_000 + n;
  }

  private async seedSchedules(): Promise<void> {
    if (!this.plan.instances.some((i) => i.scheduled)) return;
    for (let k = 0; k < 3; k += 1) {
      const code = 7_000_000_000 + this.options.slot * 10 + k;
      const zone = ['Asia/Shanghai', 'Europe/Berlin', 'America/New_York'][k] as string;
      await this.db.query(
        this.q(`INSERT INTO t_ds_schedules (process_definition_code, timezone_id, crontab, start_time, end_time,
           failure_strategy, user_id, release_state, warning_type, create_time, update_time)
         VALUES (?, ?, '0 0 * * * ? *', '2024-01-01 00:00:00', '2099-01-01 00:00:00', 1, 1, 1, 0,
           '2024-01-01 00:00:00', '2024-01-01 00:00:00')`),
        [code, zone],
      );
      this.scheduleCodes.set(code, zone);
    }
  }

  private async seedInstances(plans: readonly DsInstancePlan[], now: number): Promise<void> {
    const rows: Array<{
      plan: DsInstancePlan;
      values: unknown[];
      origin: DsOrigin;
      start: number;
      restart?: number;
    }> = [];
    for (const plan of plans) {
      const n = Number(plan.key.slice(2));
      let host: string | null;
      let from: number;
      let to: number;
      let origin: DsOrigin;
      let round: 'down' | 'up' = 'down';
      switch (plan.owner.kind) {
        case 'server': {
          const fake = this.servers.get(plan.owner.server);
          const incarnation = fake?.incarnations[plan.owner.incarnation === 'first' ? 0 : 1];
          if (fake === undefined || incarnation === undefined) throw new Error(`${plan.key}: no incarnation`);
          host = fake.host;
          if (plan.owner.incarnation === 'first') {
            // Stored at or after the startup it belongs to (MySQL's whole seconds are rounded up to it).
            from = this.storedTime(incarnation.startupTime, 'up');
            to = now - 2_000;
            origin = this.plan.servers.find((s) => s.name === fake.name)?.fate === 'lives' ? 'live' : 'dying';
          } else {
            // A restarted master takes work only once registered again; stored strictly after its startup.
            from = Math.max(incarnation.startupTime, incarnation.registeredAt) + 1;
            to = from + 20;
            origin = 'new-incarnation';
            round = 'up';
          }
          break;
        }
        case 'stale-host':
          host = this.staleHost(plan.owner.index);
          from = now - 7_200_000;
          to = now - 3_600_000;
          origin = 'stale-host';
          break;
        case 'unowned':
          host = 'NULL';
          from = now - 7_200_000;
          to = now - 60_000;
          origin = 'unowned';
          break;
        case 'to-repair':
          host = plan.owner.host;
          from = now - 7_200_000;
          to = now - 60_000;
          origin = 'to-repair';
          break;
      }
      const start = Math.max(
        this.storedTime(from + Math.floor(plan.age * Math.max(0, to - from)), round),
        plan.owner.kind === 'server' ? from : Number.NEGATIVE_INFINITY,
      );
      const restart =
        plan.restarted && plan.owner.kind === 'server' && plan.owner.incarnation === 'first'
          ? this.storedTime(start + Math.floor((to - start) / 2) + 1, 'down')
          : undefined;
      const code = this.definitionCode(plan, n);
      const commandParam = plan.startParams
        ? JSON.stringify({ StartParams: JSON.stringify({ day: `2024-01-0${(n % 9) + 1}` }), other: 1 })
        : n % 3 === 0
          ? null
          : '{"other":1}';
      rows.push({
        plan,
        origin,
        start,
        ...(restart === undefined ? {} : { restart }),
        values: [
          `chaos-${plan.key}`,
          code,
          1 + (n % 3),
          1_234_567,
          plan.state,
          '[]',
          0,
          this.wall(start),
          1,
          host,
          0,
          commandParam,
          2,
          0,
          1,
          0,
          this.wall(start),
          '[]',
          1,
          0,
          1 + (n % 5),
          'admin',
          'START_PROCESS',
          plan.priority,
          'default',
          -1,
          0,
          'default',
          '[]',
          0,
          0,
          restart === undefined ? null : this.wall(restart),
          plan.testFlag,
        ],
      });
    }
    if (rows.length === 0) return;
    const marks = `(${instanceColumns.map(() => '?').join(', ')})`;
    const insert = `INSERT INTO t_ds_process_instance (${instanceColumns.join(', ')}) VALUES ${rows.map(() => marks).join(', ')}`;
    const params = rows.flatMap((r) => r.values);
    let ids: number[];
    if (this.env.dialect === 'postgresql') {
      ids = (await this.db.query<{ id: number }>(`${this.q(insert)} RETURNING id`, params)).map((r) =>
        Number(r.id),
      );
    } else {
      ids = await this.db.transaction(async (tx) => {
        await tx.query(insert, params);
        const [first] = await tx.query<{ id: number | string }>('SELECT LAST_INSERT_ID() AS id');
        return rows.map((_, i) => Number(first?.id) + i);
      });
    }
    const refs = await this.readRows(ids);
    for (const [i, r] of rows.entries()) {
      const id = ids[i] as number;
      const reference = refs.get(id);
      if (reference === undefined) throw new Error(`seeded instance ${id} not found`);
      const code = Number(reference.process_definition_code);
      let seededCommandId: number | undefined;
      if (r.origin === 'unowned') seededCommandId = await this.seedEarlierCommand(id, reference);
      this.keyToId.set(r.plan.key, id);
      this.tracked.set(id, {
        id,
        key: r.plan.key,
        origin: r.origin,
        reference,
        startTime: r.start,
        ...(r.restart === undefined ? {} : { restartTime: r.restart }),
        scheduleTimeZone: this.scheduleCodes.get(code) ?? null,
        ...(seededCommandId === undefined ? {} : { seededCommandId }),
      });
    }
  }

  /** The pending recovery command of an earlier failover (host 'NULL'), as DolphinScheduler wrote it. */
  private async seedEarlierCommand(id: number, row: Row): Promise<number> {
    const at = this.wall(Date.now() - 3_600_000);
    const values = [
      row.process_definition_code,
      row.process_definition_version,
      id,
      JSON.stringify({ ProcessInstanceId: id }),
      row.executor_id,
      row.process_instance_priority ?? 2,
      row.test_flag ?? 0,
      at,
      at,
    ];
    const insert = `INSERT INTO t_ds_command (command_type, process_definition_code, process_definition_version,
      process_instance_id, command_param, executor_id, process_instance_priority, test_flag, task_depend_type,
      failure_strategy, start_time, update_time) VALUES (2, ?, ?, ?, ?, ?, ?, ?, 2, 1, ?, ?)`;
    if (this.env.dialect === 'postgresql') {
      const [out] = await this.db.query<{ id: number }>(`${this.q(insert)} RETURNING id`, values);
      return Number(out?.id);
    }
    return this.db.transaction(async (tx) => {
      await tx.query(insert, values);
      const [out] = await tx.query<{ id: number | string }>('SELECT LAST_INSERT_ID() AS id');
      return Number(out?.id);
    });
  }

  private async seedTasks(): Promise<void> {
    const ids: number[] = [];
    for (const task of this.plan.tasks) {
      const host = this.hostOf(task.worker);
      const params = [`chaos-${task.key}`, task.state, this.wall(Date.now() - 600_000), host];
      const insert = `INSERT INTO t_ds_task_instance (name, task_type, task_code, process_instance_id, state, submit_time, host)
        VALUES (?, 'SHELL', 1, 1, ?, ?, ?)`;
      if (this.env.dialect === 'postgresql') {
        const [out] = await this.db.query<{ id: number }>(`${this.q(insert)} RETURNING id`, params);
        ids.push(Number(out?.id));
      } else {
        ids.push(
          await this.db.transaction(async (tx) => {
            await tx.query(insert, params);
            const [out] = await tx.query<{ id: number | string }>('SELECT LAST_INSERT_ID() AS id');
            return Number(out?.id);
          }),
        );
      }
    }
    for (const [id, row] of await this.readRows(ids, 't_ds_task_instance')) this.taskSeeds.set(id, row);
  }

  private async readRows(ids: readonly number[], table = 't_ds_process_instance'): Promise<Map<number, Row>> {
    const out = new Map<number, Row>();
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      if (chunk.length === 0) continue;
      const rows = await this.db.query<Record<string, unknown>>(
        this.q(`SELECT * FROM ${table} WHERE id IN (${chunk.map(() => '?').join(', ')})`),
        chunk,
      );
      for (const row of rows) out.set(Number(row.id), normalize(row));
    }
    return out;
  }

  // --- chaos ------------------------------------------------------------------------------------------

  private async chaos(): Promise<void> {
    this.note(`chaos starts (${this.plan.chaosMs} ms, ${this.plan.actions.length} actions)`);
    const start = Date.now();
    const runs = this.plan.actions.map(async (action, index) => {
      await sleep(Math.max(0, start + action.at - Date.now()));
      try {
        await within(this.perform(action), 45_000, action.kind);
      } catch (error: unknown) {
        this.note(
          `#${index} ${action.kind} failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    });
    await sleep(Math.max(0, start + this.plan.chaosMs - Date.now()));
    await this.stopFaults();
    this.note('chaos ends: faults off, fault-injecting runtime stopped');
    await within(Promise.all(runs), 60_000, 'the last chaos actions');
  }

  private async stopFaults(): Promise<void> {
    this.env.dynamoProxy.heal();
    this.env.sqsProxy.heal();
    this.env.dbProxy.roundTripMs = 0;
    if (this.faulty !== undefined) {
      await this.faulty.killContainers('failover');
      await this.faulty.stop();
    }
  }

  private liveMasters(except?: string): ServerHandle[] {
    return [...this.servers.values()].filter(
      (s) => s.nodeType === 'master' && s.current !== undefined && s.host !== except,
    );
  }

  private async perform(action: DsAction): Promise<void> {
    switch (action.kind) {
      case 'kill-server':
        return this.serverOp(action.server, async () => {
          await this.zkGate;
          const fake = this.servers.get(action.server);
          if (fake === undefined) return;
          const current = fake.current;
          const at = (await this.env.agent.kill(`ds${this.options.slot}/${fake.name}`)) ?? Date.now();
          if (current !== undefined) current.removedAt = at;
          this.killedResolvers.get(action.server)?.(at);
          this.note(`killed ${action.server} (${fake.host})`);
          if (fake.nodeType === 'master' && this.plan.ds.onRemovalDelayMs !== null)
            this.dolphinSchedulerReacts(fake.host);
        });
      case 'restart-server': {
        const host = this.hostOf(action.server);
        if (action.duringFailoverDelayMs !== undefined) {
          const killed = await this.killedAt.get(action.server);
          const seen = await this.waitForLog(
            (e) => e.message === 'failover started' && e.host === host,
            2_500,
            killed,
          );
          await sleep(action.duringFailoverDelayMs);
          this.note(
            `restart of ${action.server} ${seen ? 'during its failover' : '(its failover did not start in time)'}`,
          );
        }
        await this.killedAt.get(action.server);
        return this.serverOp(action.server, () => this.restart(action.server));
      }
      case 'extra-requests': {
        const killed = await this.killedAt.get(action.server);
        if (killed === undefined) return;
        const requests = action.copies.map((copy) => this.removalRequest(action.server, killed, copy));
        this.note(
          `extra requests for ${action.server} via ${action.via}: ${requests.map((r) => `${r.source}/${r.kind}`).join(', ')}`,
        );
        return this.deliver(requests, action.via);
      }
      case 'bogus-request': {
        const fake = this.servers.get(action.server);
        const current = fake?.current;
        if (fake === undefined || current === undefined) return;
        this.note(`bogus request for live ${action.server} via ${action.via}`);
        return this.deliver(
          [
            FailoverRequestSchema.parse({
              kind: 'Orphaned',
              nodeType: fake.nodeType,
              host: fake.host,
              czxid: current.czxid,
              startupTime: current.startupTime,
              observedAt: Date.now(),
              source: 'operator',
            }),
          ],
          action.via,
        );
      }
      case 'orphan-request': {
        const host = this.staleHost(action.index);
        this.note(`orphan request for stale host ${host} via ${action.via}`);
        return this.deliver(
          [
            FailoverRequestSchema.parse({
              kind: 'Orphaned',
              nodeType: 'master',
              host,
              czxid: null,
              startupTime: null,
              observedAt: Date.now(),
              source: 'sweep',
            }),
          ],
          action.via,
        );
      }
      case 'concurrent-invokes': {
        const requests = action.servers.map((name) => {
          const fake = this.servers.get(name);
          const first = fake?.incarnations[0];
          if (fake === undefined || first === undefined) throw new Error(`no server ${name}`);
          return FailoverRequestSchema.parse({
            kind: 'NodeRemoved',
            nodeType: fake.nodeType,
            host: fake.host,
            czxid: first.czxid,
            startupTime: first.startupTime,
            observedAt: first.removedAt ?? Date.now(),
            source: 'operator',
          });
        });
        this.note(
          `${action.count} concurrent invocations (${action.target}) for ${action.servers.join(', ')}`,
        );
        const invocations: Promise<unknown>[] = [];
        for (let i = 0; i < action.count; i += 1) {
          const target = action.target === 'both' ? (i % 2 === 0 ? 'healthy' : 'faulty') : action.target;
          invocations.push(
            this.invoke(
              target,
              this.exec.shuffle(requests).map((r) => JSON.stringify(r)),
            ),
          );
        }
        await Promise.allSettled(invocations);
        return;
      }
      case 'kill-containers': {
        const runtime = action.target === 'faulty' ? this.faulty : this.healthy;
        if (runtime === undefined) return;
        if (action.afterStartMs !== undefined) {
          const seen = await this.waitForLog(
            (e) => e.runtime === action.target && e.message === 'failover started',
            Math.max(500, this.chaosStart + this.plan.chaosMs - Date.now()),
          );
          if (!seen) {
            this.note(`no ${action.target} failover started: containers not killed`);
            return;
          }
          await sleep(action.afterStartMs);
        }
        await runtime.killContainers('failover');
        this.count('containers killed');
        this.note(`killed the ${action.target} failover containers`);
        return;
      }
      case 'zk-restart': {
        const node = this.env.stack.zookeeper.nodes[0];
        if (node === undefined) return;
        let open!: () => void;
        this.zkGate = new Promise((resolve) => {
          open = resolve;
        });
        try {
          await node.stop();
          this.note(`ZooKeeper stopped for ${action.downMs} ms`);
          await sleep(action.downMs);
          await node.start();
          this.note('ZooKeeper started again');
        } finally {
          open();
        }
        return;
      }
      case 'watcher-expire': {
        const session = await this.env.agent.expireWatcher(this.env.stack.zookeeper.connectString);
        this.note(
          session === null ? 'no watcher session to expire' : `expired the watcher session ${session}`,
        );
        return;
      }
      case 'watcher-overlap':
        this.note(`a second watcher window for ${action.durationMs} ms`);
        await this.env.agent.overlapWindow(this.target(), action.durationMs);
        return;
      case 'mutate-item': {
        if (action.afterFailoverStartMs !== undefined) {
          const owner = this.plan.instances.find((i) => i.key === action.item)?.owner;
          const host = owner?.kind === 'server' ? this.hostOf(owner.server) : undefined;
          let since = owner?.kind === 'server' ? await this.killedAt.get(owner.server) : undefined;
          if (action.change === 'claim-self' && owner?.kind === 'server') {
            // The restarted incarnation re-takes it: after it registered, during a failover that started since.
            const server = this.servers.get(owner.server);
            for (let i = 0; i < 60 && server?.incarnations[1] === undefined; i += 1) await sleep(50);
            since = server?.incarnations[1]?.registeredAt ?? since;
          }
          await this.waitForLog(
            (e) =>
              e.message === 'failover started' && e.host === host && (since === undefined || e.at >= since),
            Math.max(500, this.chaosStart + this.plan.chaosMs + 2_000 - Date.now()),
          );
          await sleep(action.afterFailoverStartMs);
        }
        return this.mutate(action.item, action.change);
      }
      case 'zombie-takeover': {
        let started: LogEvent | undefined;
        const seen = await this.waitForLog(
          (e) => {
            const hit = e.runtime === 'faulty' && e.message === 'failover started' && e.host !== undefined;
            if (hit) started = e;
            return hit;
          },
          Math.max(500, this.chaosStart + this.plan.chaosMs - Date.now()),
        );
        const server = [...this.servers.values()].find((s) => s.host === started?.host);
        const first = server?.incarnations[0];
        if (!seen || server === undefined || first === undefined) {
          this.note('zombie takeover: no fault-injecting failover started');
          return;
        }
        await sleep((this.plan.faulty?.leaseMs ?? 0) + action.afterLeaseMs);
        this.note(
          `zombie takeover: a healthy function for ${server.name} while the fault-injecting one may stall`,
        );
        await this.invoke('healthy', [
          JSON.stringify(
            FailoverRequestSchema.parse({
              kind: 'NodeRemoved',
              nodeType: server.nodeType,
              host: server.host,
              czxid: first.czxid,
              startupTime: first.startupTime,
              observedAt: first.removedAt ?? Date.now(),
              source: 'operator',
            }),
          ),
        ]);
        return;
      }
      case 'poison': {
        this.note(`${action.bodies.length} poison message(s) via ${action.via}`);
        if (action.via === 'queue') {
          for (const body of action.bodies) {
            await this.env.stack.clients.sqs.send(
              new SendMessageCommand({
                QueueUrl: this.env.stack.info.queues.failover,
                MessageBody: body,
                MessageGroupId: `poison-${this.exec.next()}`,
                MessageDeduplicationId: `poison-${this.exec.next()}-${Date.now()}`,
              }),
            );
          }
          return;
        }
        await this.invoke(action.via === 'invoke-faulty' ? 'faulty' : 'healthy', [...action.bodies]);
        return;
      }
      case 'outage': {
        const proxy = action.service === 'dynamodb' ? this.env.dynamoProxy : this.env.sqsProxy;
        proxy.outage(action.ms, action.fault);
        this.note(`${action.service} outage (${action.fault}) for ${action.ms} ms`);
        return;
      }
      case 'db-kill-connections': {
        await this.afterFailoverStart(action.afterFailoverStartMs);
        const killed = await this.onFunctionConnections(action.which, (ids) => killConnections(this.db, ids));
        this.count('db connections killed', killed);
        this.note(`killed ${killed} database connection(s) of the function (${action.which})`);
        return;
      }
      case 'db-cancel-statements': {
        await this.afterFailoverStart(action.afterFailoverStartMs);
        const cancelled = await this.onFunctionConnections('busy', (ids) => cancelStatements(this.db, ids));
        this.count('db statements cancelled', cancelled);
        this.note(`cancelled the statements of ${cancelled} function connection(s)`);
        return;
      }
      case 'db-drop-connections': {
        await this.afterFailoverStart(action.afterFailoverStartMs);
        const cut = this.env.dbProxy.dropConnections();
        this.count('db connections cut', cut);
        this.note(`cut ${cut} proxied database socket(s)`);
        return;
      }
      case 'db-restart': {
        this.note(`database server restarting (down ${action.downMs} ms)`);
        const restart = this.env.restartDatabase(action.downMs).then(
          () => this.note('database server back'),
          (error: unknown) => this.note(`database restart failed: ${String(error)}`),
        );
        this.track(restart, this.background);
        this.count('db restarts');
        await restart;
        return;
      }
      case 'db-slow': {
        const base = this.plan.databaseRoundTripMs;
        this.env.dbProxy.roundTripMs = action.roundTripMs;
        this.note(`slow database: ${action.roundTripMs} ms round trip for ${action.ms} ms`);
        await sleep(action.ms);
        if (this.env.dbProxy.roundTripMs === action.roundTripMs) this.env.dbProxy.roundTripMs = base;
        return;
      }
      case 'db-lock-hold': {
        const host = this.hostOf(action.server);
        const ids = this.exec.sample(this.executingOf(host), action.rows);
        await this.holdLocks(ids, action.holdMs, `${ids.length} row(s) of ${action.server}`);
        return;
      }
      case 'zk-cut-function': {
        await this.afterFailoverStart(action.afterFailoverStartMs);
        const cut = this.env.zkProxy.dropConnections();
        this.count('function zookeeper connections cut', cut);
        this.note(`cut ${cut} ZooKeeper socket(s) of the function`);
        return;
      }
      case 'session-loss-under-lock': {
        const host = this.hostOf(action.server);
        const ids = this.executingOf(host);
        const since = Date.now();
        const hold = this.holdLocks(ids, action.holdMs, `every executing row of ${action.server}`);
        const killed = await this.killedAt.get(action.server);
        const seen = await this.waitForLog(
          (e) => e.message === 'failover started' && e.host === host,
          Math.max(500, this.chaosStart + this.plan.chaosMs - Date.now()),
          Math.max(since, killed ?? since),
        );
        if (!seen) {
          this.note(`session loss under lock: no function failover of ${action.server} started in time`);
          await hold;
          return;
        }
        // Once one of its writes waits for a locked row (or after 3 s): the write is in flight.
        const waiting = await this.onFunctionConnections('busy', async (ids) => ids.length, 3_000);
        this.note(`session loss under lock: ${waiting} function statement(s) in flight`);
        await sleep(action.cutAfterMs);
        const cut = this.env.zkProxy.dropConnections();
        this.count('function zookeeper connections cut', cut);
        this.note(
          `session loss under lock: cut ${cut} ZooKeeper socket(s) of the function during ${action.server}'s failover`,
        );
        await hold;
        return;
      }
      case 'stale-read': {
        const fake = this.servers.get(action.server);
        const killed = await this.killedAt.get(action.server);
        const first = fake?.incarnations[0];
        const master = this.liveMasters(fake?.host).find(
          (m) => this.plan.servers.find((s) => s.name === m.name)?.fate === 'lives',
        );
        if (fake === undefined || killed === undefined || first === undefined || master === undefined) return;
        this.env.dynamoProxy.configure(
          { rate: 1, kinds: { slow: 1 }, holdMs: [action.holdMs, action.holdMs] },
          (this.plan.seed ^ 0x51e7) >>> 0,
        );
        // Two variants, by the server's fate: a master that restarts takes its instances back (same host, a
        // new restart time: only the F3 bound rejects the stale page); one that stays dead leaves them
        // pending (the masters are busy: only the host condition rejects it).
        const restarts = this.plan.servers.find((s) => s.name === action.server)?.fate === 'restarts';
        this.note(
          `stale read: every DynamoDB call slow (${action.holdMs} ms) as ${action.server} is removed; ` +
            (restarts
              ? 'it restarts and takes its instances back'
              : 'its failed-over instances stay pending'),
        );
        if (!restarts) await this.env.dsAgent.pauseConsumers(action.holdMs + 500);
        else {
          this.track(
            (async () => {
              await sleep(250);
              await this.serverOp(action.server, () => this.restart(action.server));
            })(),
            this.background,
          );
        }
        const ours = this.invoke('healthy', [
          JSON.stringify(
            FailoverRequestSchema.parse({
              kind: 'NodeRemoved',
              nodeType: 'master',
              host: fake.host,
              czxid: first.czxid,
              startupTime: first.startupTime,
              observedAt: killed,
              source: 'operator',
            }),
          ),
        ]);
        const theirs = this.env.dsAgent.failOver(master.host, fake.host, 90_000);
        this.track(theirs, this.background);
        await sleep(action.holdMs);
        this.env.dynamoProxy.configure(this.plan.proxy.dynamodb, (this.plan.seed ^ 0xd1d1) >>> 0);
        this.note("stale read: DynamoDB calls back to the run's fault profile");
        await Promise.allSettled([ours, theirs]);
        return;
      }
      case 'sweep': {
        const summary = await this.sweep('proxied');
        this.note(`sweep during the chaos: ${summary === undefined ? 'failed' : describeSweep(summary)}`);
        return;
      }
      case 'ds-periodic-check': {
        const masters = this.liveMasters();
        if (masters.length === 0) return;
        const master = this.exec.pick(masters);
        this.note(`dolphinscheduler ${master.name} runs its periodic failover check`);
        const op = this.env.dsAgent.periodicCheck(master.host, 90_000);
        this.track(op, this.background);
        await op.catch(() => undefined);
        return;
      }
    }
  }

  /** Every live DolphinScheduler master fails the removed master over itself (3.2, on the registry event). */
  private dolphinSchedulerReacts(deadHost: string): void {
    for (const master of this.liveMasters(deadHost)) {
      const delay = (this.plan.ds.onRemovalDelayMs ?? 0) + this.exec.int(0, 100);
      const op = (async () => {
        await sleep(delay);
        this.note(`dolphinscheduler ${master.name} fails ${deadHost} over (on its removal)`);
        return this.env.dsAgent.failOver(master.host, deadHost, 90_000);
      })();
      this.track(op, this.background);
    }
  }

  private executingOf(host: string): number[] {
    return [...this.tracked.values()]
      .filter((i) => i.reference.host === host && EXECUTING.includes(Number(i.reference.state)))
      .map((i) => i.id);
  }

  /** A competing transaction holding row locks; the heal waits for it (it is a transient fault). */
  private async holdLocks(ids: readonly number[], holdMs: number, what: string): Promise<void> {
    if (ids.length === 0) return;
    const held = await holdRowLocks(this.env.scheduler, ids, holdMs);
    this.releaseHolds.push(held.release);
    this.count('db lock holds');
    this.note(`a competing transaction locks ${held.locked} ${what} for ${holdMs} ms`);
    this.track(held.done, this.background);
    await held.done;
    this.note(`the competing transaction released ${what}`);
  }

  /** Polls for the function's connections for a short while and applies `act` to the first found. */
  private async onFunctionConnections(
    which: 'busy' | 'all',
    act: (ids: number[]) => Promise<number>,
    windowMs = 800,
  ): Promise<number> {
    const tagged = new Set<number>([
      ...this.env.harness.connectionIds(),
      ...this.env.scheduler.connectionIds(),
      ...(this.env.dialect === 'mysql' ? await this.env.dsAgent.connectionIds().catch(() => []) : []),
    ]);
    const deadline = Date.now() + windowMs;
    while (Date.now() < deadline) {
      const ids = await functionConnections(this.db, tagged, which).catch(() => [] as number[]);
      if (ids.length > 0) return act(ids);
      await sleep(10);
    }
    return 0;
  }

  private async restart(name: string): Promise<void> {
    await this.zkGate;
    const server = this.servers.get(name);
    if (server === undefined) return;
    if (server.incarnations.length > 1 && server.current !== undefined) {
      this.note(`${name} restarted already (stale read)`);
      return;
    }
    if (server.current !== undefined) {
      const current = server.current;
      current.removedAt = (await this.env.agent.kill(`ds${this.options.slot}/${name}`)) ?? Date.now();
    }
    const startupTime = Date.now();
    server.incarnations.push(await this.register(server, startupTime));
    this.note(`restarted ${name} (startupTime ${startupTime})`);
    await this.seedInstances(
      this.plan.instances.filter(
        (i) => i.owner.kind === 'server' && i.owner.server === name && i.owner.incarnation === 'second',
      ),
      Date.now(),
    );
  }

  private removalRequest(name: string, killedAt: number, variant: DsRequestVariant): FailoverRequest {
    const fake = this.servers.get(name);
    const first = fake?.incarnations[0];
    if (fake === undefined || first === undefined) throw new Error(`no server ${name}`);
    const second = fake.incarnations[1];
    const until = second === undefined ? Date.now() : Math.min(Date.now(), second.startupTime - 1);
    const observedAt = killedAt + Math.floor(variant.observed * Math.max(0, until - killedAt));
    return FailoverRequestSchema.parse({
      kind: variant.kind,
      nodeType: fake.nodeType,
      host: fake.host,
      czxid: variant.identity === 'known' ? first.czxid : null,
      startupTime: variant.identity === 'known' ? first.startupTime : null,
      observedAt,
      source: variant.source,
    });
  }

  private recordingQueue(producer: string, queue: FailoverRequestQueue): FailoverRequestQueue {
    return {
      send: async (requests) => {
        const at = Date.now();
        try {
          await queue.send(requests);
        } finally {
          for (const r of requests) this.recordRequest(at, producer, r);
        }
      },
    };
  }

  private async deliver(requests: readonly FailoverRequestInput[], via: DsVia): Promise<void> {
    if (via === 'queue') {
      await this.recordingQueue(
        'chaos',
        new SqsFailoverRequestQueue(this.env.stack.clients.sqs, this.env.stack.info.queues.failover),
      ).send(requests);
      return;
    }
    await this.invoke(
      via === 'invoke-faulty' ? 'faulty' : 'healthy',
      requests.map((r) => JSON.stringify(FailoverRequestSchema.parse(r))),
    );
  }

  private invoke(target: RuntimeLabel, bodies: readonly string[]): Promise<unknown> {
    const runtime = target === 'faulty' ? (this.faulty ?? this.healthy) : this.healthy;
    if (runtime === undefined) return Promise.resolve(undefined);
    const at = Date.now();
    for (const body of bodies) {
      const parsed = FailoverRequestSchema.safeParse(safeJson(body));
      if (parsed.success) this.recordRequest(at, `invoke-${target}`, parsed.data);
    }
    const promise = runtime.invoke('failover', sqsEvent(bodies));
    this.track(promise);
    return promise.catch((error: unknown) => error);
  }

  /** The scheduler changes an instance, conditional on it not being failed over yet (host and state as last written). */
  private async mutate(key: string, change: DsChange): Promise<void> {
    const id = this.keyToId.get(key);
    const item = id === undefined ? undefined : this.tracked.get(id);
    if (id === undefined || item === undefined) return;
    const ref = item.reference;
    const ownerHost = String(ref.host);
    const owner = [...this.servers.values()].find((s) => s.host === ownerHost);
    let effective = change;
    if (change === 'claim-self' && (owner?.incarnations[1] === undefined || owner.current === undefined)) {
      effective = 'claim';
    }
    const now = this.storedTime(Date.now(), 'up');
    let set: string;
    const params: unknown[] = [];
    switch (effective) {
      case 'claim': {
        const master = this.exec.shuffle(
          this.liveMasters(ownerHost).filter(
            (m) => this.plan.servers.find((s) => s.name === m.name)?.fate === 'lives',
          ),
        )[0];
        if (master === undefined) return;
        set = 'host = ?, restart_time = ?';
        params.push(master.host, this.wall(now));
        break;
      }
      case 'claim-self':
        set = 'restart_time = ?';
        params.push(this.wall(now));
        break;
      case 'stop':
        set = 'state = 5, end_time = ?';
        params.push(this.wall(now));
        break;
      case 'ready-stop':
        set = 'state = 4';
        break;
    }
    // Not failed over yet: host, state and restart time as last written (a master that took it over and
    // gave it back its old host name stamped a new restart time).
    const restart = ref.restart_time ?? null;
    const rows = await this.env.scheduler.transaction(async (tx) => {
      await tx.query(
        this.q(
          `UPDATE t_ds_process_instance SET ${set} WHERE id = ? AND host = ? AND state = ? AND ` +
            (restart === null ? 'restart_time IS NULL' : 'restart_time = ?'),
        ),
        [...params, id, ownerHost, Number(ref.state), ...(restart === null ? [] : [restart])],
      );
      return tx.affectedRows();
    });
    if (rows === 0) {
      this.note(`scheduler ${effective} ${key} (${id}): too late (already failed over)`);
      return;
    }
    const reference = (await this.readRows([id])).get(id);
    if (reference === undefined) return;
    this.tracked.set(id, {
      ...item,
      reference,
      ...(effective === 'claim' || effective === 'claim-self' ? { restartTime: now } : {}),
      change: effective,
    });
    this.note(`scheduler ${effective} ${key} (${id}): applied`);
  }

  // --- heal and settle --------------------------------------------------------------------------------

  private async heal(): Promise<void> {
    await this.stopFaults();
    await this.zkGate;
    const node = this.env.stack.zookeeper.nodes[0];
    if (node !== undefined && !node.running()) await node.start();
    await this.env.databaseUp();
    await within(Promise.allSettled([...this.pending]), 30_000, 'direct invocations');
    this.note('healed: no more faults');
  }

  private async settle(): Promise<{ settled: boolean; problem?: string }> {
    const settleMs = this.options.settleMs ?? 75_000;
    const deadline = Date.now() + settleMs;
    let last = '';
    let lastSweep = 0;
    for (let round = 0; Date.now() < deadline && round < 2_000; round += 1) {
      const busy = await this.busy().catch((error: unknown) => `settle check failed: ${String(error)}`);
      // The sweep requests the orphans no request covers and repairs what has no owner and no command.
      if (busy === undefined || Date.now() - lastSweep > 2_000) {
        lastSweep = Date.now();
        const summary = await this.sweep('direct');
        if (summary !== undefined && !sweepIsQuiet(summary)) this.note(`sweep: ${describeSweep(summary)}`);
        if (busy === undefined && summary !== undefined && sweepIsQuiet(summary)) {
          // Quiet twice, a second apart: a request redelivered just now would start a run after the check.
          await sleep(1_000);
          const after = await this.busy().catch((error: unknown) => `settle check failed: ${String(error)}`);
          if (after === undefined) {
            this.note(`settled (${round} rounds)`);
            return { settled: true };
          }
          last = after;
        } else {
          last = busy ?? `sweep: ${summary === undefined ? 'failed' : describeSweep(summary)}`;
        }
      } else {
        last = busy;
      }
      await sleep(300);
    }
    this.note(`not settled: ${last}`);
    return { settled: false, problem: `not quiescent ${settleMs} ms after the faults stopped: ${last}` };
  }

  /** What is still in progress, or undefined. */
  private async busy(): Promise<string | undefined> {
    if (this.pending.size > 0) return `${this.pending.size} direct invocation(s) running`;
    if (this.background.size > 0)
      return `${this.background.size} DolphinScheduler operation(s) or fault(s) running`;
    const dsBusy = await this.env.dsAgent.busy();
    if (dsBusy > 0) return `${dsBusy} DolphinScheduler failover(s) running`;
    const { sqs, dynamodb } = this.env.stack.clients;
    const { queues, tables } = this.env.stack.info;
    const a =
      (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queues.failover, AttributeNames: ['All'] })))
        .Attributes ?? {};
    const queued =
      Number(a.ApproximateNumberOfMessages ?? 0) +
      Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) +
      Number(a.ApproximateNumberOfMessagesDelayed ?? 0);
    if (queued > 0) return `failover queue holds ${queued} request(s)`;
    const now = Date.now();
    const held = (await scanAll(dynamodb, tables.locks)).filter(
      (l) => l.owner !== undefined && Number(l.leaseExpiresAt ?? 0) > now,
    );
    if (held.length > 0) return `lease(s) held: ${held.map((l) => l.name).join(', ')}`;
    const rows = await dynamodb.send(new ScanCommand({ TableName: tables.servers, ConsistentRead: true }));
    const waiting = (rows.Items ?? []).filter((r) => Object.keys(r.pending?.M ?? {}).length > 0);
    if (waiting.length > 0) {
      // A request sent whose pending entry could not be cleared is re-sent (and cleared) by the next watcher
      // invocation, once a minute in production: a short window stands in for it.
      if (Date.now() - this.lastWatcherWindow > 3_000) {
        this.lastWatcherWindow = Date.now();
        this.note('the next watcher invocation (a short window) for the mirror rows left pending');
        await this.env.agent.overlapWindow(this.target(), 1_500).catch(() => undefined);
      }
      return `mirror rows with unsent requests: ${waiting.map((r) => r.id?.S).join(', ')}`;
    }
    const nodes = await this.env.dsAgent.lockNodes(this.root);
    if (nodes.length > 0) return `DolphinScheduler lock node(s) left: ${nodes.join(', ')}`;
    if (this.plan.ds.consumeEveryMs !== null && (await this.aConsumerIsRegistered())) {
      const [row] = await this.db.query<{ n: number | string }>('SELECT count(*) AS n FROM t_ds_command');
      if (Number(row?.n ?? 0) > 0) return `${row?.n} command(s) not consumed yet`;
    }
    return undefined;
  }

  private lastWatcherWindow = 0;

  /** Whether a master that consumes commands is registered (a live master may die by session expiry). */
  private async aConsumerIsRegistered(): Promise<boolean> {
    const registry = new Map(await this.env.agent.listRegistry(this.target()));
    return this.plan.servers.some(
      (s) => s.nodeType === 'master' && s.fate !== 'dies' && registry.has(`master/${this.hostOf(s.name)}`),
    );
  }

  /** One sweep (DESIGN D5) in the registry agent, its grace periods compressed to 0. */
  private async sweep(via: 'proxied' | 'direct'): Promise<SweepSummary | undefined> {
    try {
      const result = (await this.env.agent.dsSweep(
        this.target(),
        via,
        { url: this.env.database.url, dialect: this.env.dialect },
        this.plan.timeZone,
      )) as SweepSummary | { error: string };
      if ('error' in result) {
        this.note(`sweep failed: ${result.error}`);
        return undefined;
      }
      return result;
    } catch (error: unknown) {
      this.note(`sweep failed: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
  }

  // --- observe ----------------------------------------------------------------------------------------

  private async observe(settled: { settled: boolean; problem?: string }): Promise<DsObservations> {
    if (this.plan.ds.consumeEveryMs !== null) await this.env.dsAgent.stopConsumers();
    const end = Date.now();
    const { dynamodb, sqs } = this.env.stack.clients;
    const { tables, queues } = this.env.stack.info;
    const registry = new Map(
      (await this.env.agent.listRegistry(this.target())).map(
        ([id, r]) => [id, { startupTime: r.startupTime }] as const,
      ),
    );
    const ids = [...this.tracked.keys()];
    const finalRows = await this.readRows(ids);
    const states = EXECUTING.join(', ');
    const sqlNullHost = (
      await this.db.query<{ id: number }>(
        `SELECT id FROM t_ds_process_instance WHERE host IS NULL AND state IN (${states})`,
      )
    ).map((r) => Number(r.id));
    const nullHostWithoutCommand = (
      await this.db.query<{ id: number }>(
        `SELECT i.id FROM t_ds_process_instance i WHERE i.host = 'NULL' AND i.state IN (${states})
           AND NOT EXISTS (SELECT 1 FROM t_ds_command c WHERE c.process_instance_id = i.id)`,
      )
    ).map((r) => Number(r.id));
    const pendingCommandIds = new Set(
      (await this.db.query<{ id: number }>('SELECT id FROM t_ds_command')).map((r) => Number(r.id)),
    );
    const errorCommands = (
      await this.db.query<{ id: number; process_instance_id: number; message: string | null }>(
        'SELECT id, process_instance_id, message FROM t_ds_error_command',
      )
    ).map((r) => ({
      id: Number(r.id),
      instanceId: Number(r.process_instance_id),
      message: String(r.message ?? ''),
    }));
    const taskChanges: string[] = [];
    const taskRows = await this.readRows([...this.taskSeeds.keys()], 't_ds_task_instance');
    for (const [id, seed] of this.taskSeeds) {
      const now = taskRows.get(id);
      const diff = Object.keys(seed).filter((k) => seed[k] !== now?.[k]);
      if (now === undefined || diff.length > 0) taskChanges.push(`task ${id}: ${diff.join(', ') || 'gone'}`);
    }
    const journal = await this.readJournal();
    const leasesHeld = (await scanAll(dynamodb, tables.locks))
      .filter((l) => l.owner !== undefined && Number(l.leaseExpiresAt ?? 0) > Date.now())
      .map((l) => String(l.name));
    // Poison belongs in the DLQ; a valid request there gave up (its host is checked like any other).
    const dlq = await consumeQueue(sqs, queues.failoverDlq);
    this.deadLettered = dlq.filter((m) => FailoverRequestSchema.safeParse(safeJson(m.body)).success).length;
    return {
      instances: [...this.tracked.values()],
      finalRows,
      registry,
      commandLog: await readCommandLog(this.db),
      instanceLog: await readInstanceLog(this.db),
      pendingCommandIds,
      errorCommands,
      sqlNullHost,
      nullHostWithoutCommand,
      taskChanges,
      journal,
      dsLockHolds: await this.env.dsAgent.lockHolds(),
      leasesHeld,
      dsLockNodes: await this.env.dsAgent.lockNodes(this.root),
      commandTimeWindow: { from: this.chaosStart, to: end },
      instantOf: (text) => epochOfWallClock(text, this.plan.timeZone),
      dialect: this.env.dialect,
      settled: settled.settled,
      ...(settled.problem === undefined ? {} : { settleProblem: settled.problem }),
    };
  }

  /** The run journal (D6): every committed batch the function recorded, from the commands table. */
  private async readJournal(): Promise<DsJournalEntry[]> {
    const { dynamodb } = this.env.stack.clients;
    const entries: DsJournalEntry[] = [];
    let start: Record<string, AttributeValue> | undefined;
    for (let page = 0; page < 1_000; page += 1) {
      const out = await dynamodb.send(
        new ScanCommand({
          TableName: this.env.stack.info.tables.commands,
          ConsistentRead: true,
          FilterExpression: 'begins_with(id, :p)',
          ExpressionAttributeValues: { ':p': { S: 'journal/' } },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) {
        const list = (key: string) => (item[key]?.L ?? []).map((v) => v.S ?? '');
        const commandIds = list('commandIds');
        entries.push({
          host: item.host?.S ?? '',
          fence: Number(item.fence?.N ?? Number.NaN),
          receipts: list('instanceIds').map((itemId, i) => ({ itemId, commandId: commandIds[i] ?? '' })),
        });
      }
      start = out.LastEvaluatedKey;
      if (start === undefined) break;
    }
    return entries;
  }

  private async diagnose(
    violations: ReadonlyArray<{ subject: string; detail: string }>,
    o: DsObservations,
  ): Promise<void> {
    const instanceIds = new Set<number>();
    // Verbose: every host of the run, violations or not.
    const hosts = new Set<string>(this.options.trace === undefined ? [] : this.hosts.values());
    for (const v of violations.slice(0, 12)) {
      for (const m of `${v.subject}`.matchAll(/instance (\d+)/g)) instanceIds.add(Number(m[1]));
      for (const m of `${v.subject} ${v.detail}`.matchAll(/\d+\.\d+\.\d+\.\d+:\d+/g)) hosts.add(m[0]);
    }
    for (const id of [...instanceIds].slice(0, 8)) {
      const t = o.instances.find((i) => i.id === id);
      if (t !== undefined) hosts.add(String(t.reference.host));
      const lines = [
        `reference: host ${t?.reference.host} state ${t?.reference.state} start ${t?.reference.start_time} restart ${t?.reference.restart_time}`,
        `final: host ${o.finalRows.get(id)?.host} state ${o.finalRows.get(id)?.state} restart ${o.finalRows.get(id)?.restart_time}`,
        ...o.instanceLog
          .filter((u) => u.instanceId === id)
          .map(
            (u) =>
              `+${u.at - this.chaosStart} ms update by ${u.writer}: host ${u.oldHost} -> ${u.newHost}, state ${u.oldState} -> ${u.newState}, restart ${u.oldRestartTime} -> ${u.newRestartTime}`,
          ),
        ...o.commandLog
          .filter((c) => c.instanceId === id)
          .map(
            (c) =>
              `+${c.at - this.chaosStart} ms command ${c.commandId} ${c.op === 'I' ? 'inserted' : 'deleted'} by ${c.writer}`,
          ),
      ];
      this.diagnostics[`instance ${id}`] = lines;
    }
    for (const host of [...hosts].slice(0, this.options.trace === undefined ? 6 : 20)) {
      const lines: string[] = [];
      const fake = [...this.servers.entries()].find(([, f]) => f.host === host);
      if (fake !== undefined) {
        lines.push(
          `server ${fake[0]}: ${fake[1].incarnations
            .map(
              (i) =>
                `czxid ${i.czxid} startupTime +${i.startupTime - this.chaosStart} registered +${i.registeredAt - this.chaosStart}` +
                (i.removedAt === undefined ? '' : ` removed +${i.removedAt - this.chaosStart}`),
            )
            .join('; ')}`,
        );
      }
      const live = o.registry.get(`master/${host}`);
      if (live !== undefined)
        lines.push(`registry at the end: startupTime +${live.startupTime - this.chaosStart}`);
      for (const h of o.dsLockHolds.filter((x) => x.deadHost === host)) {
        lines.push(
          `dolphinscheduler ${h.master} held the failover lock +${h.acquiredAt - this.chaosStart}..+${(h.releasedAt ?? Number.NaN) - this.chaosStart} ms`,
        );
      }
      lines.push(...(this.journalLines.get(host) ?? []).map((l) => `request ${l}`));
      lines.push(...(this.hostLogs.get(host) ?? []).map((l) => `log ${l}`));
      this.diagnostics[host] = lines;
    }
  }

  // --- clean up ---------------------------------------------------------------------------------------

  private async cleanup(): Promise<void> {
    this.env.dynamoProxy.heal();
    this.env.sqsProxy.heal();
    this.env.dbProxy.roundTripMs = 0;
    for (const release of this.releaseHolds) release();
    await this.env.agent.stopWatcher().catch(() => undefined);
    for (const runtime of [this.faulty, this.healthy]) {
      if (runtime === undefined) continue;
      await runtime.killContainers('failover').catch(() => undefined);
      await runtime.stop().catch(() => undefined);
    }
    await Promise.allSettled([...this.pending]);
    await this.env.dsAgent.end().catch(() => undefined);
    await within(Promise.allSettled([...this.background]), 60_000, 'background operations').catch(
      () => undefined,
    );
    await this.env.agent.killAll().catch(() => undefined);
    await this.zkGate;
    const node = this.env.stack.zookeeper.nodes[0];
    if (node !== undefined && !node.running()) await node.start();
    await this.env.reset();
    await this.env.agent.removeTree(this.target()).catch(() => undefined);
  }
}

/** A database row as text (numbers as decimal strings), so that two reads compare column by column. */
function normalize(row: Record<string, unknown>): Row {
  const out: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] = v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : String(v);
  }
  return out;
}

interface RepairCounts {
  status?: string;
  sqlNullHosts?: number;
  withoutCommand?: number;
  waiting?: number;
  repaired?: unknown[];
}

function sweepIsQuiet(summary: SweepSummary): boolean {
  const repairs = summary.repairs as RepairCounts | undefined;
  return (
    summary.registry === 'listed' &&
    summary.orphans.length === 0 &&
    summary.removalsRelayed === 0 &&
    (repairs === undefined ||
      (repairs.status === 'done' &&
        (repairs.sqlNullHosts ?? 0) === 0 &&
        (repairs.withoutCommand ?? 0) === 0 &&
        (repairs.repaired ?? []).length === 0))
  );
}

function describeSweep(summary: SweepSummary): string {
  const repairs = summary.repairs as RepairCounts | undefined;
  return (
    `registry ${summary.registry}, orphans [${summary.orphans.map((o) => `${o.nodeType}/${o.host}`).join(', ')}], ` +
    `relayed ${summary.removalsRelayed}` +
    (repairs === undefined
      ? ''
      : `, repairs ${repairs.status}: SQL NULL ${repairs.sqlNullHosts ?? 0}, without command ${repairs.withoutCommand ?? 0}, ` +
        `repaired ${(repairs.repaired ?? []).length}`)
  );
}
