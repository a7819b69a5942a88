// Read-only views of DolphinScheduler's tables and failover locks for operators (`zkf status` on the
// DolphinScheduler store). Like the sweep's host listing, the work reads are one pass over the executing
// instances each: DolphinScheduler has no index on host or state (DESIGN D7), so each costs a scan of
// t_ds_process_instance (`--no-work` skips them).
import { dirname } from 'node:path';
import type { DsVersion } from '../local/store-flags.ts';
import { contendersInOrder } from '../registry/curator-mutex.ts';
import { dsMasterFailoverLockPath } from '../registry/ds-failover-lock.ts';
import { connectZk } from '../registry/zk-client.ts';
import {
  FAILED_OVER_HOST,
  NEED_FAILOVER_STATES,
  RECOVER_TOLERANCE_FAULT_PROCESS,
  workflowStateName,
} from '../store/dolphinscheduler/codes.ts';
import type { Database } from '../store/dolphinscheduler/database.ts';

const executing = NEED_FAILOVER_STATES.join(', ');

export interface DsUnownedInstance {
  id: number;
  /** 'NULL' (failed over), or null (SQL NULL: DolphinScheduler's periodic check breaks on it). */
  host: string | null;
  state: string;
  startTime: string | null;
  restartTime: string | null;
  /** The lowest t_ds_command id naming it (a master will take it over), or null. */
  commandId: number | null;
}

export interface DsWork {
  /** Executing instances per owning host (exact host strings; neither 'NULL' nor SQL NULL). */
  hosts: Array<{ host: string; executing: number }>;
  unowned: {
    /** Host 'NULL' with a command waiting in t_ds_command: a master will take it over. */
    withCommand: number;
    /** Host 'NULL' and no command: stuck (DolphinScheduler #13355) until the sweep's repair. */
    withoutCommand: number;
    /** Host SQL NULL: DolphinScheduler's periodic check throws on every cycle until the sweep's repair. */
    sqlNull: number;
    instances: DsUnownedInstance[];
  };
  /** How long the two scans took. */
  durationMs: number;
}

/** Executing instances per host, and the unowned ones with or without a command. */
export async function readDsWork(db: Database): Promise<DsWork> {
  const started = Date.now();
  const [byHost, unowned] = await Promise.all([
    db.query<{ host: string | null; n: number | string }>(
      `SELECT host, count(*) AS n FROM t_ds_process_instance WHERE state IN (${executing}) GROUP BY host`,
    ),
    db.query<{
      id: number | string;
      host: string | null;
      state: number | string;
      start_time: string | null;
      restart_time: string | null;
      command_id: number | string | null;
    }>(
      `SELECT i.id, i.host, i.state, i.start_time, i.restart_time,
  (SELECT min(c.id) FROM t_ds_command c WHERE c.process_instance_id = i.id) AS command_id
FROM t_ds_process_instance i
WHERE i.state IN (${executing}) AND (i.host IS NULL OR i.host = '${FAILED_OVER_HOST}')
ORDER BY i.id`,
    ),
  ]);
  const instances = unowned.map((r) => ({
    id: Number(r.id),
    host: r.host,
    state: workflowStateName(Number(r.state)),
    startTime: r.start_time,
    restartTime: r.restart_time,
    commandId: r.command_id === null ? null : Number(r.command_id),
  }));
  return {
    hosts: byHost
      .filter(
        (r): r is { host: string; n: number | string } => r.host !== null && r.host !== FAILED_OVER_HOST,
      )
      .map((r) => ({ host: r.host, executing: Number(r.n) }))
      .sort((a, b) => b.executing - a.executing || a.host.localeCompare(b.host)),
    unowned: {
      withCommand: instances.filter((i) => i.host !== null && i.commandId !== null).length,
      withoutCommand: instances.filter((i) => i.host !== null && i.commandId === null).length,
      sqlNull: instances.filter((i) => i.host === null).length,
      instances,
    },
    durationMs: Date.now() - started,
  };
}

export interface DsCommands {
  /** Recovery commands (command_type 2) waiting for a master. */
  recovery: number;
  /** Their oldest start_time (DolphinScheduler's wall time). */
  oldestRecovery: string | null;
  /** Other commands (starts, schedules, ...). */
  other: number;
  /** Commands a master could not handle (t_ds_error_command), and how many of them are recoveries. */
  errors: number;
  recoveryErrors: number;
}

/** What waits in t_ds_command and what failed into t_ds_error_command (small tables: the masters empty them). */
export async function readDsCommands(db: Database): Promise<DsCommands> {
  const [commands, errors] = await Promise.all([
    db.query<{ command_type: number | string | null; n: number | string; oldest: string | null }>(
      'SELECT command_type, count(*) AS n, min(start_time) AS oldest FROM t_ds_command GROUP BY command_type',
    ),
    db.query<{ command_type: number | string | null; n: number | string }>(
      'SELECT command_type, count(*) AS n FROM t_ds_error_command GROUP BY command_type',
    ),
  ]);
  const isRecovery = (r: { command_type: number | string | null }) =>
    Number(r.command_type) === RECOVER_TOLERANCE_FAULT_PROCESS;
  const recovery = commands.find(isRecovery);
  return {
    recovery: Number(recovery?.n ?? 0),
    oldestRecovery: recovery?.oldest ?? null,
    other: commands.filter((r) => !isRecovery(r)).reduce((n, r) => n + Number(r.n), 0),
    errors: errors.reduce((n, r) => n + Number(r.n), 0),
    recoveryErrors: Number(errors.find(isRecovery)?.n ?? 0),
  };
}

export interface DsLockListing {
  status: 'listed' | 'unavailable' | 'not-configured';
  /** The directory of the per-master locks (`<root>/lock/master-failover` in 3.2). */
  path: string;
  /** Hosts whose failover lock has contenders: the holder first (Curator's order). */
  locks: Array<{ host: string; contenders: string[] }>;
  error?: string;
}

/** DolphinScheduler's own master failover locks in ZooKeeper: who holds or waits for which host's. */
export async function readDsFailoverLocks(options: {
  zookeeper: string | undefined;
  root: string;
  version: DsVersion;
  digest?: string;
}): Promise<DsLockListing> {
  const path = dirname(dsMasterFailoverLockPath(options.root, options.version, '0.0.0.0:1'));
  if (options.zookeeper === undefined) return { status: 'not-configured', path, locks: [] };
  try {
    const session = await connectZk({
      connectString: options.zookeeper,
      sessionTimeoutMs: 10_000,
      connectTimeoutMs: 5_000,
      ...(options.digest === undefined
        ? {}
        : { auth: { scheme: 'digest' as const, credentials: options.digest } }),
    });
    try {
      // A missing directory lists as empty: nobody ever took a lock.
      const hosts = await session.children(path);
      const locks: DsLockListing['locks'] = [];
      for (const host of hosts.sort()) {
        const contenders = contendersInOrder(await session.children(`${path}/${host}`));
        if (contenders.length > 0) locks.push({ host, contenders });
      }
      return { status: 'listed', path, locks };
    } finally {
      await session.close();
    }
  } catch (error: unknown) {
    return {
      status: 'unavailable',
      path,
      locks: [],
      error: error instanceof Error ? error.message : String(error),
    };
  }
}
