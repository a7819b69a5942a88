import { chownSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import {
  asAccount,
  type LocalDatabaseServer,
  localDatabaseName,
  randomPassword,
  runningAsRoot,
  runToCompletion,
  scratchDir,
  stopServerProcess,
  systemAccount,
} from './database-server.ts';
import { childMarker, freePort, type ManagedProcess, startProcess, waitUntil } from './processes.ts';

const debianRoot = '/usr/lib/postgresql';

/** The newest PostgreSQL from Debian's packages: `/usr/lib/postgresql/<major>/bin` holding `postgres`. */
export function postgresBinDir(): string | undefined {
  let majors: string[] = [];
  try {
    majors = readdirSync(debianRoot);
  } catch {
    return undefined;
  }
  const installed = majors
    .filter((m) => /^\d+$/.test(m) && existsSync(join(debianRoot, m, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return installed[0] === undefined ? undefined : join(debianRoot, installed[0], 'bin');
}

export interface PostgreSqlOptions {
  startDeadlineMs?: number;
}

async function connects(config: pg.ClientConfig): Promise<boolean> {
  const client = new pg.Client({ ...config, connectionTimeoutMillis: 1_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function asSuperuser(config: pg.ClientConfig, statements: readonly string[]): Promise<void> {
  const client = new pg.Client(config);
  await client.connect();
  try {
    for (const sql of statements) await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * Starts a real PostgreSQL on a free 127.0.0.1 port with a throw-away data directory, settings for
 * speed over durability, a `dolphinscheduler` database and a password user owning it. As root, initdb
 * and the server run as the `postgres` system user (PostgreSQL refuses to run as root).
 */
export async function startPostgreSql(options: PostgreSqlOptions = {}): Promise<LocalDatabaseServer> {
  const bin = postgresBinDir();
  if (!bin) {
    throw new Error(
      `PostgreSQL is not installed (no ${debianRoot}/<version>/bin/postgres): run \`npm run setup:system\``,
    );
  }
  const account = runningAsRoot() ? systemAccount('postgres') : undefined;
  if (runningAsRoot() && !account) {
    throw new Error(
      'running as root, PostgreSQL needs the `postgres` system user (Debian package postgresql)',
    );
  }
  const dir = scratchDir('postgresql', account);
  const dataDir = join(dir, 'data');
  const superuserPassword = randomPassword();
  const password = randomPassword();
  let proc: ManagedProcess | undefined;
  try {
    const passwordFile = join(dir, 'superuser-password');
    writeFileSync(passwordFile, `${superuserPassword}\n`, { mode: 0o600 });
    if (account) chownSync(passwordFile, account.uid, account.gid);
    await runToCompletion(
      'initdb',
      asAccount(account, join(bin, 'initdb'), [
        '-D',
        dataDir,
        '-U',
        'postgres',
        `--pwfile=${passwordFile}`,
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        '-E',
        'UTF8',
        '--no-locale',
        '--no-sync',
        '--no-instructions',
      ]),
      { cwd: dir },
    );
    rmSync(passwordFile, { force: true });
    const port = await freePort();
    // Test settings: durability off (the directory is thrown away), times in UTC whatever the machine's zone.
    const settings: Record<string, string> = {
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      max_connections: '200',
      timezone: 'UTC',
      log_timezone: 'UTC',
    };
    const libDir = join(bin, '..', 'lib');
    const statStatements = existsSync(join(libDir, 'pg_stat_statements.so'));
    if (statStatements) settings.shared_preload_libraries = 'pg_stat_statements';
    const command = asAccount(account, join(bin, 'postgres'), [
      '-D',
      dataDir,
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-k',
      dir,
      ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
      // A custom setting the server ignores: it puts our marker into its command line (leftover cleanup).
      '-c',
      childMarker,
    ]);
    const superuser: pg.ClientConfig = {
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password: superuserPassword,
      database: 'postgres',
    };
    const launch = async (): Promise<ManagedProcess> => {
      const started = startProcess('postgresql', command.command, command.args, {
        cwd: dir,
        env: { ...process.env, LC_ALL: 'C' },
      });
      proc = started;
      await waitUntil(
        `PostgreSQL on 127.0.0.1:${port}`,
        () => connects(superuser),
        options.startDeadlineMs ?? 30_000,
        started,
      );
      return started;
    };
    let started = await launch();
    await asSuperuser(superuser, [
      `CREATE ROLE ${localDatabaseName} LOGIN PASSWORD '${password}'`,
      `CREATE DATABASE ${localDatabaseName} OWNER ${localDatabaseName}`,
    ]);
    if (statStatements) {
      await asSuperuser({ ...superuser, database: localDatabaseName }, [
        'CREATE EXTENSION IF NOT EXISTS pg_stat_statements',
      ]);
    }
    return {
      url: `postgresql://${localDatabaseName}:${password}@127.0.0.1:${port}/${localDatabaseName}`,
      port,
      get pid() {
        return started.pid;
      },
      dir,
      async stop() {
        // SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to disconnect).
        await stopServerProcess(started, 'SIGINT', 15_000);
        rmSync(dir, { recursive: true, force: true });
      },
      async restart(restartOptions = {}) {
        // Fast shutdown: open transactions roll back, clients are disconnected; the data directory stays.
        await stopServerProcess(started, 'SIGINT', 15_000);
        await new Promise((resolve) => setTimeout(resolve, restartOptions.downMs ?? 0));
        started = await launch();
      },
    };
  } catch (error: unknown) {
    await proc?.kill();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
