// The command loop of a simulated DolphinScheduler 3.2 master (MasterSchedulerBootstrap), run by a demo
// master process on DolphinScheduler's database (shared/dolphinscheduler.md section 4). Each round it
// works out its slot as 3.2 does, its index among the registered non-BUSY masters ordered by startupTime,
// then fetches and handles that slot's commands with the simulated master of lib/sim/ds-master.ts
// (`consumeCommands`: the instance taken over and the command deleted, in one transaction). Like 3.2 it
// sleeps a second when a round brings less than a full fetch.
import type { ConsumeCommandsResult } from './ds-master.ts';
import type { SimReport } from './protocol.ts';

/** 3.2's master.command-fetch-strategy.config.fetch-size (its default). */
export const DS_FETCH_SIZE = 10;
/** MasterSchedulerBootstrap's sleep after a round without a full fetch (Constants.SLEEP_TIME_MILLIS). */
export const DS_IDLE_MS = 1_000;

/** A registered master as the registry lists it: its node name and heartbeat. */
export interface ListedMaster {
  host: string;
  /** The node's data (null when it vanished while listing). */
  data: string | null;
}

/**
 * This master's slot among the live masters: the registered ones whose heartbeat is not BUSY, ordered by
 * their heartbeat's startupTime (then by name, for equal times). `slot` is -1 when this master is not
 * among them (not listed yet, or BUSY): it then fetches nothing.
 */
export function masterSlot(
  self: string,
  masters: readonly ListedMaster[],
): { slot: number; totalSlot: number } {
  const eligible: Array<{ host: string; startupTime: number }> = [];
  for (const { host, data } of masters) {
    if (data === null || data === '') continue;
    let heartbeat: unknown;
    try {
      heartbeat = JSON.parse(data);
    } catch {
      continue;
    }
    if (typeof heartbeat !== 'object' || heartbeat === null) continue;
    const { startupTime, serverStatus } = heartbeat as { startupTime?: unknown; serverStatus?: unknown };
    if (typeof startupTime !== 'number' || serverStatus === 'BUSY') continue;
    eligible.push({ host, startupTime });
  }
  eligible.sort((a, b) => a.startupTime - b.startupTime || a.host.localeCompare(b.host));
  return { slot: eligible.findIndex((m) => m.host === self), totalSlot: eligible.length };
}

export interface DsCommandLoopOptions {
  /** The simulated master's consumer (lib/sim/ds-master.ts). */
  consume(options: { slot: number; totalSlot: number }): Promise<ConsumeCommandsResult>;
  /** Its own `ip:port`. */
  self: string;
  /** The registry's masters now (children of `<root>/nodes/master` with their data). */
  listMasters(): Promise<ListedMaster[]>;
  report(report: SimReport): void;
  idleMs?: number;
}

/** Runs rounds until `signal` is aborted. Failures are reported and the loop goes on, as 3.2's does. */
export async function runDsCommandLoop(options: DsCommandLoopOptions, signal: AbortSignal): Promise<void> {
  const idleMs = options.idleMs ?? DS_IDLE_MS;
  while (!signal.aborted) {
    let handled = 0;
    try {
      const { slot, totalSlot } = masterSlot(options.self, await options.listMasters());
      const out = await options.consume({ slot, totalSlot });
      const at = Date.now();
      for (const t of out.tookOver) {
        options.report({
          type: 'took-over',
          commandId: String(t.commandId),
          instanceId: String(t.instanceId),
          at,
        });
      }
      for (const m of out.movedToErrorCommand) {
        options.report({ type: 'error-command', commandId: String(m.commandId), message: m.message, at });
      }
      if (out.error !== undefined) {
        options.report({ type: 'problem', what: `command batch: ${out.error.message}`.slice(0, 300), at });
      }
      handled = out.tookOver.length + out.movedToErrorCommand.length;
    } catch (error: unknown) {
      options.report({
        type: 'problem',
        what: `command round: ${error instanceof Error ? error.message : String(error)}`.slice(0, 300),
        at: Date.now(),
      });
    }
    if (handled < DS_FETCH_SIZE) await sleep(idleMs, signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
