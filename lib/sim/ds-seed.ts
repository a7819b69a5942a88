// The simulated cluster's work on DolphinScheduler's own tables (`npm start -- --store postgresql|mysql`),
// written as a DolphinScheduler 3.2 master writes it (shared/dolphinscheduler.md section 2): a history of
// finished workflow instances of former servers first (the table a cluster keeps around its live work),
// then the demo masters' instances, most executing, some finished, with their task instances on the
// workers. Deterministic for a given size. Times are wall-clock time in DolphinScheduler's zone.
import { NEED_FAILOVER_STATES, WorkflowState } from '../store/dolphinscheduler/codes.ts';
import type { Database } from '../store/dolphinscheduler/database.ts';
import { WallClock } from '../store/dolphinscheduler/wall-time.ts';
import type { SimServer } from './options.ts';

/** One workflow instance as a 3.2 master inserts it (the fields that vary; the rest as 3.2 writes them). */
export interface DsInstanceSeed {
  host: string | null;
  state: number;
  /** Epoch ms. */
  startTime: number;
  endTime?: number;
  commandParam: string | null;
  processDefinitionCode: number;
  processDefinitionVersion: number;
  executorId: number;
  /** Null: none written (the column's default applies when a command is built from it). */
  priority: number | null;
  /** Epoch ms of a master's takeover (3.2 sets it when it recovers the instance). */
  restartTime?: number;
  testFlag?: number | null;
}

export interface DsTaskSeed {
  /** Index into the instances of the same batch (its id is known once they are inserted). */
  instance: number;
  host: string;
  state: number;
  submitTime: number;
  taskCode: number;
}

export interface DsSeededWork {
  /** The demo masters' instances, in id order. */
  readonly instances: ReadonlyArray<{ id: number; host: string; state: number }>;
  readonly tasks: ReadonlyArray<{ id: number; host: string; state: number; processInstanceId: number }>;
  /** Finished instances of former servers seeded before them. */
  readonly history: number;
  /** Workflow definitions with a schedule (their recovery commands carry its time zone). */
  readonly scheduledDefinitions: readonly number[];
}

/** The demo masters' instance states in turn (3.2 codes): mostly executing, some finished. */
const INSTANCE_STATES = [
  WorkflowState.RUNNING_EXECUTION,
  WorkflowState.RUNNING_EXECUTION,
  WorkflowState.SUCCESS,
  WorkflowState.RUNNING_EXECUTION,
  WorkflowState.SUBMITTED_SUCCESS,
  WorkflowState.RUNNING_EXECUTION,
  WorkflowState.READY_PAUSE,
  WorkflowState.RUNNING_EXECUTION,
  WorkflowState.FAILURE,
  WorkflowState.RUNNING_EXECUTION,
  WorkflowState.DELAY_EXECUTION,
  WorkflowState.RUNNING_EXECUTION,
  WorkflowState.READY_STOP,
  WorkflowState.RUNNING_EXECUTION,
  WorkflowState.STOP,
  WorkflowState.RUNNING_EXECUTION,
] as const;

/** Task states a worker failover applies to (0, 17 DISPATCH, 1, 12), in turn. */
const TASK_STATES = [1, 17, 1, 0, 1, 12, 1] as const;
const TASK_SUCCESS = 7;
const HISTORY_STATES = [
  WorkflowState.SUCCESS,
  WorkflowState.FAILURE,
  WorkflowState.STOP,
  WorkflowState.PAUSE,
];

export const DEFINITION_CODE_BASE = 8_000_000_000;
/** Definitions 0 and 7 run on a schedule, in these zones (`t_ds_schedules.timezone_id`). */
const SCHEDULES: ReadonlyArray<[number, string]> = [
  [DEFINITION_CODE_BASE, 'Asia/Shanghai'],
  [DEFINITION_CODE_BASE + 7, 'Europe/Berlin'],
];

export function isExecutingState(state: number): boolean {
  return NEED_FAILOVER_STATES.includes(state);
}

/** `count` instances over the masters and their tasks over the workers, started during the last hour. */
export function buildDsWork(
  servers: readonly SimServer[],
  count: number,
  now: number,
): { instances: DsInstanceSeed[]; tasks: DsTaskSeed[] } {
  const masters = servers.filter((s) => s.nodeType === 'master');
  const workers = servers.filter((s) => s.nodeType === 'worker');
  const instances: DsInstanceSeed[] = [];
  const tasks: DsTaskSeed[] = [];
  for (let i = 0; i < count; i += 1) {
    const state = INSTANCE_STATES[(i * 7) % INSTANCE_STATES.length] ?? WorkflowState.RUNNING_EXECUTION;
    const startTime = now - 60_000 - ((i * 7_919) % 3_540_000);
    const executing = isExecutingState(state);
    instances.push({
      host: masters[i % masters.length]?.host ?? null,
      state,
      startTime,
      ...(executing ? {} : { endTime: startTime + 30_000 }),
      // 3.2 keeps the start parameters as a JSON text inside command_param.
      commandParam:
        i % 5 === 0 ? JSON.stringify({ StartParams: JSON.stringify({ bizDate: '2024-05-01' }) }) : null,
      processDefinitionCode: DEFINITION_CODE_BASE + (i % 12),
      processDefinitionVersion: 1 + (i % 3),
      executorId: 1 + (i % 4),
      priority: i % 5,
    });
    const taskCount = executing ? 1 + (i % 3 === 0 ? 1 : 0) : 1;
    for (let t = 0; t < taskCount; t += 1) {
      const n = tasks.length;
      tasks.push({
        instance: i,
        host: workers[n % workers.length]?.host ?? '',
        state: executing ? (TASK_STATES[n % TASK_STATES.length] ?? 1) : TASK_SUCCESS,
        submitTime: startTime + 1_000 + t * 30_000,
        taskCode: 9_000_000_000 + (i % 12) * 10 + t,
      });
    }
  }
  return { instances, tasks };
}

/** Finished instances of former servers (`10.0.9.x:5678`), started during the last 30 days. */
export function buildDsHistory(count: number, now: number): DsInstanceSeed[] {
  return Array.from({ length: count }, (_, i) => {
    const startTime = now - 3_600_000 - ((i * 104_729) % (30 * 86_400_000));
    return {
      host: `10.0.9.${(i % 20) + 1}:5678`,
      state: HISTORY_STATES[i % HISTORY_STATES.length] ?? WorkflowState.SUCCESS,
      startTime,
      endTime: startTime + 60_000 + (i % 50) * 1_000,
      commandParam: i % 3 === 0 ? '{}' : null,
      processDefinitionCode: DEFINITION_CODE_BASE + 100 + (i % 40),
      processDefinitionVersion: 1,
      executorId: 1 + (i % 4),
      priority: 2,
    };
  });
}

/** Seeds the schedules, the history, then the masters' instances and their tasks. */
export async function seedDsWork(
  db: Database,
  timeZone: string,
  servers: readonly SimServer[],
  options: { instances: number; history: number; now: number },
): Promise<DsSeededWork> {
  const clock = new WallClock(timeZone);
  const precision = db.dialect === 'mysql' ? 's' : 'ms';
  const at = (t: number | undefined) => (t === undefined ? null : clock.format(t, precision));
  for (const [code, zone] of SCHEDULES) {
    await insertRows(
      db,
      't_ds_schedules',
      [
        'process_definition_code',
        'start_time',
        'end_time',
        'timezone_id',
        'crontab',
        'failure_strategy',
        'user_id',
        'release_state',
        'warning_type',
        'process_instance_priority',
        'worker_group',
        'create_time',
        'update_time',
      ],
      [
        [
          code,
          '2024-01-01 00:00:00',
          '2099-12-31 00:00:00',
          zone,
          '0 0 * * * ? *',
          1,
          1,
          1,
          0,
          2,
          'default',
          at(options.now - 86_400_000),
          at(options.now - 86_400_000),
        ],
      ],
    );
  }
  await insertInstances(db, at, buildDsHistory(options.history, options.now));
  const work = buildDsWork(servers, options.instances, options.now);
  const ids = await insertInstances(db, at, work.instances);
  const taskIds = await insertRows(
    db,
    't_ds_task_instance',
    taskColumns,
    work.tasks.map((t, n) => {
      const instanceId = ids[t.instance] ?? 0;
      const executing = t.state !== TASK_SUCCESS;
      return [
        `task-${t.taskCode}`,
        'SHELL',
        t.taskCode,
        1,
        instanceId,
        `workflow-${instanceId}`,
        1_234_567,
        t.state,
        at(t.submitTime),
        at(t.submitTime + 500),
        executing ? null : at(t.submitTime + 20_000),
        t.host,
        `/tmp/dolphinscheduler/exec/process/${instanceId}/${n}`,
        `/opt/dolphinscheduler/logs/${instanceId}-${n}.log`,
        0,
        executing ? 40_000 + n : 0,
        '{"localParams":[],"rawScript":"sleep 3600","resourceList":[]}',
        1,
        0,
        2,
        'default',
        -1,
        1,
        'admin',
        at(t.submitTime),
        0,
        -1,
        -1,
        0,
      ];
    }),
  );
  return {
    instances: work.instances.map((s, i) => ({ id: ids[i] ?? 0, host: s.host ?? '', state: s.state })),
    tasks: work.tasks.map((t, i) => ({
      id: taskIds[i] ?? 0,
      host: t.host,
      state: t.state,
      processInstanceId: ids[t.instance] ?? 0,
    })),
    history: options.history,
    scheduledDefinitions: SCHEDULES.map(([code]) => code),
  };
}

/** The columns a 3.2 master writes when it creates a workflow instance (ProcessInstance entity). */
const instanceColumns = [
  'name',
  'process_definition_code',
  'process_definition_version',
  'project_code',
  'state',
  'state_history',
  'recovery',
  'start_time',
  'end_time',
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
  'update_time',
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
  'test_flag',
  'restart_time',
] as const;

const taskColumns = [
  'name',
  'task_type',
  'task_code',
  'task_definition_version',
  'process_instance_id',
  'process_instance_name',
  'project_code',
  'state',
  'submit_time',
  'start_time',
  'end_time',
  'host',
  'execute_path',
  'log_path',
  'retry_times',
  'pid',
  'task_params',
  'flag',
  'is_cache',
  'task_instance_priority',
  'worker_group',
  'environment_code',
  'executor_id',
  'executor_name',
  'first_submit_time',
  'delay_time',
  'cpu_quota',
  'memory_max',
  'test_flag',
] as const;

async function insertInstances(
  db: Database,
  at: (t: number | undefined) => string | null,
  seeds: readonly DsInstanceSeed[],
): Promise<number[]> {
  return insertRows(
    db,
    't_ds_process_instance',
    instanceColumns,
    seeds.map((s, i) => {
      const stateName = Object.entries(WorkflowState).find(([, code]) => code === s.state)?.[0] ?? 'null';
      return [
        `workflow-${s.processDefinitionCode % 1000}-${i}`,
        s.processDefinitionCode,
        s.processDefinitionVersion,
        1_234_567,
        s.state,
        JSON.stringify([{ time: at(s.startTime)?.slice(0, 19), state: stateName, desc: 'init running' }]),
        0,
        at(s.startTime),
        at(s.endTime),
        1,
        s.host,
        0,
        s.commandParam,
        2,
        0,
        1,
        0,
        at(s.startTime - 200),
        '[]',
        1,
        at(s.endTime ?? s.startTime),
        0,
        s.executorId,
        'admin',
        'START_PROCESS',
        s.priority,
        'default',
        -1,
        0,
        'default',
        '[]',
        0,
        0,
        s.testFlag === undefined ? 0 : s.testFlag,
        at(s.restartTime),
      ];
    }),
  );
}

/** Inserts workflow instances as a 3.2 master writes them, times in `timeZone`; returns their ids in order. */
export function insertDsInstances(
  db: Database,
  timeZone: string,
  seeds: readonly DsInstanceSeed[],
): Promise<number[]> {
  const clock = new WallClock(timeZone);
  const precision = db.dialect === 'mysql' ? 's' : 'ms';
  return insertInstances(db, (t) => (t === undefined ? null : clock.format(t, precision)), seeds);
}

/** Multi-row inserts of 500 rows each; returns the new ids in order. */
async function insertRows(
  db: Database,
  table: string,
  columns: readonly string[],
  rows: ReadonlyArray<readonly unknown[]>,
): Promise<number[]> {
  const ids: number[] = [];
  for (let offset = 0; offset < rows.length; offset += 500) {
    const chunk = rows.slice(offset, offset + 500);
    const params: unknown[] = [];
    const values = chunk.map((row) => {
      const marks = row.map((value) => {
        params.push(value);
        return db.dialect === 'postgresql' ? `$${params.length}` : '?';
      });
      return `(${marks.join(', ')})`;
    });
    const insert = `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values.join(', ')}`;
    if (db.dialect === 'postgresql') {
      const out = await db.query<{ id: number }>(`${insert} RETURNING id`, params);
      ids.push(...out.map((r) => Number(r.id)));
    } else {
      await db.transaction(async (tx) => {
        await tx.query(insert, params);
        // A multi-row insert of known size takes consecutive AUTO_INCREMENT values (innodb_autoinc_lock_mode
        // 1, MariaDB's default; nothing else inserts while the demo seeds); LAST_INSERT_ID() is the first.
        const [first] = await tx.query<{ id: number | string }>('SELECT LAST_INSERT_ID() AS id');
        for (let i = 0; i < chunk.length; i += 1) ids.push(Number(first?.id) + i);
      });
    }
  }
  return ids;
}
