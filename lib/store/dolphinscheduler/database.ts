// Connections to DolphinScheduler's metadata database: one small pool per container, PostgreSQL (`pg`) or
// MySQL/MariaDB (`mysql2`), TLS when the URL or the secret asks for it. Times and big integers come back
// as the database's own text (never through the container's time zone or a lossy number).
import mysql from 'mysql2/promise';
import pg from 'pg';

export type Dialect = 'postgresql' | 'mysql';

/** Where and how to connect; from a URL (DS_DATABASE_URL) or a Secrets Manager secret in RDS's shape. */
export interface DatabaseTarget {
  dialect: Dialect;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** TLS: off, or on with the server's certificate verified (NODE_EXTRA_CA_CERTS adds the RDS bundle). */
  tls: boolean;
}

export class DatabaseConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseConfigError';
  }
}

export function dialectOfScheme(scheme: string): Dialect {
  const s = scheme.replace(/:$/, '').toLowerCase();
  if (s === 'postgres' || s === 'postgresql') return 'postgresql';
  if (s === 'mysql' || s === 'mariadb') return 'mysql';
  throw new DatabaseConfigError(`unsupported database scheme "${s}" (postgresql://, mysql:// or mariadb://)`);
}

/** Values that turn TLS off in a secret (anything else keeps it on). */
const tlsOff = new Set(['disable', 'false', '0', 'off', 'no']);
const tlsOn = new Set(['require', 'required', 'verify-ca', 'verify-full', 'true', '1', 'verify_identity']);

/** `postgresql://user:pass@host:5432/db?sslmode=require`, `mysql://user:pass@host:3306/db?ssl=true`. */
export function parseDatabaseUrl(text: string): DatabaseTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new DatabaseConfigError('DS_DATABASE_URL is not a URL (postgresql://user:pass@host:port/db)');
  }
  const dialect = dialectOfScheme(url.protocol);
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new DatabaseConfigError('DS_DATABASE_URL has an invalid percent-encoding');
    }
  };
  const database = decode(url.pathname.replace(/^\//, ''));
  if (!url.hostname || !database) {
    throw new DatabaseConfigError('DS_DATABASE_URL needs a host and a database name');
  }
  const tlsParam =
    url.searchParams.get('sslmode') ?? url.searchParams.get('ssl') ?? url.searchParams.get('tls');
  return {
    dialect,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : dialect === 'postgresql' ? 5432 : 3306,
    user: decode(url.username),
    password: decode(url.password),
    database,
    tls: tlsParam !== null && tlsOn.has(tlsParam.toLowerCase()),
  };
}

/**
 * The secret Secrets Manager keeps for an RDS database (`engine`, `host`, `port`, `username`, `password`,
 * `dbname`), plus an optional `ssl`/`sslmode`. TLS is on unless the secret turns it off.
 */
export function parseRdsSecret(text: string): DatabaseTarget {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new DatabaseConfigError('the database secret is not JSON in the shape RDS writes');
  }
  if (typeof raw !== 'object' || raw === null)
    throw new DatabaseConfigError('the database secret is not an object');
  const secret = raw as Record<string, unknown>;
  const field = (name: string): string => {
    const value = secret[name];
    if (typeof value !== 'string' && typeof value !== 'number') {
      throw new DatabaseConfigError(`the database secret has no "${name}"`);
    }
    return String(value);
  };
  const dialect = dialectOfScheme(field('engine').replace(/^aurora-/, ''));
  const tlsSetting = secret.sslmode ?? secret.ssl;
  const port = Number(secret.port ?? (dialect === 'postgresql' ? 5432 : 3306));
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new DatabaseConfigError('the database secret\'s "port" is not a port number');
  }
  return {
    dialect,
    host: field('host'),
    port,
    user: field('username'),
    password: field('password'),
    database: typeof secret.dbname === 'string' ? secret.dbname : 'dolphinscheduler',
    tls: tlsSetting === undefined || !tlsOff.has(String(tlsSetting).toLowerCase()),
  };
}

/** A database error with the driver's code (SQLSTATE for PostgreSQL, the error name/number for MySQL). */
export interface DriverError {
  code?: string;
  errno?: number;
  message: string;
}

export interface Queryable {
  /** Runs one statement with positional parameters (`$1` PostgreSQL, `?` MySQL); returns its rows. */
  query<R extends object = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
}

export interface Database extends Queryable {
  readonly dialect: Dialect;
  /** Runs `work` in one transaction on one connection: committed when it resolves, rolled back when not. */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface PoolSettings {
  /** Connections in the pool (failover transactions in flight, plus one for the page reads). */
  max: number;
  /** A statement that waits longer for a row lock fails (and is retried) instead of hanging the run. */
  lockTimeoutMs: number;
  /** A statement that runs longer is cancelled. */
  statementTimeoutMs: number;
}

export const defaultPoolSettings: PoolSettings = {
  max: 5,
  lockTimeoutMs: 10_000,
  statementTimeoutMs: 60_000,
};

export function openDatabase(target: DatabaseTarget, settings: PoolSettings = defaultPoolSettings): Database {
  return target.dialect === 'postgresql'
    ? new PgDatabase(target, settings)
    : new MysqlDatabase(target, settings);
}

const TIMESTAMP_OID = 1114;
const INT8_OID = 20;
const NUMERIC_OID = 1700;

/** pg's type parsers for DolphinScheduler's tables: timestamps, bigints and numerics as the server's text. */
export const pgTextTypes = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === TIMESTAMP_OID || oid === INT8_OID || oid === NUMERIC_OID
      ? (value: string) => value
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** One statement run inside a transaction, with the rows the last one changed (or returned). */
export type Transaction = Queryable & { affectedRows(): number };

/**
 * `work` in one transaction on one of the pool's clients: committed when it resolves, rolled back when not.
 * A client that failed (its connection lost mid-transaction, a failed rollback) is discarded, not reused.
 */
export async function pgTransaction<T>(pool: pg.Pool, work: (tx: Transaction) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  // A connection lost mid-transaction (server restart, network cut) rejects the pending query; the
  // client's error event must not go unheard (it would end the process).
  const onError = () => {
    broken = true;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    let affected = 0;
    const tx: Transaction = {
      query: async <R extends object>(sql: string, params: readonly unknown[] = []): Promise<R[]> => {
        const result = await client.query(sql, params as unknown[]);
        affected = result.rowCount ?? 0;
        return result.rows as R[];
      },
      affectedRows: () => affected,
    };
    const value = await work(tx);
    await client.query('COMMIT');
    return value;
  } catch (error: unknown) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/** The same on MySQL: a connection that failed is destroyed rather than returned to the pool. */
export async function mysqlTransaction<T>(
  pool: mysql.Pool,
  work: (tx: Transaction) => Promise<T>,
): Promise<T> {
  const connection = await pool.getConnection();
  let broken = false;
  const onError = () => {
    broken = true;
  };
  connection.on('error', onError);
  try {
    await connection.beginTransaction();
    let affected = 0;
    const tx: Transaction = {
      query: async <R extends object>(sql: string, params: readonly unknown[] = []): Promise<R[]> => {
        const [rows] = await connection.query(sql, params as unknown[]);
        if (Array.isArray(rows)) {
          affected = rows.length;
          return rows as R[];
        }
        affected = (rows as { affectedRows?: number }).affectedRows ?? 0;
        return [];
      },
      affectedRows: () => affected,
    };
    const value = await work(tx);
    await connection.commit();
    return value;
  } catch (error: unknown) {
    await connection.rollback().catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    connection.off('error', onError);
    if (broken) connection.destroy();
    else connection.release();
  }
}

class PgDatabase implements Database {
  readonly dialect = 'postgresql' as const;
  readonly #pool: pg.Pool;

  constructor(target: DatabaseTarget, settings: PoolSettings) {
    this.#pool = new pg.Pool({
      host: target.host,
      port: target.port,
      user: target.user,
      password: target.password,
      database: target.database,
      max: settings.max,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: 10_000,
      statement_timeout: settings.statementTimeoutMs,
      lock_timeout: settings.lockTimeoutMs,
      application_name: 'zk-failover',
      ...(target.tls ? { ssl: { rejectUnauthorized: true } } : {}),
      types: pgTextTypes,
    });
    // An idle client's error (the server restarted) must not crash the container; the next query reconnects.
    this.#pool.on('error', () => undefined);
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

class MysqlDatabase implements Database {
  readonly dialect = 'mysql' as const;
  readonly #pool: mysql.Pool;

  constructor(target: DatabaseTarget, settings: PoolSettings) {
    this.#pool = mysql.createPool({
      host: target.host,
      port: target.port,
      user: target.user,
      password: target.password,
      database: target.database,
      connectionLimit: settings.max,
      maxIdle: settings.max,
      idleTimeout: 30_000,
      connectTimeout: 10_000,
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      charset: 'utf8mb4',
      ...(target.tls ? { ssl: { rejectUnauthorized: true } } : {}),
    });
    const lockWaitSeconds = Math.max(1, Math.ceil(settings.lockTimeoutMs / 1000));
    this.#pool.on('connection', (connection) => {
      // Each new connection: bounded lock waits; READ COMMITTED like PostgreSQL (the failover's own
      // statements lock what they change, so nothing relies on repeatable reads).
      connection.query(`SET SESSION innodb_lock_wait_timeout = ${lockWaitSeconds}`);
      connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
    });
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

/**
 * A database whose connection settings are resolved on first use (a secret read once per container); a
 * failed resolution is retried on the next use. The dialect is known up front, so statements can be built.
 */
export function lazyDatabase(
  dialect: Dialect,
  resolveTarget: () => Promise<DatabaseTarget>,
  settings: PoolSettings = defaultPoolSettings,
): Database {
  let opened: Promise<Database> | undefined;
  const open = () => {
    opened ??= resolveTarget().then(
      (target) => {
        if (target.dialect !== dialect) {
          throw new DatabaseConfigError(
            `the database is ${target.dialect}, but the dialect configured is ${dialect}`,
          );
        }
        return openDatabase(target, settings);
      },
      (error: unknown) => {
        opened = undefined;
        throw error;
      },
    );
    return opened;
  };
  return {
    dialect,
    query: async (sql, params) => (await open()).query(sql, params),
    transaction: async (work) => (await open()).transaction(work),
    close: async () => {
      if (opened !== undefined) await (await opened.catch(() => undefined))?.close();
    },
  };
}
