import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import type { ReadyInfo } from '../../lib/local/stack.ts';

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
      ['dynamodb', 'queues', 'region', 'registryRoot', 'sqs', 'tables', 'zookeeper'].sort(),
    );
    expect(Object.keys(info.tables).sort()).toEqual(['commands', 'instances', 'locks', 'servers', 'tasks']);
    expect(Object.keys(info.queues).sort()).toEqual(['commands', 'commandsDlq', 'failover', 'failoverDlq']);
    const ports = [
      Number(new URL(info.dynamodb).port),
      Number(new URL(info.sqs).port),
      ...info.zookeeper.split(',').map((hp) => Number(hp.split(':')[1])),
    ];
    for (const p of ports) expect(await portOpen(p)).toBe(true);
    // The local stack records every child it starts; read them to check they are all gone afterwards.
    const { readdirSync } = await import('node:fs');
    const { localStateDir } = await import('../../lib/local/processes.ts');
    const pids = readdirSync(`${localStateDir}/pids`).map((f) => Number.parseInt(f, 10));

    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(0);

    expect(stdout.filter((l) => l.startsWith('READY '))).toHaveLength(1);
    expect(stdout.filter((l) => l.trim() !== '')).toHaveLength(1);
    for (const p of ports) expect(await portOpen(p)).toBe(false);
    const stackPids = pids.filter((pid) => pid > child.pid!);
    for (const pid of stackPids) expect(processAlive(pid), `pid ${pid}`).toBe(false);
  });
});
