// The statements the DolphinScheduler store runs, per dialect, as pure builders (unit-tested as text).
// DolphinScheduler has no index on `host` (DESIGN D7): a host's instances are read by primary-key ranges,
// so every read is an index range scan of bounded size whatever the table holds.
import {
  FAILED_OVER_HOST,
  FAILURE_STRATEGY_CONTINUE,
  NEED_FAILOVER_STATES,
  RECOVER_TOLERANCE_FAULT_PROCESS,
  TASK_DEPEND_TYPE_TASK_POST,
} from './codes.ts';
import type { Dialect } from './database.ts';

export interface Statement {
  sql: string;
  params: unknown[];
}

const states = NEED_FAILOVER_STATES.join(', ');

/** `$n` (PostgreSQL) or `?` (MySQL) placeholders, numbered from `first`. */
function placeholders(dialect: Dialect, count: number, first = 1): string[] {
  return Array.from({ length: count }, (_, i) => (dialect === 'postgresql' ? `$${first + i}` : '?'));
}

/**
 * What the failover reads of an instance: the rules' inputs and the recovery command's sources. Its
 * workflow's schedule is read separately, once per page (schedulesSql): `t_ds_schedules` has no index on
 * the definition code, so a lookup per instance would scan it once for every instance.
 */
const instanceColumns = `i.id, i.host, i.state, i.process_definition_code, i.process_definition_version,
  i.executor_id, i.process_instance_priority, i.start_time, i.restart_time, i.command_param, i.test_flag`;

export interface InstanceRow {
  id: number | string;
  host: string | null;
  state: number | string | null;
  process_definition_code: string | number | null;
  process_definition_version: number | string | null;
  executor_id: number | string | null;
  process_instance_priority: number | string | null;
  start_time: string | null;
  restart_time: string | null;
  command_param: string | null;
  test_flag: number | string | null;
}

/**
 * The schedules of some workflow definitions, oldest first: a definition's first one is the schedule
 * DolphinScheduler's createCommand finds (its time zone goes into the recovery command).
 */
export function schedulesSql(dialect: Dialect, definitionCodes: readonly number[]): Statement {
  return {
    sql: `SELECT s.process_definition_code, s.timezone_id FROM t_ds_schedules s
WHERE s.process_definition_code IN (${placeholders(dialect, definitionCodes.length).join(', ')})
ORDER BY s.id`,
    params: [...definitionCodes],
  };
}

export interface ScheduleRow {
  process_definition_code: string | number;
  timezone_id: string | null;
}

export function maxInstanceIdSql(): Statement {
  return { sql: 'SELECT max(id) AS max_id FROM t_ds_process_instance', params: [] };
}

/** The host's executing instances with `afterId < id <= toId`, in id order, at most `limit`. */
export function hostInstancesSql(
  dialect: Dialect,
  host: string,
  range: { afterId: number; toId: number },
  limit: number,
): Statement {
  const [after, to, h, n] = placeholders(dialect, 4);
  return {
    sql: `SELECT ${instanceColumns}
FROM t_ds_process_instance i
WHERE i.id > ${after} AND i.id <= ${to} AND i.host = ${h} AND i.state IN (${states})
ORDER BY i.id
LIMIT ${n}`,
    params: [range.afterId, range.toId, host, limit],
  };
}

export function instancesByIdSql(dialect: Dialect, ids: readonly number[]): Statement {
  return {
    sql: `SELECT ${instanceColumns}
FROM t_ds_process_instance i
WHERE i.id IN (${placeholders(dialect, ids.length).join(', ')})`,
    params: [...ids],
  };
}

/** One instance to fail over: its id and its recovery command's `command_param`. */
export interface FailoverTarget {
  id: number;
  commandParam: string;
}

/**
 * The write condition (DESIGN D1/D2): still on the dead host, still executing, and (F3) started and
 * restarted before the bound. A row that no longer matches is neither changed nor given a command.
 */
function stillEligible(dialect: Dialect, hostParam: string, boundParam: string, alias?: string): string {
  const bound = dialect === 'postgresql' ? `${boundParam}::timestamp` : boundParam;
  const c = alias === undefined ? '' : `${alias}.`;
  return `${c}host = ${hostParam} AND ${c}state IN (${states})
    AND ${c}start_time < ${bound}
    AND (${c}restart_time IS NULL OR ${c}restart_time < ${bound})`;
}

const commandColumns = `command_type, process_definition_code, process_definition_version, process_instance_id,
  command_param, executor_id, process_instance_priority, test_flag, task_depend_type, failure_strategy,
  start_time, update_time`;

/**
 * PostgreSQL: the whole batch in one statement (one transaction): the conditional update of the batch's
 * rows, and one command per row it changed, built from the row as updated. Returns the command ids.
 */
export function pgFailoverSql(
  targets: readonly FailoverTarget[],
  host: string,
  startedBefore: string,
  now: string,
): Statement {
  return {
    sql: `WITH target AS (
  SELECT * FROM unnest($1::int[], $2::text[]) AS t(id, command_param)
), changed AS (
  UPDATE t_ds_process_instance AS i SET host = '${FAILED_OVER_HOST}'
  FROM target AS t
  WHERE i.id = t.id AND ${stillEligible('postgresql', '$3', '$4', 'i')}
  RETURNING i.id, i.process_definition_code, i.process_definition_version, i.executor_id,
    i.process_instance_priority, i.test_flag, t.command_param
)
INSERT INTO t_ds_command (${commandColumns})
SELECT ${RECOVER_TOLERANCE_FAULT_PROCESS}, c.process_definition_code, c.process_definition_version, c.id,
  c.command_param, c.executor_id, COALESCE(c.process_instance_priority, 2), c.test_flag,
  ${TASK_DEPEND_TYPE_TASK_POST}, ${FAILURE_STRATEGY_CONTINUE}, $5::timestamp, $5::timestamp
FROM changed AS c ORDER BY c.id
RETURNING id, process_instance_id`,
    params: [targets.map((t) => t.id), targets.map((t) => t.commandParam), host, startedBefore, now],
  };
}

/** MySQL, step 1 of the batch's transaction: lock the rows that still match, reading what the commands copy. */
export function mysqlLockSql(ids: readonly number[], host: string, startedBefore: string): Statement {
  return {
    sql: `SELECT i.id, i.process_definition_code, i.process_definition_version, i.executor_id,
  i.process_instance_priority, i.test_flag
FROM t_ds_process_instance i
WHERE i.id IN (${placeholders('mysql', ids.length).join(', ')}) AND ${stillEligible('mysql', '?', '?', 'i')}
ORDER BY i.id
FOR UPDATE`,
    params: [...ids, host, startedBefore, startedBefore],
  };
}

/**
 * MySQL, step 2: release the locked rows. `update_time = update_time` keeps the column DolphinScheduler's
 * MySQL schema would otherwise stamp by itself (ON UPDATE): host is the only column failover writes.
 */
export function mysqlReleaseSql(ids: readonly number[], host: string, startedBefore: string): Statement {
  // The rows are locked by step 1; the condition is repeated so that this statement alone is safe too.
  return {
    sql: `UPDATE t_ds_process_instance SET host = '${FAILED_OVER_HOST}', update_time = update_time
WHERE id IN (${placeholders('mysql', ids.length).join(', ')}) AND ${stillEligible('mysql', '?', '?')}`,
    params: [...ids, host, startedBefore, startedBefore],
  };
}

export interface LockedInstanceRow {
  id: number | string;
  process_definition_code: string | number;
  process_definition_version: number | string;
  executor_id: number | string | null;
  process_instance_priority: number | string | null;
  test_flag: number | string | null;
}

/** MySQL, step 3: one command per released row. */
export function mysqlInsertCommandsSql(
  rows: ReadonlyArray<LockedInstanceRow & { commandParam: string }>,
  now: string,
): Statement {
  return insertCommandsSql('mysql', rows, now);
}

/** One recovery command per row, from the row's own values (PostgreSQL: returning the command ids). */
export function insertCommandsSql(
  dialect: Dialect,
  rows: ReadonlyArray<LockedInstanceRow & { commandParam: string }>,
  now: string,
): Statement {
  const params: unknown[] = [];
  const values = rows.map((r) => {
    const [code, version, id, param, executor, priority, testFlag, start, update] = placeholders(
      dialect,
      9,
      params.length + 1,
    );
    params.push(
      r.process_definition_code,
      r.process_definition_version,
      r.id,
      r.commandParam,
      r.executor_id,
      r.process_instance_priority ?? 2,
      r.test_flag,
      now,
      now,
    );
    const [startAt, updateAt] =
      dialect === 'postgresql' ? [`${start}::timestamp`, `${update}::timestamp`] : [start, update];
    return `(${RECOVER_TOLERANCE_FAULT_PROCESS}, ${code}, ${version}, ${id}, ${param}, ${executor}, ${priority}, ${testFlag}, ${TASK_DEPEND_TYPE_TASK_POST}, ${FAILURE_STRATEGY_CONTINUE}, ${startAt}, ${updateAt})`;
  });
  const returning = dialect === 'postgresql' ? '\nRETURNING id, process_instance_id' : '';
  return {
    sql: `INSERT INTO t_ds_command (${commandColumns}) VALUES ${values.join(', ')}${returning}`,
    params,
  };
}

/** MySQL, step 4: the ids of the commands just inserted (this session's first insert id onwards). */
export function mysqlInsertedCommandsSql(ids: readonly number[]): Statement {
  return {
    sql: `SELECT id, process_instance_id FROM t_ds_command
WHERE id >= LAST_INSERT_ID() AND command_type = ${RECOVER_TOLERANCE_FAULT_PROCESS}
  AND process_instance_id IN (${placeholders('mysql', ids.length).join(', ')})
ORDER BY id`,
    params: [...ids],
  };
}

// --- the sweep (DESIGN D5) ------------------------------------------------------------------------------

/** The hosts of all executing instances, with how many each has; unowned markers are not hosts. */
export function executingHostsSql(): Statement {
  return {
    sql: `SELECT host, count(*) AS n FROM t_ds_process_instance
WHERE state IN (${states}) AND host IS NOT NULL AND host <> '${FAILED_OVER_HOST}'
GROUP BY host`,
    params: [],
  };
}

/**
 * The sweep's unowned candidates: executing instances with SQL NULL host or the `'NULL'` marker. Which of
 * the markers have no command is a second read (commandInstanceIdsSql), compared in memory: a NOT EXISTS
 * under the OR is planned per row on PostgreSQL (a correlated subplan), and with statistics older than a
 * mass failover (100,000 commands not yet analyzed) that scanned `t_ds_command`, which has no index on
 * `process_instance_id`, once per instance: minutes of CPU on the scheduler's database. Two scans never do.
 */
export function unownedCandidatesSql(): Statement {
  return {
    sql: `SELECT i.id, i.host FROM t_ds_process_instance i
WHERE i.state IN (${states}) AND (i.host IS NULL OR i.host = '${FAILED_OVER_HOST}')
ORDER BY i.id`,
    params: [],
  };
}

/** Every instance some command names (any type: a master takes such an instance over). */
export function commandInstanceIdsSql(): Statement {
  return {
    sql: `SELECT DISTINCT cmd.process_instance_id FROM t_ds_command cmd WHERE cmd.process_instance_id IS NOT NULL`,
    params: [],
  };
}

/** Repair, step 1: lock the instances that are still executing and unowned, reading what a command copies. */
export function lockUnownedSql(dialect: Dialect, ids: readonly number[]): Statement {
  return {
    sql: `SELECT ${instanceColumns}
FROM t_ds_process_instance i
WHERE i.id IN (${placeholders(dialect, ids.length).join(', ')}) AND i.state IN (${states})
  AND (i.host IS NULL OR i.host = '${FAILED_OVER_HOST}')
ORDER BY i.id
FOR UPDATE`,
    params: [...ids],
  };
}

/** Repair, step 2: which of the locked instances have a command (a master will take those over). */
export function commandedInstancesSql(dialect: Dialect, ids: readonly number[]): Statement {
  return {
    sql: `SELECT DISTINCT process_instance_id FROM t_ds_command
WHERE process_instance_id IN (${placeholders(dialect, ids.length).join(', ')})`,
    params: [...ids],
  };
}

/** Repair, step 3: SQL NULL host becomes the marker (MySQL: keeping update_time, as the failover does). */
export function markUnownedSql(dialect: Dialect, ids: readonly number[]): Statement {
  const keep = dialect === 'mysql' ? ', update_time = update_time' : '';
  return {
    sql: `UPDATE t_ds_process_instance SET host = '${FAILED_OVER_HOST}'${keep}
WHERE id IN (${placeholders(dialect, ids.length).join(', ')}) AND host IS NULL`,
    params: [...ids],
  };
}
