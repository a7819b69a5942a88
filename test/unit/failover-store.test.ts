// The pure parts of the DynamoDB adapters: item parsing against the data contract, cancellation reasons,
// the mirror row, the invocation budget.
import { describe, expect, it } from 'vitest';
import { invocationBudget } from '../../lib/failover/fail-over-host.ts';
import { buildRecoveryCommand, buildTaskNotice } from '../../lib/failover/rules.ts';
import type { RecoveryCommand } from '../../lib/messages.ts';
import { marshalFlat } from '../../lib/store/dynamodb/attributes.ts';
import {
  COMMAND_RETENTION_MS,
  commandItem,
  commandsWithOutboxState,
  outboxId,
  outboxItem,
  parseCommandItem,
  parsePendingItem,
} from '../../lib/store/dynamodb/commands.ts';
import { cancellationOutcome, failoverTransaction } from '../../lib/store/dynamodb/failover-writes.ts';
import { parseProcessInstance } from '../../lib/store/dynamodb/instances.ts';
import { liveIncarnationOf } from '../../lib/store/dynamodb/server-mirror.ts';
import { parseTaskInstance } from '../../lib/store/dynamodb/tasks.ts';

const HOST = '10.0.0.1:5678';

const instanceItem = () => ({
  ...marshalFlat({
    id: '42',
    host: HOST,
    state: 'RUNNING_EXECUTION',
    processDefinitionCode: 1,
    processDefinitionVersion: 2,
    executorId: 3,
    priority: 'HIGH',
    startTime: 1_000,
  }),
});

describe('parseProcessInstance', () => {
  it('reads a contract-conforming item', () => {
    expect(parseProcessInstance({ ...instanceItem(), restartTime: { N: '2000' } })).toEqual({
      ok: true,
      value: {
        id: '42',
        host: HOST,
        state: 'RUNNING_EXECUTION',
        processDefinitionCode: 1,
        processDefinitionVersion: 2,
        executorId: 3,
        priority: 'HIGH',
        startTime: 1_000,
        restartTime: 2_000,
      },
    });
  });

  it.each([
    ['startTime', undefined, 'startTime is not a number'],
    ['startTime', { S: '1000' }, 'startTime is not a number'],
    ['priority', { N: '2' }, 'priority is not a string'],
    ['restartTime', { S: 'soon' }, 'restartTime is not a number'],
    ['host', { N: '1' }, 'host is not a string'],
    ['failoverCount', { N: 'NaN' }, 'failoverCount is not a number'],
  ])('reports %s = %o as malformed, never throws', (key, value, problem) => {
    const item: Record<string, unknown> = instanceItem();
    if (value === undefined) delete item[key];
    else item[key] = value;

    expect(parseProcessInstance(item as ReturnType<typeof instanceItem>)).toEqual({
      ok: false,
      id: '42',
      problem,
    });
  });
});

describe('parseTaskInstance', () => {
  it('requires processInstanceId and submitTime', () => {
    const item = marshalFlat({
      id: 't',
      processInstanceId: 'p',
      host: HOST,
      state: 'DISPATCH',
      submitTime: 5,
    });

    expect(parseTaskInstance(item)).toMatchObject({ ok: true, value: { id: 't', submitTime: 5 } });
    expect(parseTaskInstance({ ...item, submitTime: { S: '5' } })).toMatchObject({ ok: false });
    expect(parseTaskInstance({ ...item, processInstanceId: { S: '' } })).toMatchObject({ ok: false });
  });
});

describe('command items', () => {
  it('round-trip through the table without their outbox attributes', () => {
    const parsed = parseProcessInstance(instanceItem());
    if (!parsed.ok) throw new Error(parsed.problem);
    const recovery = buildRecoveryCommand(parsed.value, { deadHost: HOST, fence: 4, now: 9 });
    const notice = buildTaskNotice(
      { id: 't', processInstanceId: '42', host: HOST, state: 'DISPATCH', submitTime: 1 },
      { deadWorker: HOST, fence: 4, now: 9 },
    );

    const item = commandItem(recovery, 'outbox/r');
    expect(item.pending).toBeUndefined();
    expect(item.outbox).toEqual({ S: 'outbox/r' });
    expect(item.expiresAt).toEqual({ N: String(Math.ceil((9 + COMMAND_RETENTION_MS) / 1_000)) });
    expect(parseCommandItem(item)).toEqual(recovery);
    // An earlier build's pending command (outbox state on the command itself) still parses.
    expect(
      parseCommandItem({ ...marshalFlat(recovery), pending: { S: '1' }, enqueuedAt: { N: '10' } }),
    ).toEqual(recovery);
    expect(parseCommandItem(commandItem(notice, 'outbox/n'))).toEqual(notice);
    expect(parseCommandItem({ ...commandItem(notice, 'outbox/n'), surprise: { S: 'x' } })).toBeUndefined();
  });
});

describe('outbox records', () => {
  const parsed = parseProcessInstance(instanceItem());
  if (!parsed.ok) throw new Error(parsed.problem);
  const stamp = { host: HOST, fence: 4, lockName: `failover/master/${HOST}`, now: 9 };
  const messages = ['42', '43', '44'].map((id) =>
    buildRecoveryCommand({ ...parsed.value, id }, { deadHost: HOST, fence: 4, now: 9 }),
  );

  it('one per transaction, last, named after its first command, listing every command of it', () => {
    const writes = messages.map((message) => ({
      item: { id: message.processInstanceId },
      generation: 1,
      message,
    }));

    const { items, outboxId: id } = failoverTransaction(
      writes,
      (w) => ({
        ConditionCheck: { TableName: 'i', Key: { id: { S: w.item.id } }, ConditionExpression: 'x' },
      }),
      'commands',
      stamp,
    );

    expect(id).toBe('outbox/recover/42/1');
    expect(items).toHaveLength(7);
    expect(items.slice(0, 6).map((i) => Object.keys(i)[0])).toEqual([
      'ConditionCheck',
      'Put',
      'ConditionCheck',
      'Put',
      'ConditionCheck',
      'Put',
    ]);
    expect(items[1]?.Put?.Item?.outbox).toEqual({ S: id });
    expect(items[6]?.Put).toMatchObject({
      TableName: 'commands',
      ConditionExpression: 'attribute_not_exists(id)',
      Item: {
        id: { S: id },
        pending: { S: '1' },
        type: { S: 'RecoveryCommand' },
        failedHost: { S: HOST },
        createdAt: { N: '9' },
        fence: { N: '4' },
        commands: { L: messages.map((m) => ({ S: m.id })) },
      },
    });
  });

  it('the pending index lists records and earlier builds pending commands; anything else is malformed', () => {
    const record = outboxItem(outboxId(messages), messages, stamp);
    expect(parsePendingItem(record)).toEqual({
      id: 'outbox/recover/42/1',
      commandIds: messages.map((m) => m.id),
      type: 'RecoveryCommand',
      failedHost: HOST,
      createdAt: 9,
    });
    const legacy = { ...marshalFlat(messages[0] as (typeof messages)[0]), pending: { S: '1' } };
    expect(parsePendingItem(legacy)).toMatchObject({ id: 'recover/42/1', commandIds: ['recover/42/1'] });
    expect(parsePendingItem({ ...record, commands: { L: [] } })).toBeUndefined();
    expect(parsePendingItem({ ...record, commands: { L: [{ N: '1' }] } })).toBeUndefined();
    expect(parsePendingItem({ ...record, failedHost: { N: '1' } })).toBeUndefined();
    expect(parsePendingItem({ id: { S: 'recover/x/1' }, pending: { S: '1' } })).toBeUndefined();
    expect(() => outboxId([])).toThrow(RangeError);
  });

  it("gives each command its record's state, as audits and invariant checks read it, and leaves records out", () => {
    const [a, b, c] = messages as [RecoveryCommand, RecoveryCommand, RecoveryCommand];
    // a and b: one record, still pending for b only (a partial send); c: a record marked enqueued.
    const partial = { ...outboxItem(outboxId([a, b]), [a, b], stamp), commands: { L: [{ S: b.id }] } };
    const { pending: _pending, ...marked } = outboxItem(outboxId([c]), [c], stamp);
    const legacy = { ...marshalFlat({ ...a, id: 'recover/legacy/1' }), pending: { S: '1' } };

    const view = commandsWithOutboxState([
      commandItem(a, outboxId([a, b])),
      commandItem(b, outboxId([a, b])),
      commandItem(c, outboxId([c])),
      partial,
      { ...marked, enqueuedAt: { N: '77' } },
      legacy,
    ]);

    const state = (id: string) => {
      const command = view.find((v) => v.id === id);
      return command && [command.pending, command.enqueuedAt];
    };
    expect(view.map((v) => v.id)).toEqual([a.id, b.id, c.id, 'recover/legacy/1']);
    expect(state(a.id)).toEqual([undefined, undefined]);
    expect(state(b.id)).toEqual(['1', undefined]);
    expect(state(c.id)).toEqual([undefined, 77]);
    expect(state('recover/legacy/1')).toEqual(['1', undefined]);
  });
});

describe('cancellationOutcome', () => {
  const writes = [{ item: { id: 'a' } }, { item: { id: 'b' } }, { item: { id: 'c' } }];

  it('maps condition failures (update or command) back to their items', () => {
    const outcome = cancellationOutcome(writes, [
      { Code: 'None' },
      { Code: 'None' },
      { Code: 'ConditionalCheckFailed' },
      { Code: 'None' },
      { Code: 'None' },
      { Code: 'ConditionalCheckFailed' },
    ]);

    expect(outcome).toEqual({
      status: 'cancelled',
      conditionFailed: ['b', 'c'],
      retryable: false,
      reasons: ['ConditionalCheckFailed', 'ConditionalCheckFailed'],
    });
  });

  it('asks for a backoff on conflicts and throttling', () => {
    expect(cancellationOutcome(writes, [{ Code: 'TransactionConflict' }])).toMatchObject({
      status: 'cancelled',
      conditionFailed: [],
      retryable: true,
    });
    expect(cancellationOutcome(writes, [])).toMatchObject({ retryable: true });
  });

  it('reports a validation error as an invalid request', () => {
    expect(cancellationOutcome(writes, [{ Code: 'None' }, { Code: 'ValidationError' }])).toMatchObject({
      status: 'invalid',
    });
  });
});

describe('liveIncarnationOf (membership mirror row)', () => {
  it.each([
    [undefined, null],
    [{ alive: { BOOL: false }, startupTime: { N: '5' } }, null],
    [{ startupTime: { N: '5' } }, null],
    [{ alive: { BOOL: true }, startupTime: { N: '5' } }, { startupTime: 5 }],
  ])('%o -> %o', (row, expected) => {
    expect(liveIncarnationOf(row)).toEqual(expected);
  });

  it('a live row without a startup time proves nothing older', () => {
    expect(liveIncarnationOf({ alive: { BOOL: true } })?.startupTime).toBeNaN();
  });
});

describe('invocationBudget', () => {
  it('always grants the first page, then stops once less than the margin is left', () => {
    let remaining = 500;
    const budget = invocationBudget(() => remaining, 1_000);

    expect(budget.shouldStop()).toBe(false);
    expect(budget.shouldStop()).toBe(true);
    remaining = 5_000;
    expect(budget.shouldStop()).toBe(false);
  });
});
