// Test support for the DolphinScheduler store: instances seeded as a 3.2 master writes them, reads of the
// rows and command rows the tests assert on, and masters registered with a 3.2 heartbeat.

import type { Database } from '../../lib/store/dolphinscheduler/database.ts';
import { WallClock } from '../../lib/store/dolphinscheduler/wall-time.ts';

export interface DsSeed {
  host: string | null;
  state?: number;
  /** Epoch ms (written as wall time in the clock's zone). */
  startTime: number | null;
  restartTime?: number;
  commandParam?: string | null;
  processDefinitionCode?: number;
  processDefinitionVersion?: number;
  executorId?: number;
  priority?: number | null;
  testFlag?: number | null;
}

const columns = [
  'name',
  'process_definition_code',
  'process_definition_version',
  'project_code',
  'state',
  'state_history',
  'recovery',
  'start_time',
  'run_times',
  'host',
  'command_type',
  'command_param',
  'task_depend_type',
  'max_try_times',
  'failure_strategy',
  'warning_type',
  'command_start_time',
  'global_params',
  'flag',
  'is_sub_process',
  'executor_id',
  'executor_name',
  'history_cmd',
  'process_instance_priority',
  'worker_group',
  'environment_code',
  'timeout',
  'tenant_code',
  'var_pool',
  'dry_run',
  'next_process_instance_id',
  'restart_time',
  'test_flag',
] as const;

/** Inserts the instances as a DolphinScheduler 3.2 master writes them; returns their ids, in order. */
export async function seedDsInstances(
  db: Database,
  timeZone: string,
  seeds: readonly DsSeed[],
): Promise<number[]> {
  const clock = new WallClock(timeZone);
  const precision = db.dialect === 'mysql' ? 's' : 'ms';
  const at = (t: number | null | undefined) =>
    t === null || t === undefined ? null : clock.format(t, precision);
  const ids: number[] = [];
  for (let offset = 0; offset < seeds.length; offset += 500) {
    const chunk = seeds.slice(offset, offset + 500);
    const params: unknown[] = [];
    const rows = chunk.map((s, i) => {
      const values = [
        `workflow-${offset + i}`,
        s.processDefinitionCode ?? 9_876_543_210,
        s.processDefinitionVersion ?? 3,
        1_234_567,
        s.state ?? 1,
        '[]',
        0,
        at(s.startTime),
        1,
        s.host,
        0,
        s.commandParam === undefined ? '{"StartParams":"{\\"day\\":\\"2024-01-01\\"}"}' : s.commandParam,
        2,
        0,
        1,
        0,
        at(s.startTime),
        '[]',
        1,
        0,
        s.executorId ?? 7,
        'admin',
        'START_PROCESS',
        s.priority === undefined ? 2 : s.priority,
        'default',
        -1,
        0,
        'default',
        '[]',
        0,
        0,
        at(s.restartTime),
        s.testFlag === undefined ? 0 : s.testFlag,
      ];
      const marks = values.map((v) => {
        params.push(v);
        return db.dialect === 'postgresql' ? `$${params.length}` : '?';
      });
      return `(${marks.join(', ')})`;
    });
    const insert = `INSERT INTO t_ds_process_instance (${columns.join(', ')}) VALUES ${rows.join(', ')}`;
    if (db.dialect === 'postgresql') {
      const out = await db.query<{ id: number }>(`${insert} RETURNING id`, params);
      ids.push(...out.map((r) => Number(r.id)));
    } else {
      await db.transaction(async (tx) => {
        await tx.query(insert, params);
        const [first] = await tx.query<{ id: number | string }>('SELECT LAST_INSERT_ID() AS id');
        for (let i = 0; i < chunk.length; i += 1) ids.push(Number(first?.id) + i);
      });
    }
  }
  return ids;
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
