// Test support for the DolphinScheduler store: instances seeded as a 3.2 master writes them, reads of the
// rows and command rows the tests assert on, and masters registered with a 3.2 heartbeat.

import { insertDsInstances } from '../../lib/sim/ds-seed.ts';
import type { Database } from '../../lib/store/dolphinscheduler/database.ts';

export interface DsSeed {
  host: string | null;
  state?: number;
  /** Epoch ms (written as wall time in the clock's zone). */
  startTime: number;
  restartTime?: number;
  commandParam?: string | null;
  processDefinitionCode?: number;
  processDefinitionVersion?: number;
  executorId?: number;
  priority?: number | null;
  testFlag?: number | null;
}

/** Inserts the instances as a DolphinScheduler 3.2 master writes them (lib/sim/ds-seed.ts); returns their ids, in order. */
export function seedDsInstances(db: Database, timeZone: string, seeds: readonly DsSeed[]): Promise<number[]> {
  return insertDsInstances(
    db,
    timeZone,
    seeds.map((s) => ({
      host: s.host,
      state: s.state ?? 1,
      startTime: s.startTime,
      commandParam:
        s.commandParam === undefined ? '{"StartParams":"{\\"day\\":\\"2024-01-01\\"}"}' : s.commandParam,
      processDefinitionCode: s.processDefinitionCode ?? 9_876_543_210,
      processDefinitionVersion: s.processDefinitionVersion ?? 3,
      executorId: s.executorId ?? 7,
      priority: s.priority === undefined ? 2 : s.priority,
      ...(s.restartTime === undefined ? {} : { restartTime: s.restartTime }),
      ...(s.testFlag === undefined ? {} : { testFlag: s.testFlag }),
    })),
  );
}

/** Finished instances of other hosts, in bulk (the table DolphinScheduler keeps around the live ones). */
export async function seedFinished(
  db: Database,
  timeZone: string,
  count: number,
  startTime: number,
): Promise<void> {
  const seeds: DsSeed[] = Array.from({ length: count }, (_, i) => ({
    host: `172.16.${i % 200}.${(i % 7) + 1}:5678`,
    state: [7, 6, 5, 3][i % 4],
    startTime,
  }));
  await seedDsInstances(db, timeZone, seeds);
}

export type Row = Record<string, unknown>;

export async function instanceRows(db: Database, ids: readonly number[]): Promise<Map<number, Row>> {
  const marks = ids.map((_, i) => (db.dialect === 'postgresql' ? `$${i + 1}` : '?')).join(', ');
  const rows = await db.query<Row>(
    `SELECT * FROM t_ds_process_instance WHERE id IN (${marks}) ORDER BY id`,
    ids,
  );
  return new Map(rows.map((r) => [Number(r.id), r]));
}

/** Every command row of these instances, by instance id. */
export async function commandRowsOf(db: Database, ids: readonly number[]): Promise<Map<number, Row[]>> {
  const found = new Map<number, Row[]>();
  for (let offset = 0; offset < ids.length; offset += 1_000) {
    const chunk = ids.slice(offset, offset + 1_000);
    const marks = chunk.map((_, i) => (db.dialect === 'postgresql' ? `$${i + 1}` : '?')).join(', ');
    const rows = await db.query<Row>(
      `SELECT * FROM t_ds_command WHERE process_instance_id IN (${marks}) ORDER BY id`,
      chunk,
    );
    for (const row of rows) {
      const id = Number(row.process_instance_id);
      found.set(id, [...(found.get(id) ?? []), row]);
    }
  }
  return found;
}
