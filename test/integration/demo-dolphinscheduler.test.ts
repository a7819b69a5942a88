// `npm start -- --store postgresql` (bin/demo.ts) in a reduced size, as a child process: the demo on
// DolphinScheduler's own tables: its timeline, its verdict read from the database, `--keep` with `zkf` on
// that store, Ctrl-C, and no process left behind; and its store flags.
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { localStateDir } from '../../lib/local/processes.ts';
import { masterSlot } from '../../lib/sim/ds-command-consumer.ts';
import { dsMasterHeartbeat } from '../../lib/sim/ds-master.ts';

const root = join(import.meta.dirname, '..', '..');
const demoScript = join(root, 'bin', 'demo.ts');

interface Demo {
  child: ChildProcessByStdio<null, Readable, Readable>;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** Every process the demo's stack recorded while it ran (pid files owned by the demo). */
  children: Set<number>;
}

/** As demo.test.ts: a 4 s session timeout, so that a loaded machine does not expire a live server's session. */
function startDemo(args: readonly string[]): Demo {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', demoScript, '--session-timeout', '4000', ...args],
    {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const children = new Set<number>();
  const collect = () => {
    let files: string[] = [];
    try {
      files = readdirSync(join(localStateDir, 'pids'));
    } catch {
      return;
    }
    for (const file of files) {
      try {
        const record = JSON.parse(readFileSync(join(localStateDir, 'pids', file), 'utf8')) as {
          pid: number;
          ownerPid: number;
        };
        if (record.ownerPid === child.pid) children.add(record.pid);
      } catch {
        // removed meanwhile
      }
    }
  };
  const timer = setInterval(collect, 300);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      clearInterval(timer);
      resolve(code);
    }),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited, children };
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
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function run(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe("the simulated masters' command slots (3.2)", () => {
  it('orders the registered non-BUSY masters by startupTime; a master not among them fetches nothing', () => {
    const beat = (host: string, startupTime: number, status = 'NORMAL') =>
      dsMasterHeartbeat({ root: '/dolphinscheduler', host, startupTime, version: '3.2' }).replace(
        '"NORMAL"',
        JSON.stringify(status),
      );
    const masters = [
      { host: '10.0.1.3:5678', data: beat('10.0.1.3:5678', 3_000) },
      { host: '10.0.1.1:5678', data: beat('10.0.1.1:5678', 1_000) },
      { host: '10.0.1.2:5678', data: beat('10.0.1.2:5678', 2_000, 'BUSY') },
      { host: '10.0.1.4:5678', data: null },
    ];
    expect(masterSlot('10.0.1.1:5678', masters)).toEqual({ slot: 0, totalSlot: 2 });
    expect(masterSlot('10.0.1.3:5678', masters)).toEqual({ slot: 1, totalSlot: 2 });
    expect(masterSlot('10.0.1.2:5678', masters)).toEqual({ slot: -1, totalSlot: 2 });
  });
});

describe('npm start -- --store postgresql (bin/demo.ts)', () => {
  it('rejects bad store flags with a clear message and exit code 2, and lists them in --help', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--store', 'oracle'], /--store must be one of dynamodb, postgresql, mysql/],
      [
        ['--db-url', 'postgresql://ds:s3cret@127.0.0.1:1/ds'],
        /--db-url: npm start .* runs only on a database it starts itself/,
      ],
      [
        ['--ds-time-zone', 'UTC'],
        /--ds-time-zone needs a DolphinScheduler database \(--store postgresql\|mysql\)$/m,
      ],
      [['--store', 'mysql', '--ds-version', '4'], /--ds-version must be 3\.1 or 3\.2/],
      [['--history', '10'], /--history needs a DolphinScheduler database/],
      [['--store', 'postgresql', '--history', 'many'], /--history needs a whole number/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(['--import', 'tsx', demoScript, ...args])));
    results.forEach((result, i) => {
      const [args, message] = cases[i] ?? [[], /./];
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr).toContain('Usage: npm start');
      expect(result.stderr).not.toContain('s3cret');
    });
    const help = await run(['--import', 'tsx', demoScript, '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(
      /--store STORE[\s\S]*--ds-time-zone ZONE[\s\S]*--ds-version 3\.1\|3\.2[\s\S]*--history N/,
    );
  });

  it("fails a master over on DolphinScheduler's tables, shows the timeline, judges from the database, then --keep serves zkf", async () => {
    const demo = startDemo(['--store', 'postgresql', '--instances', '40', '--history', '500', '--keep']);
    const started = Date.now();
    while (!/^READY \{/m.test(demo.stdout())) {
      if (demo.child.exitCode !== null || Date.now() - started > 150_000) {
        demo.child.kill('SIGINT');
        throw new Error(`no READY line (exit ${demo.child.exitCode})\n${demo.stdout()}\n${demo.stderr()}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const out = demo.stdout();
    try {
      expect(out).toMatch(
        /stack ready: .*PostgreSQL postgresql:\/\/dolphinscheduler:\*\*\*@127\.0\.0\.1:\d+\//,
      );
      expect(out).toMatch(
        /DolphinScheduler 3\.2 heartbeats every 1 s; the masters consume t_ds_command as 3\.2 does/,
      );
      expect(out).toMatch(
        /seeded into t_ds_process_instance: 500 finished instances of former servers, then 40 of the masters/,
      );
      // The master's timeline, step by step.
      expect(out).toMatch(/SIGKILL master-2 \(/);
      expect(out).toMatch(/master-2: node gone \(raw watch\), \d+ ms after SIGKILL/);
      expect(out).toMatch(
        /master-2: failover request on the queue \((watcher|sweep)\), \+\d+ ms after node gone/,
      );
      expect(out).toMatch(/master-2: lock failover\/master\/10\.0\.1\.2:5678 taken \(fence \d+\)/);
      expect(out).toMatch(
        /master-2: transaction committed: \d+ instances set to host 'NULL', \d+ commands inserted \(t_ds_command ids \d+-\d+\)/,
      );
      expect(out).toMatch(/master-2: failover done: (\d+) failed over, \1 commands written/);
      expect(out).toMatch(
        /master-2: all \d+ taken over \(master-\d \d+(, master-\d \d+)?\), \+\d+ ms after node gone/,
      );
      // The worker's removal: acknowledged, nothing written (D4).
      expect(out).toMatch(/worker-1: node gone \(raw watch\)/);
      expect(out).toMatch(/worker-1: removal acknowledged, no task row written/);
      expect(out).toMatch(
        /^ {2}master-2 10\.0\.1\.2:5678: session expiry \d+ ms; request \d+ ms.*; lock \d+ ms; (\d+) rewritten and \1 written \d+ ms; all taken over \d+ ms$/m,
      );
      // The verdict, read from the database.
      const verdicts = out.split('\n').filter((l) => /^(PASS|FAIL) {2}/.test(l));
      expect(verdicts.filter((l) => l.startsWith('FAIL'))).toEqual([]);
      expect(verdicts).toEqual([
        expect.stringMatching(
          /^PASS {2}every executing instance of master-2 \(\d+ instances\) failed over exactly once: host 'NULL' and one t_ds_command row each/,
        ),
        expect.stringMatching(
          /^PASS {2}each of them taken over exactly once by a live 3\.2 master consuming t_ds_command/,
        ),
        expect.stringMatching(/^PASS {2}worker-1: removal acknowledged, none of its \d+ task instances/),
        expect.stringMatching(
          /^PASS {2}nothing of a live master touched, nor finished work: \d+ other instances and \d+ task instances exactly as seeded/,
        ),
        expect.stringMatching(
          /^PASS {2}no SQL NULL host, no instance left at 'NULL'; (\d+) commands written in all \(one per failed-over instance\)/,
        ),
      ]);
      expect(out).toMatch(/^RESULT: all 5 invariants hold/m);

      // zkf on the demo's READY line: DolphinScheduler's store, the killed master has nothing left.
      const line = out.split('\n').find((l) => l.startsWith('READY ')) ?? '';
      const ready = JSON.parse(line.slice('READY '.length)) as {
        store: string;
        database: string;
        dsTimeZone: string;
        dynamodb: string;
        sqs: string;
        zookeeper: string;
      };
      expect(ready).toMatchObject({ store: 'postgresql', dsTimeZone: 'UTC' });
      const [status, plan] = await Promise.all([
        run([join(root, 'bin', 'zkf.mjs'), '--ready', line, 'status', '--json']),
        run([join(root, 'bin', 'zkf.mjs'), '--ready', line, 'plan', '--host', '10.0.1.2:5678', '--json']),
      ]);
      expect(status.code, status.stderr).toBe(0);
      const parsed = JSON.parse(status.stdout) as {
        target: { store: { kind: string } };
        dead: Array<{ host: string }>;
        work: { instances: Array<{ host: string }>; unownedInstances: number };
        commands: { recovery: number; errors: number };
      };
      expect(parsed.target.store.kind).toBe('dolphinscheduler');
      expect(parsed.dead.map((d) => d.host).sort()).toEqual(['10.0.1.2:5678', '10.0.2.1:1234']);
      expect(parsed.work.instances.map((h) => h.host).sort()).toEqual(['10.0.1.1:5678', '10.0.1.3:5678']);
      expect(parsed.work.unownedInstances).toBe(0);
      expect(parsed.commands).toMatchObject({ recovery: 0, errors: 0 });
      expect(plan.code, plan.stderr).toBe(0);
      expect((JSON.parse(plan.stdout) as { eligible: unknown[] }).eligible).toEqual([]);

      const ports = [
        Number(new URL(ready.dynamodb).port),
        Number(new URL(ready.sqs).port),
        Number(ready.zookeeper.split(':')[1]),
        Number(new URL(ready.database).port),
      ];
      const pids = [...demo.children];
      // ZooKeeper, DynamoDB Local, PostgreSQL, 7 servers, containers.
      expect(pids.length).toBeGreaterThanOrEqual(10);
      demo.child.kill('SIGINT');
      expect(await demo.exited).toBe(0);
      for (const port of ports) expect(await portOpen(port), `port ${port}`).toBe(false);
      for (const pid of pids) expect(alive(pid), `pid ${pid} left behind`).toBe(false);
    } finally {
      if (demo.child.exitCode === null) demo.child.kill('SIGINT');
      await demo.exited;
    }
  }, 200_000);
});
