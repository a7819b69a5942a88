// `zkf plan --host H`: a dry run of the failover of one host, by rule. It reads what the failover function
// reads (the host's executing items through the `byHost` index, the liveness row of the membership mirror,
// the lock, the host's pending commands) through the same stores, and decides each item with the same
// rules (lib/failover/rules.ts), with the bound an operator request sent now would carry (observedAt = now).
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { failoverLockName, type Page } from '../../failover/ports.ts';
import {
  type FailoverSkipReason,
  failoverGeneration,
  type LiveIncarnation,
  processFailoverDecision,
  recoveryCommandId,
  taskFailoverDecision,
  taskNoticeId,
} from '../../failover/rules.ts';
import type { NodeType } from '../../messages.ts';
import { readNumber, readString, str } from '../../store/dynamodb/attributes.ts';
import { DynamoCommandStore } from '../../store/dynamodb/commands.ts';
import { DynamoInstanceStore } from '../../store/dynamodb/instances.ts';
import { DynamoServerMirror } from '../../store/dynamodb/server-mirror.ts';
import { DynamoTaskStore } from '../../store/dynamodb/tasks.ts';
import { intOption, UsageError } from '../args.ts';
import type { CliCommand } from '../command.ts';
import { computeDsPlan, renderDsPlan } from '../ds-plan.ts';
import { isoTime, Progress, relative, table } from '../format.ts';
import { hostOption, identifyHost, typeOption } from '../hosts.ts';
import { countHostItems } from '../inspect.ts';
import { skipRules } from '../skip-rules.ts';
import type { Target } from '../target.ts';

/** The failover function's page size (FAILOVER_BATCH_SIZE x FAILOVER_CONCURRENCY defaults). */
const PAGE_SIZE = 200;

export interface PlannedItem {
  id: string;
  state: string;
  startTime?: number;
  restartTime?: number;
  submitTime?: number;
  processInstanceId?: string;
}

export interface Plan {
  host: string;
  nodeType: NodeType;
  typeSource: 'option' | 'mirror';
  liveness: { registered: boolean; startupTime: number | null; source: 'servers mirror' };
  observedAt: number;
  lock: {
    name: string;
    owner: string | null;
    fence: number | null;
    leaseExpiresAt: number | null;
    held: boolean;
  };
  /** Commands of this host written by an earlier run but never enqueued: the failover re-sends them first. */
  leftoverCommands: string[];
  eligible: Array<PlannedItem & { generation: number; commandId: string }>;
  skipped: Array<PlannedItem & { reason: FailoverSkipReason }>;
  malformed: Array<{ id: string; problem: string }>;
  /** Items of the host in the index that are not executing: the failover never reads them. */
  notExecuting: number;
  summary: { eligible: number; skipped: Partial<Record<FailoverSkipReason, number>>; malformed: number };
}

/** Computes the plan (exported for tests and for `failover --wait`). */
export async function computePlan(
  target: Target,
  host: string,
  nodeType: NodeType,
  typeSource: 'option' | 'mirror',
  observedAt: number,
  now: number,
  onProgress: (read: number) => void = () => undefined,
): Promise<Plan> {
  const { dynamodb, tables } = target;
  const live: LiveIncarnation = await new DynamoServerMirror(dynamodb, tables.servers).liveIncarnation(
    nodeType,
    host,
  );
  const lockName = failoverLockName(nodeType, host);
  const lockItem = (
    await dynamodb.send(
      new GetItemCommand({ TableName: tables.locks, Key: { name: str(lockName) }, ConsistentRead: true }),
    )
  ).Item;
  const owner = lockItem === undefined ? undefined : readString(lockItem, 'owner');
  const leaseExpiresAt = lockItem === undefined ? undefined : readNumber(lockItem, 'leaseExpiresAt');
  const commands = new DynamoCommandStore(dynamodb, tables.commands);
  const leftoverCommands: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await commands.pendingPage(
      { failedHost: host, type: nodeType === 'master' ? 'RecoveryCommand' : 'TaskFailover' },
      50,
      cursor,
    );
    leftoverCommands.push(...page.batches.flatMap((b) => b.commands.map((c) => c.id)));
    cursor = page.cursor;
  } while (cursor !== undefined);

  const plan: Plan = {
    host,
    nodeType,
    typeSource,
    liveness: { registered: live !== null, startupTime: live?.startupTime ?? null, source: 'servers mirror' },
    observedAt,
    lock: {
      name: lockName,
      owner: owner ?? null,
      fence: lockItem === undefined ? null : (readNumber(lockItem, 'fence') ?? null),
      leaseExpiresAt: leaseExpiresAt ?? null,
      held: owner !== undefined && (leaseExpiresAt ?? 0) > now,
    },
    leftoverCommands,
    eligible: [],
    skipped: [],
    malformed: [],
    notExecuting: 0,
    summary: { eligible: 0, skipped: {}, malformed: 0 },
  };
  const bounds = { observedAt };
  let read = 0;
  if (nodeType === 'master') {
    const store = new DynamoInstanceStore(dynamodb, tables);
    await eachPage(
      (c) => store.pageByHost(host, PAGE_SIZE, c),
      plan,
      (item) => {
        const decision = processFailoverDecision(item, host, live, bounds);
        const planned: PlannedItem = {
          id: item.id,
          state: item.state,
          startTime: item.startTime,
          ...(item.restartTime === undefined ? {} : { restartTime: item.restartTime }),
        };
        if (decision.eligible) {
          const generation = failoverGeneration(item);
          plan.eligible.push({ ...planned, generation, commandId: recoveryCommandId(item.id, generation) });
        } else {
          plan.skipped.push({ ...planned, reason: decision.reason });
        }
        read += 1;
        onProgress(read);
      },
    );
  } else {
    const store = new DynamoTaskStore(dynamodb, tables);
    await eachPage(
      (c) => store.pageByHost(host, PAGE_SIZE, c),
      plan,
      (item) => {
        const decision = taskFailoverDecision(item, host, live, bounds);
        const planned: PlannedItem = {
          id: item.id,
          state: item.state,
          submitTime: item.submitTime,
          processInstanceId: item.processInstanceId,
        };
        if (decision.eligible) {
          const generation = failoverGeneration(item);
          plan.eligible.push({ ...planned, generation, commandId: taskNoticeId(item.id, generation) });
        } else {
          plan.skipped.push({ ...planned, reason: decision.reason });
        }
        read += 1;
        onProgress(read);
      },
    );
  }
  const counts = await countHostItems(
    dynamodb,
    nodeType === 'master' ? tables.instances : tables.tasks,
    nodeType,
    host,
  );
  plan.notExecuting = counts.total - counts.executing;
  plan.summary.eligible = plan.eligible.length;
  plan.summary.malformed = plan.malformed.length;
  for (const s of plan.skipped) plan.summary.skipped[s.reason] = (plan.summary.skipped[s.reason] ?? 0) + 1;
  return plan;
}

async function eachPage<T>(
  read: (cursor: string | undefined) => Promise<Page<T>>,
  plan: Plan,
  onItem: (item: T) => void,
): Promise<void> {
  let cursor: string | undefined;
  do {
    const page = await read(cursor);
    for (const item of page.items) onItem(item);
    plan.malformed.push(...page.malformed);
    cursor = page.cursor;
  } while (cursor !== undefined);
}

/** `--observed-at`: epoch ms or an ISO time. */
function observedAtOption(value: string | undefined, now: number): number {
  if (value === undefined) return now;
  const ms = /^[0-9]+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms))
    throw new UsageError(`--observed-at needs epoch ms or an ISO time, got ${JSON.stringify(value)}`, 'plan');
  return ms;
}

export const planCommand: CliCommand = {
  words: ['plan'],
  summary: 'dry run: exactly what a failover of a host would change, by rule',
  synopsis: '--host H [--type master|worker] [--all | --limit N] [--observed-at T]',
  description: `Reads what the failover function reads and decides every item with the same rules, writing
nothing: the host's executing items (byHost index, F1 states for a master's process instances, F5 states
for a worker's tasks), the liveness row of the servers mirror (F3), the lock failover/<type>/<host>, and
the host's pending commands. Lists the items that would be failed over, with the command each would get
(recover/<id>/<generation>, task-failover/<id>/<generation>), and the skipped ones with their rule.

The observation bound is that of an operator request sent now (--observed-at to judge another request).
The type comes from the servers mirror when --type is not given. A plan is a snapshot: items that change
before the failover runs are judged again by it (its writes are conditional on what it read).

On DolphinScheduler's database it reads the master's executing instances as the function does (primary-key
ranges of t_ds_process_instance), its liveness from ZooKeeper (the mirror without --zookeeper), our lock
and DolphinScheduler's own failover lock, and the run journal; it lists the exact rows the transaction would
change (host -> 'NULL', nothing else) and the exact t_ds_command row each would get (every column; start_time
and update_time are the time of the write). A worker's failover writes nothing on this store (D4).`,
  options: [
    { name: 'host', value: 'IP:PORT', description: 'the server, exactly as registered' },
    { name: 'type', value: 'master|worker', description: 'node type (default: from the servers mirror)' },
    { name: 'all', description: 'list every item (default: the first --limit)' },
    { name: 'limit', value: 'N', description: 'items listed in the human output (default 20)' },
    { name: 'observed-at', value: 'MS|ISO', description: "the request's observation time (default now)" },
  ],
  async run(context) {
    const { options, io } = context;
    const host = hostOption(options, 'plan');
    const type = typeOption(options, 'plan');
    const limit = options.has('all')
      ? Number.POSITIVE_INFINITY
      : intOption(options, 'limit', 20, { min: 0, max: 1_000_000 }, 'plan');
    const now = io.now();
    const observedAt = observedAtOption(options.get('observed-at'), now);
    const target = await context.target();
    const identity = await identifyHost(target, host, type, 'plan');
    const progress = new Progress(io.stderr, 'plan');
    if (target.store.kind === 'dolphinscheduler') {
      const dsPlan = await computeDsPlan(
        target,
        target.store,
        host,
        identity.nodeType,
        identity.typeSource,
        observedAt,
        now,
        { digest: io.env.ZK_DIGEST, onProgress: (n) => progress.update(`${n} executing instances read`) },
      );
      progress.clear();
      context.print(renderDsPlan(dsPlan, limit, now), dsPlan);
      return 0;
    }
    const plan = await computePlan(
      target,
      host,
      identity.nodeType,
      identity.typeSource,
      observedAt,
      now,
      (n) => progress.update(`${n} executing items read`),
    );
    progress.clear();
    if (context.json) {
      context.print('', plan);
      return 0;
    }
    const items = plan.nodeType === 'master' ? 'process instances' : 'task instances';
    const out: string[] = [
      `PLAN  failover of ${plan.nodeType} ${plan.host}  (dry run: nothing is written)${
        plan.typeSource === 'mirror' ? `  [type from the servers mirror]` : ''
      }`,
      '',
      `  liveness (servers mirror, as the failover reads it): ${
        plan.liveness.registered
          ? `REGISTERED, incarnation started ${isoTime(plan.liveness.startupTime)}: only work older than that is failed over (F3)`
          : 'not registered: every executing item is failed over (F2/F5)'
      }`,
      `  observation bound: ${isoTime(plan.observedAt)}: items started at or after it are skipped`,
      `  lock ${plan.lock.name}: ${
        plan.lock.held
          ? `HELD by ${plan.lock.owner} (fence ${plan.lock.fence}) until ${isoTime(plan.lock.leaseExpiresAt)}: a failover now retries after it`
          : `free${plan.lock.fence === null ? '' : ` (next fence ${plan.lock.fence + 1})`}`
      }`,
      `  leftover commands re-sent first: ${plan.leftoverCommands.length}`,
      '',
      `  would fail over   ${String(plan.eligible.length).padStart(6)} ${items}  ${
        plan.nodeType === 'master'
          ? '(F2: host removed, failoverCount + 1, one RECOVER_TOLERANCE_FAULT_PROCESS command each)'
          : '(F5: state NEED_FAULT_TOLERANCE, failoverCount + 1, one TaskFailover notice each)'
      }`,
      `  would skip        ${String(plan.skipped.length).padStart(6)}`,
      ...Object.entries(plan.summary.skipped).map(
        ([reason, n]) =>
          `      ${reason.padEnd(18)} ${String(n).padStart(6)}  ${skipRules[reason as FailoverSkipReason]}`,
      ),
      `  malformed         ${String(plan.malformed.length).padStart(6)}  ${plan.malformed.length > 0 ? skipRules.malformed : ''}`.trimEnd(),
      `  not executing     ${String(plan.notExecuting).padStart(6)}  (finished items keep their host; never read)`,
    ];
    interface Row {
      id: string;
      state: string;
      time?: number;
      second: string;
      decision: string;
      detail: string;
    }
    const second = (i: PlannedItem) =>
      plan.nodeType === 'master' ? isoTime(i.restartTime) : (i.processInstanceId ?? '-');
    const rows: Row[] = [
      ...plan.eligible.map((i) => ({
        id: i.id,
        state: i.state,
        time: i.startTime ?? i.submitTime,
        second: second(i),
        decision: 'fail over',
        detail: i.commandId,
      })),
      ...plan.skipped.map((i) => ({
        id: i.id,
        state: i.state,
        time: i.startTime ?? i.submitTime,
        second: second(i),
        decision: 'skip',
        detail: i.reason,
      })),
      ...plan.malformed.map((m) => ({
        id: m.id,
        state: '?',
        second: '-',
        decision: 'malformed',
        detail: m.problem,
      })),
    ];
    if (rows.length > 0 && limit > 0) {
      const shown = rows.slice(0, limit);
      out.push(
        '',
        table(
          plan.nodeType === 'master'
            ? ['instance', 'state', 'startTime', 'restartTime', 'decision', 'command / reason']
            : ['task', 'state', 'submitTime', 'instance', 'decision', 'notice / reason'],
          shown.map((i) => [i.id, i.state, isoTime(i.time), i.second, i.decision, i.detail]),
        ),
      );
      if (rows.length > shown.length) out.push(`  ... ${rows.length - shown.length} more (--all)`);
    }
    if (plan.lock.held) out.push('', `  note: the lock is held ${relative(plan.lock.leaseExpiresAt, now)}`);
    context.print(out.join('\n'), plan);
    return 0;
  },
};
