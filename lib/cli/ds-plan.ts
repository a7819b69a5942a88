// `zkf plan` on DolphinScheduler's database: a dry run of the failover of one master, exactly as the
// failover function would do it now (docs/failover.md, last section), writing nothing. It reads what the
// function reads, through the same store (DsInstanceStore: primary-key ranges, DESIGN D7), the liveness
// from ZooKeeper itself (ZkLiveness, F3), decides with the same rules, and builds each command row with
// the same function (recoveryCommandParam): the plan lists the exact rows the transaction would change
// (host -> 'NULL', nothing else) and the exact t_ds_command rows it would insert with them.
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { WORKER_FAILOVER_BY_SCHEDULER } from '../failover/fail-over-host.ts';
import { failoverLockName } from '../failover/ports.ts';
import { type FailoverSkipReason, type LiveIncarnation, processFailoverDecision } from '../failover/rules.ts';
import type { NodeType } from '../messages.ts';
import { contendersInOrder } from '../registry/curator-mutex.ts';
import { dsMasterFailoverLockPath } from '../registry/ds-failover-lock.ts';
import { registryFromConfig } from '../registry/registry-config.ts';
import { ZkLiveness } from '../registry/zk-liveness.ts';
import { ZkSessionProvider } from '../registry/zk-session-provider.ts';
import {
  FAILED_OVER_HOST,
  FAILURE_STRATEGY_CONTINUE,
  NEED_FAILOVER_STATES,
  RECOVER_TOLERANCE_FAULT_PROCESS,
  TASK_DEPEND_TYPE_TASK_POST,
} from '../store/dolphinscheduler/codes.ts';
import { type DsProcessInstance, recoveryCommandParam } from '../store/dolphinscheduler/command-row.ts';
import { DsInstanceStore } from '../store/dolphinscheduler/instances.ts';
import { WallClock } from '../store/dolphinscheduler/wall-time.ts';
import { readNumber, readString, str } from '../store/dynamodb/attributes.ts';
import { DynamoRunJournal } from '../store/dynamodb/run-journal.ts';
import { DynamoServerMirror } from '../store/dynamodb/server-mirror.ts';
import { isoTime, relative, table } from './format.ts';
import { skipRules } from './skip-rules.ts';
import type { DsStoreTarget } from './store-target.ts';
import type { Target } from './target.ts';

/** The failover function's page size on this store (DS_BATCH_SIZE x FAILOVER_CONCURRENCY defaults: 200 x 4). */
const PAGE_SIZE = 800;

/** `start_time` and `update_time` of a command row: the time of the write, unknown before it. */
export const WRITE_TIME = '<time of the write>';

/** One t_ds_command row as the failover would insert it (every column but `id`). */
export interface DsCommandRow {
  command_type: number;
  process_definition_code: number;
  process_definition_version: number;
  process_instance_id: number;
  command_param: string;
  executor_id: number | null;
  process_instance_priority: number;
  test_flag: number | null;
  task_depend_type: number;
  failure_strategy: number;
  start_time: typeof WRITE_TIME;
  update_time: typeof WRITE_TIME;
  // The columns the failover leaves to their defaults (DolphinScheduler's DDL).
  warning_type: 0;
  warning_group_id: null;
  schedule_time: null;
  worker_group: null;
  tenant_code: 'default';
  environment_code: -1;
  dry_run: 0;
}

export interface DsPlannedInstance {
  id: string;
  state: string;
  /** As stored (DolphinScheduler's wall time). */
  startTime: string | null;
  restartTime: string | null;
}

export interface DsPlan {
  store: 'dolphinscheduler';
  host: string;
  nodeType: NodeType;
  typeSource: 'option' | 'mirror';
  database: { dialect: string; location: string; timeZone: string; version: string };
  /** A worker: nothing is written on this store (D4). */
  note?: string;
  liveness: { registered: boolean; startupTime: number | null; source: 'ZooKeeper' | 'servers mirror' };
  observedAt: number;
  /**
   * The write condition the transaction repeats for every row: host, states, and F3's bound on start_time
   * and restart_time as DolphinScheduler's wall time (null when nothing bounds them).
   */
  condition: { host: string; states: readonly number[]; startedBefore: string | null };
  lock: {
    name: string;
    owner: string | null;
    fence: number | null;
    leaseExpiresAt: number | null;
    held: boolean;
  };
  /** DolphinScheduler's own failover lock of the host (a master holding it makes the failover wait). */
  dolphinSchedulerLock: { path: string; contenders: string[] | null };
  /** Earlier runs of this host, from the run journal (D6). */
  journal: Array<{ fence: number; instances: number; commandIds: string[]; writtenAt: number }>;
  /** The rows the transaction would change, and the command row each would get. */
  eligible: Array<
    DsPlannedInstance & {
      update: { table: 't_ds_process_instance'; id: number; set: { host: string } };
      command: DsCommandRow;
    }
  >;
  skipped: Array<DsPlannedInstance & { reason: FailoverSkipReason }>;
  malformed: Array<{ id: string; problem: string }>;
  /** Not counted on this store: it has no index on host. */
  notExecuting: null;
  leftoverCommands: string[];
  summary: { eligible: number; skipped: Partial<Record<FailoverSkipReason, number>>; malformed: number };
}

/** The exact t_ds_command row of an instance, as the failover's insert builds it (lib/store/dolphinscheduler/sql.ts). */
export function commandRowOf(item: DsProcessInstance): DsCommandRow {
  const id = Number(item.id);
  return {
    command_type: RECOVER_TOLERANCE_FAULT_PROCESS,
    process_definition_code: item.processDefinitionCode,
    process_definition_version: item.processDefinitionVersion,
    process_instance_id: id,
    command_param: recoveryCommandParam(id, item.storedCommandParam, item.schedule),
    executor_id: item.executorId,
    process_instance_priority: item.priorityCode,
    test_flag: item.testFlag,
    task_depend_type: TASK_DEPEND_TYPE_TASK_POST,
    failure_strategy: FAILURE_STRATEGY_CONTINUE,
    start_time: WRITE_TIME,
    update_time: WRITE_TIME,
    warning_type: 0,
    warning_group_id: null,
    schedule_time: null,
    worker_group: null,
    tenant_code: 'default',
    environment_code: -1,
    dry_run: 0,
  };
}

/**
 * What the plan reads in ZooKeeper, through one session: the master's liveness as the failover function on
 * this store reads it (ZkLiveness, F3) and the contenders for DolphinScheduler's failover lock of the host
 * (holder first). Without a connect string: the servers mirror's liveness, and the lock unread (null).
 */
async function readRegistry(
  target: Target,
  nodeType: NodeType,
  host: string,
  lockPath: string,
  digest: string | undefined,
): Promise<{ live: LiveIncarnation; source: 'ZooKeeper' | 'servers mirror'; lock: string[] | null }> {
  if (target.zookeeper === undefined) {
    const mirror = new DynamoServerMirror(target.dynamodb, target.tables.servers);
    return { live: await mirror.liveIncarnation(nodeType, host), source: 'servers mirror', lock: null };
  }
  const registry = registryFromConfig({
    ZK_CONNECT: target.zookeeper,
    ZK_DIGEST: digest,
    ZK_SESSION_TIMEOUT_MS: 10_000,
    REGISTRY_ROOT: target.registryRoot,
    REGISTRY_LAYOUT: target.layout,
    REGISTRY_TZ_OFFSET_MINUTES: 0,
  });
  const sessions = new ZkSessionProvider(registry, { connectTimeoutMs: 5_000 });
  try {
    const live = await new ZkLiveness(sessions, { layout: registry.layout }).liveIncarnation(nodeType, host);
    const lock =
      nodeType === 'master'
        ? contendersInOrder(await sessions.withSession((session) => session.children(lockPath)))
        : null;
    return { live, source: 'ZooKeeper', lock };
  } finally {
    await sessions.close();
  }
}

/** Computes the plan of a master's failover on DolphinScheduler's database (exported for `failover --wait`). */
export async function computeDsPlan(
  target: Target,
  store: DsStoreTarget,
  host: string,
  nodeType: NodeType,
  typeSource: 'option' | 'mirror',
  observedAt: number,
  now: number,
  options: { digest?: string; onProgress?: (read: number) => void } = {},
): Promise<DsPlan> {
  const clock = new WallClock(store.timeZone);
  const lockName = failoverLockName(nodeType, host);
  const dsLockPath = dsMasterFailoverLockPath(target.registryRoot, store.version, host);
  const [liveness, lockItem, journal] = await Promise.all([
    readRegistry(target, nodeType, host, dsLockPath, options.digest),
    target.dynamodb
      .send(
        new GetItemCommand({
          TableName: target.tables.locks,
          Key: { name: str(lockName) },
          ConsistentRead: true,
        }),
      )
      .then((out) => out.Item),
    new DynamoRunJournal(target.dynamodb, target.tables.commands).runsOf(lockName),
  ]);
  const owner = lockItem === undefined ? undefined : readString(lockItem, 'owner');
  const leaseExpiresAt = lockItem === undefined ? undefined : readNumber(lockItem, 'leaseExpiresAt');
  const bound = [liveness.live?.startupTime, observedAt].filter(
    (t): t is number => t !== undefined && Number.isFinite(t),
  );
  const startedBefore = bound.length === 0 ? null : Math.min(...bound);
  const plan: DsPlan = {
    store: 'dolphinscheduler',
    host,
    nodeType,
    typeSource,
    database: {
      dialect: store.dialect,
      location: store.location,
      timeZone: store.timeZone,
      version: store.version,
    },
    ...(nodeType === 'worker' ? { note: WORKER_FAILOVER_BY_SCHEDULER } : {}),
    liveness: {
      registered: liveness.live !== null,
      startupTime: liveness.live?.startupTime ?? null,
      source: liveness.source,
    },
    observedAt,
    condition: {
      host,
      states: NEED_FAILOVER_STATES,
      startedBefore:
        startedBefore === null ? null : clock.format(startedBefore, store.dialect === 'mysql' ? 's' : 'ms'),
    },
    lock: {
      name: lockName,
      owner: owner ?? null,
      fence: lockItem === undefined ? null : (readNumber(lockItem, 'fence') ?? null),
      leaseExpiresAt: leaseExpiresAt ?? null,
      held: owner !== undefined && (leaseExpiresAt ?? 0) > now,
    },
    dolphinSchedulerLock: { path: dsLockPath, contenders: liveness.lock },
    journal: journal.map((run) => ({
      fence: run.fence,
      instances: run.receipts.length,
      commandIds: run.receipts.map((r) => r.commandId),
      writtenAt: run.writtenAt,
    })),
    eligible: [],
    skipped: [],
    malformed: [],
    notExecuting: null,
    leftoverCommands: [],
    summary: { eligible: 0, skipped: {}, malformed: 0 },
  };
  if (nodeType === 'worker') return plan;
  const instances = new DsInstanceStore(store.database, { clock, scanSpan: store.scanSpan });
  const bounds = { observedAt };
  let read = 0;
  let cursor: string | undefined;
  do {
    const page = await instances.pageByHost(host, PAGE_SIZE, cursor);
    plan.malformed.push(...page.malformed);
    for (const item of page.items) {
      const decision = processFailoverDecision(item, host, liveness.live, bounds);
      // MySQL keeps whole seconds (the store reads them as the end of that second).
      const precision = store.dialect === 'mysql' ? 's' : 'ms';
      const planned: DsPlannedInstance = {
        id: item.id,
        state: item.state,
        startTime: Number.isFinite(item.startTime) ? clock.format(item.startTime, precision) : null,
        restartTime: item.restartTime === undefined ? null : clock.format(item.restartTime, precision),
      };
      if (decision.eligible) {
        plan.eligible.push({
          ...planned,
          update: { table: 't_ds_process_instance', id: Number(item.id), set: { host: FAILED_OVER_HOST } },
          command: commandRowOf(item),
        });
      } else {
        plan.skipped.push({ ...planned, reason: decision.reason });
      }
      read += 1;
      options.onProgress?.(read);
    }
    cursor = page.cursor;
  } while (cursor !== undefined);
  plan.summary.eligible = plan.eligible.length;
  plan.summary.malformed = plan.malformed.length;
  for (const s of plan.skipped) plan.summary.skipped[s.reason] = (plan.summary.skipped[s.reason] ?? 0) + 1;
  return plan;
}

/** The human plan: the decisions, the rows and the command rows. */
export function renderDsPlan(plan: DsPlan, limit: number, now: number): string {
  const db = plan.database;
  const out: string[] = [
    `PLAN  failover of ${plan.nodeType} ${plan.host} on DolphinScheduler's database  (dry run: nothing is written)${
      plan.typeSource === 'mirror' ? '  [type from the servers mirror]' : ''
    }`,
    `  database: ${db.dialect} ${db.location}, DolphinScheduler ${db.version}, times in ${db.timeZone}`,
  ];
  if (plan.note !== undefined) {
    out.push(
      '',
      `  a worker: ${plan.note}.`,
      '  `zkf failover` acknowledges the request; nothing else happens.',
    );
    return out.join('\n');
  }
  out.push(
    '',
    `  liveness (${plan.liveness.source}, as the failover reads it): ${
      plan.liveness.registered
        ? `REGISTERED, incarnation started ${isoTime(plan.liveness.startupTime)}: only work older than that is failed over (F3)`
        : 'not registered: every executing instance is failed over'
    }`,
    `  observation bound: ${isoTime(plan.observedAt)}: instances started or restarted at or after it are skipped`,
    `  write condition of each row: host = '${plan.condition.host}' AND state IN (${plan.condition.states.join(',')})${
      plan.condition.startedBefore === null
        ? ''
        : ` AND start_time < '${plan.condition.startedBefore}' AND (restart_time IS NULL OR restart_time < '${plan.condition.startedBefore}')`
    }`,
    `  lock ${plan.lock.name}: ${
      plan.lock.held
        ? `HELD by ${plan.lock.owner} (fence ${plan.lock.fence}) until ${isoTime(plan.lock.leaseExpiresAt)}: a failover now retries after it`
        : `free${plan.lock.fence === null ? '' : ` (next fence ${plan.lock.fence + 1})`}`
    }`,
    `  DolphinScheduler's lock ${plan.dolphinSchedulerLock.path}: ${
      plan.dolphinSchedulerLock.contenders === null
        ? 'not read (no ZooKeeper: --zookeeper)'
        : plan.dolphinSchedulerLock.contenders.length === 0
          ? 'free'
          : `HELD by ${plan.dolphinSchedulerLock.contenders[0]}: a failover now is retried in 5 s, never waits`
    }`,
    `  earlier runs (journal): ${
      plan.journal.length === 0
        ? 'none'
        : plan.journal
            .map((r) => `fence ${r.fence}: ${r.instances} instances ${relative(r.writtenAt, now)}`)
            .join('; ')
    }`,
    '',
    `  would fail over   ${String(plan.eligible.length).padStart(6)} workflow instances  (per batch, one transaction: host '${plan.condition.host}' -> 'NULL', nothing else, and one t_ds_command row each)`,
    `  would skip        ${String(plan.skipped.length).padStart(6)}`,
    ...Object.entries(plan.summary.skipped).map(
      ([reason, n]) =>
        `      ${reason.padEnd(18)} ${String(n).padStart(6)}  ${skipRules[reason as FailoverSkipReason]}`,
    ),
    `  malformed         ${String(plan.malformed.length).padStart(6)}  ${plan.malformed.length > 0 ? skipRules.malformed : ''}`.trimEnd(),
    '  not executing          -  (not counted: t_ds_process_instance has no index on host)',
  );
  const rows = [
    ...plan.eligible.map((i) => [
      i.id,
      i.state,
      i.startTime ?? '-',
      i.restartTime ?? '-',
      `host -> '${FAILED_OVER_HOST}'`,
    ]),
    ...plan.skipped.map((i) => [
      i.id,
      i.state,
      i.startTime ?? '-',
      i.restartTime ?? '-',
      `skip: ${i.reason}`,
    ]),
    ...plan.malformed.map((m) => [m.id, '?', '-', '-', `malformed: ${m.problem}`]),
  ];
  if (rows.length > 0 && limit > 0) {
    out.push(
      '',
      `  ROWS of t_ds_process_instance (times in ${db.timeZone})`,
      table(['id', 'state', 'start_time', 'restart_time', 'change'], rows.slice(0, limit), '    '),
    );
    if (rows.length > limit) out.push(`    ... ${rows.length - limit} more (--all)`);
  }
  if (plan.eligible.length > 0 && limit > 0) {
    out.push(
      '',
      `  COMMAND ROWS inserted into t_ds_command, one per changed row (start_time = update_time = ${WRITE_TIME} in ${db.timeZone};`,
      '  warning_type 0, tenant_code default, environment_code -1, dry_run 0, the other columns NULL)',
      table(
        [
          'process_instance_id',
          'command_type',
          'process_definition_code',
          'version',
          'executor_id',
          'priority',
          'test_flag',
          'task_depend_type',
          'failure_strategy',
          'command_param',
        ],
        plan.eligible
          .slice(0, limit)
          .map(({ command: c }) => [
            String(c.process_instance_id),
            String(c.command_type),
            String(c.process_definition_code),
            String(c.process_definition_version),
            String(c.executor_id),
            String(c.process_instance_priority),
            String(c.test_flag),
            String(c.task_depend_type),
            String(c.failure_strategy),
            c.command_param,
          ]),
        '    ',
      ),
    );
    if (plan.eligible.length > limit) out.push(`    ... ${plan.eligible.length - limit} more (--all)`);
  }
  if (plan.lock.held) out.push('', `  note: the lock is held ${relative(plan.lock.leaseExpiresAt, now)}`);
  return out.join('\n');
}
