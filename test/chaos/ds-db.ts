// The chaos harness's side of DolphinScheduler's database: connections tagged with who writes (the audit
// triggers record it), the audit tables and triggers that only the harness creates in its throw-away
// database (never in the schema file), and the database faults (connections killed mid-transaction,
// statements cancelled as a statement timeout would, row locks held by a competing transaction).
//
// Writers: the failover function's connections are `zk-failover` (its pool's application_name on
// PostgreSQL; on MySQL the only connections that do not tag themselves); the simulated DolphinScheduler
// masters are `ds-master`; the harness's seeding and reads are `chaos-harness`; the scheduler's concurrent
// changes are `chaos-scheduler`.
import mysql from 'mysql2/promise';
import pg from 'pg';
import {
  type Database,
  type Dialect,
  mysqlTransaction,
  pgTextTypes,
  pgTransaction,
  type Transaction,
} from '../../lib/store/dolphinscheduler/database.ts';

export type Writer = 'ds-master' | 'chaos-harness' | 'chaos-scheduler' | 'zk-sweep';

/** The sweep's writer name (its repairs: DESIGN D5). */
export const SWEEP_WRITER = 'zk-sweep';

/** The failover function's writer name (its own connections, which the harness does not tag). */
export const FUNCTION_WRITER = 'zk-failover';

/**
 * A small pool implementing the store's Database interface (what lib/sim/ds-master.ts needs) whose
 * connections carry `writer`. Times and big integers come back as the database's text, like the store's.
 */
export function openTaggedDatabase(url: string, dialect: Dialect, writer: Writer, max = 6): TaggedDatabase {
  return dialect === 'postgresql' ? new PgTagged(url, writer, max) : new MysqlTagged(url, writer, max);
}

export interface TaggedDatabase extends Database {
  /** The server-side ids of this pool's open connections (MySQL: excluded from the connection kills). */
  connectionIds(): ReadonlySet<number>;
}

class PgTagged implements TaggedDatabase {
  readonly dialect = 'postgresql' as const;
  readonly #pool: pg.Pool;
  readonly #ids = new Set<number>();

  constructor(url: string, writer: Writer, max: number) {
    this.#pool = new pg.Pool({
      connectionString: url,
      max,
      application_name: writer,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 10_000,
      types: pgTextTypes,
    });
    this.#pool.on('error', () => undefined);
    this.#pool.on('connect', (client) => {
      client.on('error', () => undefined);
      const pid = (client as unknown as { processID?: number }).processID;
      if (typeof pid === 'number') this.#ids.add(pid);
    });
  }

  connectionIds(): ReadonlySet<number> {
    return this.#ids;
  }

  async query<R extends object>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    const result = await this.#pool.query(sql, params as unknown[]);
    return result.rows as R[];
  }

  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    return pgTransaction(this.#pool, work);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

class MysqlTagged implements TaggedDatabase {
  readonly dialect = 'mysql' as const;
  readonly #pool: mysql.Pool;
  readonly #ids = new Set<number>();

  constructor(url: string, writer: Writer, max: number) {
    this.#pool = mysql.createPool({
      uri: url,
      connectionLimit: max,
      maxIdle: max,
      idleTimeout: 10_000,
      connectTimeout: 10_000,
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      charset: 'utf8mb4',
    });
    this.#pool.on('connection', (connection) => {
      // The audit triggers read this session variable; the failover function's connections leave it NULL.
      connection.query(`SET @chaos_writer = '${writer}'`);
      const id = (connection as unknown as { threadId?: number }).threadId;
      if (typeof id === 'number') this.#ids.add(id);
      connection.on('error', () => undefined);
    });
  }

  connectionIds(): ReadonlySet<number> {
    return this.#ids;
  }

  async query<R extends object>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    const [rows] = await this.#pool.query(sql, params as unknown[]);
    return Array.isArray(rows) ? (rows as R[]) : [];
  }

  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    return mysqlTransaction(this.#pool, work);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

/** `?` placeholders as the dialect wants them. */
export function sqlFor(dialect: Dialect, text: string): string {
  if (dialect === 'mysql') return text;
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

// --- audit tables (the harness's own, in its throw-away database) ----------------------------------------

/** The columns of a command the invariants check (logged at insert: a consumed command is gone later). */
const commandAuditColumns = [
  'process_instance_id',
  'command_type',
  'command_param',
  'process_definition_code',
  'process_definition_version',
  'executor_id',
  'process_instance_priority',
  'test_flag',
  'task_depend_type',
  'failure_strategy',
  'warning_type',
  'dry_run',
  'worker_group',
  'tenant_code',
  'environment_code',
  'start_time',
  'update_time',
] as const;

const auditStatements: Record<Dialect, string[]> = {
  postgresql: [
    `CREATE TABLE IF NOT EXISTS chaos_command_log (
      seq bigserial PRIMARY KEY, op char(1) NOT NULL, command_id int NOT NULL,
      process_instance_id int, command_type int, command_param text, process_definition_code bigint,
      process_definition_version int, executor_id int, process_instance_priority int, test_flag int,
      task_depend_type int, failure_strategy int, warning_type int, dry_run int, worker_group varchar(255),
      tenant_code varchar(64), environment_code bigint, start_time text, update_time text,
      writer text, logged_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    `CREATE TABLE IF NOT EXISTS chaos_instance_log (
      seq bigserial PRIMARY KEY, instance_id int NOT NULL, old_host text, new_host text, old_state int,
      new_state int, old_restart_time text, new_restart_time text, writer text,
      logged_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    `CREATE OR REPLACE FUNCTION chaos_log_command() RETURNS trigger AS $f$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        INSERT INTO chaos_command_log (op, command_id, ${commandAuditColumns.join(', ')}, writer)
        VALUES ('I', NEW.id, ${commandAuditColumns
          .map((c) => (c === 'start_time' || c === 'update_time' ? `NEW.${c}::text` : `NEW.${c}`))
          .join(', ')}, current_setting('application_name'));
        RETURN NEW;
      END IF;
      INSERT INTO chaos_command_log (op, command_id, process_instance_id, command_type, writer)
      VALUES ('D', OLD.id, OLD.process_instance_id, OLD.command_type, current_setting('application_name'));
      RETURN OLD;
    END $f$ LANGUAGE plpgsql`,
    `CREATE OR REPLACE FUNCTION chaos_log_instance() RETURNS trigger AS $f$
    BEGIN
      INSERT INTO chaos_instance_log (instance_id, old_host, new_host, old_state, new_state,
        old_restart_time, new_restart_time, writer)
      VALUES (NEW.id, OLD.host, NEW.host, OLD.state, NEW.state, OLD.restart_time::text,
        NEW.restart_time::text, current_setting('application_name'));
      RETURN NEW;
    END $f$ LANGUAGE plpgsql`,
    'DROP TRIGGER IF EXISTS chaos_command_log ON t_ds_command',
    `CREATE TRIGGER chaos_command_log AFTER INSERT OR DELETE ON t_ds_command
      FOR EACH ROW EXECUTE FUNCTION chaos_log_command()`,
    'DROP TRIGGER IF EXISTS chaos_instance_log ON t_ds_process_instance',
    `CREATE TRIGGER chaos_instance_log AFTER UPDATE ON t_ds_process_instance
      FOR EACH ROW EXECUTE FUNCTION chaos_log_instance()`,
  ],
  mysql: [
    `CREATE TABLE IF NOT EXISTS chaos_command_log (
      seq bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, op char(1) NOT NULL, command_id int NOT NULL,
      process_instance_id int, command_type int, command_param text, process_definition_code bigint,
      process_definition_version int, executor_id int, process_instance_priority int, test_flag int,
      task_depend_type int, failure_strategy int, warning_type int, dry_run int, worker_group varchar(255),
      tenant_code varchar(64), environment_code bigint, start_time varchar(32), update_time varchar(32),
      writer varchar(64), logged_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`,
    `CREATE TABLE IF NOT EXISTS chaos_instance_log (
      seq bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, instance_id int NOT NULL, old_host varchar(135),
      new_host varchar(135), old_state int, new_state int, old_restart_time varchar(32),
      new_restart_time varchar(32), writer varchar(64), logged_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`,
    'DROP TRIGGER IF EXISTS chaos_command_insert',
    'DROP TRIGGER IF EXISTS chaos_command_delete',
    'DROP TRIGGER IF EXISTS chaos_instance_update',
    `CREATE TRIGGER chaos_command_insert AFTER INSERT ON t_ds_command FOR EACH ROW
      INSERT INTO chaos_command_log (op, command_id, ${commandAuditColumns.join(', ')}, writer)
      VALUES ('I', NEW.id, ${commandAuditColumns.map((c) => `NEW.${c}`).join(', ')},
        COALESCE(@chaos_writer, '${FUNCTION_WRITER}'))`,
    `CREATE TRIGGER chaos_command_delete AFTER DELETE ON t_ds_command FOR EACH ROW
      INSERT INTO chaos_command_log (op, command_id, process_instance_id, command_type, writer)
      VALUES ('D', OLD.id, OLD.process_instance_id, OLD.command_type, COALESCE(@chaos_writer, '${FUNCTION_WRITER}'))`,
    `CREATE TRIGGER chaos_instance_update AFTER UPDATE ON t_ds_process_instance FOR EACH ROW
      INSERT INTO chaos_instance_log (instance_id, old_host, new_host, old_state, new_state,
        old_restart_time, new_restart_time, writer)
      VALUES (NEW.id, OLD.host, NEW.host, OLD.state, NEW.state, OLD.restart_time, NEW.restart_time,
        COALESCE(@chaos_writer, '${FUNCTION_WRITER}'))`,
  ],
};

/** Creates the audit tables and triggers (idempotent). Only ever in the chaos harness's own database. */
export async function installAudit(db: Database): Promise<void> {
  for (const statement of auditStatements[db.dialect]) await db.query(statement);
}

/** Empties DolphinScheduler's tables and the audit tables between runs. */
export async function emptyTables(db: Database): Promise<void> {
  const tables = [
    't_ds_process_instance',
    't_ds_task_instance',
    't_ds_command',
    't_ds_error_command',
    't_ds_schedules',
    'chaos_command_log',
    'chaos_instance_log',
  ];
  if (db.dialect === 'postgresql') await db.query(`TRUNCATE ${tables.join(', ')}`);
  else for (const table of tables) await db.query(`DELETE FROM ${table}`);
}

export interface CommandLogRow {
  readonly seq: number;
  readonly op: 'I' | 'D';
  readonly commandId: number;
  readonly instanceId: number;
  readonly writer: string;
  /** Epoch ms (the database server's clock: the same machine's). */
  readonly at: number;
  /** The command's columns as inserted (op I only). */
  readonly columns: Readonly<Record<string, string | number | null>>;
}

export interface InstanceLogRow {
  readonly seq: number;
  readonly instanceId: number;
  readonly oldHost: string | null;
  readonly newHost: string | null;
  readonly oldState: number | null;
  readonly newState: number | null;
  readonly oldRestartTime: string | null;
  readonly newRestartTime: string | null;
  readonly writer: string;
  readonly at: number;
}

const toNumber = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function loggedAt(db: Database, value: unknown): number {
  // PostgreSQL timestamptz comes back as a Date; MySQL datetime(6) as text in the server's zone (UTC).
  if (value instanceof Date) return value.getTime();
  const text = String(value);
  return db.dialect === 'mysql' ? Date.parse(`${text.replace(' ', 'T')}Z`) : Date.parse(text);
}

export async function readCommandLog(db: Database): Promise<CommandLogRow[]> {
  const rows = await db.query<Record<string, unknown>>('SELECT * FROM chaos_command_log ORDER BY seq');
  return rows.map((r) => {
    const columns: Record<string, string | number | null> = {};
    for (const c of commandAuditColumns) {
      const v = r[c];
      columns[c] = v === null || v === undefined ? null : typeof v === 'number' ? v : String(v);
    }
    return {
      seq: Number(r.seq),
      op: r.op === 'D' ? 'D' : 'I',
      commandId: Number(r.command_id),
      instanceId: Number(r.process_instance_id),
      writer: String(r.writer ?? ''),
      at: loggedAt(db, r.logged_at),
      columns,
    };
  });
}

export async function readInstanceLog(db: Database): Promise<InstanceLogRow[]> {
  const rows = await db.query<Record<string, unknown>>('SELECT * FROM chaos_instance_log ORDER BY seq');
  return rows.map((r) => ({
    seq: Number(r.seq),
    instanceId: Number(r.instance_id),
    oldHost: r.old_host === null ? null : String(r.old_host),
    newHost: r.new_host === null ? null : String(r.new_host),
    oldState: toNumber(r.old_state),
    newState: toNumber(r.new_state),
    oldRestartTime: r.old_restart_time === null ? null : String(r.old_restart_time),
    newRestartTime: r.new_restart_time === null ? null : String(r.new_restart_time),
    writer: String(r.writer ?? ''),
    at: loggedAt(db, r.logged_at),
  }));
}

// --- database faults --------------------------------------------------------------------------------------

/** The failover function's server-side connections (PostgreSQL: by application_name; MySQL: untagged). */
export async function functionConnections(
  db: Database,
  /** MySQL: the connection ids of every tagged pool (the harness's and the simulated masters'). */
  tagged: ReadonlySet<number>,
  which: 'busy' | 'all',
): Promise<number[]> {
  if (db.dialect === 'postgresql') {
    const rows = await db.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()
         ${which === 'busy' ? "AND state IS NOT NULL AND state <> 'idle'" : ''}`,
      [FUNCTION_WRITER],
    );
    return rows.map((r) => Number(r.pid));
  }
  // INNODB_TRX needs the PROCESS privilege: a connection between two statements of its transaction shows
  // as Sleep here, and only `all` reaches it.
  const rows = await db.query<{ id: number | string; command: string }>(
    `SELECT ID AS id, COMMAND AS command FROM information_schema.PROCESSLIST
      WHERE DB = DATABASE() AND ID <> CONNECTION_ID()`,
  );
  return rows
    .filter((r) => !tagged.has(Number(r.id)))
    .filter((r) => which === 'all' || r.command !== 'Sleep')
    .map((r) => Number(r.id));
}

/** Kills the connections (pg_terminate_backend / KILL): the client sees its connection lost. */
export async function killConnections(db: Database, ids: readonly number[]): Promise<number> {
  let killed = 0;
  for (const id of ids) {
    try {
      if (db.dialect === 'postgresql') await db.query('SELECT pg_terminate_backend($1)', [id]);
      else await db.query(`KILL CONNECTION ${Number(id)}`);
      killed += 1;
    } catch {
      // gone already
    }
  }
  return killed;
}

/**
 * Cancels the statements running on these connections (pg_cancel_backend: SQLSTATE 57014, what a
 * statement timeout raises; MySQL KILL QUERY: ER_QUERY_INTERRUPTED). The connection stays open.
 */
export async function cancelStatements(db: Database, ids: readonly number[]): Promise<number> {
  let cancelled = 0;
  for (const id of ids) {
    try {
      if (db.dialect === 'postgresql') await db.query('SELECT pg_cancel_backend($1)', [id]);
      else await db.query(`KILL QUERY ${Number(id)}`);
      cancelled += 1;
    } catch {
      // gone already
    }
  }
  return cancelled;
}

/**
 * A competing transaction that locks these instance rows (SELECT ... FOR UPDATE) and holds them until
 * `release` is called (or `maxMs` passes): the failover's writes wait for the lock, and fail with their
 * lock timeout when it is held longer.
 */
export async function holdRowLocks(
  db: Database,
  ids: readonly number[],
  maxMs: number,
): Promise<{ locked: number; release: () => void; done: Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let signalLocked!: (n: number) => void;
  const locked = new Promise<number>((resolve) => {
    signalLocked = resolve;
  });
  const done = db
    .transaction(async (tx) => {
      const marks = ids.map(() => '?').join(', ');
      const rows = await tx.query(
        sqlFor(db.dialect, `SELECT id FROM t_ds_process_instance WHERE id IN (${marks}) FOR UPDATE`),
        [...ids],
      );
      signalLocked(rows.length);
      await Promise.race([released, new Promise((resolve) => setTimeout(resolve, maxMs))]);
    })
    .catch(() => signalLocked(0));
  return { locked: await locked, release, done: done.then(() => undefined) };
}
