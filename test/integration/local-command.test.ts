import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { localStateDir } from '../../lib/local/processes.ts';
import type { ReadyInfo } from '../../lib/local/stack.ts';

function parentOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
  } catch {
    return undefined;
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

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm run local', () => {
  it('prints one READY line with the endpoints, then stops everything on SIGTERM and exits 0', async () => {
    const child = spawn('npm', ['run', '--silent', 'local'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: string[] = [];
    const ready = new Promise<ReadyInfo>((resolveReady, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        stdout.push(line);
        if (line.startsWith('READY ')) resolveReady(JSON.parse(line.slice(6)) as ReadyInfo);
      });
      child.once('exit', (code) => reject(new Error(`exited ${code} before READY`)));
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const info = await ready;
    expect(Object.keys(info).sort()).toEqual(
      ['dynamodb', 'queues', 'region', 'registryRoot', 'sqs', 'store', 'tables', 'zookeeper'].sort(),
    );
    expect(info.store).toBe('dynamodb');
    expect(Object.keys(info.tables).sort()).toEqual(['commands', 'instances', 'locks', 'servers', 'tasks']);
    expect(Object.keys(info.queues).sort()).toEqual(['commands', 'commandsDlq', 'failover', 'failoverDlq']);
    const ports = [
      Number(new URL(info.dynamodb).port),
      Number(new URL(info.sqs).port),
      ...info.zookeeper.split(',').map((hp) => Number(hp.split(':')[1])),
    ];
    for (const p of ports) expect(await portOpen(p)).toBe(true);
    // The local stack records every child it starts; read them to check they are all gone afterwards.
    // Its children are recorded under .local/pids with their owner; other test files' stacks are there too.
    const ownedByThisRun = readdirSync(join(localStateDir, 'pids'))
      .map(
        (f) =>
          JSON.parse(readFileSync(join(localStateDir, 'pids', f), 'utf8')) as {
            pid: number;
            ownerPid: number;
          },
      )
      .filter((r) => parentOf(r.ownerPid) === child.pid)
      .map((r) => r.pid);
    expect(ownedByThisRun.length).toBeGreaterThanOrEqual(2); // ZooKeeper and DynamoDB Local at least

    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(0);

    expect(stdout.filter((l) => l.startsWith('READY '))).toHaveLength(1);
    expect(stdout.filter((l) => l.trim() !== '')).toHaveLength(1);
    for (const p of ports) expect(await portOpen(p)).toBe(false);
    for (const pid of ownedByThisRun) expect(processAlive(pid), `pid ${pid}`).toBe(false);
  });
});
