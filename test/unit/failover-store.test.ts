// The pure parts of the DynamoDB adapters: item parsing against the data contract, cancellation reasons,
// the mirror row, the invocation budget.
import { describe, expect, it } from 'vitest';
import { invocationBudget } from '../../lib/failover/fail-over-host.ts';
import { buildRecoveryCommand, buildTaskNotice } from '../../lib/failover/rules.ts';
import { marshalFlat } from '../../lib/store/attributes.ts';
import { parseCommandItem } from '../../lib/store/commands.ts';
import { cancellationOutcome, commandItem } from '../../lib/store/failover-writes.ts';
import { parseProcessInstance } from '../../lib/store/instances.ts';
import { liveIncarnationOf } from '../../lib/store/server-mirror.ts';
import { parseTaskInstance } from '../../lib/store/tasks.ts';

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

    expect(commandItem(recovery).pending).toEqual({ S: '1' });
    expect(parseCommandItem({ ...commandItem(recovery), enqueuedAt: { N: '10' } })).toEqual(recovery);
    expect(parseCommandItem(commandItem(notice))).toEqual(notice);
    expect(parseCommandItem({ ...commandItem(notice), surprise: { S: 'x' } })).toBeUndefined();
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
