// `npm start` (bin/demo.ts) in a reduced size, as a child process: the scenario's own verdict, its
// timeline, `--keep` with `zkf` against the READY endpoints, Ctrl-C, and no process left behind.
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { localStateDir } from '../../lib/local/processes.ts';

const root = join(import.meta.dirname, '..', '..');

interface Demo {
  child: ChildProcessByStdio<null, Readable, Readable>;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** Every process the demo's stack recorded while it ran (pid files owned by the demo). */
  children: Set<number>;
}

/**
 * The servers' session timeout is raised from the demo's 2 s: test files run side by side on 2 cores, and
 * a live server whose session expires under that load would (rightly) make the demo report a disturbed run.
 */
const sessionTimeout = ['--session-timeout', '4000'];

function startDemo(args: readonly string[]): Demo {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'bin', 'demo.ts'), ...sessionTimeout, ...args],
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
    for (const file of safeReaddir(join(localStateDir, 'pids'))) {
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

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
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
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitFor(what: string, probe: () => boolean, timeoutMs: number): Promise<void> {
  const started = Date.now();
  while (!probe()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function run(
  command: string,
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
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

describe('npm start (bin/demo.ts)', () => {
  it('rejects bad flags with a clear message and exit code 2, before starting anything', async () => {
    for (const [args, message] of [
      [['--masters', '0'], /--masters must be 1-9/],
      [['--instances', 'lots'], /--instances needs a whole number/],
      [['--kill', 'master-9'], /--kill: no server "master-9"/],
      [['--kill', 'master-1,master-2,master-3'], /at least one master alive/],
      [['--frobnicate'], /unknown option "--frobnicate"/],
    ] as const) {
      const result = await run(process.execPath, ['--import', 'tsx', join(root, 'bin', 'demo.ts'), ...args]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toContain('Usage: npm start');
    }
    const help = await run(process.execPath, ['--import', 'tsx', join(root, 'bin', 'demo.ts'), '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--kill LIST');
  });

  it('kills a master and a worker, shows each failover, checks the invariants itself and exits 0', async () => {
    const demo = startDemo(['--instances', '40']);
    const code = await demo.exited;
    const out = demo.stdout();
    expect(code, `${out}\n${demo.stderr()}`).toBe(0);
    // The timeline, step by step, for both failovers.
    for (const name of ['master-2', 'worker-1']) {
      expect(out).toMatch(new RegExp(`SIGKILL ${name} \\(`));
      expect(out).toMatch(new RegExp(`${name}: node gone \\(raw watch\\), \\d+ ms after SIGKILL`));
      expect(out).toMatch(
        new RegExp(`${name}: failover request on the queue \\(watcher\\), \\+\\d+ ms after node gone`),
      );
      expect(out).toMatch(new RegExp(`${name}: lock failover/\\w+/[0-9.:]+ taken \\(fence \\d+\\)`));
      expect(out).toMatch(new RegExp(`${name}: failover done: \\d+ failed over, \\d+ commands enqueued`));
    }
    expect(out).toMatch(/master-2: all \d+ taken over \(/);
    expect(out).toMatch(/worker-1: all \d+ re-dispatched \(/);
    // The verdict: every invariant line passes.
    const verdicts = out.split('\n').filter((l) => /^(PASS|FAIL) {2}/.test(l));
    expect(verdicts.filter((l) => l.startsWith('FAIL'))).toEqual([]);
    expect(verdicts).toEqual([
      expect.stringMatching(
        /^PASS {2}every executing instance of master-2 \(\d+ instances\) failed over exactly once/,
      ),
      expect.stringMatching(/^PASS {2}each of them taken over exactly once by a live master/),
      expect.stringMatching(
        /^PASS {2}every executing task of worker-1 \(\d+ tasks\) marked NEED_FAULT_TOLERANCE once/,
      ),
      expect.stringMatching(/^PASS {2}nothing of a live server touched/),
      expect.stringMatching(
        /^PASS {2}\d+ commands written in all \(as many as failed-over items\); outbox empty/,
      ),
    ]);
    expect(out).toMatch(/^RESULT: all 5 invariants hold/m);
    // Nothing left behind.
    expect(demo.children.size).toBeGreaterThanOrEqual(9); // ZooKeeper, DynamoDB Local, 7 servers, containers
    for (const pid of demo.children) expect(alive(pid), `pid ${pid} left behind`).toBe(false);
  }, 150_000);

  it('--keep leaves the stack up for zkf (READY endpoints) until Ctrl-C, which stops everything', async () => {
    const demo = startDemo(['--instances', '20', '--kill', 'worker-2', '--keep']);
    try {
      await waitFor(
        'the READY line',
        () => {
          if (demo.child.exitCode !== null) throw new Error(`the demo exited with ${demo.child.exitCode}`);
          return /^READY \{/m.test(demo.stdout());
        },
        140_000,
      );
    } catch (error: unknown) {
      demo.child.kill('SIGINT');
      throw new Error(`${String(error)}\n${demo.stdout()}\n${demo.stderr()}`);
    }
    const out = demo.stdout();
    expect(out).toMatch(/^RESULT: all \d+ invariants hold/m);
    const line = out.split('\n').find((l) => l.startsWith('READY ')) ?? '';
    const ready = JSON.parse(line.slice('READY '.length)) as {
      dynamodb: string;
      sqs: string;
      zookeeper: string;
    };
    // The operator command line against the demo's endpoints.
    const status = await run(process.execPath, [
      join(root, 'bin', 'zkf.mjs'),
      '--ready',
      line,
      'status',
      '--json',
    ]);
    expect(status.code, status.stderr).toBe(0);
    const parsed = JSON.parse(status.stdout) as {
      registry: { members: Array<{ host: string }> };
      dead: Array<{ host: string }>;
    };
    expect(parsed.registry.members.map((m) => m.host)).not.toContain('10.0.2.2:1234');
    expect(parsed.registry.members).toHaveLength(6);
    expect(parsed.dead.map((d) => d.host)).toEqual(['10.0.2.2:1234']);

    const ports = [
      Number(new URL(ready.dynamodb).port),
      Number(new URL(ready.sqs).port),
      Number(ready.zookeeper.split(':')[1]),
    ];
    const pids = [...demo.children];
    expect(pids.length).toBeGreaterThanOrEqual(9);
    demo.child.kill('SIGINT');
    expect(await demo.exited).toBe(0);
    for (const port of ports) expect(await portOpen(port), `port ${port}`).toBe(false);
    for (const pid of pids) expect(alive(pid), `pid ${pid} left behind`).toBe(false);
  }, 180_000);
});
