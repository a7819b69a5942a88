// The chaos process's side of the registry agent (test/chaos/registry-agent.ts): starts it, calls its
// operations over IPC with a time limit each, and passes its events on.
import { join } from 'node:path';
import { childMarker, type ManagedProcess, startProcess } from '../../lib/local/processes.ts';
import { projectRoot } from '../../lib/local/service.ts';
import type { Incarnation } from './registry-actors.ts';
import { within } from './registry-actors.ts';
import type { AgentConfig, AgentEvent, AgentTarget } from './registry-agent.ts';

export class AgentError extends Error {
  constructor(operation: string, message: string) {
    super(`registry agent ${operation}: ${message}`);
    this.name = 'AgentError';
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class RegistryAgent {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private proc: ManagedProcess | undefined;
  onEvent: ((event: AgentEvent) => void) | undefined;

  private constructor(private readonly config: AgentConfig) {}

  static async start(config: AgentConfig): Promise<RegistryAgent> {
    const agent = new RegistryAgent(config);
    await agent.spawn();
    return agent;
  }

  private async spawn(): Promise<void> {
    const proc = startProcess(
      'chaos-registry-agent',
      process.execPath,
      ['--import', 'tsx', `--title=${childMarker}`, join(import.meta.dirname, 'registry-agent.ts')],
      {
        cwd: projectRoot,
        ipc: true,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', TZ: 'UTC' },
        onLine: (line) => this.onEvent?.({ event: 'log', line: `agent: ${line}` }),
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
            this.onEvent?.(m as AgentEvent);
            return;
          }
          if (typeof m?.id !== 'number') return;
          const p = this.pending.get(m.id);
          if (p === undefined) return;
          this.pending.delete(m.id);
          if (m.ok) p.resolve(m.value);
          else p.reject(new AgentError('call', m.error ?? 'failed'));
        },
      );
      proc.child.once('exit', () => {
        reject(new AgentError('start', `exited: ${proc.tail()}`));
        for (const [id, p] of this.pending) {
          p.reject(new AgentError('call', `the agent exited: ${proc.tail()}`));
          this.pending.delete(id);
        }
      });
    });
    await within(ready, 60_000, 'the registry agent to start');
    await this.call('init', this.config, 10_000);
  }

  /** Restarts the agent if it died (all its servers' sessions died with it). */
  async ensureRunning(): Promise<void> {
    if (this.proc !== undefined && !this.proc.exited()) return;
    await this.spawn();
  }

  call<T>(op: string, args: unknown, timeoutMs = 30_000): Promise<T> {
    const proc = this.proc;
    if (proc === undefined || proc.exited()) return Promise.reject(new AgentError(op, 'not running'));
    const id = this.nextId++;
    const result = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      proc.child.send({ id, op, args }, (error) => {
        if (error === null || error === undefined) return;
        this.pending.delete(id);
        reject(new AgentError(op, error.message));
      });
    });
    return within(result, timeoutMs, `registry agent ${op}`).finally(() => this.pending.delete(id));
  }

  prepare(target: AgentTarget): Promise<boolean> {
    return this.call('prepare', target, 60_000);
  }

  register(
    target: AgentTarget,
    server: { key: string; nodeType: 'master' | 'worker'; host: string; startupTime: number },
  ): Promise<Incarnation> {
    return this.call('register', { ...target, ...server }, 60_000);
  }

  kill(key: string): Promise<number | null> {
    return this.call('kill', { key }, 30_000);
  }

  killAll(): Promise<boolean> {
    return this.call('killAll', {}, 60_000);
  }

  startWatcher(target: AgentTarget): Promise<boolean> {
    return this.call('startWatcher', target);
  }

  overlapWindow(target: AgentTarget, durationMs: number): Promise<boolean> {
    return this.call('overlapWindow', { ...target, durationMs }, durationMs + 30_000);
  }

  expireWatcher(connect: string): Promise<string | null> {
    return this.call('expireWatcher', { connect });
  }

  stopWatcher(): Promise<boolean> {
    return this.call('stopWatcher', {}, 40_000);
  }

  sweep(target: AgentTarget, via: 'proxied' | 'direct', endInMs = 8_000): Promise<unknown> {
    return this.call('sweep', { ...target, via, endInMs }, endInMs + 30_000);
  }

  dsSweep(
    target: AgentTarget,
    via: 'proxied' | 'direct',
    database: { url: string; dialect: 'postgresql' | 'mysql' },
    timeZone: string,
    endInMs = 8_000,
  ): Promise<unknown> {
    return this.call('dsSweep', { ...target, via, endInMs, database, timeZone }, endInMs + 30_000);
  }

  listRegistry(target: AgentTarget): Promise<Array<[string, { czxid: string; startupTime: number }]>> {
    return this.call('listRegistry', target, 60_000);
  }

  removeTree(target: AgentTarget): Promise<boolean> {
    return this.call('removeTree', target, 60_000);
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc === undefined || proc.exited()) return;
    await this.call('stopWatcher', {}, 30_000).catch(() => undefined);
    await this.call('killAll', {}, 30_000).catch(() => undefined);
    this.proc = undefined;
    if (proc.child.connected) proc.child.disconnect();
    await proc.stop(5_000);
  }
}

export type { AgentEvent };
