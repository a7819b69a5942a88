// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the edits are source code text with template literals
// Mutation proof of the chaos suite: each mutation reverts one safety measure of the failover (DESIGN.md
// section 5) in a throw-away copy of the working tree, never in the tree itself, so no weakened code path can
// reach production or another engineer's test run. `bin/chaos.ts --mutant <name>` prepares the copy and runs
// the chaos suite in it; a violation means the suite "kills" the mutant.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Edit {
  readonly file: string;
  readonly find: string;
  readonly replace: string;
}

export interface Mutation {
  readonly name: string;
  /** The store whose safety measure it reverts (the suite to run it with: `--store`). */
  readonly store: 'dynamodb' | 'dolphinscheduler';
  readonly reverts: string;
  readonly edits: readonly Edit[];
}

const fenceClause =
  '(attribute_not_exists(#fence) OR attribute_not_exists(#fenceLock) OR #fenceLock <> :lock OR #fence <= :fence)';

/** A condition that always holds but still uses its placeholders (DynamoDB rejects unused ones). */
const always = (condition: string) => `(${condition} OR NOT ${condition})`;

export const mutations: readonly Mutation[] = [
  {
    name: 'fence-condition',
    store: 'dynamodb',
    reverts:
      'the fence condition: an item write no longer requires that no newer fence of the same lock wrote it',
    edits: [
      {
        file: 'lib/store/dynamodb/instances.ts',
        find: `'${fenceClause}',`,
        replace: `'${always(fenceClause)}',`,
      },
    ],
  },
  {
    name: 'instance-condition',
    store: 'dynamodb',
    reverts:
      'the instance condition: an item write no longer requires the item to still match what was read ' +
      '(host, state, failover count, start/restart/submit time); only the fence clause is left',
    edits: [
      {
        file: 'lib/store/dynamodb/instances.ts',
        find: "  return [\n    '#host = :host',\n    '#state = :state',",
        replace:
          "  return [\n    '(#host = :host OR NOT #host = :host)',\n    '(#state = :state OR NOT #state = :state)',",
      },
      {
        file: 'lib/store/dynamodb/instances.ts',
        find: "failoverCount === undefined ? 'attribute_not_exists(#failoverCount)' : '#failoverCount = :previousCount',",
        replace:
          "failoverCount === undefined ? '(attribute_not_exists(#failoverCount) OR attribute_exists(#failoverCount))' : '(#failoverCount = :previousCount OR NOT #failoverCount = :previousCount)',",
      },
      {
        file: 'lib/store/dynamodb/instances.ts',
        find: "ConditionExpression: [failoverCondition(item.failoverCount), ...times].join(' AND '),",
        replace:
          "ConditionExpression: [failoverCondition(item.failoverCount), ...times.map((t) => `(${t} OR NOT ${t})`)].join(' AND '),",
      },
      {
        file: 'lib/store/dynamodb/tasks.ts',
        find: 'ConditionExpression: `${failoverCondition(item.failoverCount)} AND #submitTime = :submitTime`,',
        replace:
          'ConditionExpression: `${failoverCondition(item.failoverCount)} AND (#submitTime = :submitTime OR NOT #submitTime = :submitTime)`,',
      },
    ],
  },
  {
    name: 'deterministic-id',
    store: 'dynamodb',
    reverts: 'the deterministic command id: each command gets a random id suffix (a retry writes a new id)',
    edits: [
      {
        file: 'lib/failover/rules.ts',
        find: 'return toFifoSafeId(`recover/${instanceId}/${generation}`);',
        replace:
          'return toFifoSafeId(`recover/${instanceId}/${generation}/${Math.random().toString(36).slice(2, 10)}`);',
      },
      {
        file: 'lib/failover/rules.ts',
        find: 'return toFifoSafeId(`task-failover/${taskId}/${generation}`);',
        replace:
          'return toFifoSafeId(`task-failover/${taskId}/${generation}/${Math.random().toString(36).slice(2, 10)}`);',
      },
    ],
  },
  {
    name: 'transaction',
    store: 'dynamodb',
    reverts:
      'the transaction: the item update and its command are written one after the other, not atomically',
    edits: [
      {
        file: 'lib/store/dynamodb/failover-writes.ts',
        find: "  TransactWriteItemsCommand,\n} from '@aws-sdk/client-dynamodb';",
        replace:
          "  TransactWriteItemsCommand,\n  UpdateItemCommand,\n  PutItemCommand,\n  ConditionalCheckFailedException,\n} from '@aws-sdk/client-dynamodb';",
      },
      {
        file: 'lib/store/dynamodb/failover-writes.ts',
        find:
          '      await this.dynamodb.send(\n' +
          '        new TransactWriteItemsCommand({ TransactItems: items, ClientRequestToken: randomUUID() }),\n' +
          '      );\n' +
          "      return { status: 'committed', outboxId };",
        replace: `      void TransactWriteItemsCommand;
      void randomUUID;
      for (const [index, item] of items.entries()) {
        try {
          if (item.Update) await this.dynamodb.send(new UpdateItemCommand(item.Update as never));
          else if (item.Put) await this.dynamodb.send(new PutItemCommand(item.Put as never));
        } catch (error: unknown) {
          if (!(error instanceof ConditionalCheckFailedException)) throw error;
          const failed = writes[Math.floor(index / 2)];
          return {
            status: 'cancelled',
            conditionFailed: failed ? [failed.item.id] : [],
            retryable: false,
            reasons: ['ConditionalCheckFailed'],
          };
        }
      }
      return { status: 'committed', outboxId };`,
      },
    ],
  },
  // --- the DolphinScheduler store (lib/store/dolphinscheduler, lib/registry/ds-failover-lock.ts) ----------
  {
    name: 'ds-host-condition',
    store: 'dolphinscheduler',
    reverts: "the host condition: a row is written whatever its host now is (the page read's, not the row's)",
    edits: [
      {
        file: 'lib/store/dolphinscheduler/sql.ts',
        find: 'return `${c}host = ${hostParam} AND ${c}state IN (${states})',
        replace: 'return `(${c}host = ${hostParam} OR TRUE) AND ${c}state IN (${states})',
      },
    ],
  },
  {
    name: 'ds-f3-bound',
    store: 'dolphinscheduler',
    reverts: 'the F3 bound: a row is written whatever its start_time and restart_time now are',
    edits: [
      {
        file: 'lib/store/dolphinscheduler/sql.ts',
        find: '    AND ${c}start_time < ${bound}\n    AND (${c}restart_time IS NULL OR ${c}restart_time < ${bound})`;',
        replace:
          '    AND (${c}start_time < ${bound} OR TRUE)\n    AND (${c}restart_time IS NULL OR ${c}restart_time < ${bound} OR TRUE)`;',
      },
    ],
  },
  {
    name: 'ds-transaction',
    store: 'dolphinscheduler',
    reverts:
      'the one transaction: the rows are moved to host NULL and committed first, their commands inserted afterwards',
    edits: [
      {
        file: 'lib/store/dolphinscheduler/instances.ts',
        find:
          '    const rows = await this.db.transaction(async (tx) => {\n' +
          '      const written = await tx.query<{ id: number | string; process_instance_id: number | string }>(\n' +
          '        statement.sql,\n' +
          '        statement.params,\n' +
          '      );\n' +
          '      options.beforeCommit?.();\n' +
          '      return written;\n' +
          '    });\n' +
          '    return rows.map((r) => ({ itemId: String(r.process_instance_id), commandId: String(r.id) }));',
        replace: `    const update = \`\${statement.sql.slice(0, statement.sql.indexOf('\\nINSERT INTO t_ds_command'))}\\nSELECT * FROM changed ORDER BY id\`;
    const changed = await this.db.query(update, statement.params.slice(0, 4));
    const receipts = [];
    for (const c of changed) {
      const [row] = await this.db.query(
        'INSERT INTO t_ds_command (command_type, process_definition_code, process_definition_version, process_instance_id, command_param, executor_id, process_instance_priority, test_flag, task_depend_type, failure_strategy, start_time, update_time) VALUES (2, $1, $2, $3, $4, $5, COALESCE($6::int, 2), $7, 2, 1, $8::timestamp, $8::timestamp) RETURNING id, process_instance_id',
        [c.process_definition_code, c.process_definition_version, c.id, c.command_param, c.executor_id, c.process_instance_priority, c.test_flag, statement.params[4]],
      );
      if (row) receipts.push({ itemId: String(row.process_instance_id), commandId: String(row.id) });
    }
    return receipts;`,
      },
      {
        file: 'lib/store/dolphinscheduler/instances.ts',
        find:
          '      if (tx.affectedRows() !== ids.length) {\n' +
          '        throw new Error(`released ${tx.affectedRows()} of ${ids.length} locked instances`);\n' +
          '      }\n',
        replace:
          '      if (tx.affectedRows() !== ids.length) {\n' +
          '        throw new Error(`released ${tx.affectedRows()} of ${ids.length} locked instances`);\n' +
          '      }\n' +
          "      await tx.query('COMMIT');\n",
      },
    ],
  },
  {
    name: 'ds-lock',
    store: 'dolphinscheduler',
    reverts:
      "DolphinScheduler's lock: the function writes a master's instances without holding its failover mutex",
    edits: [
      {
        file: 'lib/registry/ds-failover-lock.ts',
        find: "    if (nodeType === 'worker') {",
        replace: "    if (nodeType === 'worker' || nodeType === 'master') {",
      },
    ],
  },
  {
    name: 'ds-time-zone',
    store: 'dolphinscheduler',
    reverts: "the time-zone conversion: DolphinScheduler's stored wall times are read and written as UTC",
    edits: [
      {
        file: 'lib/store/dolphinscheduler/wall-time.ts',
        find: "      timeZone,\n      hourCycle: 'h23',",
        replace: "      timeZone: 'UTC',\n      hourCycle: 'h23',",
      },
    ],
  },
];

export class MutationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MutationError';
  }
}

const excluded = new Set(['node_modules', '.local', '.git', '.serverless', '.esbuild', '.serverless-ci']);

/** `a` or `a+b` (several measures reverted at once: the layers of defence behind each other). */
export function findMutations(name: string): Mutation[] {
  return name.split('+').map((part) => {
    const mutation = mutations.find((m) => m.name === part);
    if (mutation === undefined) {
      throw new MutationError(
        `unknown mutation ${part} (one of: ${mutations.map((m) => m.name).join(', ')})`,
      );
    }
    return mutation;
  });
}

/**
 * Copies the working tree (without node_modules, which is linked) to a temporary directory and applies the
 * mutation there. Fails if a snippet it replaces is not found exactly once (the code moved on: update the
 * mutation). Returns the copy's directory; the caller removes it with `removeMutant`.
 */
export function prepareMutant(projectRoot: string, name: string): string {
  const chosen = findMutations(name);
  const dir = mkdtempSync(join(tmpdir(), `zkf-mutant-${chosen.map((m) => m.name).join('+')}-`));
  try {
    for (const entry of readdirSync(projectRoot)) {
      if (excluded.has(entry)) continue;
      cpSync(join(projectRoot, entry), join(dir, entry), { recursive: true });
    }
    symlinkSync(join(projectRoot, 'node_modules'), join(dir, 'node_modules'), 'dir');
    for (const mutation of chosen) {
      for (const edit of mutation.edits) {
        const path = join(dir, edit.file);
        const text = readFileSync(path, 'utf8');
        const count = text.split(edit.find).length - 1;
        if (count !== 1) {
          throw new MutationError(
            `${mutation.name}: expected the snippet once in ${edit.file}, found it ${count} time(s)`,
          );
        }
        writeFileSync(
          path,
          text.replace(edit.find, () => edit.replace),
        );
      }
    }
    return dir;
  } catch (error: unknown) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

export function removeMutant(dir: string): void {
  if (!dir.startsWith(tmpdir())) throw new MutationError(`refusing to remove ${dir}`);
  rmSync(dir, { recursive: true, force: true });
}
