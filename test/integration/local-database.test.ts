// The local PostgreSQL and MariaDB servers and the project's DDL of DolphinScheduler's tables, against
// the real servers: loopback only, the tables with DolphinScheduler 3.2's defaults and indexes, clean stop.
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyDolphinSchedulerSchema,
  assertDolphinSchedulerTables,
  type Dialect,
  dialectOfUrl,
  dolphinSchedulerTables,
  type LocalDatabase,
  MissingDolphinSchedulerTablesError,
  startLocalDatabase,
  UnsupportedDatabaseUrlError,
} from '../../lib/local/database.ts';

type Row = Record<string, unknown>;

/** One query on a fresh connection; `?` placeholders are rewritten to `$n` for PostgreSQL. */
async function query(url: string, sql: string, params: unknown[] = []): Promise<Row[]> {
  if (dialectOfUrl(url) === 'postgresql') {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      let n = 0;
      return (
        await client.query(
          sql.replace(/\?/g, () => `$${++n}`),
          params,
        )
      ).rows;
    } finally {
      await client.end();
    }
  }
  const connection = await mysql.createConnection({ uri: url });
  try {
    const [rows] = await connection.query(sql, params);
    return Array.isArray(rows) ? (rows as Row[]) : [];
  } finally {
    await connection.end();
  }
}

/** `ip:port` of every TCP socket the process listens on (from /proc; the servers run as other users: needs root). */
function listeningAddresses(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const found: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/net/${table}`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const [local, state, inode] = [f[1], f[3], f[9]];
      if (!local || state !== '0A' || !inode || !inodes.has(inode)) continue;
      const [hex = '', port = ''] = local.split(':');
      const address =
        table === 'tcp'
          ? (hex.match(/../g) ?? [])
              .reverse()
              .map((b) => Number.parseInt(b, 16))
              .join('.')
          : `[v6 ${hex}]`;
      found.push(`${address}:${Number.parseInt(port, 16)}`);
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('dialectOfUrl', () => {
  it('maps the schemes to the two dialects and refuses anything else, without echoing the password', () => {
    expect(dialectOfUrl('postgres://u:p@127.0.0.1:5432/ds')).toBe('postgresql');
    expect(dialectOfUrl('postgresql://u:p@127.0.0.1/ds')).toBe('postgresql');
    expect(dialectOfUrl('mysql://u:p@127.0.0.1:3306/ds')).toBe('mysql');
    expect(dialectOfUrl('mariadb://u:p@127.0.0.1/ds')).toBe('mysql');
    expect(() => dialectOfUrl('oracle://u:hunter2@h/ds')).toThrow(UnsupportedDatabaseUrlError);
    expect(() => dialectOfUrl('oracle://u:hunter2@h/ds')).toThrow(/unsupported scheme "oracle:"/);
    expect(() => dialectOfUrl('oracle://u:hunter2@h/ds')).not.toThrow(/hunter2/);
    expect(() => dialectOfUrl('not a url')).toThrow(/not a URL/);
  });
});

describe.each(['postgresql', 'mysql'] as const)(
  'local %s with the DolphinScheduler schema',
  (dialect: Dialect) => {
    let db: LocalDatabase;
    let missingBefore: unknown;

    beforeAll(async () => {
      db = await startLocalDatabase(dialect);
      missingBefore = await assertDolphinSchedulerTables(db.url).catch((error: unknown) => error);
      await applyDolphinSchedulerSchema(db.url);
    });

    afterAll(async () => {
      await db?.stop();
    });

    it('listens on 127.0.0.1 only, on the port of its URL', () => {
      const url = new URL(db.url);
      expect(url.hostname).toBe('127.0.0.1');
      expect(url.pathname).toBe('/dolphinscheduler');
      expect(url.password).not.toBe('');
      expect(listeningAddresses(db.pid)).toEqual([`127.0.0.1:${url.port}`]);
    });

    it('named every missing table before the schema, and finds all five after it', async () => {
      expect(missingBefore).toBeInstanceOf(MissingDolphinSchedulerTablesError);
      expect((missingBefore as MissingDolphinSchedulerTablesError).missing).toEqual([
        ...dolphinSchedulerTables,
      ]);
      for (const table of dolphinSchedulerTables) expect(String(missingBefore)).toContain(table);
      expect(String(missingBefore)).not.toContain(new URL(db.url).password);
      await expect(assertDolphinSchedulerTables(db.url)).resolves.toBeUndefined();
    });

    it('gives a command with only its NOT NULL column DolphinScheduler 3.2 defaults', async () => {
      await query(
        db.url,
        'INSERT INTO t_ds_command (process_definition_code) VALUES (?)',
        [9_000_000_000_001],
      );
      const [row] = await query(
        db.url,
        'SELECT * FROM t_ds_command WHERE process_definition_code = ?',
        [9_000_000_000_001],
      );
      expect(row).toBeDefined();
      const r = row as Row;
      expect(Number(r.id)).toBeGreaterThan(0);
      expect({
        process_instance_priority: Number(r.process_instance_priority),
        tenant_code: r.tenant_code,
        environment_code: Number(r.environment_code),
        dry_run: Number(r.dry_run),
        failure_strategy: Number(r.failure_strategy),
        warning_type: Number(r.warning_type),
        process_instance_id: Number(r.process_instance_id),
        process_definition_version: Number(r.process_definition_version),
      }).toEqual({
        process_instance_priority: 2,
        tenant_code: 'default',
        environment_code: -1,
        dry_run: 0,
        failure_strategy: 0,
        warning_type: 0,
        process_instance_id: 0,
        process_definition_version: 0,
      });
      for (const column of ['command_type', 'task_depend_type', 'executor_id', 'test_flag', 'worker_group']) {
        expect(r[column], column).toBeNull();
      }
      await expect(query(db.url, 'INSERT INTO t_ds_command (command_type) VALUES (2)')).rejects.toThrow(
        /process_definition_code/,
      );
    });

    it('gives process and task instances their defaults, host a plain nullable varchar(135)', async () => {
      await query(
        db.url,
        'INSERT INTO t_ds_process_instance (process_definition_code, executor_id) VALUES (?, ?)',
        [7, 1],
      );
      const [instance] = await query(
        db.url,
        'SELECT * FROM t_ds_process_instance WHERE process_definition_code = 7',
      );
      const p = instance as Row;
      expect(Number(p.id)).toBeGreaterThan(0);
      expect(
        Object.fromEntries(
          [
            'process_definition_version',
            'flag',
            'is_sub_process',
            'process_instance_priority',
            'environment_code',
            'timeout',
            'dry_run',
            'next_process_instance_id',
            'max_try_times',
            'failure_strategy',
            'warning_type',
          ].map((c) => [c, Number(p[c])]),
        ),
      ).toEqual({
        process_definition_version: 1,
        flag: 1,
        is_sub_process: 0,
        process_instance_priority: 2,
        environment_code: -1,
        timeout: 0,
        dry_run: 0,
        next_process_instance_id: 0,
        max_try_times: 0,
        failure_strategy: 0,
        warning_type: 0,
      });
      expect(p.tenant_code).toBe('default');
      expect(p.host).toBeNull();
      expect(p.state).toBeNull();
      await expect(
        query(db.url, 'INSERT INTO t_ds_process_instance (process_definition_code) VALUES (8)'),
      ).rejects.toThrow(/executor_id/);

      const taskColumns =
        dialect === 'mysql' ? '(task_code, task_type) VALUES (11, ?)' : '(task_code) VALUES (11)';
      await query(
        db.url,
        `INSERT INTO t_ds_task_instance ${taskColumns}`,
        dialect === 'mysql' ? ['SHELL'] : [],
      );
      const [task] = await query(db.url, 'SELECT * FROM t_ds_task_instance WHERE task_code = 11');
      const t = task as Row;
      expect(
        Object.fromEntries(
          [
            'task_definition_version',
            'task_execute_type',
            'retry_times',
            'flag',
            'is_cache',
            'environment_code',
            'delay_time',
            'dry_run',
            'cpu_quota',
            'memory_max',
          ].map((c) => [c, Number(t[c])]),
        ),
      ).toEqual({
        task_definition_version: 1,
        task_execute_type: 0,
        retry_times: 0,
        flag: 1,
        is_cache: 0,
        environment_code: -1,
        delay_time: 0,
        dry_run: 0,
        cpu_quota: -1,
        memory_max: -1,
      });

      const columns = await query(
        db.url,
        `SELECT table_name AS t, column_name AS c, data_type AS type, character_maximum_length AS len,
              is_nullable AS nullable
         FROM information_schema.columns
        WHERE table_name IN ('t_ds_process_instance', 't_ds_task_instance', 't_ds_schedules')
          AND column_name IN ('host', 'timezone_id', 'state', 'start_time')
          AND table_schema = ${dialect === 'postgresql' ? 'current_schema()' : 'DATABASE()'}`,
      );
      const shape = Object.fromEntries(
        columns.map((c) => [`${c.t}.${c.c}`, `${c.type}${c.len === null ? '' : `(${c.len})`} ${c.nullable}`]),
      );
      const time = dialect === 'postgresql' ? 'timestamp without time zone' : 'datetime';
      const small = dialect === 'postgresql' ? 'integer' : 'tinyint';
      const varchar = dialect === 'postgresql' ? 'character varying' : 'varchar';
      expect(shape).toEqual({
        't_ds_process_instance.host': `${varchar}(135) YES`,
        't_ds_process_instance.state': `${small} YES`,
        't_ds_process_instance.start_time': `${time} YES`,
        't_ds_task_instance.host': `${varchar}(135) YES`,
        't_ds_task_instance.state': `${small} YES`,
        't_ds_task_instance.start_time': `${time} YES`,
        't_ds_schedules.timezone_id': `${varchar}(40) YES`,
        't_ds_schedules.start_time': `${time} NO`,
      });
    });

    it("has DolphinScheduler's indexes and ids, and no index on host", async () => {
      const indexes =
        dialect === 'postgresql'
          ? await query(
              db.url,
              `SELECT tablename AS t, indexname AS i, indexdef AS def FROM pg_indexes
              WHERE schemaname = current_schema() AND indexname NOT LIKE '%_pkey'`,
            )
          : await query(
              db.url,
              `SELECT table_name AS t, index_name AS i,
                    GROUP_CONCAT(column_name ORDER BY seq_in_index SEPARATOR ', ') AS def
               FROM information_schema.statistics
              WHERE table_schema = DATABASE() AND index_name <> 'PRIMARY'
              GROUP BY table_name, index_name`,
            );
      const byName = Object.fromEntries(indexes.map((x) => [`${x.t}.${x.i}`, String(x.def)]));
      expect(byName['t_ds_command.priority_id_index']).toMatch(/process_instance_priority, id\)?$/);
      expect(byName['t_ds_process_instance.process_instance_index']).toMatch(
        /process_definition_code, id\)?$/,
      );
      expect(byName['t_ds_process_instance.start_time_index']).toMatch(/start_time, end_time\)?$/);
      expect(
        Object.keys(byName).some(
          (k) =>
            k.startsWith('t_ds_task_instance.') && /task_code, task_definition_version/.test(byName[k] ?? ''),
        ),
      ).toBe(true);
      for (const [name, def] of Object.entries(byName)) expect(def, name).not.toMatch(/\bhost\b/);

      const ids = await query(
        db.url,
        `SELECT table_name AS t, ${dialect === 'postgresql' ? 'column_default' : 'extra'} AS d
         FROM information_schema.columns
        WHERE column_name = 'id' AND table_name LIKE 't\\_ds\\_%'
          AND table_schema = ${dialect === 'postgresql' ? 'current_schema()' : 'DATABASE()'}`,
      );
      const idDefault = Object.fromEntries(ids.map((x) => [String(x.t), String(x.d ?? '')]));
      for (const table of ['t_ds_process_instance', 't_ds_task_instance', 't_ds_command', 't_ds_schedules']) {
        expect(idDefault[table], table).toMatch(
          dialect === 'postgresql' ? new RegExp(`nextval\\('${table}_id_sequence'`) : /auto_increment/,
        );
      }
      // A master moves a command to t_ds_error_command under the command's own id: no generator there.
      expect(idDefault.t_ds_error_command).not.toMatch(/nextval|auto_increment/);
    });

    it('applies the schema again without touching existing rows', async () => {
      const count = async () =>
        Number((await query(db.url, 'SELECT COUNT(*) AS n FROM t_ds_command'))[0]?.n ?? Number.NaN);
      const before = await count();
      expect(before).toBeGreaterThan(0);
      await applyDolphinSchedulerSchema(db.url);
      expect(await count()).toBe(before);
    });

    it('stops: the server process is gone and its directory removed', async () => {
      expect(existsSync(db.dir)).toBe(true);
      expect(alive(db.pid)).toBe(true);
      await db.stop();
      expect(alive(db.pid)).toBe(false);
      expect(existsSync(db.dir)).toBe(false);
      await expect(query(db.url, 'SELECT 1')).rejects.toThrow();
    });
  },
);
