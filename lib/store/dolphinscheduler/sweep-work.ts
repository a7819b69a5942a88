// The sweep's questions and repairs on DolphinScheduler's database (DESIGN D5): the hosts of all executing
// instances in one pass, and the repair of executing instances left without an owner and a command.
import type { CommandReceipt } from '../../failover/ports.ts';
import type { ExecutingHostScan, ExecutingHosts } from '../../sweep/executing-work.ts';
import type { UnownedInstance, UnownedWork } from '../../sweep/repair-unowned.ts';
import { recoveryCommandParam } from './command-row.ts';
import type { Database, Queryable } from './database.ts';
import { scheduleKey, schedulesOf } from './schedules.ts';
import {
  commandedInstancesSql,
  commandInstanceIdsSql,
  executingHostsSql,
  type InstanceRow,
  insertCommandsSql,
  lockUnownedSql,
  markUnownedSql,
  mysqlInsertedCommandsSql,
  unownedCandidatesSql,
} from './sql.ts';
import type { WallClock } from './wall-time.ts';

/**
 * One GROUP BY over the executing instances. Without an index on `host` it reads the whole table once
 * (docs/dolphinscheduler.md gives the measured cost); DolphinScheduler's own periodic check runs the same
 * scan every 10 minutes on every master.
 */
export class DsExecutingHosts implements ExecutingHostScan {
  constructor(
    private readonly db: Database,
    private readonly now: () => number = Date.now,
  ) {}

  async scanExecutingHosts(): Promise<ExecutingHosts> {
    const started = this.now();
    const statement = executingHostsSql();
    const rows = await this.db.query<{ host: string; n: number | string }>(statement.sql, statement.params);
    const hosts = rows.map((r) => ({ nodeType: 'master' as const, host: r.host, items: Number(r.n) }));
    return {
      hosts,
      cost: {
        durationMs: this.now() - started,
        executingItems: hosts.reduce((sum, h) => sum + h.items, 0),
      },
    };
  }
}

export class DsUnownedWork implements UnownedWork {
  constructor(
    private readonly db: Database,
    private readonly clock: WallClock,
  ) {}

  /**
   * Executing instances with SQL NULL host, and those at the marker that no command names: two scans
   * (unownedCandidatesSql, commandInstanceIdsSql), whatever the planner's statistics. A command consumed
   * between the two reads lists its instance, which the repair then finds owned, under its row lock.
   */
  async listUnowned(): Promise<UnownedInstance[]> {
    const candidates = unownedCandidatesSql();
    const rows = await this.db.query<{ id: number | string; host: string | null }>(
      candidates.sql,
      candidates.params,
    );
    const commanded = new Set<number>();
    if (rows.some((r) => r.host !== null)) {
      const named = commandInstanceIdsSql();
      const ids = await this.db.query<{ process_instance_id: number | string }>(named.sql, named.params);
      for (const r of ids) commanded.add(Number(r.process_instance_id));
    }
    return rows
      .filter((r) => r.host === null || !commanded.has(Number(r.id)))
      .map((r) => ({ id: String(r.id), kind: r.host === null ? 'sql-null' : 'no-command' }));
  }

  async repair(ids: readonly string[], now: number): Promise<CommandReceipt[]> {
    const numeric = ids.map(Number).filter((id) => Number.isSafeInteger(id));
    if (numeric.length === 0) return [];
    const dialect = this.db.dialect;
    return this.db.transaction(async (tx) => {
      const lock = lockUnownedSql(dialect, numeric);
      const locked = await tx.query<InstanceRow>(lock.sql, lock.params);
      if (locked.length === 0) return [];
      const schedules = await schedulesOf(
        tx,
        dialect,
        locked.map((r) => r.process_definition_code),
      );
      const commanded = commandedInstancesSql(
        dialect,
        locked.map((r) => Number(r.id)),
      );
      const withCommand = new Set(
        (await tx.query<{ process_instance_id: number | string }>(commanded.sql, commanded.params)).map((r) =>
          Number(r.process_instance_id),
        ),
      );
      // An instance with a command is a master's to take over: only the unowned ones without one are repaired.
      // An instance without a definition code cannot have a command (the column is NOT NULL): left as is.
      const due = locked.filter((r) => !withCommand.has(Number(r.id)) && r.process_definition_code !== null);
      if (due.length === 0) return [];
      const sqlNull = due.filter((r) => r.host === null).map((r) => Number(r.id));
      if (sqlNull.length > 0) {
        const mark = markUnownedSql(dialect, sqlNull);
        await tx.query(mark.sql, mark.params);
      }
      const insert = insertCommandsSql(
        dialect,
        due.map((r) => ({
          id: r.id,
          process_definition_code: r.process_definition_code as string | number,
          process_definition_version: r.process_definition_version ?? 1,
          executor_id: r.executor_id,
          process_instance_priority: r.process_instance_priority,
          test_flag: r.test_flag,
          commandParam: recoveryCommandParam(
            Number(r.id),
            r.command_param,
            schedules.get(scheduleKey(r.process_definition_code)) ?? null,
          ),
        })),
        this.clock.format(now, dialect === 'mysql' ? 's' : 'ms'),
      );
      const inserted = await tx.query<{ id: number | string; process_instance_id: number | string }>(
        insert.sql,
        insert.params,
      );
      const receipts =
        dialect === 'postgresql'
          ? inserted
          : await insertedCommands(
              tx,
              due.map((r) => Number(r.id)),
            );
      return receipts.map((r) => ({ itemId: String(r.process_instance_id), commandId: String(r.id) }));
    });
  }
}

async function insertedCommands(
  tx: Queryable,
  ids: readonly number[],
): Promise<Array<{ id: number | string; process_instance_id: number | string }>> {
  const select = mysqlInsertedCommandsSql(ids);
  return tx.query(select.sql, select.params);
}
