import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { accessSync, chownSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ManagedProcess } from './processes.ts';

/** A database server started for tests and local runs (PostgreSQL or MariaDB from Debian's packages). */
export interface LocalDatabaseServer {
  /** Client URL with the application user's credentials, e.g. `postgresql://u:p@127.0.0.1:5432/db`. */
  readonly url: string;
  readonly port: number;
  /** The server's own PID (postmaster / mariadbd), recorded under `.local/pids`. */
  readonly pid: number;
  /** The throw-away directory (data, socket) that `stop()` removes. */
  readonly dir: string;
  /** Shuts the server down, waits for it to exit, removes its directory. */
  stop(): Promise<void>;
  /**
   * Restarts the server on the same port and data: its own clean fast shutdown (open transactions are
   * rolled back, clients disconnected), down for `downMs`, started again; resolves when it accepts clients.
   * For fault tests (the chaos suite); `pid` is the new process's afterwards.
   */
  restart(options?: { downMs?: number }): Promise<void>;
}

/** Name of the database and of the application user every local server is given. */
export const localDatabaseName = 'dolphinscheduler';

export interface SystemAccount {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

export function runningAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/** A system account from /etc/passwd (the Debian packages create `postgres` and `mysql`). */
export function systemAccount(name: string): SystemAccount | undefined {
  let passwd = '';
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) {
      return { name, uid: Number(uid), gid: Number(gid) };
    }
  }
  return undefined;
}

/**
 * The command that runs `command` as `account` (or as ourselves when undefined). setpriv execs the
 * program in place, so the PID we record is the server's own and signals reach it directly.
 */
export function asAccount(
  account: SystemAccount | undefined,
  command: string,
  args: readonly string[],
): { command: string; args: string[] } {
  if (!account) return { command, args: [...args] };
  return {
    command: 'setpriv',
    args: [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--clear-groups', '--', command, ...args],
  };
}

/** The first of `names` that is an executable file in PATH or the given directories. */
export function findExecutable(
  names: readonly string[],
  extraDirs: readonly string[] = [],
): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d !== ''), ...extraDirs];
  for (const name of names) {
    for (const dir of dirs) {
      const path = join(dir, name);
      try {
        accessSync(path, constants.X_OK);
        return path;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error: unknown) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kinds of scratch directory; a start of any of them cleans up after all of them. */
export type ScratchKind = 'postgresql' | 'mariadb';
const scratchPattern = /^zkf-(?:postgresql|mariadb)-(\d+)-/;

/**
 * A fresh directory `zkf-<kind>-<our pid>-XXXXXX` under the system temporary directory, owned by
 * `owner` (the server refuses or fails to write otherwise). Directories of earlier runs whose owner
 * process is gone (a killed run, whose server `killLeftovers` ends) are removed first.
 */
export function scratchDir(kind: ScratchKind, owner: SystemAccount | undefined): string {
  const base = tmpdir();
  let entries: string[] = [];
  try {
    entries = readdirSync(base);
  } catch {
    // an unreadable temp dir: nothing to clean
  }
  for (const entry of entries) {
    const ownerPid = Number(scratchPattern.exec(entry)?.[1] ?? Number.NaN);
    if (Number.isInteger(ownerPid) && ownerPid > 0 && !isAlive(ownerPid)) {
      rmSync(join(base, entry), { recursive: true, force: true });
    }
  }
  const dir = mkdtempSync(join(base, `zkf-${kind}-${process.pid}-`));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

/** Hex, so it needs no quoting in SQL literals or escaping in URLs. */
export function randomPassword(): string {
  return randomBytes(16).toString('hex');
}

/** Runs a short set-up program (initdb, mariadb-install-db) to completion; its output goes into the error. */
export function runToCompletion(
  what: string,
  command: { command: string; args: string[] },
  options: { cwd: string; timeoutMs?: number; env?: NodeJS.ProcessEnv },
): Promise<void> {
  return new Promise((resolveRun, reject) => {
    execFile(
      command.command,
      command.args,
      { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeoutMs ?? 60_000 },
      (error, stdout, stderr) => {
        if (!error) {
          resolveRun();
          return;
        }
        const output = `${stdout}\n${stderr}`.trim().split('\n').slice(-15).join('\n');
        reject(new Error(`${what} failed: ${error.message}\n${output}`, { cause: error }));
      },
    );
  });
}

/** Sends `signal` (the server's own fast-shutdown signal), SIGKILL after graceMs; resolves when it exited. */
export async function stopServerProcess(
  proc: ManagedProcess,
  signal: NodeJS.Signals,
  graceMs: number,
): Promise<void> {
  if (proc.exited()) return;
  const exited = once(proc.child, 'exit').catch(() => undefined);
  try {
    process.kill(proc.pid, signal);
  } catch {
    // already gone
  }
  const timer = setTimeout(() => void proc.kill(), graceMs);
  await exited;
  clearTimeout(timer);
}
