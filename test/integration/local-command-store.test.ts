// `npm run local` with DolphinScheduler's database as the store: its flags (refused before anything
// starts when wrong), the database it starts or is given, the functions' environment, and the stop.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  applyDolphinSchedulerSchema,
  assertDolphinSchedulerTables,
  dolphinSchedulerTables,
  startLocalDatabase,
} from '../../lib/local/database.ts';
import { localStateDir } from '../../lib/local/processes.ts';
import { projectRoot } from '../../lib/local/service.ts';
import type { ReadyInfo } from '../../lib/local/stack.ts';

interface Run {
  readonly child: ChildProcess;
  readonly stdout: string[];
  stderr(): string;
  readonly ready: Promise<ReadyInfo>;
  readonly exited: Promise<number | null>;
}

function watch(child: ChildProcess): Run {
  const stdout: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const ready = new Promise<ReadyInfo>((resolveReady, reject) => {
    if (!child.stdout) throw new Error('no stdout');
    createInterface({ input: child.stdout }).on('line', (line) => {
      stdout.push(line);
      if (line.startsWith('READY ')) resolveReady(JSON.parse(line.slice(6)) as ReadyInfo);
    });
    void exited.then((code) => reject(new Error(`exited ${code} before READY:\n${stderr}`)));
  });
  ready.catch(() => undefined);
  return { child, stdout, stderr: () => stderr, ready, exited };
}

/** bin/local.ts directly on this Node (22): the child's PID is the owner of everything it starts. */
function runLocal(args: readonly string[]): Run {
  return watch(
    spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'bin', 'local.ts'), '--quiet', ...args], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

interface PidRecord {
  name: string;
  pid: number;
  ownerPid: number;
}

function pidRecords(): PidRecord[] {
  const dir = join(localStateDir, 'pids');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => {
    try {
      return [JSON.parse(readFileSync(join(dir, f), 'utf8')) as PidRecord];
    } catch {
      return []; // removed meanwhile
    }
  });
}

/** The database servers' throw-away directories a process created (lib/local/database-server.ts). */
function scratchDirsOf(ownerPid: number): string[] {
  return readdirSync(tmpdir()).filter((e) => new RegExp(`^zkf-(postgresql|mariadb)-${ownerPid}-`).test(e));
}

function parentOf(pid: number): number | undefined {
  try {
    return Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolveOpen) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolveOpen(true);
    });
    s.once('error', () => resolveOpen(false));
  });
}

/** The environment of a running function container of the owner (the schedules start some at once). */
async function containerEnvironment(ownerPid: number): Promise<Map<string, string>> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    for (const r of pidRecords()) {
      if (r.ownerPid !== ownerPid || !r.name.startsWith('lambda-')) continue;
      try {
        const pairs = readFileSync(`/proc/${r.pid}/environ`, 'utf8').split('\0');
        return new Map(
          pairs
            .filter((p) => p.includes('='))
            .map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]),
        );
      } catch {
        // that container is gone: try another
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no function container of ${ownerPid} within 20 s`);
}

async function countCommands(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Number((await client.query('SELECT COUNT(*) AS n FROM t_ds_command')).rows[0]?.n);
  } finally {
    await client.end();
  }
}

describe('npm run local --store / --db-url', () => {
  it('refuses unknown or malformed flags with exit 2 and a message, before starting anything', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--bogus'], /unknown option --bogus/],
      [['--store'], /--store needs a value/],
      [['--store', 'oracle'], /--store must be one of dynamodb, postgresql, mysql/],
      [
        ['--store', 'mysql', '--db-url', 'postgresql://ds:s3cret@127.0.0.1:1/ds'],
        /--db-url is a postgresql database.*--store is mysql/,
      ],
      [['--db-url', 'http://127.0.0.1/ds'], /unsupported scheme "http:"/],
      [['--store', 'postgresql', '--ds-version', '4.0'], /--ds-version must be 3.1 or 3.2/],
      [['--ds-time-zone', 'UTC'], /--ds-time-zone needs a DolphinScheduler database/],
      [['postgresql'], /unexpected argument "postgresql"/],
    ];
    const runs = cases.map(([args]) => runLocal(args));
    const codes = await Promise.all(runs.map((r) => r.exited));
    runs.forEach((run, i) => {
      const [args, message] = cases[i] ?? [[], /./];
      const label = args.join(' ');
      expect(codes[i], label).toBe(2);
      expect(run.stderr(), label).toMatch(message);
      expect(run.stderr(), label).toContain('--help');
      expect(run.stderr(), label).not.toContain('s3cret');
      expect(run.stdout, label).toEqual([]);
      const pid = run.child.pid ?? -1;
      expect(
        pidRecords().filter((r) => r.ownerPid === pid),
        label,
      ).toEqual([]);
      expect(scratchDirsOf(pid), label).toEqual([]);
    });

    const help = runLocal(['--help']);
    expect(await help.exited).toBe(0);
    expect(help.stdout.join('\n')).toMatch(
      /--store STORE[\s\S]*--db-url URL[\s\S]*--ds-time-zone[\s\S]*--ds-version/,
    );
  });

  it('--db-url: refuses a database without DolphinScheduler tables, runs on one that has them, leaves it running', async () => {
    const db = await startLocalDatabase('postgresql');
    try {
      const refused = runLocal(['--db-url', db.url]);
      expect(await refused.exited).toBe(1);
      for (const table of dolphinSchedulerTables) expect(refused.stderr()).toContain(table);
      expect(refused.stderr()).not.toContain(new URL(db.url).password);
      expect(pidRecords().filter((r) => r.ownerPid === refused.child.pid)).toEqual([]);

      await applyDolphinSchedulerSchema(db.url);
      const run = runLocal(['--db-url', db.url, '--ds-version', '3.1']);
      const info = await run.ready;
      expect(info.store).toBe('postgresql');
      expect(info.database).toBe(db.url);
      const env = await containerEnvironment(run.child.pid ?? -1);
      expect(env.get('STORE')).toBe('dolphinscheduler');
      expect(env.get('DS_DATABASE_URL')).toBe(db.url);
      expect(env.get('DS_TIME_ZONE')).toBe('UTC');
      expect(env.get('DS_VERSION')).toBe('3.1');
      run.child.kill('SIGTERM');
      expect(await run.exited, run.stderr()).toBe(0);
      // Not the stack's database: it is still there.
      expect(alive(db.pid)).toBe(true);
      expect(await countCommands(db.url)).toBe(0);
    } finally {
      await db.stop();
    }
  });

  it('--store postgresql: READY carries the store and a database that connects; SIGTERM stops it with the rest', async () => {
    const run = watch(
      spawn(
        'npm',
        ['run', '--silent', 'local', '--', '--store', 'postgresql', '--ds-time-zone', 'Asia/Shanghai'],
        { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    const info = await run.ready;
    expect(info.store).toBe('postgresql');
    const url = new URL(info.database ?? '');
    expect(url.protocol).toBe('postgresql:');
    expect(url.hostname).toBe('127.0.0.1');
    await assertDolphinSchedulerTables(url.toString());
    expect(await countCommands(url.toString())).toBe(0);

    const owned = pidRecords().filter((r) => parentOf(r.ownerPid) === run.child.pid);
    const server = owned.find((r) => r.name === 'postgresql');
    expect(server, JSON.stringify(owned)).toBeDefined();
    const node = server?.ownerPid ?? -1;
    const env = await containerEnvironment(node);
    expect(env.get('STORE')).toBe('dolphinscheduler');
    expect(env.get('DS_DATABASE_URL')).toBe(info.database);
    expect(env.get('DS_TIME_ZONE')).toBe('Asia/Shanghai');
    expect(env.get('DS_VERSION')).toBe('3.2');
    expect(scratchDirsOf(node)).toHaveLength(1);
    const children = pidRecords().filter((r) => r.ownerPid === node);
    expect(children.map((r) => r.name)).toEqual(
      expect.arrayContaining(['postgresql', 'zookeeper-1', 'dynamodb-local']),
    );

    run.child.kill('SIGTERM');
    expect(await run.exited, run.stderr()).toBe(0);
    expect(run.stdout.filter((l) => l.trim() !== '')).toHaveLength(1);
    for (const r of children) expect(alive(r.pid), `${r.name} ${r.pid}`).toBe(false);
    expect(await portOpen(Number(url.port))).toBe(false);
    expect(scratchDirsOf(node)).toEqual([]);
  });
});
