import { rmSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import {
  findExecutable,
  type LocalDatabaseServer,
  localDatabaseName,
  randomPassword,
  runningAsRoot,
  runToCompletion,
  type SystemAccount,
  scratchDir,
  stopServerProcess,
  systemAccount,
} from './database-server.ts';
import { childMarker, freePort, type ManagedProcess, startProcess, waitUntil } from './processes.ts';

const sbinDirs = ['/usr/sbin', '/usr/bin', '/sbin'];

export interface MariaDbOptions {
  startDeadlineMs?: number;
}

async function connects(config: mysql.ConnectionOptions): Promise<boolean> {
  const connection = await mysql.createConnection({ ...config, connectTimeout: 1_000 });
  try {
    await connection.query('SELECT 1');
    return true;
  } finally {
    await connection.end().catch(() => undefined);
  }
}

/**
 * Starts a real MariaDB (the MySQL-compatible server Debian ships) on a free 127.0.0.1 port with a
 * throw-away data directory, InnoDB settings for speed over durability, a `dolphinscheduler` database
 * and a password user with every privilege on it. As root the server drops to the `mysql` system user
 * itself (`--user`), so the recorded PID stays the server's.
 */
export async function startMariaDb(options: MariaDbOptions = {}): Promise<LocalDatabaseServer> {
  const server = findExecutable(['mariadbd', 'mysqld'], sbinDirs);
  const installDb = findExecutable(['mariadb-install-db', 'mysql_install_db'], sbinDirs);
  if (!server || !installDb) {
    throw new Error(
      'MariaDB is not installed (no mariadbd / mariadb-install-db): run `npm run setup:system`',
    );
  }
  const account: SystemAccount | undefined = runningAsRoot() ? systemAccount('mysql') : undefined;
  // As root the server needs --user: the mysql account when it exists, else root explicitly.
  const userFlag = runningAsRoot() ? [`--user=${account?.name ?? 'root'}`] : [];
  const dir = scratchDir('mariadb', account);
  const dataDir = join(dir, 'data');
  const socketPath = join(dir, 'mariadbd.sock');
  const password = randomPassword();
  const innoDb = [
    // The directory is thrown away: no durability, no doublewrite, a small redo log, no buffer pool dumps.
    '--innodb-flush-log-at-trx-commit=0',
    '--innodb-doublewrite=0',
    '--innodb-log-file-size=32M',
    '--innodb-buffer-pool-size=128M',
    '--innodb-buffer-pool-dump-at-shutdown=0',
    '--innodb-buffer-pool-load-at-startup=0',
  ];
  let proc: ManagedProcess | undefined;
  try {
    await runToCompletion(
      'mariadb-install-db',
      // --no-defaults must come first; root gets no password, reachable only through our socket.
      {
        command: installDb,
        args: [
          '--no-defaults',
          `--datadir=${dataDir}`,
          ...userFlag,
          '--auth-root-authentication-method=normal',
          '--skip-test-db',
          '--skip-name-resolve',
          ...innoDb,
        ],
      },
      { cwd: dir },
    );
    const port = await freePort();
    const args = [
      '--no-defaults',
      `--datadir=${dataDir}`,
      `--socket=${socketPath}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      ...userFlag,
      '--skip-name-resolve',
      '--skip-log-bin',
      '--max-connections=200',
      '--character-set-server=utf8mb4',
      '--default-time-zone=+00:00',
      ...innoDb,
      // mariadbd rejects unknown options, so our marker rides in the pid file's name (leftover cleanup).
      `--pid-file=${join(dir, `${childMarker}.pid`)}`,
    ];
    const root: mysql.ConnectionOptions = { socketPath, user: 'root' };
    const launch = async (): Promise<ManagedProcess> => {
      const started = startProcess('mariadb', server, args, { cwd: dir });
      proc = started;
      await waitUntil(
        `MariaDB on 127.0.0.1:${port}`,
        () => connects(root),
        options.startDeadlineMs ?? 30_000,
        started,
      );
      return started;
    };
    let started = await launch();
    const admin = await mysql.createConnection(root);
    try {
      await admin.query(`CREATE DATABASE ${localDatabaseName} DEFAULT CHARACTER SET utf8mb4`);
      await admin.query(`CREATE USER '${localDatabaseName}'@'%' IDENTIFIED BY '${password}'`);
      await admin.query(`GRANT ALL PRIVILEGES ON ${localDatabaseName}.* TO '${localDatabaseName}'@'%'`);
    } finally {
      await admin.end();
    }
    const url = `mysql://${localDatabaseName}:${password}@127.0.0.1:${port}/${localDatabaseName}`;
    // The application user over TCP, as every client will come.
    await connects({ uri: url });
    return {
      url,
      port,
      get pid() {
        return started.pid;
      },
      dir,
      async stop() {
        await stopServerProcess(started, 'SIGTERM', 20_000);
        rmSync(dir, { recursive: true, force: true });
      },
      async restart(restartOptions = {}) {
        // A clean shutdown (open transactions roll back, clients are disconnected); the data stays.
        await stopServerProcess(started, 'SIGTERM', 20_000);
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
