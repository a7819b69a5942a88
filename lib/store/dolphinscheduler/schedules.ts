// The schedules of the workflows whose instances a page holds, read once per page: DolphinScheduler's
// `t_ds_schedules` has no index on the definition code, so one read scans it once, where a lookup per
// instance (as DolphinScheduler's own createCommand does) would scan it for every instance.
import type { Dialect, Queryable } from './database.ts';
import { type ScheduleRow, schedulesSql } from './sql.ts';

/** A workflow's schedule as the recovery command needs it (DolphinScheduler adds its time zone). */
export interface WorkflowSchedule {
  timezoneId: string | null;
}

/** Definition codes per statement (an IN list; a page holds at most a few hundred distinct ones). */
const CODES_PER_READ = 1_000;

/**
 * The first schedule (lowest id) of each definition code that has one, keyed by the code as text. Codes
 * that are not safe integers are left out: their instances are malformed and never written.
 */
export async function schedulesOf(
  db: Queryable,
  dialect: Dialect,
  definitionCodes: Iterable<string | number | null>,
): Promise<Map<string, WorkflowSchedule>> {
  const codes = new Set<number>();
  for (const code of definitionCodes) {
    const n = Number(code);
    if (code !== null && Number.isSafeInteger(n)) codes.add(n);
  }
  const found = new Map<string, WorkflowSchedule>();
  const all = [...codes];
  for (let i = 0; i < all.length; i += CODES_PER_READ) {
    const statement = schedulesSql(dialect, all.slice(i, i + CODES_PER_READ));
    for (const row of await db.query<ScheduleRow>(statement.sql, statement.params)) {
      const key = scheduleKey(row.process_definition_code);
      if (!found.has(key)) found.set(key, { timezoneId: row.timezone_id });
    }
  }
  return found;
}

/** The key of a definition code in the map schedulesOf returns. */
export function scheduleKey(code: string | number | null): string {
  return String(Number(code));
}
