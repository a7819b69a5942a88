import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { startMariaDb } from './mariadb.ts';
import { startPostgreSql } from './postgresql.ts';
import { projectRoot } from './service.ts';

/** The two SQL dialects of DolphinScheduler's metadata database (DESIGN D8; MariaDB speaks `mysql`). */
export type Dialect = 'postgresql' | 'mysql';

export const dialects: readonly Dialect[] = ['postgresql', 'mysql'];

/** The DolphinScheduler 3.2 tables failover reads or writes (shared/dolphinscheduler.md section 2). */
export const dolphinSchedulerTables = [
  't_ds_process_instance',
  't_ds_task_instance',
  't_ds_command',
  't_ds_error_command',
  't_ds_schedules',
] as const;

export class UnsupportedDatabaseUrlError extends Error {
  constructor(url: string, reason: string) {
    super(`${redactUrl(url)}: ${reason}`);
    this.name = 'UnsupportedDatabaseUrlError';
  }
}

export class DatabaseUnreachableError extends Error {
  constructor(url: string, cause: unknown) {
    super(`cannot connect to ${redactUrl(url)}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.name = 'DatabaseUnreachableError';
  }
}

export class MissingDolphinSchedulerTablesError extends Error {
  constructor(
    url: string,
    readonly missing: readonly string[],
  ) {
    super(
      `${redactUrl(url)} is not a DolphinScheduler 3.x database: missing table${missing.length === 1 ? '' : 's'} ` +
        `${missing.join(', ')} (create DolphinScheduler's schema first, or use --store postgresql|mysql for a local one)`,
    );
    this.name = 'MissingDolphinSchedulerTablesError';
  }
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<malformed database URL>';
  }
}

/** `postgres:`/`postgresql:` -> postgresql; `mysql:`/`mariadb:` -> mysql; anything else is refused. */
export function dialectOfUrl(url: string): Dialect {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new UnsupportedDatabaseUrlError(url, 'not a URL (expected postgresql://… or mysql://…)');
  }
  switch (protocol) {
    case 'postgres:':
    case 'postgresql:':
      return 'postgresql';
    case 'mysql:':
    case 'mariadb:':
      return 'mysql';
    default:
      throw new UnsupportedDatabaseUrlError(
        url,
        `unsupported scheme "${protocol}" (expected postgres:, postgresql:, mysql: or mariadb:)`,
      );
  }
}

/** A database server this process started; `stop()` shuts it down and removes its data. */
export interface LocalDatabase {
  readonly dialect: Dialect;
  readonly url: string;
  /** The server's PID (recorded under `.local/pids` for leftover cleanup). */
  readonly pid: number;
  /** Its throw-away directory under the system temp dir (data, socket), removed by `stop()`. */
  readonly dir: string;
  stop(): Promise<void>;
  /** A clean restart on the same port and data, down for `downMs` (fault tests; see LocalDatabaseServer). */
  restart(options?: { downMs?: number }): Promise<void>;
}

/** Starts the real server of the dialect (PostgreSQL, or MariaDB for mysql) on a free loopback port. */
export async function startLocalDatabase(dialect: Dialect): Promise<LocalDatabase> {
  const server = dialect === 'postgresql' ? await startPostgreSql() : await startMariaDb();
  return {
    dialect,
    url: server.url,
    get pid() {
      return server.pid;
    },
    dir: server.dir,
    stop: () => server.stop(),
    restart: (options) => server.restart(options),
  };
}

/** The project's DDL of the DolphinScheduler tables for a dialect (lib/store/dolphinscheduler/schema). */
export function schemaFile(dialect: Dialect): string {
  return join(projectRoot, 'lib', 'store', 'dolphinscheduler', 'schema', `${dialect}.sql`);
}

/**
 * Splits a schema file into statements: `--` comment lines dropped, one statement per `;` at the end of
 * a line (the schema files keep semicolons out of comments and literals).
 */
export function splitSqlStatements(sql: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  for (const line of sql.split('\n')) {
    if (line.trim().startsWith('--')) continue;
    current.push(line);
    if (line.trimEnd().endsWith(';')) {
      const statement = current.join('\n').trim().replace(/;$/, '').trim();
      if (statement !== '') statements.push(statement);
      current = [];
    }
  }
  if (current.join('').trim() !== '') throw new Error('schema file ends with a statement without `;`');
  return statements;
}

/** Gives `work` one connection of the URL's dialect and closes it afterwards. */
async function withConnection<T>(
  url: string,
  work: (query: (sql: string, params?: unknown[]) => Promise<Record<string, unknown>[]>) => Promise<T>,
): Promise<T> {
  const dialect = dialectOfUrl(url);
  if (dialect === 'postgresql') {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    try {
      await client.connect();
    } catch (error: unknown) {
      await client.end().catch(() => undefined);
      throw new DatabaseUnreachableError(url, error);
    }
    try {
      return await work(async (sql, params) => (await client.query(sql, params)).rows);
    } finally {
      await client.end();
    }
  }
  let connection: mysql.Connection;
  try {
    connection = await mysql.createConnection({ uri: url, connectTimeout: 10_000 });
  } catch (error: unknown) {
    throw new DatabaseUnreachableError(url, error);
  }
  try {
    return await work(async (sql, params) => {
      const [rows] = await connection.query(sql, params);
      return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
    });
  } finally {
    await connection.end();
  }
}

/** Creates the DolphinScheduler tables of the URL's dialect (idempotent: existing tables are kept). */
export async function applyDolphinSchedulerSchema(url: string): Promise<void> {
  const statements = splitSqlStatements(readFileSync(schemaFile(dialectOfUrl(url)), 'utf8'));
  await withConnection(url, async (query) => {
    for (const statement of statements) await query(statement);
  });
}

/** The DolphinScheduler tables the database behind `url` lacks (its current schema / database). */
export async function missingDolphinSchedulerTables(url: string): Promise<string[]> {
  const dialect = dialectOfUrl(url);
  const present = await withConnection(url, (query) =>
    dialect === 'postgresql'
      ? // to_regclass follows search_path, as DolphinScheduler's own unqualified queries do.
        query('SELECT t AS name FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL', [
          [...dolphinSchedulerTables],
        ])
      : query(
          'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN (?)',
          [[...dolphinSchedulerTables]],
        ),
  );
  const names = new Set(present.map((row) => String(row.name)));
  return dolphinSchedulerTables.filter((t) => !names.has(t));
}

/** Fails with MissingDolphinSchedulerTablesError naming every missing table (for `--db-url`). */
export async function assertDolphinSchedulerTables(url: string): Promise<void> {
  const missing = await missingDolphinSchedulerTables(url);
  if (missing.length > 0) throw new MissingDolphinSchedulerTablesError(url, missing);
}
