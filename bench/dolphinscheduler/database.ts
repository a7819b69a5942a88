// The benchmark's DolphinScheduler database: the real server of a dialect (PostgreSQL, or MariaDB for
// mysql) started as the local stack starts it, with the project's 3.2 DDL, on the service core. Tables are
// seeded by the server itself (PostgreSQL generate_series, MariaDB's sequence engine) in the row shape of
// test/integration/ds-support.ts `seedDsInstances`: the dead host's executing instances spread evenly
// among finished instances of other hosts. Every run is checked from the tables: one command row per
// instance, none left on the dead host.
import mysql from 'mysql2/promise';
import pg from 'pg';
import { applyDolphinSchedulerSchema, startLocalDatabase } from '../../lib/local/database.ts';
import { NEED_FAILOVER_STATES } from '../../lib/store/dolphinscheduler/codes.ts';
import {
  type Database,
  type Dialect,
  openDatabase,
  parseDatabaseUrl,
} from '../../lib/store/dolphinscheduler/database.ts';
import { WallClock } from '../../lib/store/dolphinscheduler/wall-time.ts';
import { type Cores, pinDatabaseServer } from '../cores.ts';
import { sleep } from '../support.ts';

/** DolphinScheduler's masters run in Shanghai, as in the integration tests: F3 converts every time. */
export const DS_TIME_ZONE = 'Asia/Shanghai';

const executingStates = NEED_FAILOVER_STATES.join(', ');

/** The index the benchmark measures (and the docs recommend), per dialect. */
export const HOST_INDEX = 'bench_process_instance_executing_host';

/**
 * PostgreSQL: a partial index of the executing instances by (host, id): a host's executing instances in id
 * order (the function's page reads and DolphinScheduler's own query), and the distinct hosts of executing
 * work (the sweep) by an index-only scan, while finished instances stay out of it. MySQL has no partial
 * indexes: (host, state), to which InnoDB appends the primary key.
 */
export function hostIndexDdl(dialect: Dialect): string {
  return dialect === 'postgresql'
    ? `CREATE INDEX ${HOST_INDEX} ON t_ds_process_instance (host, id) WHERE state IN (${executingStates})`
    : `CREATE INDEX ${HOST_INDEX} ON t_ds_process_instance (host, state)`;
}

export interface BenchDatabase {
  readonly dialect: Dialect;
  readonly url: string;
  /** The bench's own connections (seeding, checks); closed while the database's statistics are read. */
  readonly admin: Database;
  /** pg_stat_statements is loaded (PostgreSQL). */
  readonly statStatements: boolean;
  /** The database server on the service core, or why not. */
  readonly cores: Cores;
  /** Closes the bench's connections and waits until no client connection is left (statistics flushed). */
  quiesce(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the server of the dialect with DolphinScheduler's tables, on the service core when there is one. */
export async function startBenchDatabase(dialect: Dialect, cores: Cores): Promise<BenchDatabase> {
  const server = await startLocalDatabase(dialect);
  try {
    const pinned = pinDatabaseServer(server.pid, cores);
    await applyDolphinSchedulerSchema(server.url);
    let admin = openDatabase(parseDatabaseUrl(server.url), {
      max: 2,
      lockTimeoutMs: 30_000,
      statementTimeoutMs: 600_000,
    });
    await seedSchedules(admin, SCHEDULES);
    const statStatements =
      dialect === 'postgresql' &&
      (await admin.query("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")).length > 0;
    const reopen = () =>
      openDatabase(parseDatabaseUrl(server.url), {
        max: 2,
        lockTimeoutMs: 30_000,
        statementTimeoutMs: 600_000,
      });
    let closed = false;
    return {
      dialect,
      url: server.url,
      get admin() {
        if (closed) {
          admin = reopen();
          closed = false;
        }
        return admin;
      },
      statStatements,
      cores: pinned,
      async quiesce() {
        if (!closed) await admin.close();
        closed = true;
        await waitForNoClients(server.url);
      },
      async stop() {
        if (!closed) await admin.close().catch(() => undefined);
        await server.stop();
      },
    };
  } catch (error: unknown) {
    await server.stop();
    throw error;
  }
}

/**
 * Schedules in `t_ds_schedules`, of workflows other than the seeded instances' own: a cluster's scheduled
 * workflows. The table has no index on the definition code, so what looks a workflow's schedule up per
 * instance (DolphinScheduler's createCommand) scans them all each time; the store reads them once per page.
 */
export const SCHEDULES = 1_000;

/** The first definition code of the seeded schedules (the instances' own, 9876543210, is not among them). */
const SCHEDULED_CODES_FROM = 1_111_100_000;

async function seedSchedules(db: Database, count: number): Promise<void> {
  if (!Number.isSafeInteger(count) || count < 1) return;
  const values = `'0 0 * * * ? *', '2024-01-01 00:00:00', '2099-01-01 00:00:00', 1, 1, 1, 0,
  '2024-01-01 00:00:00', '2024-01-01 00:00:00'`;
  const columns = `process_definition_code, timezone_id, crontab, start_time, end_time, failure_strategy,
  user_id, release_state, warning_type, create_time, update_time`;
  if (db.dialect === 'postgresql') {
    await db.query(
      `INSERT INTO t_ds_schedules (${columns})
SELECT ${SCHEDULED_CODES_FROM} + g, 'Asia/Shanghai', ${values} FROM generate_series(1, $1::int) AS g`,
      [count],
    );
    return;
  }
  // The sequence engine's table name carries its size: an integer checked above.
  await db.query(
    `INSERT INTO t_ds_schedules (${columns})
SELECT ${SCHEDULED_CODES_FROM} + seq, 'Asia/Shanghai', ${values} FROM seq_1_to_${count}`,
  );
}

/** Client connections of the database other than the asking one. */
async function otherClients(url: string): Promise<number> {
  const rows = await withClient(url, (query) =>
    query(
      parseDatabaseUrl(url).dialect === 'postgresql'
        ? "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        : "SELECT count(*) AS n FROM information_schema.processlist WHERE id <> connection_id() AND command <> 'Daemon'",
    ),
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * Waits until every other client has disconnected. A PostgreSQL backend flushes its table statistics when
 * it exits (and otherwise up to 10 s after it goes idle): only then does pg_stat_user_tables count its work.
 */
export async function waitForNoClients(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await otherClients(url)) > 0) {
    if (Date.now() > deadline) throw new Error('database clients still connected after the work ended');
    await sleep(20);
  }
  await sleep(100);
}

/**
 * One short-lived plain connection, with no session set-up statements of its own (they would count among
 * MariaDB's statements); it never touches DolphinScheduler's tables.
 */
async function withClient<T>(
  url: string,
  work: (query: (sql: string) => Promise<Record<string, unknown>[]>) => Promise<T>,
): Promise<T> {
  if (parseDatabaseUrl(url).dialect === 'postgresql') {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return await work(async (sql) => (await client.query(sql)).rows as Record<string, unknown>[]);
    } finally {
      await client.end();
    }
  }
  const connection = await mysql.createConnection({ uri: url });
  try {
    return await work(async (sql) => {
      const [rows] = await connection.query(sql);
      return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
    });
  } finally {
    await connection.end();
  }
}

/** Empties the instance and command tables and restarts their ids (every run starts from the same table). */
export async function resetTables(db: Database): Promise<void> {
  if (db.dialect === 'postgresql') {
    await db.query('TRUNCATE t_ds_process_instance, t_ds_command');
    await db.query("SELECT setval('t_ds_process_instance_id_sequence', 1, false)");
    await db.query("SELECT setval('t_ds_command_id_sequence', 1, false)");
  } else {
    await db.query('TRUNCATE TABLE t_ds_process_instance');
    await db.query('TRUNCATE TABLE t_ds_command');
  }
}

export interface SeedShape {
  host: string;
  /** The dead host's executing instances (RUNNING_EXECUTION, as seedDsInstances writes them). */
  executing: number;
  /** Finished instances of other hosts (SUCCESS, FAILURE, STOP, PAUSE in turn), the executing ones spread among them. */
  finished: number;
  /** Epoch ms; every instance started then (written as DolphinScheduler's wall time). */
  startTime: number;
}

const seededColumns = `name, process_definition_code, process_definition_version, project_code, state, state_history,
  recovery, start_time, run_times, host, command_type, command_param, task_depend_type, max_try_times,
  failure_strategy, warning_type, command_start_time, global_params, flag, is_sub_process, executor_id,
  executor_name, history_cmd, process_instance_priority, worker_group, environment_code, timeout, tenant_code,
  var_pool, dry_run, next_process_instance_id, restart_time, test_flag`;

/** The instance's own command_param, as seedDsInstances writes it (StartParams, copied into the command). */
const storedCommandParam = '{"StartParams":"{\\"day\\":\\"2024-01-01\\"}"}';

/**
 * Appends `executing + finished` instances in one statement run by the server: row g (1-based) is one of
 * the host's executing instances when it crosses a multiple of `total / executing`, so they stand evenly
 * spread among the finished ones, as a host's work does among the history of a cluster (the generators
 * produce g in order, and the ids follow it). Row shape and values as seedDsInstances / seedFinished
 * write them.
 */
export async function seedInstances(db: Database, shape: SeedShape): Promise<void> {
  const total = shape.executing + shape.finished;
  if (total === 0) return;
  if (!Number.isSafeInteger(total) || total < 0) throw new RangeError(`cannot seed ${total} instances`);
  const clock = new WallClock(DS_TIME_ZONE);
  const start = clock.format(shape.startTime, db.dialect === 'mysql' ? 's' : 'ms');
  if (db.dialect === 'postgresql') {
    await db.query(
      `INSERT INTO t_ds_process_instance (${seededColumns})
SELECT 'workflow-' || g, 9876543210, 3, 1234567, CASE WHEN e THEN 1 ELSE (ARRAY[7, 6, 5, 3])[g % 4 + 1] END,
  '[]', 0, $1::timestamp, 1,
  CASE WHEN e THEN $2 ELSE '172.16.' || (g % 200) || '.' || (g % 7 + 1) || ':5678' END,
  0, $3, 2, 0, 1, 0, $1::timestamp, '[]', 1, 0, 7, 'admin', 'START_PROCESS', 2, 'default', -1, 0, 'default',
  '[]', 0, 0, NULL, 0
FROM (SELECT g, (g::bigint * $4 / $5) <> ((g - 1)::bigint * $4 / $5) AS e FROM generate_series(1, $5::int) AS g) s`,
      [start, shape.host, storedCommandParam, shape.executing, total],
    );
    return;
  }
  // The sequence engine's table name carries its size: an integer checked above.
  await db.query(
    `INSERT INTO t_ds_process_instance (${seededColumns})
SELECT CONCAT('workflow-', g), 9876543210, 3, 1234567, IF(e, 1, ELT(g % 4 + 1, 7, 6, 5, 3)),
  '[]', 0, ?, 1,
  IF(e, ?, CONCAT('172.16.', g % 200, '.', g % 7 + 1, ':5678')),
  0, ?, 2, 0, 1, 0, ?, '[]', 1, 0, 7, 'admin', 'START_PROCESS', 2, 'default', -1, 0, 'default',
  '[]', 0, 0, NULL, 0
FROM (SELECT seq AS g, (seq * ? DIV ?) <> ((seq - 1) * ? DIV ?) AS e FROM seq_1_to_${total}) s`,
    [start, shape.host, storedCommandParam, start, shape.executing, total, shape.executing, total],
  );
}

/** Statistics for the planner (and PostgreSQL's visibility map), as a table that has been around has them. */
export async function analyzeTables(db: Database): Promise<void> {
  if (db.dialect === 'postgresql') {
    await db.query('VACUUM ANALYZE t_ds_process_instance');
    await db.query('VACUUM ANALYZE t_ds_command');
  } else {
    await db.query('ANALYZE TABLE t_ds_process_instance, t_ds_command');
  }
}

/** A fresh table: emptied, seeded, analysed. */
export async function freshTable(db: Database, shape: SeedShape): Promise<void> {
  await resetTables(db);
  await seedInstances(db, shape);
  await analyzeTables(db);
}

export interface FailoverCheck {
  /** Executing instances in the table (all of them the dead host's, since each run has its own table). */
  executing: number;
  /** Command rows. */
  commands: number;
  /** Command rows beyond one per executing instance (a second command, or one for another instance). */
  duplicates: number;
  /** Executing instances without a command row. */
  missing: number;
  /** Executing instances still on the dead host. */
  leftovers: number;
}

/**
 * Reads the outcome back from the tables, independently of what the run reported: command rows per
 * instance (t_ds_command), and instances still on the dead host (t_ds_process_instance).
 */
export async function checkFailover(db: Database, host: string): Promise<FailoverCheck> {
  const instances = await db.query<{ id: number | string; host: string | null }>(
    `SELECT id, host FROM t_ds_process_instance WHERE state IN (${executingStates})`,
  );
  const commands = await db.query<{ process_instance_id: number | string | null }>(
    'SELECT process_instance_id FROM t_ds_command',
  );
  const perInstance = new Map<number, number>();
  for (const c of commands) {
    const id = Number(c.process_instance_id);
    perInstance.set(id, (perInstance.get(id) ?? 0) + 1);
  }
  let missing = 0;
  let leftovers = 0;
  let covered = 0;
  for (const i of instances) {
    if ((perInstance.get(Number(i.id)) ?? 0) === 0) missing += 1;
    else covered += 1;
    if (i.host === host) leftovers += 1;
  }
  return {
    executing: instances.length,
    commands: commands.length,
    duplicates: commands.length - covered,
    missing,
    leftovers,
  };
}

export async function createHostIndex(db: Database): Promise<void> {
  await db.query(hostIndexDdl(db.dialect));
  await analyzeTables(db);
}

export async function dropHostIndex(db: Database): Promise<void> {
  await db.query(
    db.dialect === 'postgresql'
      ? `DROP INDEX IF EXISTS ${HOST_INDEX}`
      : `DROP INDEX IF EXISTS ${HOST_INDEX} ON t_ds_process_instance`,
  );
}

/** What the database counted, as deltas between two snapshots (its own statistics). */
export interface DatabaseCounters {
  /** Statements the server executed for clients (pg_stat_statements calls; MariaDB Questions). */
  statements: number;
  /**
   * Rows read (PostgreSQL: rows of sequential scans plus index entries read, DolphinScheduler's tables;
   * MariaDB: Rows_read).
   */
  rowsRead: number;
  rowsUpdated: number;
  rowsInserted: number;
  /** Per table (PostgreSQL) or per handler counter (MariaDB): the figures behind `rowsRead`. */
  detail: Record<string, number>;
}

/**
 * A snapshot of the database's cumulative statistics, read on a connection of its own. PostgreSQL:
 * pg_stat_user_tables (and pg_stat_statements when loaded); call it only when no other client is connected
 * (`quiesce`), since a backend reports its table statistics when it exits. MariaDB: the global status
 * counters, which count at once.
 */
export async function readCounters(db: BenchDatabase): Promise<DatabaseCounters> {
  if (db.dialect === 'postgresql') {
    return withClient(db.url, async (query) => {
      // Index entries read (idx_tup_read of the table's indexes) rather than heap fetches: an index-only
      // scan reads entries and fetches no row.
      const tables = await query(
        `SELECT t.relname, t.seq_tup_read, t.n_tup_upd, t.n_tup_ins,
           (SELECT COALESCE(sum(x.idx_tup_read), 0) FROM pg_stat_user_indexes x WHERE x.relid = t.relid) AS idx_tup_read
         FROM pg_stat_user_tables t WHERE t.relname IN ('t_ds_process_instance', 't_ds_command', 't_ds_schedules')`,
      );
      // Statements of this database, less the benchmark's own reads of the statistics views.
      const statements = db.statStatements
        ? await query(
            `SELECT sum(calls) AS calls FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query NOT LIKE '%pg_stat%'`,
          )
        : [{ calls: null }];
      const detail: Record<string, number> = {};
      let rowsRead = 0;
      let rowsUpdated = 0;
      let rowsInserted = 0;
      for (const t of tables) {
        const seq = Number(t.seq_tup_read);
        const idx = Number(t.idx_tup_read);
        detail[`${t.relname}.seq_tup_read`] = seq;
        detail[`${t.relname}.idx_tup_read`] = idx;
        rowsRead += seq + idx;
        rowsUpdated += Number(t.n_tup_upd);
        rowsInserted += Number(t.n_tup_ins);
      }
      return {
        statements: Number(statements[0]?.calls ?? Number.NaN),
        rowsRead,
        rowsUpdated,
        rowsInserted,
        detail,
      };
    });
  }
  // MariaDB 10.11 has no Innodb_rows_* counters: Rows_read counts the row reads of every table (its own
  // system tables included), Handler_update and Handler_write the row updates and inserts.
  const names = [
    'Questions',
    'Rows_read',
    'Handler_update',
    'Handler_write',
    'Handler_read_key',
    'Handler_read_next',
    'Handler_read_rnd_next',
  ];
  const rows = await withClient(db.url, (query) =>
    query(`SHOW GLOBAL STATUS WHERE Variable_name IN (${names.map((n) => `'${n}'`).join(', ')})`),
  );
  const value = (name: string) => Number(rows.find((r) => r.Variable_name === name)?.Value ?? Number.NaN);
  return {
    // The SHOW of this snapshot is one of them.
    statements: value('Questions'),
    rowsRead: value('Rows_read'),
    rowsUpdated: value('Handler_update'),
    rowsInserted: value('Handler_write'),
    detail: Object.fromEntries(names.slice(4).map((n) => [n, value(n)])),
  };
}

/** `after - before`, figure by figure (MariaDB: less the one SHOW statement of the `after` snapshot). */
export function countersBetween(
  dialect: Dialect,
  before: DatabaseCounters,
  after: DatabaseCounters,
): DatabaseCounters {
  const detail: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.detail)) detail[k] = v - (before.detail[k] ?? 0);
  return {
    statements: after.statements - before.statements - (dialect === 'mysql' ? 1 : 0),
    rowsRead: after.rowsRead - before.rowsRead,
    rowsUpdated: after.rowsUpdated - before.rowsUpdated,
    rowsInserted: after.rowsInserted - before.rowsInserted,
    detail,
  };
}

/**
 * Runs one statement on a connection of its own, with the database's counters read around it (PostgreSQL:
 * with every other client gone, so that the table statistics are complete): its time, rows and cost.
 */
export async function measureAlone(
  db: BenchDatabase,
  sql: string,
): Promise<{ ms: number; rows: Record<string, unknown>[]; counters: DatabaseCounters }> {
  await db.quiesce();
  const before = await readCounters(db);
  const { ms, rows } = await withClient(db.url, async (query) => {
    const started = performance.now();
    const out = await query(sql);
    return { ms: performance.now() - started, rows: out };
  });
  if (db.dialect === 'postgresql') await waitForNoClients(db.url);
  const after = await readCounters(db);
  return { ms, rows, counters: countersBetween(db.dialect, before, after) };
}
