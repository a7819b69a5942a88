// One chaos run: set up the plan's cluster and workload, play its fault timeline against the real pipeline
// (watcher window and sweep in this process, the failover handler in local Lambda containers, all AWS calls
// through the fault proxies), heal, let the system settle, observe everything and check the invariants.
import { randomUUID } from 'node:crypto';
import {
  type AttributeValue,
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import type { FailoverRequestQueue } from '../../lib/failover/ports.ts';
import type { LocalRuntime } from '../../lib/local/runtime.ts';
import { fourLetterWord } from '../../lib/local/zookeeper.ts';
import {
  type FailoverRequest,
  type FailoverRequestInput,
  FailoverRequestSchema,
  failoverRequestGroupId,
  parseCommandMessage,
} from '../../lib/messages.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { scanCommands } from '../../lib/sim/readers.ts';
import { marshalFlat, unmarshalFlat } from '../../lib/store/dynamodb/attributes.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';
import type { SweepSummary } from '../../lib/sweep/sweep.ts';
import type { AgentEvent } from './agent-client.ts';
import type { ChaosEnvironment, RuntimeLabel } from './environment.ts';
import type { ProxyStats } from './fault-proxy.ts';
import {
  type CheckSummary,
  checkInvariants,
  type DlqMessage,
  type Flat,
  type LockRow,
  type TrackedItem,
  type Violation,
} from './invariants.ts';
import { Prng } from './prng.ts';
import { type Incarnation, sleep, within } from './registry-actors.ts';
import type { AgentTarget } from './registry-agent.ts';
import type { Action, ItemPlan, RequestVariant, RunPlan, ServerPlan, Via } from './scenario.ts';

export interface RunOptions {
  /** Distinguishes the hosts, ids and registry root of runs in one process. */
  readonly slot: number;
  /** Longest wait for quiescence after the chaos phase. */
  readonly settleMs?: number;
  /** Progress lines (verbose mode). */
  readonly trace?: (line: string) => void;
}

export interface RunEvent {
  /** Ms since the chaos phase started (negative: setup). */
  readonly t: number;
  readonly what: string;
}

export interface RunReport {
  readonly seed: number;
  readonly plan: RunPlan;
  readonly hosts: Readonly<Record<string, string>>;
  readonly violations: Violation[];
  readonly summary: CheckSummary | undefined;
  readonly events: RunEvent[];
  readonly durations: Record<string, number>;
  readonly proxy: { dynamodb: ProxyStats; sqs: ProxyStats };
  /** Invocation outcomes by runtime. */
  readonly invocations: Record<string, Record<string, number>>;
  /** Counts of the failover function's log messages (lock lost, continuations, ...). */
  readonly logMessages: Record<string, number>;
  readonly logTail: string[];
  /** For each host named by a violation: incarnations, registry, mirror, requests sent, function logs. */
  readonly diagnostics: Record<string, string[]>;
}

interface LogEvent {
  readonly runtime: RuntimeLabel;
  readonly message: string;
  readonly host?: string;
  readonly at: number;
}

/** The chaos process's view of one fake server (the agent holds its session). */
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

const instanceBase = 7_000_000_000;
const priorities = ['HIGHEST', 'HIGH', 'MEDIUM', 'LOW', 'LOWEST'];
const previousHost = '10.250.250.250:5678';

export async function executeRun(
  env: ChaosEnvironment,
  plan: RunPlan,
  options: RunOptions,
): Promise<RunReport> {
  const run = new ChaosRun(env, plan, options);
  return run.execute();
}

class ChaosRun {
  private readonly started = Date.now();
  private chaosStart = this.started;
  private readonly events: Array<{ at: number; what: string }> = [];
  private readonly logTail: string[] = [];
  private readonly logCounts: Record<string, number> = {};
  private readonly logWaiters = new Set<{
    match: (e: LogEvent) => boolean;
    resolve: (hit: boolean) => void;
  }>();
  private readonly logHistory: LogEvent[] = [];
  /** Function log lines that name a host, by host (diagnostics of a violation). */
  private readonly hostLogs = new Map<string, string[]>();
  /** Every failover request this run's actors sent (watcher, sweep, chaos actions), by host. */
  private readonly journal = new Map<string, string[]>();
  private readonly root: string;
  private readonly hosts = new Map<string, string>();
  private readonly servers = new Map<string, ServerHandle>();
  private readonly killedAt = new Map<string, Promise<number>>();
  private readonly killedResolvers = new Map<string, (at: number) => void>();
  private readonly serverOps = new Map<string, Promise<void>>();
  private readonly tracked = new Map<string, TrackedItem>();
  private readonly seededCommandIds = new Set<string>();
  private readonly deliveries = new Map<string, number>();
  private readonly invalidDeliveries: string[] = [];
  private readonly poisonQueued: string[] = [];
  private readonly poisonInvoked: string[] = [];
  private readonly pendingInvocations = new Set<Promise<unknown>>();
  private readonly exec: Prng;
  private faulty: LocalRuntime | undefined;
  private drainStopped = false;
  private drainLoop: Promise<void> | undefined;
  private zkGate: Promise<void> = Promise.resolve();
  private readonly healthyInvocationsBefore: number;
  private readonly durations: Record<string, number> = {};
  private readonly diagnostics: Record<string, string[]> = {};
  /** The servers table at the end, raw (diagnostics). */
  private mirrorAtEnd: Array<Record<string, AttributeValue>> = [];

  constructor(
    private readonly env: ChaosEnvironment,
    private readonly plan: RunPlan,
    private readonly options: RunOptions,
  ) {
    this.root = `/chaos/s${options.slot}`;
    this.exec = new Prng(plan.seed).fork('execution');
    const base = `10.${100 + (Math.floor(options.slot / 250) % 150)}.${options.slot % 250}`;
    plan.servers.forEach((server, i) => {
      this.hosts.set(server.name, `${base}.${i + 1}:${server.nodeType === 'master' ? 5678 : 1234}`);
    });
    this.healthyInvocationsBefore = env.healthy.invocations().length;
  }

  // --- bookkeeping ----------------------------------------------------------------------------------

  private note(what: string): void {
    this.events.push({ at: Date.now(), what });
    this.options.trace?.(`  [${Date.now() - this.started} ms] ${what}`);
  }

  private zkConnect(): string {
    return this.plan.ensemble
      ? (this.ensembleConnect ?? this.env.stack.zookeeper.connectString)
      : this.env.stack.zookeeper.connectString;
  }

  private ensembleConnect: string | undefined;

  private target(): AgentTarget {
    return { connect: this.zkConnect(), root: this.root };
  }

  private onAgentEvent(event: AgentEvent): void {
    if (event.event === 'log') {
      this.logTail.push(event.line.length > 600 ? `${event.line.slice(0, 600)}...` : event.line);
      if (this.logTail.length > 300) this.logTail.shift();
      return;
    }
    this.recordRequest(event.at, event.producer, event.request);
  }

  /** The journal of requests by host, for the diagnostics of a violation. */
  private recordRequest(at: number, producer: string, r: FailoverRequestInput): void {
    const lines = this.journal.get(r.host) ?? [];
    if (lines.length < 100) {
      lines.push(
        `+${at - this.chaosStart} ms ${producer}: ${r.source}/${r.kind} czxid ${r.czxid} startupTime ` +
          `${r.startupTime} observedAt +${r.observedAt - this.chaosStart} ms attempt ${r.attempt ?? 0}`,
      );
    }
    this.journal.set(r.host, lines);
  }

  private hostOf(server: string): string {
    const host = this.hosts.get(server);
    if (host === undefined) throw new Error(`no server ${server} in the plan`);
    return host;
  }

  private serverPlan(name: string): ServerPlan {
    const plan = this.plan.servers.find((s) => s.name === name);
    if (plan === undefined) throw new Error(`no server ${name} in the plan`);
    return plan;
  }

  private staleHost(index: number, type: 'instance' | 'task'): string {
    const base = `10.${100 + (Math.floor(this.options.slot / 250) % 150)}.${this.options.slot % 250}`;
    return `${base}.${200 + index}:${type === 'instance' ? 5678 : 1234}`;
  }

  private itemId(key: string): string {
    const n = Number(key.slice(2));
    return key.startsWith('pi')
      ? String(instanceBase + this.options.slot * 10_000 + n)
      : `t${this.options.slot}-${n}`;
  }

  private onLog(runtime: RuntimeLabel, line: string): void {
    this.logTail.push(`${runtime}: ${line.length > 600 ? `${line.slice(0, 600)}...` : line}`);
    if (this.logTail.length > 300) this.logTail.shift();
    if (!line.startsWith('{')) return;
    let parsed: Record<string, unknown> & { message?: unknown; host?: unknown };
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof parsed.message !== 'string') return;
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

  /** Resolves true when a matching log line arrived since `since` or arrives, false after `timeoutMs`. */
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

  /** Records every request its producer sends (or tries to), for the violation report. */
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

  private invokeJournal(target: RuntimeLabel, bodies: readonly string[]): void {
    const at = Date.now();
    for (const body of bodies) {
      const parsed = FailoverRequestSchema.safeParse(safeJson(body));
      if (parsed.success) this.recordRequest(at, `invoke-${target}`, parsed.data);
    }
  }

  private track(promise: Promise<unknown>): void {
    const guarded = promise.catch(() => undefined);
    this.pendingInvocations.add(guarded);
    void guarded.finally(() => this.pendingInvocations.delete(guarded));
  }

  /** Serializes the operations on one server (a restart waits for its kill). */
  private serverOp(name: string, op: () => Promise<void>): Promise<void> {
    const next = (this.serverOps.get(name) ?? Promise.resolve()).then(op, op);
    this.serverOps.set(
      name,
      next.catch(() => undefined),
    );
    return next;
  }

  // --- the run ----------------------------------------------------------------------------------------

  async execute(): Promise<RunReport> {
    const violations: Violation[] = [];
    let summary: CheckSummary | undefined;
    this.env.setLogSink((runtime, line) => this.onLog(runtime, line));
    this.env.agent.onEvent = (event) => this.onAgentEvent(event);
    this.env.dynamoProxy.resetStats();
    this.env.sqsProxy.resetStats();
    let settled = { settled: false, problem: 'the run did not get to settle' } as {
      settled: boolean;
      problem?: string;
    };
    try {
      let phase = Date.now();
      await within(this.setup(), 90_000, 'setup');
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
      const result = checkInvariants(observations);
      violations.push(...result.violations);
      this.diagnose(result.violations, observations.registry, this.options.trace !== undefined);
      summary = result.summary;
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
      await within(this.cleanup(settled.settled && violations.length === 0), 90_000, 'cleanup').catch(
        (error: unknown) => {
          violations.push({
            invariant: 'the run cleans up',
            subject: 'chaos engine',
            detail: error instanceof Error ? error.message : String(error),
          });
        },
      );
      this.durations.cleanup = Date.now() - phase;
      this.durations.total = Date.now() - this.started;
      this.env.setLogSink(undefined);
      this.env.agent.onEvent = undefined;
    }
    return {
      seed: this.plan.seed,
      plan: this.plan,
      hosts: Object.fromEntries(this.hosts),
      violations,
      summary,
      events: this.events.map((e) => ({ t: e.at - this.chaosStart, what: e.what })),
      durations: this.durations,
      proxy: { dynamodb: this.env.dynamoProxy.stats(), sqs: this.env.sqsProxy.stats() },
      invocations: this.invocationOutcomes(),
      logMessages: this.logCounts,
      logTail: this.logTail,
      diagnostics: this.diagnostics,
    };
  }

  private diagnose(
    violations: readonly Violation[],
    registry: ReadonlyMap<string, { startupTime: number }>,
    everyHost: boolean,
  ): void {
    const hosts = new Set<string>(everyHost ? this.hosts.values() : []);
    for (const v of violations) {
      for (const m of `${v.subject} ${v.detail}`.matchAll(/\d+\.\d+\.\d+\.\d+:\d+/g)) hosts.add(m[0]);
    }
    for (const host of [...hosts].slice(0, everyHost ? 20 : 6)) {
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
      for (const type of ['master', 'worker']) {
        const live = registry.get(`${type}/${host}`);
        if (live !== undefined)
          lines.push(`registry at the end: ${type} startupTime +${live.startupTime - this.chaosStart}`);
        const row = this.mirrorAtEnd.find((r) => r.id?.S === `${type}/${host}`);
        if (row !== undefined) lines.push(`mirror at the end: ${JSON.stringify(row)}`);
      }
      lines.push(...(this.journal.get(host) ?? []).map((l) => `request ${l}`));
      lines.push(...(this.hostLogs.get(host) ?? []).map((l) => `log ${l}`));
      this.diagnostics[host] = lines;
    }
  }

  private invocationOutcomes(): Record<string, Record<string, number>> {
    const tally = (records: ReadonlyArray<{ outcome: string }>) => {
      const out: Record<string, number> = {};
      for (const r of records) out[r.outcome] = (out[r.outcome] ?? 0) + 1;
      return out;
    };
    return {
      healthy: tally(this.env.healthy.invocations().slice(this.healthyInvocationsBefore)),
      faulty: tally(this.faulty?.invocations() ?? []),
    };
  }

  // --- setup ------------------------------------------------------------------------------------------

  private async setup(): Promise<void> {
    if (this.plan.ensemble) this.ensembleConnect = (await this.env.ensemble()).connectString;
    await this.env.agent.ensureRunning();
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
      `registered ${this.plan.servers.map((s) => `${s.name}=${this.hostOf(s.name)} (${s.fate})`).join(', ')}`,
    );
    await this.seedItems(
      this.plan.items.filter((i) => !(i.owner.kind === 'server' && i.owner.incarnation === 'second')),
      now,
    );
    await this.env.agent.startWatcher(this.target());
    await this.waitForMirror();
    this.drainLoop = this.drainCommands();
    if (this.plan.faulty !== null) this.faulty = this.env.startFaultyRuntime(this.plan.faulty);
    // Faults start with the chaos phase, not before: setup must succeed.
    this.env.dynamoProxy.configure(this.plan.proxy.dynamodb, (this.plan.seed ^ 0xd1d1) >>> 0);
    this.env.sqsProxy.configure(this.plan.proxy.sqs, (this.plan.seed ^ 0x5a5a) >>> 0);
  }

  private register(server: ServerHandle, startupTime: number): Promise<Incarnation> {
    return this.env.agent.register(this.target(), {
      key: `${this.options.slot}/${server.name}`,
      nodeType: server.nodeType,
      host: server.host,
      startupTime,
    });
  }

  private async killServer(server: ServerHandle): Promise<number> {
    const current = server.current;
    const removedAt = (await this.env.agent.kill(`${this.options.slot}/${server.name}`)) ?? Date.now();
    if (current !== undefined) current.removedAt = removedAt;
    return removedAt;
  }

  /** The item of the plan as the scheduler would have written it, at seeding time `now`. */
  private buildItem(item: ItemPlan, now: number): Flat {
    const n = Number(item.key.slice(2));
    let host: string | undefined;
    let from: number;
    let to: number;
    switch (item.owner.kind) {
      case 'server': {
        const fake = this.servers.get(item.owner.server);
        const incarnation = fake?.incarnations[item.owner.incarnation === 'first' ? 0 : 1];
        if (fake === undefined || incarnation === undefined) throw new Error(`${item.key}: no incarnation`);
        host = fake.host;
        if (item.owner.incarnation === 'first') {
          // Work of an incarnation registered since its startup (long before this run).
          from = incarnation.startupTime;
          to = now - 2_000;
        } else {
          // A restarted server takes work only once it is registered again (DolphinScheduler dispatches to
          // registered servers): the new incarnation's work starts after its node exists.
          from = Math.max(incarnation.startupTime, incarnation.registeredAt);
          to = from + 20;
        }
        break;
      }
      case 'stale-host':
        host = this.staleHost(item.owner.index, item.type);
        from = now - 7_200_000;
        to = now - 3_600_000;
        break;
      case 'unowned':
        from = now - 7_200_000;
        to = now - 60_000;
        break;
    }
    const start = from + Math.floor(item.age * Math.max(0, to - from));
    const previous: Flat =
      item.previousFailovers > 0
        ? {
            failoverCount: item.previousFailovers,
            lastHost: previousHost,
            failedOverAt: now - 86_400_000,
            fence: 3 + item.previousFailovers,
            fenceLock: `failover/${item.type === 'instance' ? 'master' : 'worker'}/${previousHost}`,
          }
        : {};
    if (item.type === 'instance') {
      return {
        id: this.itemId(item.key),
        state: item.state,
        processDefinitionCode: 9_000_000 + n,
        processDefinitionVersion: 1 + (n % 3),
        executorId: 1 + (n % 5),
        priority: priorities[n % priorities.length] ?? 'MEDIUM',
        startTime: start,
        ...(host === undefined ? {} : { host }),
        ...(item.restarted ? { restartTime: start + Math.floor((to - start) / 2) + 1 } : {}),
        ...(item.startParams
          ? { commandParam: JSON.stringify({ StartParams: { env: `e${n}`, 'x.y': [1, 2] }, other: true }) }
          : {}),
        ...previous,
      };
    }
    const processInstance = item.processInstance ?? 'pi-external';
    return {
      id: this.itemId(item.key),
      processInstanceId:
        processInstance.startsWith('pi') && processInstance !== 'pi-external'
          ? this.itemId(processInstance)
          : 'external-1',
      state: item.state,
      submitTime: start,
      startTime: start + 5,
      ...(host === undefined ? {} : { host }),
      ...previous,
    };
  }

  private async seedItems(items: readonly ItemPlan[], now: number): Promise<void> {
    const instances: Flat[] = [];
    const tasks: Flat[] = [];
    const commands: Flat[] = [];
    for (const plan of items) {
      const item = this.buildItem(plan, now);
      const id = String(item.id);
      this.tracked.set(id, { id, key: plan.key, type: plan.type, reference: item });
      (plan.type === 'instance' ? instances : tasks).push(item);
      if (plan.previousFailovers > 0) {
        // The command of the earlier failover exists (enqueued long ago): a new one must not collide with it.
        const generation = plan.previousFailovers;
        const command: Flat =
          plan.type === 'instance'
            ? {
                type: 'RecoveryCommand',
                id: `recover/${id}/${generation}`,
                commandType: 'RECOVER_TOLERANCE_FAULT_PROCESS',
                processInstanceId: id,
                processDefinitionCode: item.processDefinitionCode as number,
                processDefinitionVersion: item.processDefinitionVersion as number,
                executorId: item.executorId as number,
                priority: item.priority as string,
                commandParam: JSON.stringify({ ProcessInstanceId: Number(id) }),
                failedHost: previousHost,
                generation,
                fence: 3,
                createdAt: now - 86_400_000,
                enqueuedAt: now - 86_400_000,
              }
            : {
                type: 'TaskFailover',
                id: `task-failover/${id}/${generation}`,
                taskInstanceId: id,
                processInstanceId: String(item.processInstanceId),
                failedHost: previousHost,
                fence: 3,
                createdAt: now - 86_400_000,
                enqueuedAt: now - 86_400_000,
              };
        commands.push(command);
        this.seededCommandIds.add(String(command.id));
      }
    }
    const { dynamodb } = this.env.stack.clients;
    const tables = this.env.stack.info.tables;
    await putAll(dynamodb, tables.instances, instances);
    await putAll(dynamodb, tables.tasks, tasks);
    await putAll(dynamodb, tables.commands, commands);
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

  private async drainCommands(): Promise<void> {
    const { sqs } = this.env.stack.clients;
    const url = this.env.stack.info.queues.commands;
    while (!this.drainStopped) {
      await this.receiveCommands(sqs, url, 1);
    }
  }

  /** One receive on the commands queue, counting and deleting what arrived. Returns how many. */
  private async receiveCommands(sqs: SQSClient, url: string, waitSeconds: number): Promise<number> {
    const out = await sqs
      .send(
        new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds }),
      )
      .catch(() => undefined);
    const messages = out?.Messages ?? [];
    for (const m of messages) {
      const parsed = parseCommandMessage(m.Body ?? '');
      if (!parsed.ok) {
        this.invalidDeliveries.push(m.Body ?? '');
        continue;
      }
      this.deliveries.set(parsed.value.id, (this.deliveries.get(parsed.value.id) ?? 0) + 1);
    }
    if (messages.length > 0) {
      await sqs
        .send(
          new DeleteMessageBatchCommand({
            QueueUrl: url,
            Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
          }),
        )
        .catch(() => undefined);
    }
    return messages.length;
  }

  // --- chaos ------------------------------------------------------------------------------------------

  private async chaos(): Promise<void> {
    this.note(`chaos starts (${this.plan.chaosMs} ms, ${this.plan.actions.length} actions)`);
    const start = Date.now();
    const runs = this.plan.actions.map(async (action, index) => {
      await sleep(Math.max(0, start + action.at - Date.now()));
      try {
        await within(this.perform(action), 45_000, `${action.kind}`);
      } catch (error: unknown) {
        this.note(
          `#${index} ${action.kind} failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    });
    // The faults stop when the chaos phase ends, whatever is still in progress (a restart waiting for its
    // old node, invocations): a fault that never stops is not transient, and no system survives it.
    await sleep(Math.max(0, start + this.plan.chaosMs - Date.now()));
    await this.stopFaults();
    this.note('chaos ends: AWS faults off, fault-injecting runtime stopped');
    await within(Promise.all(runs), 60_000, 'the last chaos actions');
  }

  private async stopFaults(): Promise<void> {
    this.env.dynamoProxy.heal();
    this.env.sqsProxy.heal();
    if (this.faulty !== undefined) {
      await this.faulty.killContainers('failover');
      await this.faulty.stop();
    }
  }

  private async perform(action: Action): Promise<void> {
    switch (action.kind) {
      case 'kill-server':
        return this.serverOp(action.server, async () => {
          await this.zkGate;
          const fake = this.servers.get(action.server);
          if (fake === undefined) return;
          const at = await this.killServer(fake);
          this.killedResolvers.get(action.server)?.(at);
          this.note(`killed ${action.server} (${fake.host}, czxid ${fake.incarnations[0]?.czxid})`);
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
        const request = FailoverRequestSchema.parse({
          kind: 'Orphaned',
          nodeType: fake.nodeType,
          host: fake.host,
          czxid: current.czxid,
          startupTime: current.startupTime,
          observedAt: Date.now(),
          source: 'operator',
        });
        this.note(`bogus request for live ${action.server} via ${action.via}`);
        return this.deliver([request], action.via);
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
          const bodies = this.exec.shuffle(requests).map((r) => JSON.stringify(r));
          invocations.push(this.invoke(target, bodies));
        }
        await Promise.allSettled(invocations);
        return;
      }
      case 'kill-containers': {
        const runtime = action.target === 'faulty' ? this.faulty : this.env.healthy;
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
      case 'zk-member-kill': {
        const ensemble = await this.env.ensemble();
        const node = ensemble.nodes[action.member];
        if (node === undefined) return;
        await node.kill();
        this.note(`ensemble member ${node.id} killed for ${action.downMs} ms`);
        await sleep(action.downMs);
        await node.start();
        await waitForQuorumRole(node.clientPort);
        this.note(`ensemble member ${node.id} back`);
        return;
      }
      case 'watcher-expire': {
        const session = await this.env.agent.expireWatcher(this.zkConnect());
        this.note(
          session === null ? 'no watcher session to expire' : `expired the watcher session ${session}`,
        );
        return;
      }
      case 'watcher-overlap': {
        this.note(`a second watcher window for ${action.durationMs} ms`);
        await this.env.agent.overlapWindow(this.target(), action.durationMs);
        return;
      }
      case 'mutate-item': {
        if (action.afterFailoverStartMs !== undefined) {
          const owner = this.plan.items.find((i) => i.key === action.item)?.owner;
          const host = owner?.kind === 'server' ? this.hostOf(owner.server) : undefined;
          const killed = owner?.kind === 'server' ? await this.killedAt.get(owner.server) : undefined;
          await this.waitForLog(
            (e) =>
              e.message === 'failover started' && e.host === host && (killed === undefined || e.at >= killed),
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
        const host = started?.host;
        const server = [...this.servers.values()].find((s) => s.host === host);
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
            this.poisonQueued.push(body);
            await this.env.stack.clients.sqs.send(
              new SendMessageCommand({
                QueueUrl: this.env.stack.info.queues.failover,
                MessageBody: body,
                MessageGroupId: `poison-${randomUUID()}`,
                MessageDeduplicationId: randomUUID(),
              }),
            );
          }
          return;
        }
        this.poisonInvoked.push(...action.bodies);
        await this.invoke(action.via === 'invoke-faulty' ? 'faulty' : 'healthy', [...action.bodies]);
        return;
      }
      case 'outage': {
        const proxy = action.service === 'dynamodb' ? this.env.dynamoProxy : this.env.sqsProxy;
        proxy.outage(action.ms, action.fault);
        this.note(`${action.service} outage (${action.fault}) for ${action.ms} ms`);
        return;
      }
      case 'sweep': {
        const summary = await this.sweep('proxied');
        this.note(`sweep during the chaos: ${summary === undefined ? 'failed' : describeSweep(summary)}`);
        return;
      }
    }
  }

  private async restart(name: string): Promise<void> {
    await this.zkGate;
    const server = this.servers.get(name);
    if (server === undefined) return;
    if (server.current !== undefined) await this.killServer(server);
    // The agent waits for a node left by the old session (not yet expired), as a real restart would.
    const startupTime = Date.now();
    server.incarnations.push(await this.register(server, startupTime));
    this.note(`restarted ${name} (czxid ${server.current?.czxid}, startupTime ${startupTime})`);
    const second = this.plan.items.filter(
      (i) => i.owner.kind === 'server' && i.owner.server === name && i.owner.incarnation === 'second',
    );
    await this.seedItems(second, Date.now());
  }

  /** A request for the removal of a server's first incarnation, as some observer could have sent it. */
  private removalRequest(name: string, killedAt: number, variant: RequestVariant): FailoverRequest {
    const fake = this.servers.get(name);
    const first = fake?.incarnations[0];
    if (fake === undefined || first === undefined) throw new Error(`no server ${name}`);
    // Nobody can observe the removal after the new incarnation started (that is F3's observation bound).
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

  private async deliver(requests: readonly FailoverRequestInput[], via: Via): Promise<void> {
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
    const runtime = target === 'faulty' ? (this.faulty ?? this.env.healthy) : this.env.healthy;
    this.invokeJournal(target, bodies);
    const promise = runtime.invoke('failover', sqsEvent(bodies));
    this.track(promise);
    return promise.catch((error: unknown) => error);
  }

  /** The scheduler changes an item, conditional on it not being failed over yet. */
  private async mutate(key: string, change: 'claim' | 'claim-self' | 'stop' | 'redispatch'): Promise<void> {
    const id = this.itemId(key);
    const item = this.tracked.get(id);
    if (item === undefined) return;
    const ref = item.reference;
    const owner = this.plan.items.find((i) => i.key === key)?.owner;
    const ownerName = owner?.kind === 'server' ? owner.server : undefined;
    let effective = change;
    if (change === 'claim-self') {
      const fake = ownerName === undefined ? undefined : this.servers.get(ownerName);
      if (fake?.incarnations[1] === undefined || fake.current === undefined) effective = 'claim';
    }
    const liveOf = (type: 'master' | 'worker') =>
      this.exec.shuffle(
        [...this.servers.entries()].filter(
          ([name, f]) =>
            f.nodeType === type &&
            f.host !== ref.host &&
            this.serverPlan(name).fate === 'lives' &&
            f.current !== undefined,
        ),
      )[0]?.[1];
    const now = Date.now();
    const names: Record<string, string> = { '#host': 'host', '#state': 'state', '#fc': 'failoverCount' };
    const values: Record<string, AttributeValue> = {
      ':h': { S: String(ref.host) },
      ':s': { S: String(ref.state) },
      ':now': { N: String(now) },
    };
    const condition = ['#host = :h', '#state = :s'];
    if (typeof ref.failoverCount === 'number') {
      condition.push('#fc = :fc');
      values[':fc'] = { N: String(ref.failoverCount) };
    } else condition.push('attribute_not_exists(#fc)');
    let update: string;
    switch (effective) {
      case 'claim': {
        const master = liveOf('master');
        if (master === undefined) return;
        update = 'SET #host = :to, restartTime = :now';
        values[':to'] = { S: master.host };
        break;
      }
      case 'claim-self':
        update = 'SET restartTime = :now';
        break;
      case 'stop':
        update = 'SET #state = :stopped, endTime = :now';
        values[':stopped'] = { S: 'STOP' };
        break;
      case 'redispatch': {
        const worker = liveOf('worker');
        if (worker === undefined) return;
        update = 'SET #host = :to, #state = :dispatch, submitTime = :now';
        values[':to'] = { S: worker.host };
        values[':dispatch'] = { S: 'DISPATCH' };
        break;
      }
    }
    const table =
      item.type === 'instance' ? this.env.stack.info.tables.instances : this.env.stack.info.tables.tasks;
    try {
      const out = await this.env.stack.clients.dynamodb.send(
        new UpdateItemCommand({
          TableName: table,
          Key: { id: { S: id } },
          ConditionExpression: condition.join(' AND '),
          UpdateExpression: update,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      const reference = unmarshalFlat(out.Attributes ?? {});
      this.tracked.set(id, { ...item, reference, change: effective });
      this.note(`scheduler ${effective} ${key} (${id}): applied`);
    } catch (error: unknown) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      this.note(`scheduler ${effective} ${key} (${id}): too late (already failed over)`);
    }
  }

  // --- heal and settle --------------------------------------------------------------------------------

  private async heal(): Promise<void> {
    await this.stopFaults();
    await this.zkGate;
    const node = this.env.stack.zookeeper.nodes[0];
    if (node !== undefined && !node.running()) await node.start();
    if (this.plan.ensemble) {
      const ensemble = await this.env.ensemble();
      for (const member of ensemble.nodes) {
        if (!member.running()) await member.start();
        await waitForQuorumRole(member.clientPort);
      }
    }
    await within(Promise.allSettled([...this.pendingInvocations]), 30_000, 'direct invocations');
    this.note('healed: no more faults');
  }

  /** Waits until nothing is left to do: queue empty, outbox empty, no lock held, and a sweep finds nothing. */
  private async settle(): Promise<{ settled: boolean; problem?: string }> {
    const settleMs = this.options.settleMs ?? 75_000;
    const deadline = Date.now() + settleMs;
    let last = '';
    let lastSweep = 0;
    for (let round = 0; Date.now() < deadline && round < 1_000; round += 1) {
      const busy = await this.busy();
      // The sweep repairs what no request will: commands left pending, removals nobody relayed, orphans.
      if (busy === undefined || Date.now() - lastSweep > 2_000) {
        lastSweep = Date.now();
        const summary = await this.sweep('direct');
        if (busy === undefined && summary !== undefined && sweepIsQuiet(summary)) {
          const after = await this.busy();
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
    if (this.pendingInvocations.size > 0)
      return `${this.pendingInvocations.size} direct invocation(s) running`;
    const { sqs, dynamodb } = this.env.stack.clients;
    const { queues, tables } = this.env.stack.info;
    const attrs = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queues.failover, AttributeNames: ['All'] }),
    );
    const a = attrs.Attributes ?? {};
    const queued =
      Number(a.ApproximateNumberOfMessages ?? 0) +
      Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) +
      Number(a.ApproximateNumberOfMessagesDelayed ?? 0);
    if (queued > 0) return `failover queue holds ${queued} request(s)`;
    const pending = await dynamodb.send(
      new QueryCommand({
        TableName: tables.commands,
        IndexName: 'pending',
        KeyConditionExpression: '#p = :p',
        ExpressionAttributeNames: { '#p': 'pending' },
        ExpressionAttributeValues: { ':p': { S: '1' } },
        Limit: 1,
      }),
    );
    if ((pending.Items ?? []).length > 0) return 'commands pending in the outbox';
    const now = Date.now();
    const locks = await scanAll(dynamodb, tables.locks);
    const held = locks.filter((l) => l.owner !== undefined && Number(l.leaseExpiresAt ?? 0) > now);
    if (held.length > 0) return `lock(s) held: ${held.map((l) => l.name).join(', ')}`;
    const rows = await dynamodb.send(new ScanCommand({ TableName: tables.servers, ConsistentRead: true }));
    const waiting = (rows.Items ?? []).filter((r) => Object.keys(r.pending?.M ?? {}).length > 0);
    if (waiting.length > 0)
      return `mirror rows with unsent requests: ${waiting.map((r) => r.id?.S).join(', ')}`;
    return undefined;
  }

  /** One sweep (in the agent), its grace periods compressed to the chaos time scale. */
  private async sweep(via: 'proxied' | 'direct'): Promise<SweepSummary | undefined> {
    try {
      const result = (await this.env.agent.sweep(this.target(), via)) as SweepSummary | { error: string };
      if ('error' in result) {
        this.onAgentEvent({ event: 'log', line: `sweep failed: ${result.error}` });
        return undefined;
      }
      return result;
    } catch (error: unknown) {
      this.onAgentEvent({
        event: 'log',
        line: `sweep failed: ${error instanceof Error ? error.message : String(error)}`,
      });
      return undefined;
    }
  }

  // --- observe and clean up ---------------------------------------------------------------------------

  private async observe(settled: { settled: boolean; problem?: string }) {
    const { sqs, dynamodb } = this.env.stack.clients;
    const { queues, tables } = this.env.stack.info;
    // The last commands: stop the consumer, then read until the queue is empty.
    this.drainStopped = true;
    await this.drainLoop;
    for (let i = 0; i < 200; i += 1) {
      if ((await this.receiveCommands(sqs, queues.commands, 0)) > 0) continue;
      const a = (
        await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queues.commands, AttributeNames: ['All'] }))
      ).Attributes;
      if (
        Number(a?.ApproximateNumberOfMessages ?? 0) +
          Number(a?.ApproximateNumberOfMessagesNotVisible ?? 0) ===
        0
      )
        break;
      await sleep(50);
    }
    const registry = new Map(await this.env.agent.listRegistry(this.target()));
    const finalItems = new Map<string, Flat>();
    for (const row of [
      ...(await scanAll(dynamodb, tables.instances)),
      ...(await scanAll(dynamodb, tables.tasks)),
    ]) {
      finalItems.set(String(row.id), row);
    }
    const commands = await scanCommands(dynamodb, tables.commands);
    this.mirrorAtEnd = await scanRaw(dynamodb, tables.servers);
    const locks: LockRow[] = (await scanAll(dynamodb, tables.locks)).map((l) => ({
      name: String(l.name),
      ...(typeof l.owner === 'string' ? { owner: l.owner } : {}),
      ...(typeof l.fence === 'number' ? { fence: l.fence } : {}),
      ...(typeof l.leaseExpiresAt === 'number' ? { leaseExpiresAt: l.leaseExpiresAt } : {}),
    }));
    const failoverDlq = await consumeQueue(sqs, queues.failoverDlq);
    const commandsDlq = await consumeQueue(sqs, queues.commandsDlq);
    return {
      items: [...this.tracked.values()],
      finalItems,
      registry,
      commands,
      seededCommandIds: this.seededCommandIds,
      deliveries: this.deliveries,
      invalidDeliveries: this.invalidDeliveries,
      failoverDlq,
      commandsDlq: commandsDlq.length,
      poisonQueued: this.poisonQueued,
      poisonInvoked: this.poisonInvoked,
      locks,
      checkedAt: Date.now(),
      settled: settled.settled,
      ...(settled.problem === undefined ? {} : { settleProblem: settled.problem }),
    };
  }

  private async cleanup(clean: boolean): Promise<void> {
    this.env.dynamoProxy.heal();
    this.env.sqsProxy.heal();
    this.drainStopped = true;
    await this.env.agent.stopWatcher().catch(() => undefined);
    await this.drainLoop;
    if (this.faulty !== undefined) {
      await this.faulty.killContainers('failover').catch(() => undefined);
      await this.faulty.stop().catch(() => undefined);
    }
    if (!clean) {
      // Whatever the healthy containers still do belongs to this run: end it before the next one starts.
      await this.env.healthy.killContainers('failover');
    }
    await Promise.allSettled([...this.pendingInvocations]);
    await this.env.agent.killAll().catch(() => undefined);
    await this.zkGate;
    const node = this.env.stack.zookeeper.nodes[0];
    if (node !== undefined && !node.running()) await node.start();
    await this.env.reset();
    await this.env.agent.removeTree(this.target()).catch(() => undefined);
  }
}

// --- helpers ----------------------------------------------------------------------------------------------

export function sqsEvent(bodies: readonly string[]): SQSEvent {
  return {
    Records: bodies.map((body): SQSRecord => {
      const parsed = FailoverRequestSchema.safeParse(safeJson(body));
      return {
        messageId: randomUUID(),
        receiptHandle: `direct-${randomUUID()}`,
        body,
        attributes: {
          ApproximateReceiveCount: '1',
          SentTimestamp: String(Date.now()),
          SenderId: 'chaos',
          ApproximateFirstReceiveTimestamp: String(Date.now()),
          MessageGroupId: parsed.success ? failoverRequestGroupId(parsed.data) : `poison-${randomUUID()}`,
        },
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:chaos-direct',
        awsRegion: 'us-east-1',
      };
    }),
  };
}

const logNoise = new Set([
  'level',
  'timestamp',
  'service',
  'cold_start',
  'function_arn',
  'function_memory_size',
  'function_name',
  'sampling_rate',
  'xray_trace_id',
]);

export function compactLog(entry: Record<string, unknown>): string {
  const fields = Object.entries(entry)
    .filter(([k]) => !logNoise.has(k) && k !== 'message')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return `${String(entry.message)} ${fields.join(' ')}`.slice(0, 400);
}

export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function putAll(dynamodb: DynamoDBClient, table: string, items: readonly Flat[]): Promise<void> {
  for (let i = 0; i < items.length; i += 25) {
    let batch: WriteRequest[] = items
      .slice(i, i + 25)
      .map((item) => ({ PutRequest: { Item: marshalFlat(item) } }));
    for (let attempt = 0; batch.length > 0; attempt += 1) {
      if (attempt >= 20) throw new Error(`could not seed ${table}`);
      const out = await dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [table]: batch } }));
      batch = out.UnprocessedItems?.[table] ?? [];
    }
  }
}

async function scanRaw(
  dynamodb: DynamoDBClient,
  table: string,
): Promise<Array<Record<string, AttributeValue>>> {
  const out = await dynamodb.send(new ScanCommand({ TableName: table, ConsistentRead: true }));
  return out.Items ?? [];
}

export async function scanAll(dynamodb: DynamoDBClient, table: string): Promise<Flat[]> {
  const rows: Flat[] = [];
  let start: Record<string, AttributeValue> | undefined;
  for (let page = 0; page < 1_000; page += 1) {
    const out = await dynamodb.send(
      new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: start }),
    );
    for (const item of out.Items ?? []) rows.push(unmarshalFlat(item));
    start = out.LastEvaluatedKey;
    if (start === undefined) break;
  }
  return rows;
}

/** Reads and deletes every message of a (FIFO) queue: one per group per receive, so delete as we go. */
export async function consumeQueue(sqs: SQSClient, url: string): Promise<DlqMessage[]> {
  const out: DlqMessage[] = [];
  let empty = 0;
  for (let i = 0; i < 500 && empty < 3; i += 1) {
    const received = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageAttributeNames: ['All'],
      }),
    );
    const messages = received.Messages ?? [];
    if (messages.length === 0) {
      empty += 1;
      await sleep(30);
      continue;
    }
    empty = 0;
    for (const m of messages) {
      const reason = m.MessageAttributes?.RejectReason?.StringValue;
      out.push({ body: m.Body ?? '', ...(reason === undefined ? {} : { rejectReason: reason }) });
    }
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: url,
        Entries: messages.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle ?? '' })),
      }),
    );
  }
  return out;
}

async function waitForQuorumRole(port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!/Mode: (leader|follower|standalone)/.test(await fourLetterWord(port, 'srvr', 500))) {
    if (Date.now() > deadline) throw new Error(`ZooKeeper on ${port} did not rejoin its quorum`);
    await sleep(100);
  }
}

function sweepIsQuiet(summary: SweepSummary): boolean {
  const commands = summary.commands as { resent?: number } | undefined;
  return (
    summary.registry === 'listed' &&
    summary.orphans.length === 0 &&
    summary.removalsRelayed === 0 &&
    summary.probesUnfinished === 0 &&
    summary.discovery === 'complete' &&
    (commands?.resent ?? 0) === 0
  );
}

function describeSweep(summary: SweepSummary): string {
  const commands = summary.commands as { resent?: number } | undefined;
  return (
    `registry ${summary.registry}, orphans [${summary.orphans.map((o) => `${o.nodeType}/${o.host}`).join(', ')}], ` +
    `relayed ${summary.removalsRelayed}, probes ${summary.probes} (${summary.probesUnfinished} unfinished), ` +
    `discovery ${summary.discovery}, commands re-sent ${commands?.resent ?? 0}`
  );
}
