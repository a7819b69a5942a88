// The sweep's repair of executing work that has no owner and no command (DESIGN D5): on DolphinScheduler's
// database, an executing instance whose host is SQL NULL (which breaks DolphinScheduler's own periodic
// check on every cycle), or the failed-over marker 'NULL' with no command for it (#13355: it would stay
// executing forever). The first gets the marker and its recovery command at once; the second its command,
// once it has been seen without one for a grace period. Each repair is checked and written in one
// transaction that locks the instance row, so a master taking the instance over serializes with it.
import type { CommandReceipt, LockStore } from '../failover/ports.ts';
import { describeError, type Log, silentLog } from '../observability.ts';

export interface UnownedInstance {
  id: string;
  /** `sql-null`: host is SQL NULL; `no-command`: host is the marker and no command names the instance. */
  kind: 'sql-null' | 'no-command';
}

/** The store's side of the repair. */
export interface UnownedWork {
  listUnowned(): Promise<UnownedInstance[]>;
  /**
   * In one transaction that locks each row: the instances that are still executing and still unowned
   * (and, for the marker, still without a command) get the marker and exactly one recovery command.
   * Returns the commands written.
   */
  repair(ids: readonly string[], now: number): Promise<CommandReceipt[]>;
}

/** When each instance was first seen unowned without a command (kept between sweeps). */
export interface RepairLedger {
  load(): Promise<Map<string, number>>;
  save(firstSeen: ReadonlyMap<string, number>): Promise<void>;
}

export interface RepairDeps {
  work: UnownedWork;
  ledger: RepairLedger;
  /** One repairer at a time (a lease lock of its own); a held lock skips this sweep's repair. */
  locks: LockStore;
  clock: () => number;
  /** An instance seen without a command for this long gets one. */
  graceMs: number;
  log?: Log;
  owner: string;
}

export interface RepairSummary {
  status: 'done' | 'lock-held';
  sqlNullHosts: number;
  withoutCommand: number;
  /** Seen without a command, not yet for the grace period. */
  waiting: number;
  repaired: CommandReceipt[];
}

export const REPAIR_LOCK = 'repair/master/unowned';
/** The ledger keeps at most this many instances (the oldest first seen are kept). */
const MAX_LEDGER = 5_000;
const REPAIR_BATCH = 100;

export async function repairUnownedInstances(deps: RepairDeps): Promise<RepairSummary> {
  const log = deps.log ?? silentLog;
  const summary: RepairSummary = {
    status: 'done',
    sqlNullHosts: 0,
    withoutCommand: 0,
    waiting: 0,
    repaired: [],
  };
  const acquired = await deps.locks.acquire(REPAIR_LOCK, deps.owner, 60_000, deps.clock());
  if (!acquired.acquired) return { ...summary, status: 'lock-held' };
  try {
    const now = deps.clock();
    const unowned = await deps.work.listUnowned();
    const seen = await deps.ledger.load();
    const next = new Map<string, number>();
    const due: string[] = [];
    for (const instance of unowned) {
      if (instance.kind === 'sql-null') {
        summary.sqlNullHosts += 1;
        due.push(instance.id);
        continue;
      }
      summary.withoutCommand += 1;
      const first = seen.get(instance.id) ?? now;
      if (now - first >= deps.graceMs) due.push(instance.id);
      else {
        summary.waiting += 1;
        next.set(instance.id, first);
      }
    }
    for (let i = 0; i < due.length; i += REPAIR_BATCH) {
      const repaired = await deps.work.repair(due.slice(i, i + REPAIR_BATCH), deps.clock());
      summary.repaired.push(...repaired);
      if (repaired.length > 0) {
        log.info('unowned instances repaired', {
          instanceIds: repaired.map((r) => r.itemId),
          commandIds: repaired.map((r) => r.commandId),
        });
      }
    }
    await deps.ledger.save(new Map([...next.entries()].sort((a, b) => a[1] - b[1]).slice(0, MAX_LEDGER)));
    return summary;
  } catch (error: unknown) {
    log.error('repair of unowned instances failed', describeError(error));
    throw error;
  } finally {
    await deps.locks.release(acquired.lease).catch(() => undefined);
  }
}
