// Reads of DolphinScheduler's tables the demo needs on that store: executing work per host for the live
// view, and the whole tables for the verdict (the demo's database is its own and small). Rows come back as
// the drivers give them (times and big integers as the database's text), so two reads compare exactly.
import { NEED_FAILOVER_STATES } from '../store/dolphinscheduler/codes.ts';
import type { Database } from '../store/dolphinscheduler/database.ts';

export type DsRow = Record<string, unknown>;

/** Task states a worker failover applies to (0, 17, 1, 12). */
export const DS_TASK_FAILOVER_STATES: readonly number[] = [0, 17, 1, 12];

/** Executing instances per host (`null` key: SQL NULL host; `'NULL'`: failed over, not yet taken over). */
export async function executingInstancesByHost(db: Database): Promise<Map<string | null, number>> {
  const rows = await db.query<{ host: string | null; n: number | string }>(
    `SELECT host, count(*) AS n FROM t_ds_process_instance WHERE state IN (${NEED_FAILOVER_STATES.join(', ')}) GROUP BY host`,
  );
  return new Map(rows.map((r) => [r.host, Number(r.n)]));
}

/** Executing task instances per worker. */
export async function executingTasksByHost(db: Database): Promise<Map<string | null, number>> {
  const rows = await db.query<{ host: string | null; n: number | string }>(
    `SELECT host, count(*) AS n FROM t_ds_task_instance WHERE state IN (${DS_TASK_FAILOVER_STATES.join(', ')}) GROUP BY host`,
  );
  return new Map(rows.map((r) => [r.host, Number(r.n)]));
}

/** Every row of a (small) table, in id order. */
export function allRows(
  db: Database,
  table: 't_ds_process_instance' | 't_ds_task_instance' | 't_ds_command' | 't_ds_error_command',
): Promise<DsRow[]> {
  return db.query<DsRow>(`SELECT * FROM ${table} ORDER BY id`);
}
