// The chaos process's side of the DolphinScheduler agent (ds-agent.ts): starts it, calls its operations over
// IPC with a time limit each, and passes its events on.
import { join } from 'node:path';
import { childMarker, type ManagedProcess, startProcess } from '../../lib/local/processes.ts';
import { projectRoot } from '../../lib/local/service.ts';
import type { Dialect } from '../../lib/store/dolphinscheduler/database.ts';
import type { DsAgentEvent, DsAgentRun, DsLockHold } from './ds-agent.ts';
import { within } from './registry-actors.ts';

export class DsAgentError extends Error {
  constructor(operation: string, message: string) {
    super(`DolphinScheduler agent ${operation}: ${message}`);
    this.name = 'DsAgentError';
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class DsAgent {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private proc: ManagedProcess | undefined;
  onEvent: ((event: DsAgentEvent) => void) | undefined;

  private constructor(private readonly database: { url: string; dialect: Dialect }) {}

  static async start(database: { url: string; dialect: Dialect }): Promise<DsAgent> {
    const agent = new DsAgent(database);
    await agent.spawn();
    return agent;
  }

  private async spawn(): Promise<void> {
    const proc = startProcess(
      'chaos-ds-agent',
      process.execPath,
      ['--import', 'tsx', `--title=${childMarker}`, join(import.meta.dirname, 'ds-agent.ts')],
      {
        cwd: projectRoot,
        ipc: true,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', TZ: 'UTC' },
        onLine: (line) => this.onEvent?.({ event: 'log', line: `ds-agent: ${line}` }),
      },
    );
    this.proc = proc;
    const ready = new Promise<void>((resolve, reject) => {
      proc.child.on(
        'message',
        (m: { id?: number; ok?: boolean; value?: unknown; error?: string; event?: string }) => {
          if (m?.event === 'ready') {
            resolve();
            return;
          }
          if (m?.event !== undefined) {
            this.onEvent?.(m as DsAgentEvent);
            return;
          }
          if (typeof m?.id !== 'number') return;
          const p = this.pending.get(m.id);
          if (p === undefined) return;
          this.pending.delete(m.id);
          if (m.ok) p.resolve(m.value);
          else p.reject(new DsAgentError('call', m.error ?? 'failed'));
        },
      );
      proc.child.once('exit', (code, signal) => {
        this.onEvent?.({
          event: 'log',
          line: `ds-agent exited (code ${code}, signal ${signal}): ${proc.tail().split('\n').slice(-8).join(' | ')}`,
        });
        reject(new DsAgentError('start', `exited: ${proc.tail()}`));
        for (const [id, p] of this.pending) {
          p.reject(new DsAgentError('call', `the DolphinScheduler agent exited: ${proc.tail()}`));
          this.pending.delete(id);
        }
      });
    });
    await within(ready, 60_000, 'the DolphinScheduler agent to start');
    await this.call('init', this.database, 10_000);
  }

  async ensureRunning(): Promise<void> {
    if (this.proc !== undefined && !this.proc.exited()) return;
    await this.spawn();
  }

  call<T>(op: string, args: unknown, timeoutMs = 30_000): Promise<T> {
    const proc = this.proc;
    if (proc === undefined || proc.exited()) return Promise.reject(new DsAgentError(op, 'not running'));
    const id = this.nextId++;
    const result = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      proc.child.send({ id, op, args }, (error) => {
        if (error === null || error === undefined) return;
        this.pending.delete(id);
        reject(new DsAgentError(op, error.message));
      });
    });
    return within(result, timeoutMs, `DolphinScheduler agent ${op}`).finally(() => this.pending.delete(id));
  }

  begin(run: DsAgentRun): Promise<boolean> {
    return this.call('begin', run);
  }

  failOver(master: string, deadHost: string, timeoutMs: number): Promise<unknown> {
    return this.call('failOver', { master, deadHost }, timeoutMs);
  }

  periodicCheck(master: string, timeoutMs: number): Promise<unknown> {
    return this.call('periodicCheck', { master }, timeoutMs);
  }

  startConsumers(
    everyMs: number,
    consumers: ReadonlyArray<{ host: string; minStartupTime: number }>,
  ): Promise<boolean> {
    return this.call('startConsumers', { everyMs, consumers });
  }

  pauseConsumers(ms: number): Promise<boolean> {
    return this.call('pauseConsumers', { ms });
  }

  stopConsumers(): Promise<boolean> {
    return this.call('stopConsumers', {}, 30_000);
  }

  busy(): Promise<number> {
    return this.call('busy', {});
  }

  lockHolds(): Promise<DsLockHold[]> {
    return this.call('lockHolds', {});
  }

  connectionIds(): Promise<number[]> {
    return this.call('connectionIds', {}, 5_000);
  }

  lockNodes(root: string): Promise<string[]> {
    return this.call('lockNodes', { root });
  }

  end(): Promise<boolean> {
    return this.call('end', {}, 60_000);
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc === undefined || proc.exited()) return;
    await this.call('end', {}, 40_000).catch(() => undefined);
    await this.call('close', {}, 10_000).catch(() => undefined);
    this.proc = undefined;
    if (proc.child.connected) proc.child.disconnect();
    await proc.stop(5_000);
  }
}
