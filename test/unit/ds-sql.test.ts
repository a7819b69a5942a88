// The DolphinScheduler store's statements, checked as text in both dialects: placeholders bound in the
// right order, the write condition of DESIGN D1/D2 (exact host, executing state, F3 bound), host only ever
// set to the string 'NULL', one PostgreSQL statement per batch, bounded primary-key pages (D7), and no
// column DolphinScheduler's tables do not have (shared/dolphinscheduler.md section 2).
import { describe, expect, it } from 'vitest';
import type { Dialect } from '../../lib/store/dolphinscheduler/database.ts';
import {
  commandedInstancesSql,
  commandInstanceIdsSql,
  executingHostsSql,
  type FailoverTarget,
  hostInstancesSql,
  insertCommandsSql,
  instancesByIdSql,
  type LockedInstanceRow,
  lockUnownedSql,
  markUnownedSql,
  maxInstanceIdSql,
  mysqlInsertCommandsSql,
  mysqlInsertedCommandsSql,
  mysqlLockSql,
  mysqlReleaseSql,
  pgFailoverSql,
  type Statement,
  schedulesSql,
  unownedCandidatesSql,
} from '../../lib/store/dolphinscheduler/sql.ts';

// shared/dolphinscheduler.md section 2, 3.1/3.2 names.
const processInstanceColumns = new Set(
  `id name process_definition_code process_definition_version project_code state state_history recovery
   start_time end_time run_times host command_type command_param task_depend_type max_try_times
   failure_strategy warning_type warning_group_id schedule_time command_start_time global_params
   process_instance_json flag update_time is_sub_process executor_id executor_name history_cmd
   dependence_schedule_times process_instance_priority worker_group environment_code timeout tenant_code
   var_pool dry_run next_process_instance_id restart_time test_flag`.split(/\s+/),
);
const commandColumns = new Set(
  `id command_type process_definition_code command_param task_depend_type failure_strategy warning_type
   warning_group_id schedule_time start_time executor_id update_time process_instance_priority worker_group
   tenant_code environment_code dry_run process_instance_id process_definition_version test_flag`.split(
    /\s+/,
  ),
);
const scheduleColumns = new Set(['id', 'process_definition_code', 'timezone_id']);
const dsTables = new Set(['t_ds_process_instance', 't_ds_command', 't_ds_schedules']);
/** Names the statements define themselves: CTEs and their columns, table aliases, output aliases. */
const ownNames = new Set(['target', 'changed', 'i', 's', 't', 'c', 'cmd', 'n', 'max_id']);
const sqlWords = new Set(
  `select from where and or in is null not order by limit as with update set insert into values returning
   for max unnest int text timestamp coalesce last_insert_id count group exists distinct`.split(/\s+/),
);
const dsColumns = new Set([...processInstanceColumns, ...commandColumns, ...scheduleColumns]);

const host = '10.0.0.1:5678';
const bound = '2024-03-10 12:00:00.000';
const now = '2024-03-10 12:05:00.000';
const targets: FailoverTarget[] = [
  { id: 11, commandParam: '{"ProcessInstanceId":11}' },
  { id: 12, commandParam: '{"StartParams":"a=\'1\'","ProcessInstanceId":12}' },
];
const lockedRows: Array<LockedInstanceRow & { commandParam: string }> = [
  {
    id: 11,
    process_definition_code: '9007199254740993',
    process_definition_version: 3,
    executor_id: 1,
    process_instance_priority: null,
    test_flag: 0,
    commandParam: '{"ProcessInstanceId":11}',
  },
  {
    id: 12,
    process_definition_code: '42',
    process_definition_version: 1,
    executor_id: 2,
    process_instance_priority: 0,
    test_flag: null,
    commandParam: '{"ProcessInstanceId":12}',
  },
];

/** Every statement the store can run, with its dialect. */
function allStatements(): Array<[string, Dialect, Statement]> {
  return [
    ['maxInstanceIdSql (postgresql)', 'postgresql', maxInstanceIdSql()],
    ['maxInstanceIdSql (mysql)', 'mysql', maxInstanceIdSql()],
    ['hostInstancesSql (postgresql)', 'postgresql', hostInstancesSql('postgresql', host, page, 500)],
    ['hostInstancesSql (mysql)', 'mysql', hostInstancesSql('mysql', host, page, 500)],
    ['instancesByIdSql (postgresql)', 'postgresql', instancesByIdSql('postgresql', [11, 12, 13])],
    ['instancesByIdSql (mysql)', 'mysql', instancesByIdSql('mysql', [11, 12, 13])],
    ['pgFailoverSql', 'postgresql', pgFailoverSql(targets, host, bound, now)],
    ['mysqlLockSql', 'mysql', mysqlLockSql([11, 12], host, bound)],
    ['mysqlReleaseSql', 'mysql', mysqlReleaseSql([11, 12], host, bound)],
    ['mysqlInsertCommandsSql', 'mysql', mysqlInsertCommandsSql(lockedRows, now)],
    ['mysqlInsertedCommandsSql', 'mysql', mysqlInsertedCommandsSql([11, 12])],
    ['insertCommandsSql (postgresql)', 'postgresql', insertCommandsSql('postgresql', lockedRows, now)],
    ['executingHostsSql', 'postgresql', executingHostsSql()],
    ['unownedCandidatesSql', 'postgresql', unownedCandidatesSql()],
    ['commandInstanceIdsSql', 'postgresql', commandInstanceIdsSql()],
    ['lockUnownedSql (postgresql)', 'postgresql', lockUnownedSql('postgresql', [11, 12])],
    ['lockUnownedSql (mysql)', 'mysql', lockUnownedSql('mysql', [11, 12])],
    ['commandedInstancesSql (postgresql)', 'postgresql', commandedInstancesSql('postgresql', [11, 12])],
    ['commandedInstancesSql (mysql)', 'mysql', commandedInstancesSql('mysql', [11, 12])],
    ['markUnownedSql (postgresql)', 'postgresql', markUnownedSql('postgresql', [11, 12])],
    ['markUnownedSql (mysql)', 'mysql', markUnownedSql('mysql', [11, 12])],
    ['schedulesSql (postgresql)', 'postgresql', schedulesSql('postgresql', [42, 43])],
    ['schedulesSql (mysql)', 'mysql', schedulesSql('mysql', [42, 43])],
  ];
}
const page = { afterId: 100, toId: 50_100 };

/** The statement's text with string literals blanked (so quotes, '?' or '$1' inside them never count). */
function withoutLiterals(sql: string): string {
  return sql.replace(/'(?:[^']|'')*'/g, "''");
}

function literal(value: unknown): string {
  if (value === null) return 'NULL';
  if (Array.isArray(value)) return `ARRAY[${value.map(literal).join(', ')}]`;
  if (typeof value === 'number') return String(value);
  return `'${String(value).replace(/'/g, "''")}'`;
}

/** The statement with each placeholder replaced by its parameter as a literal, blanks collapsed. */
function inline(statement: Statement, dialect: Dialect): string {
  let next = 0;
  const text =
    dialect === 'postgresql'
      ? statement.sql.replace(/\$(\d+)/g, (_, n: string) => literal(statement.params[Number(n) - 1]))
      : statement.sql.replace(/\?/g, () => literal(statement.params[next++]));
  return text.replace(/\s+/g, ' ').trim();
}

/** Splits on commas outside parentheses. */
function splitTopLevel(list: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of list) {
    if (ch === '(') depth += 1;
    if (ch === ')') depth -= 1;
    if (ch === ',' && depth === 0) {
      parts.push(current.trim());
      current = '';
    } else current += ch;
  }
  parts.push(current.trim());
  return parts;
}

/** Words of the statement that are neither SQL, nor its own names, nor DolphinScheduler's tables and columns. */
function unknownIdentifiers(st: Statement): string[] {
  const sql = withoutLiterals(st.sql).replace(/\$\d+/g, ' ');
  const words = [...sql.matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)].map((m) => m[0]);
  return words.filter(
    (w) => !sqlWords.has(w.toLowerCase()) && !ownNames.has(w) && !dsTables.has(w) && !dsColumns.has(w),
  );
}

describe('placeholders', () => {
  it.each(allStatements())(
    '%s uses its dialect and exactly as many as it has params',
    (_name, dialect, st) => {
      // Arrange
      const sql = withoutLiterals(st.sql);

      // Act
      const numbered = [...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1]));
      const questionMarks = (sql.match(/\?/g) ?? []).length;

      // Assert
      if (dialect === 'postgresql') {
        expect(questionMarks).toBe(0);
        expect([...new Set(numbered)].sort((a, b) => a - b)).toEqual(
          Array.from({ length: st.params.length }, (_, i) => i + 1),
        );
      } else {
        expect(numbered).toEqual([]);
        expect(questionMarks).toBe(st.params.length);
      }
    },
  );

  it('numbers PostgreSQL placeholders from 1 for an id list', () => {
    const st = instancesByIdSql('postgresql', [5, 6, 7]);

    expect(st.sql).toContain('i.id IN ($1, $2, $3)');
    expect(st.params).toEqual([5, 6, 7]);
  });
});

describe('identifiers', () => {
  it.each(allStatements())('%s names only tables and columns DolphinScheduler has', (_name, _dialect, st) => {
    const unknown = unknownIdentifiers(st);

    expect(unknown).toEqual([]);
  });

  it('the allowlist catches a dev (3.3) name or an added column', () => {
    const st = {
      sql: "SELECT i.workflow_instance_id FROM t_ds_workflow_instance i WHERE i.failover_fence = 'x'",
      params: [],
    };

    expect(unknownIdentifiers(st)).toEqual([
      'workflow_instance_id',
      't_ds_workflow_instance',
      'failover_fence',
    ]);
  });

  it.each(allStatements())('%s qualifies columns with the right table', (_name, _dialect, st) => {
    const sql = withoutLiterals(st.sql);
    const columnsOf: Record<string, Set<string>> = {
      i: processInstanceColumns,
      s: scheduleColumns,
      t: new Set(['id', 'command_param']),
      c: new Set([...processInstanceColumns, 'command_param']),
    };

    const wrong = [...sql.matchAll(/\b([a-z])\.([a-z_]+)\b/g)]
      .filter(([, alias, column]) => !columnsOf[alias as string]?.has(column as string))
      .map((m) => m[0]);

    expect(wrong).toEqual([]);
  });

  it('inserts commands with exactly the columns DolphinScheduler 3.2 sets, in both dialects', () => {
    const expected = [
      'command_type',
      'process_definition_code',
      'process_definition_version',
      'process_instance_id',
      'command_param',
      'executor_id',
      'process_instance_priority',
      'test_flag',
      'task_depend_type',
      'failure_strategy',
      'start_time',
      'update_time',
    ];

    const lists = [pgFailoverSql(targets, host, bound, now), mysqlInsertCommandsSql(lockedRows, now)].map(
      (st) => splitTopLevel(/INSERT INTO t_ds_command \(([^)]*)\)/.exec(st.sql)?.[1] ?? ''),
    );

    expect(lists).toEqual([expected, expected]);
    for (const column of expected) expect(commandColumns.has(column)).toBe(true);
  });
});

describe('the write condition (DESIGN D1/D2, F3)', () => {
  const condition = (h: string, b: string, alias: string) =>
    `${alias}host = ${h} AND ${alias}state IN (0, 1, 12, 2, 4) AND ${alias}start_time < ${b} ` +
    `AND (${alias}restart_time IS NULL OR ${alias}restart_time < ${b})`;

  it('PostgreSQL: the update matches the exact host, the executing states and the F3 bound', () => {
    const st = pgFailoverSql(targets, host, bound, now);

    const text = inline(st, 'postgresql');

    expect(text).toContain(
      `WHERE i.id = t.id AND ${condition(`'${host}'`, `'${bound}'::timestamp`, 'i.')} RETURNING`,
    );
  });

  it('MySQL: the locking read matches the exact host, the executing states and the F3 bound', () => {
    const st = mysqlLockSql([11, 12], host, bound);

    const text = inline(st, 'mysql');

    expect(text).toContain(`WHERE i.id IN (11, 12) AND ${condition(`'${host}'`, `'${bound}'`, 'i.')}`);
    expect(text).toMatch(/FOR UPDATE$/);
  });

  it('MySQL: the release changes only the locked ids, and only while they still match (the full condition again)', () => {
    const st = mysqlReleaseSql([11, 12], host, bound);

    const text = inline(st, 'mysql');

    expect(text).toBe(
      `UPDATE t_ds_process_instance SET host = 'NULL', update_time = update_time WHERE id IN (11, 12) AND ${condition(`'${host}'`, `'${bound}'`, '')}`,
    );
  });

  it('compares hosts by equality, never by pattern or substring', () => {
    const writes = [
      pgFailoverSql(targets, host, bound, now),
      mysqlLockSql([11], host, bound),
      mysqlReleaseSql([11], host, bound),
      hostInstancesSql('postgresql', host, page, 10),
      hostInstancesSql('mysql', host, page, 10),
    ];

    const hostTests = writes.flatMap((st) => [...st.sql.matchAll(/\bhost\b[^,\n]*/gi)].map((m) => m[0]));

    expect(hostTests.length).toBeGreaterThanOrEqual(5);
    for (const st of writes) {
      expect(st.sql).not.toMatch(/\bLIKE\b|position\s*\(|strpos|instr\s*\(|locate\s*\(|substr/i);
    }
  });

  it('binds the host as given (a host that is a prefix of another is not widened)', () => {
    const st = mysqlLockSql([1], '10.0.0.1:56', bound);

    expect(inline(st, 'mysql')).toContain("i.host = '10.0.0.1:56' AND");
    expect(st.params).toContain('10.0.0.1:56');
  });

  it("states come from the 3.1/3.2 'need failover' list and nothing else", () => {
    const inClauses = allStatements().flatMap(([, , st]) =>
      [...st.sql.matchAll(/state IN \(([^)]*)\)/g)].map((m) => m[1]),
    );

    // Both page reads, the PostgreSQL update, the MySQL locking read and release, and the sweep's reads
    // (executing hosts, unowned instances, the repair's locking reads in both dialects).
    expect(inClauses).toHaveLength(9);
    expect(new Set(inClauses)).toEqual(new Set(['0, 1, 12, 2, 4']));
  });
});

describe("the sweep's reads (DESIGN D5)", () => {
  it('list unowned instances with two single-table scans: no subquery a planner could run per row', () => {
    // A NOT EXISTS over t_ds_command (no index on process_instance_id) under an OR was planned per row by
    // PostgreSQL with statistics older than a mass failover: minutes of CPU for 100,000 instances.
    for (const st of [unownedCandidatesSql(), commandInstanceIdsSql()]) {
      const tables = [...st.sql.matchAll(/\b(?:FROM|JOIN)\s+(t_ds_\w+)/gi)].map((m) => m[1]);

      expect(tables).toHaveLength(1);
      expect(st.sql).not.toMatch(/\(\s*SELECT|EXISTS|\bIN\s*\(\s*SELECT/i);
    }
    expect(inline(unownedCandidatesSql(), 'postgresql')).toBe(
      "SELECT i.id, i.host FROM t_ds_process_instance i WHERE i.state IN (0, 1, 12, 2, 4) AND (i.host IS NULL OR i.host = 'NULL') ORDER BY i.id",
    );
  });
});

describe('host is only ever set to the string NULL', () => {
  it.each(allStatements())('%s never writes SQL NULL or a parameter into host', (_name, _dialect, st) => {
    const sql = st.sql.replace(/\s+/g, ' ');

    const assignments = [...sql.matchAll(/\bSET (.*?)(?: FROM | WHERE |$)/g)].flatMap((m) =>
      splitTopLevel(m[1] as string),
    );
    const hostAssignments = assignments.filter((a) => /^host\s*=/.test(a));

    for (const a of hostAssignments) expect(a).toBe("host = 'NULL'");
    expect(sql).not.toMatch(/host\s*=\s*NULL\b/i);
    expect(sql).not.toMatch(/INSERT INTO t_ds_process_instance/i);
    expect(/INSERT INTO t_ds_command \(([^)]*)\)/.exec(sql)?.[1] ?? '').not.toMatch(/\bhost\b/);
  });

  it('both dialects release the row by setting host, and nothing else is assigned', () => {
    const pg = pgFailoverSql(targets, host, bound, now).sql.replace(/\s+/g, ' ');
    const my = mysqlReleaseSql([11], host, bound).sql.replace(/\s+/g, ' ');

    expect(pg).toContain("UPDATE t_ds_process_instance AS i SET host = 'NULL' FROM target AS t");
    expect(my).toContain("SET host = 'NULL', update_time = update_time WHERE");
  });

  it('MySQL release keeps update_time (ON UPDATE CURRENT_TIMESTAMP would stamp it otherwise)', () => {
    const st = mysqlReleaseSql([11, 12], host, bound);

    expect(st.sql).toMatch(/SET host = 'NULL', update_time = update_time\s/);
  });
});

describe('PostgreSQL failover is one statement', () => {
  const st = pgFailoverSql(targets, host, bound, now);
  const sql = st.sql.replace(/\s+/g, ' ').trim();

  it('is a single INSERT with data-modifying CTEs (no second statement)', () => {
    expect(withoutLiterals(sql)).not.toContain(';');
    expect(sql).toMatch(/^WITH target AS \(/);
    expect(sql.match(/\bINSERT INTO\b/g)).toHaveLength(1);
    expect(sql.match(/\bUPDATE\b/g)).toHaveLength(1);
    expect(sql).toMatch(/\) INSERT INTO t_ds_command \(/);
    expect(sql).toMatch(/RETURNING id, process_instance_id$/);
  });

  it('passes the batch as two arrays of equal length, in target order', () => {
    expect(st.params).toEqual([
      [11, 12],
      ['{"ProcessInstanceId":11}', '{"StartParams":"a=\'1\'","ProcessInstanceId":12}'],
      host,
      bound,
      now,
    ]);
    expect(sql).toContain('unnest($1::int[], $2::text[]) AS t(id, command_param)');
  });

  it('inserts from the changed rows only', () => {
    const insert = sql.slice(sql.indexOf('INSERT INTO'));

    const sources = [...insert.matchAll(/\b(?:FROM|JOIN)\s+(\w+)/g)].map((m) => m[1]);

    expect(sources).toEqual(['changed']);
    expect(insert).not.toMatch(/\btarget\b|\bt_ds_process_instance\b|\bt\./);
    expect(sql).toMatch(/changed AS \( UPDATE t_ds_process_instance AS i .* RETURNING i\.id,/);
  });

  it('builds each command from its changed row: the values DolphinScheduler writes', () => {
    const insert = sql.slice(sql.indexOf('INSERT INTO'));
    const columns = splitTopLevel(/INSERT INTO t_ds_command \(([^)]*)\)/.exec(insert)?.[1] ?? '');
    const values = splitTopLevel(/ SELECT (.*?) FROM changed/.exec(insert)?.[1] ?? '');

    const row = Object.fromEntries(columns.map((c, i) => [c, values[i]]));

    expect(values).toHaveLength(columns.length);
    expect(row).toEqual({
      command_type: '2',
      process_definition_code: 'c.process_definition_code',
      process_definition_version: 'c.process_definition_version',
      process_instance_id: 'c.id',
      command_param: 'c.command_param',
      executor_id: 'c.executor_id',
      process_instance_priority: 'COALESCE(c.process_instance_priority, 2)',
      test_flag: 'c.test_flag',
      task_depend_type: '2',
      failure_strategy: '1',
      start_time: '$5::timestamp',
      update_time: '$5::timestamp',
    });
  });
});

describe('MySQL command insert', () => {
  it('binds one row of values per locked instance, in column order', () => {
    const st = mysqlInsertCommandsSql(lockedRows, now);
    const columns = splitTopLevel(/INSERT INTO t_ds_command \(([^)]*)\)/.exec(st.sql)?.[1] ?? '');

    const tuples = [...inline(st, 'mysql').matchAll(/\((2, [^)]*)\)/g)].map((m) =>
      Object.fromEntries(splitTopLevel(m[1] as string).map((v, i) => [columns[i], v])),
    );

    expect(tuples).toEqual([
      {
        command_type: '2',
        process_definition_code: "'9007199254740993'",
        process_definition_version: '3',
        process_instance_id: '11',
        command_param: `'{"ProcessInstanceId":11}'`,
        executor_id: '1',
        process_instance_priority: '2',
        test_flag: '0',
        task_depend_type: '2',
        failure_strategy: '1',
        start_time: `'${now}'`,
        update_time: `'${now}'`,
      },
      {
        command_type: '2',
        process_definition_code: "'42'",
        process_definition_version: '1',
        process_instance_id: '12',
        command_param: `'{"ProcessInstanceId":12}'`,
        executor_id: '2',
        process_instance_priority: '0',
        test_flag: 'NULL',
        task_depend_type: '2',
        failure_strategy: '1',
        start_time: `'${now}'`,
        update_time: `'${now}'`,
      },
    ]);
  });

  it('reads back the commands of this insert only: recovery commands of these instances from LAST_INSERT_ID()', () => {
    const st = mysqlInsertedCommandsSql([11, 12]);

    expect(inline(st, 'mysql')).toBe(
      'SELECT id, process_instance_id FROM t_ds_command WHERE id >= LAST_INSERT_ID() AND command_type = 2 ' +
        'AND process_instance_id IN (11, 12) ORDER BY id',
    );
  });
});

describe('reads (DESIGN D7: no index on host)', () => {
  it.each(['postgresql', 'mysql'] as const)(
    '%s: the page reads a bounded primary-key range in id order, with a LIMIT',
    (dialect) => {
      const st = hostInstancesSql(dialect, host, page, 500);

      const text = inline(st, dialect);

      expect(text).toContain(
        `WHERE i.id > 100 AND i.id <= 50100 AND i.host = '${host}' AND i.state IN (0, 1, 12, 2, 4)`,
      );
      expect(text).toMatch(/ ORDER BY i\.id LIMIT 500$/);
      expect(text).toContain('FROM t_ds_process_instance i WHERE');
    },
  );

  it.each(['postgresql', 'mysql'] as const)('%s: reads instances by id only', (dialect) => {
    const st = instancesByIdSql(dialect, [11, 12]);

    expect(inline(st, dialect)).toMatch(/FROM t_ds_process_instance i WHERE i\.id IN \(11, 12\)$/);
  });

  it.each(['postgresql', 'mysql'] as const)(
    "%s: reads the schedules of a page's workflows in one statement, oldest first (the first one counts)",
    (dialect) => {
      const st = schedulesSql(dialect, [9876543210, 42]);

      expect(inline(st, dialect)).toBe(
        'SELECT s.process_definition_code, s.timezone_id FROM t_ds_schedules s ' +
          'WHERE s.process_definition_code IN (9876543210, 42) ORDER BY s.id',
      );
    },
  );

  it('never looks up a schedule per instance (t_ds_schedules has no index on the definition code)', () => {
    for (const st of [hostInstancesSql('postgresql', host, page, 1), instancesByIdSql('mysql', [1])]) {
      expect(st.sql).not.toContain('t_ds_schedules');
    }
  });

  it('reads the highest instance id from the primary key', () => {
    expect(maxInstanceIdSql()).toEqual({
      sql: 'SELECT max(id) AS max_id FROM t_ds_process_instance',
      params: [],
    });
  });
});
