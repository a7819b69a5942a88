// `zkf status` on DolphinScheduler's database: the sections that replace the DynamoDB store's work and
// outbox (lib/cli/commands/status.ts keeps the registry, mirror, locks and queues): executing instances per
// host, the unowned ones ('NULL' with and without a pending command, SQL NULL), the commands waiting in
// t_ds_command and failed into t_ds_error_command, and DolphinScheduler's own failover locks in ZooKeeper.
import { DynamoRepairLedger } from '../../store/dynamodb/repair-ledger.ts';
import {
  type DsCommands,
  type DsLockListing,
  type DsUnownedInstance,
  readDsCommands,
  readDsFailoverLocks,
  readDsWork,
} from '../ds-inspect.ts';
import { relative, table } from '../format.ts';
import type { DsStoreTarget } from '../store-target.ts';
import type { Target } from '../target.ts';

export interface DsStatusWork {
  store: 'dolphinscheduler';
  instances: Array<{ host: string; executing: number; live: boolean | null }>;
  /** Executing instances without an owner: 'NULL' (with or without a command) and SQL NULL. */
  unownedInstances: number;
  unowned: {
    withCommand: number;
    withoutCommand: number;
    sqlNull: number;
    instances: Array<
      DsUnownedInstance & {
        /** The sweep's repair ledger: when it first saw the instance without a command. */
        firstSeenWithoutCommand: number | null;
        /** When the sweep gives it a command (first seen + DS_REPAIR_GRACE_MS); SQL NULL: at once. */
        repairDueAt: number | null;
      }
    >;
  };
  scanMs: number;
}

export interface DsStatusParts {
  work: DsStatusWork | null;
  commands: DsCommands;
  dolphinSchedulerLocks: DsLockListing;
}

export async function readDsStatus(
  target: Target,
  store: DsStoreTarget,
  options: {
    scanWork: boolean;
    digest: string | undefined;
    isLive: (host: string) => Promise<boolean | null>;
  },
): Promise<DsStatusParts> {
  const [work, ledger, commands, dolphinSchedulerLocks] = await Promise.all([
    options.scanWork ? readDsWork(store.database) : undefined,
    options.scanWork ? new DynamoRepairLedger(target.dynamodb, target.tables.servers).load() : undefined,
    readDsCommands(store.database),
    readDsFailoverLocks({
      zookeeper: target.zookeeper,
      root: target.registryRoot,
      version: store.version,
      ...(options.digest === undefined ? {} : { digest: options.digest }),
    }),
  ]);
  if (work === undefined) return { work: null, commands, dolphinSchedulerLocks };
  const instances = [];
  for (const h of work.hosts) instances.push({ ...h, live: await options.isLive(h.host) });
  const { unowned } = work;
  return {
    work: {
      store: 'dolphinscheduler',
      instances,
      unownedInstances: unowned.instances.length,
      unowned: {
        withCommand: unowned.withCommand,
        withoutCommand: unowned.withoutCommand,
        sqlNull: unowned.sqlNull,
        instances: unowned.instances.map((i) => {
          const firstSeen = ledger?.get(String(i.id)) ?? null;
          const due =
            i.commandId !== null
              ? null
              : i.host === null
                ? 0
                : firstSeen === null
                  ? null
                  : firstSeen + store.repairGraceMs;
          return { ...i, firstSeenWithoutCommand: i.host === null ? null : firstSeen, repairDueAt: due };
        }),
      },
      scanMs: work.durationMs,
    },
    commands,
    dolphinSchedulerLocks,
  };
}

/** The human sections, in place of the DynamoDB store's work and pending commands. */
export function renderDsStatus(
  parts: DsStatusParts,
  store: DsStoreTarget,
  limit: number,
  now: number,
): string[] {
  const out: string[] = [];
  const more = (n: number) => (n > limit ? [`  ... ${n - limit} more (--limit)`] : []);
  const { work } = parts;
  if (work === null) {
    out.push('EXECUTING WORK: not scanned (--no-work)');
  } else {
    const liveCell = (live: boolean | null) =>
      live === null ? 'unknown' : live ? 'live' : 'NOT LIVE (orphan)';
    out.push(
      `EXECUTING WORKFLOW INSTANCES per master (t_ds_process_instance, states 0,1,12,2,4; scanned in ${work.scanMs} ms, no index on host)`,
    );
    if (work.instances.length > 0) {
      out.push(
        table(
          ['host', 'executing', 'host is'],
          work.instances.slice(0, limit).map((h) => [h.host, String(h.executing), liveCell(h.live)]),
        ),
        ...more(work.instances.length),
      );
    }
    const u = work.unowned;
    out.push(
      '',
      `UNOWNED EXECUTING INSTANCES: ${work.unownedInstances}`,
      `  host 'NULL', command pending in t_ds_command   ${String(u.withCommand).padStart(6)}  (failed over; a master takes each over)`,
      `  host 'NULL', no command                        ${String(u.withoutCommand).padStart(6)}  (stuck, DolphinScheduler #13355: the sweep writes its command after ${Math.round(store.repairGraceMs / 1000)} s)`,
      `  host SQL NULL                                  ${String(u.sqlNull).padStart(6)}  (breaks DolphinScheduler's periodic check: the sweep repairs it at once)`,
    );
    if (u.instances.length > 0) {
      out.push(
        table(
          ['instance', 'host', 'state', 'start_time', 'restart_time', 'command', 'sweep repair'],
          u.instances
            .slice(0, limit)
            .map((i) => [
              String(i.id),
              i.host === null ? 'SQL NULL' : `'${i.host}'`,
              i.state,
              i.startTime ?? '-',
              i.restartTime ?? '-',
              i.commandId === null ? 'none' : String(i.commandId),
              i.commandId !== null
                ? '-'
                : i.host === null
                  ? 'next sweep'
                  : i.repairDueAt === null
                    ? 'not seen by the sweep yet'
                    : i.repairDueAt <= now
                      ? 'due (next sweep)'
                      : relative(i.repairDueAt, now),
            ]),
        ),
        ...more(u.instances.length),
      );
    }
  }
  const c = parts.commands;
  out.push(
    '',
    `COMMANDS (t_ds_command): ${c.recovery} recovery commands waiting for a master${
      c.oldestRecovery === null ? '' : `, oldest written ${c.oldestRecovery} (${store.timeZone})`
    }; ${c.other} other commands`,
    `  t_ds_error_command: ${c.errors}${c.recoveryErrors > 0 ? ` (${c.recoveryErrors} recovery commands a master could not handle)` : ''}`,
  );
  const l = parts.dolphinSchedulerLocks;
  out.push(
    '',
    `DOLPHINSCHEDULER FAILOVER LOCKS (${l.path}): ${
      l.status === 'listed'
        ? `${l.locks.length} held`
        : l.status === 'unavailable'
          ? `unavailable (${l.error ?? ''})`
          : 'not listed (give --zookeeper)'
    }`,
  );
  if (l.locks.length > 0) {
    out.push(
      table(
        ['host', 'holder', 'waiting'],
        l.locks.map((k) => [k.host, k.contenders[0] ?? '-', String(k.contenders.length - 1)]),
      ),
    );
  }
  return out;
}
