import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

/** Where the local stack keeps pid files and scratch data, so a later run can clean up a killed one. */
export const localStateDir = resolve(
  process.env.ZKF_LOCAL_DIR ?? join(import.meta.dirname, '..', '..', '.local'),
);
const pidDir = join(localStateDir, 'pids');

/** Marks every child we start, so leftovers can be told apart from unrelated processes by their cmdline. */
export const childMarker = 'zkfailover.local=1';

export class StartTimeoutError extends Error {
  constructor(what: string, ms: number, detail: string) {
    super(`${what} did not become ready within ${ms} ms${detail ? `: ${detail}` : ''}`);
    this.name = 'StartTimeoutError';
  }
}

/** Asks the kernel for a free loopback port. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolvePort(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Last lines of the combined output, for error messages. */
  tail(): string;
  exited(): boolean;
  /** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once (a crash). */
  kill(): Promise<void>;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** Starts a child in its own process group and records its PID for leftover cleanup. */
export function startProcess(
  name: string,
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; ipc?: boolean; onLine?: (line: string) => void } = {},
): ManagedProcess {
  mkdirSync(pidDir, { recursive: true });
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    detached: false,
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  const pid = child.pid;
  const pidFile = join(pidDir, `${pid}.json`);
  writeFileSync(
    pidFile,
    JSON.stringify({ name, pid, command, ownerPid: process.pid, startedAt: Date.now() }),
  );
  const lines: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      options.onLine?.(line);
      lines.push(line);
      if (lines.length > 40) lines.shift();
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let gone = false;
  const exitPromise = new Promise<void>((resolveExit) => {
    child.once('exit', () => {
      gone = true;
      rmSync(pidFile, { force: true });
      resolveExit();
    });
  });
  const signal = async (sig: NodeJS.Signals, graceMs: number) => {
    if (gone) return;
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      if (!gone) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, graceMs);
    await exitPromise;
    clearTimeout(timer);
  };
  return {
    name,
    pid,
    child,
    tail: () => lines.slice(-15).join('\n'),
    exited: () => gone,
    stop: (graceMs = 5_000) => signal('SIGTERM', graceMs),
    kill: () => signal('SIGKILL', 0),
  };
}

/**
 * Kills children of an earlier run that was itself killed (SIGKILL leaves no chance to clean up).
 * Only processes whose pid file we wrote AND whose command line carries our marker are touched.
 */
export function killLeftovers(): number {
  let killed = 0;
  let files: string[] = [];
  try {
    files = readdirSync(pidDir);
  } catch {
    return 0;
  }
  for (const file of files) {
    const path = join(pidDir, file);
    const pid = Number.parseInt(file, 10);
    const owner = pidOwnerAlive(path);
    if (owner) continue; // belongs to a stack that is still running (another test file)
    if (Number.isInteger(pid) && isAlive(pid) && cmdline(pid).includes(childMarker)) {
      try {
        process.kill(pid, 'SIGKILL');
        killed += 1;
      } catch {
        // raced with its exit
      }
    }
    rmSync(path, { force: true });
  }
  return killed;
}

function pidOwnerAlive(pidFile: string): boolean {
  try {
    const record = JSON.parse(readFileSync(pidFile, 'utf8')) as unknown;
    if (record && typeof record === 'object' && 'ownerPid' in record && typeof record.ownerPid === 'number') {
      return record.ownerPid !== process.pid && isAlive(record.ownerPid);
    }
  } catch {
    // unreadable: treat as orphaned
  }
  return false;
}

/** Polls `probe` until it resolves true, the child exits, or the deadline passes. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  deadlineMs: number,
  child?: ManagedProcess,
): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (child?.exited()) throw new Error(`${what} exited during start-up:\n${child.tail()}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() - started > deadlineMs) throw new StartTimeoutError(what, deadlineMs, child?.tail() ?? '');
    await new Promise((r) => setTimeout(r, 50));
  }
}
