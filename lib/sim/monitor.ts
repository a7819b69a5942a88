// What the demo knows while it runs: the servers, and per killed server a failover timeline
// (node gone -> request -> lock -> rewrite -> commands enqueued -> taken over), fed by four sources:
// the demo's own raw ZooKeeper watch, the functions' structured logs, polls of the store (DynamoDB, or
// DolphinScheduler's tables), and the simulated servers' reports. Emits one event per step for the views
// (lib/sim/view.ts).
import { z } from 'zod';
import type { SimServer } from './options.ts';
import type { SimReport } from './protocol.ts';

export type ServerStatus = 'starting' | 'live' | 'killed' | 'gone';

export interface ServerView {
  readonly server: SimServer;
  status: ServerStatus;
  pid?: number;
  czxid?: string;
  startupTime?: number;
  negotiatedTimeoutMs?: number;
  /** Sessions lost without being killed (the server registered again: a new incarnation). */
  sessionLosses: number;
  /** Mirror row as the watcher wrote it. */
  mirror?: 'alive' | 'removed';
  /** Executing items on it now, from DynamoDB: instances (master) or tasks (worker). */
  executing?: number;
  /** Commands this master applied (took over / re-dispatched). */
  applied: number;
}

export interface FailoverTimeline {
  readonly server: SimServer;
  /** Executing items it owned when killed (as seeded). */
  readonly expected: number;
  /**
   * Items the masters must take over or re-dispatch for this failover: `expected`, except for a worker on
   * DolphinScheduler's database, whose removal the function only acknowledges (DESIGN D4).
   */
  readonly toApply: number;
  /** DolphinScheduler's database: when the function acknowledged a worker's removal. */
  acknowledgedAt?: number;
  readonly killedAt: number;
  goneAt?: number;
  requestAt?: number;
  requestSource?: string;
  /** The watcher's own measure: watch event -> request accepted by SQS. */
  detectionDelayMs?: number;
  lockAt?: number;
  fence?: number;
  rewritten: number;
  rewriteDoneAt?: number;
  doneAt?: number;
  failedOver?: number;
  commandsEnqueued?: number;
  skipped?: Record<string, number>;
  requests: number;
  /** Taken over (master) or re-dispatched (worker). */
  applied: number;
  appliedDoneAt?: number;
  readonly appliedBy: Map<string, number>;
}

export type EventLevel = 'info' | 'step' | 'warn' | 'error';

export interface DemoEvent {
  readonly at: number;
  readonly level: EventLevel;
  readonly text: string;
}

export interface InvocationCounts {
  watcher: number;
  sweep: number;
  failover: number;
  failed: number;
}

const LogLineSchema = z.looseObject({
  message: z.string(),
  level: z.string().optional(),
  timestamp: z.string().optional(),
  host: z.string().optional(),
  nodeType: z.string().optional(),
  fence: z.number().optional(),
  detectionDelayMs: z.number().optional(),
  failedOver: z.number().optional(),
  commandsEnqueued: z.number().optional(),
  skipped: z.record(z.string(), z.number()).optional(),
  instanceIds: z.array(z.string()).optional(),
  commandIds: z.array(z.string()).optional(),
});

/** Where the demo's work lives: the words of the timeline differ (commands enqueued vs written). */
export type DemoStore = 'dynamodb' | 'dolphinscheduler';

export class DemoMonitor {
  readonly startedAt = Date.now();
  phase = 'starting';
  readonly servers = new Map<string, ServerView>();
  readonly failovers = new Map<string, FailoverTimeline>();
  readonly events: DemoEvent[] = [];
  readonly invocations: InvocationCounts = { watcher: 0, sweep: 0, failover: 0, failed: 0 };
  /** Per instance id: takeovers; per task id: re-dispatches. */
  readonly takeovers = new Map<string, number>();
  readonly redispatches = new Map<string, number>();
  /** Per instance id: the command of each takeover and the master that applied it. */
  readonly takeoverCommands = new Map<string, Array<{ commandId: string; master: string }>>();
  /**
   * Executing instances failed over and not yet taken over, when the store says so directly
   * (DolphinScheduler: host 'NULL'); otherwise the view derives it from the timelines.
   */
  unowned: number | undefined;
  /** Commands a DolphinScheduler master moved to t_ds_error_command. */
  readonly errorCommands: Array<{ commandId: string; master: string; message: string }> = [];
  /** Commands acknowledged without effect (a redelivery, or no longer applicable). */
  ignoredCommands = 0;
  private readonly listeners: Array<(event: DemoEvent) => void> = [];

  constructor(
    servers: readonly SimServer[],
    readonly store: DemoStore = 'dynamodb',
  ) {
    for (const server of servers)
      this.servers.set(server.host, { server, status: 'starting', sessionLosses: 0, applied: 0 });
  }

  onEvent(listener: (event: DemoEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Set once the verdict is out: what happens while stopping is not part of the story. */
  muted = false;

  event(text: string, level: EventLevel = 'info', at = Date.now()): void {
    if (this.muted) return;
    const event = { at, level, text };
    this.events.push(event);
    if (this.events.length > 500) this.events.shift();
    for (const listener of this.listeners) listener(event);
  }

  /** Relative time since the demo started, for display. */
  since(at: number): number {
    return at - this.startedAt;
  }

  // --- the simulated servers -------------------------------------------------------------------------

  report(server: SimServer, report: SimReport): void {
    const view = this.servers.get(server.host);
    if (view === undefined) return;
    switch (report.type) {
      case 'registered': {
        const again = view.czxid !== undefined;
        view.status = 'live';
        view.czxid = report.czxid;
        view.startupTime = report.startupTime;
        view.negotiatedTimeoutMs = report.negotiatedTimeoutMs;
        if (again)
          this.event(`${server.name}: registered again (new incarnation, czxid ${report.czxid})`, 'warn');
        break;
      }
      case 'session-lost':
        view.sessionLosses += 1;
        this.event(
          `${server.name}: ZooKeeper session ${report.reason} although not killed (machine overloaded?); it registers again`,
          'warn',
          report.at,
        );
        break;
      case 'took-over': {
        const commands = this.takeoverCommands.get(report.instanceId) ?? [];
        commands.push({ commandId: report.commandId, master: server.host });
        this.takeoverCommands.set(report.instanceId, commands);
        this.applied(view, report.at, this.takeovers, report.instanceId, 'master');
        break;
      }
      case 'error-command':
        this.errorCommands.push({
          commandId: report.commandId,
          master: server.host,
          message: report.message,
        });
        this.event(
          `${server.name}: command ${report.commandId} moved to t_ds_error_command: ${report.message}`,
          'warn',
          report.at,
        );
        break;
      case 'redispatched':
        this.applied(view, report.at, this.redispatches, report.taskId, 'worker');
        break;
      case 'ignored':
        this.ignoredCommands += 1;
        break;
      case 'problem':
        this.event(`${server.name}: ${report.what}`, 'warn', report.at);
        break;
    }
  }

  private applied(
    master: ServerView,
    at: number,
    perItem: Map<string, number>,
    itemId: string,
    kind: 'master' | 'worker',
  ): void {
    master.applied += 1;
    perItem.set(itemId, (perItem.get(itemId) ?? 0) + 1);
    // The item's seeded owner is the failed host whose timeline this application advances.
    const failedHost = (kind === 'master' ? this.instanceHosts : this.taskHosts).get(itemId);
    const timeline = failedHost === undefined ? undefined : this.failovers.get(failedHost);
    if (timeline === undefined) return;
    timeline.applied += 1;
    timeline.appliedBy.set(master.server.name, (timeline.appliedBy.get(master.server.name) ?? 0) + 1);
    if (timeline.applied === timeline.toApply) {
      timeline.appliedDoneAt = at;
      const verb = kind === 'master' ? 'taken over' : 're-dispatched';
      const by = [...timeline.appliedBy.entries()].map(([name, n]) => `${name} ${n}`).join(', ');
      this.event(
        `${timeline.server.name}: all ${timeline.toApply} ${verb} (${by}), ${this.delay(timeline, at)}`,
        'step',
        at,
      );
    }
  }

  /** Seeded owner per instance id and per task id. */
  private instanceHosts = new Map<string, string>();
  private taskHosts = new Map<string, string>();

  noteSeed(instanceHosts: Map<string, string>, taskHosts: Map<string, string>): void {
    this.instanceHosts = instanceHosts;
    this.taskHosts = taskHosts;
  }

  // --- kills and the raw watch -------------------------------------------------------------------------

  killed(server: SimServer, at: number, expected: number, pid: number): void {
    const view = this.servers.get(server.host);
    if (view) view.status = 'killed';
    this.failovers.set(server.host, {
      server,
      expected,
      toApply: this.store === 'dolphinscheduler' && server.nodeType === 'worker' ? 0 : expected,
      killedAt: at,
      rewritten: 0,
      requests: 0,
      applied: 0,
      appliedBy: new Map(),
    });
    this.event(
      `SIGKILL ${server.name} (${server.host}, pid ${pid}, ${expected} executing ${
        server.nodeType === 'master' ? 'instances' : 'tasks'
      }): its ZooKeeper session expires in ~${view?.negotiatedTimeoutMs ?? '?'} ms`,
      'step',
      at,
    );
  }

  nodeGone(nodeType: string, host: string, at: number): void {
    const view = this.servers.get(host);
    if (view === undefined || view.server.nodeType !== nodeType) return;
    const timeline = this.failovers.get(host);
    if (view.status === 'killed') view.status = 'gone';
    if (timeline === undefined) {
      this.event(`${view.server.name}: node gone from the registry (not killed by the demo)`, 'warn', at);
      return;
    }
    if (timeline.goneAt !== undefined) return;
    timeline.goneAt = at;
    this.event(
      `${view.server.name}: node gone (raw watch), ${at - timeline.killedAt} ms after SIGKILL (session expiry)`,
      'step',
      at,
    );
  }

  nodeAdded(nodeType: string, host: string, at: number): void {
    const view = this.servers.get(host);
    if (view === undefined || view.server.nodeType !== nodeType || view.status !== 'gone') return;
    this.event(`${view.server.name}: node present again`, 'warn', at);
  }

  // --- function logs ---------------------------------------------------------------------------------

  functionLog(functionName: string, line: string): void {
    if (!line.startsWith('{')) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return;
    }
    const parsed = LogLineSchema.safeParse(json);
    if (!parsed.success) return;
    const log = parsed.data;
    const at = log.timestamp === undefined ? Date.now() : Date.parse(log.timestamp) || Date.now();
    const timeline = log.host === undefined ? undefined : this.failovers.get(log.host);
    const name = timeline?.server.name ?? log.host ?? '?';
    switch (log.message) {
      case 'failover request relayed':
      case 'orphan failover requested': {
        if (timeline === undefined) {
          this.event(
            `${functionName}: failover request for ${log.host ?? '?'} (not killed by the demo)`,
            'warn',
            at,
          );
          return;
        }
        timeline.requests += 1;
        if (timeline.requestAt !== undefined) {
          this.event(
            `${name}: another failover request (${functionName}); the failover is idempotent`,
            'info',
            at,
          );
          return;
        }
        timeline.requestAt = at;
        timeline.requestSource = functionName;
        timeline.detectionDelayMs = log.detectionDelayMs;
        const measured =
          log.detectionDelayMs === undefined
            ? ''
            : ` (watcher: watch event -> queue ${log.detectionDelayMs} ms)`;
        this.event(
          `${name}: failover request on the queue (${functionName}), ${this.delay(timeline, at)}${measured}`,
          'step',
          at,
        );
        return;
      }
      case 'failover started':
        if (timeline === undefined || timeline.lockAt !== undefined) return;
        timeline.lockAt = at;
        timeline.fence = log.fence;
        this.event(
          `${name}: lock failover/${timeline.server.nodeType}/${timeline.server.host} taken (fence ${log.fence ?? '?'}), ${this.delay(timeline, at)}`,
          'step',
          at,
        );
        return;
      case 'worker removal acknowledged; the scheduler fails its tasks over': {
        if (timeline === undefined || timeline.acknowledgedAt !== undefined) return;
        timeline.acknowledgedAt = at;
        timeline.doneAt = at;
        this.event(
          `${name}: removal acknowledged, no task row written (D4: DolphinScheduler's live masters fail its ${timeline.expected} tasks over), ${this.delay(timeline, at)}`,
          'step',
          at,
        );
        return;
      }
      case 'failover batch committed': {
        if (timeline === undefined) return;
        const ids = (log.commandIds ?? []).map(Number).filter(Number.isFinite);
        const range = ids.length === 0 ? '' : ` (t_ds_command ids ${Math.min(...ids)}-${Math.max(...ids)})`;
        this.event(
          `${name}: transaction committed: ${log.instanceIds?.length ?? 0} instances set to host 'NULL', ${ids.length} commands inserted${range}`,
          'info',
          at,
        );
        return;
      }
      case 'failover done': {
        if (timeline === undefined) return;
        timeline.failedOver = (timeline.failedOver ?? 0) + (log.failedOver ?? 0);
        timeline.commandsEnqueued = (timeline.commandsEnqueued ?? 0) + (log.commandsEnqueued ?? 0);
        timeline.skipped = log.skipped;
        timeline.doneAt ??= at;
        // The poll may not have seen the last page yet: the function's own count is authoritative.
        if (timeline.rewriteDoneAt === undefined && timeline.failedOver >= timeline.expected) {
          timeline.rewritten = timeline.expected;
          timeline.rewriteDoneAt = at;
          this.event(
            `${name}: rewrite ${timeline.expected}/${timeline.expected}, ${this.delay(timeline, at)}`,
            'step',
            at,
          );
        }
        const skipped = Object.entries(log.skipped ?? {})
          .map(([reason, n]) => `${reason} ${n}`)
          .join(', ');
        this.event(
          `${name}: failover done: ${log.failedOver ?? 0} failed over, ${log.commandsEnqueued ?? 0} commands ${this.commandsVerb}${
            skipped ? `, skipped ${skipped}` : ''
          }, ${this.delay(timeline, at)}`,
          'step',
          at,
        );
        return;
      }
      default:
        if (log.level === 'ERROR' || (log.level === 'WARN' && functionName === 'failover')) {
          this.event(`${functionName}: ${log.message}${log.host ? ` (${log.host})` : ''}`, 'warn', at);
        }
    }
  }

  invocation(functionName: string, outcome: string, error: string | undefined): void {
    if (functionName === 'watcher' || functionName === 'sweep' || functionName === 'failover') {
      this.invocations[functionName] += 1;
    }
    if (outcome !== 'ok') {
      this.invocations.failed += 1;
      this.event(`${functionName} invocation ${outcome}: ${(error ?? '').split('\n')[0]}`, 'warn');
    }
  }

  /** What happens to a failover's commands: enqueued (DynamoDB store), written to t_ds_command (DolphinScheduler). */
  get commandsVerb(): string {
    return this.store === 'dolphinscheduler' ? 'written' : 'enqueued';
  }

  // --- store polls -----------------------------------------------------------------------------------

  /** Executing items per host, polled. Moves the rewrite progress of the failovers. */
  executing(host: string, count: number, at: number): void {
    const view = this.servers.get(host);
    if (view) view.executing = count;
    const timeline = this.failovers.get(host);
    if (timeline === undefined) return;
    const rewritten = Math.max(0, timeline.expected - count);
    if (rewritten === timeline.rewritten) return;
    timeline.rewritten = rewritten;
    if (rewritten >= timeline.expected && timeline.rewriteDoneAt === undefined) {
      timeline.rewriteDoneAt = at;
      this.event(
        `${timeline.server.name}: rewrite ${rewritten}/${timeline.expected}, ${this.delay(timeline, at)}`,
        'step',
        at,
      );
    } else if (rewritten < timeline.expected) {
      this.event(`${timeline.server.name}: rewrite ${rewritten}/${timeline.expected}`, 'info', at);
    }
  }

  mirror(host: string, alive: boolean): void {
    const view = this.servers.get(host);
    if (view) view.mirror = alive ? 'alive' : 'removed';
  }

  /** Every failover finished: all items applied by the masters, and the function said done. */
  settled(): boolean {
    return [...this.failovers.values()].every((f) => f.doneAt !== undefined && f.applied >= f.toApply);
  }

  /** `+123 ms` after the node was seen gone (or after the kill while it was not yet seen gone). */
  delay(timeline: FailoverTimeline, at: number): string {
    const base = timeline.goneAt ?? timeline.killedAt;
    return `+${at - base} ms after ${timeline.goneAt === undefined ? 'SIGKILL' : 'node gone'}`;
  }
}
