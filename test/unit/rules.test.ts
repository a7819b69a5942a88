import { describe, expect, it } from 'vitest';
import {
  buildRecoveryCommand,
  buildTaskNotice,
  EXECUTING_PROCESS_STATES,
  failoverGeneration,
  NEED_FAULT_TOLERANCE,
  type ProcessInstance,
  processFailoverDecision,
  recoveryCommandId,
  sameHost,
  TASK_FAILOVER_STATES,
  type TaskInstance,
  taskFailoverDecision,
  taskNoticeId,
} from '../../lib/failover/rules.ts';
import { isFifoSafeId, parseCommandMessage } from '../../lib/messages.ts';

const DEAD = '10.0.0.1:5678';
const RESTARTED_AT = 1_700_000_000_000;

function instance(overrides: Partial<ProcessInstance> = {}): ProcessInstance {
  return {
    id: '42',
    host: DEAD,
    state: 'RUNNING_EXECUTION',
    processDefinitionCode: 9_876_543_210,
    processDefinitionVersion: 3,
    executorId: 7,
    priority: 'MEDIUM',
    startTime: RESTARTED_AT - 60_000,
    ...overrides,
  };
}

function task(overrides: Partial<TaskInstance> = {}): TaskInstance {
  return {
    id: '1001',
    processInstanceId: '42',
    host: DEAD,
    state: 'RUNNING_EXECUTION',
    submitTime: RESTARTED_AT - 60_000,
    ...overrides,
  };
}

describe('state sets', () => {
  it('lists exactly the F1 executing process states', () => {
    expect([...EXECUTING_PROCESS_STATES].sort()).toEqual(
      ['DELAY_EXECUTION', 'READY_PAUSE', 'READY_STOP', 'RUNNING_EXECUTION', 'SUBMITTED_SUCCESS'].sort(),
    );
  });

  it('lists exactly the F5 task states, DISPATCH included', () => {
    expect([...TASK_FAILOVER_STATES].sort()).toEqual(
      ['DELAY_EXECUTION', 'DISPATCH', 'RUNNING_EXECUTION', 'SUBMITTED_SUCCESS'].sort(),
    );
    expect(NEED_FAULT_TOLERANCE).toBe('NEED_FAULT_TOLERANCE');
  });
});

describe('sameHost', () => {
  it('matches identical ip:port strings', () => {
    expect(sameHost(DEAD, '10.0.0.1:5678')).toBe(true);
  });

  it.each([
    ['110.0.0.1:5678'],
    ['10.0.0.1:56789'],
    ['10.0.0.1:567'],
    ['10.0.0.1'],
    ['0.0.1:5678'],
    [' 10.0.0.1:5678'],
  ])('never matches by substring or prefix (%s)', (other) => {
    expect(sameHost(DEAD, other)).toBe(false);
    expect(sameHost(other, DEAD)).toBe(false);
  });

  it('never matches an empty or missing host, not even to itself', () => {
    expect(sameHost('', '')).toBe(false);
    expect(sameHost(undefined, undefined)).toBe(false);
    expect(sameHost(undefined, DEAD)).toBe(false);
  });
});

describe('processFailoverDecision', () => {
  it.each(EXECUTING_PROCESS_STATES)('fails over an instance of the dead host in state %s', (state) => {
    // Arrange
    const subject = instance({ state });

    // Act
    const decision = processFailoverDecision(subject, DEAD, null);

    // Assert
    expect(decision).toEqual({ eligible: true });
  });

  it.each([
    'SUCCESS',
    'FAILURE',
    'PAUSE',
    'STOP',
    'KILL',
    'NEED_FAULT_TOLERANCE',
    'WAITING_THREAD',
    'running_execution',
    '',
  ])('skips a non-executing instance in state %s', (state) => {
    const decision = processFailoverDecision(instance({ state }), DEAD, null);

    expect(decision).toEqual({ eligible: false, reason: 'not-executing' });
  });

  it('skips an instance that is already unowned (host absent)', () => {
    const { host: _omitted, ...unowned } = instance();

    expect(processFailoverDecision(unowned, DEAD, null)).toEqual({ eligible: false, reason: 'unowned' });
  });

  it('skips an instance with an empty host even when the dead host is empty (#5044)', () => {
    expect(processFailoverDecision(instance({ host: '' }), '', null)).toEqual({
      eligible: false,
      reason: 'unowned',
    });
  });

  it('skips an instance of a host that merely contains the dead host as a substring', () => {
    const subject = instance({ host: '110.0.0.1:5678' });

    expect(processFailoverDecision(subject, DEAD, null)).toEqual({ eligible: false, reason: 'other-host' });
  });

  it('fails over every matching instance when the host is not registered, however recent', () => {
    const subject = instance({ startTime: RESTARTED_AT + 10_000, restartTime: RESTARTED_AT + 20_000 });

    expect(processFailoverDecision(subject, DEAD, null)).toEqual({ eligible: true });
  });

  it('fails over an instance started before the restart of a live host', () => {
    const subject = instance({ startTime: RESTARTED_AT - 1 });

    expect(processFailoverDecision(subject, DEAD, { startupTime: RESTARTED_AT })).toEqual({ eligible: true });
  });

  it('skips an instance started exactly at the restart', () => {
    const subject = instance({ startTime: RESTARTED_AT });

    expect(processFailoverDecision(subject, DEAD, { startupTime: RESTARTED_AT })).toEqual({
      eligible: false,
      reason: 'new-incarnation',
    });
  });

  it('skips an instance started after the restart', () => {
    const subject = instance({ startTime: RESTARTED_AT + 1 });

    expect(processFailoverDecision(subject, DEAD, { startupTime: RESTARTED_AT })).toEqual({
      eligible: false,
      reason: 'new-incarnation',
    });
  });

  it('skips an old instance restarted exactly at the restart (#11445)', () => {
    const subject = instance({ startTime: RESTARTED_AT - 60_000, restartTime: RESTARTED_AT });

    expect(processFailoverDecision(subject, DEAD, { startupTime: RESTARTED_AT })).toEqual({
      eligible: false,
      reason: 'new-incarnation',
    });
  });

  it('skips an old instance restarted after the restart (#11445)', () => {
    const subject = instance({ startTime: RESTARTED_AT - 60_000, restartTime: RESTARTED_AT + 5 });

    expect(processFailoverDecision(subject, DEAD, { startupTime: RESTARTED_AT })).toEqual({
      eligible: false,
      reason: 'new-incarnation',
    });
  });

  it('fails over an instance whose start and restart both precede the restart', () => {
    const subject = instance({ startTime: RESTARTED_AT - 60_000, restartTime: RESTARTED_AT - 1 });

    expect(processFailoverDecision(subject, DEAD, { startupTime: RESTARTED_AT })).toEqual({ eligible: true });
  });

  it('leaves an instance with an unusable start time to a live incarnation', () => {
    const subject = instance({ startTime: Number.NaN });

    expect(processFailoverDecision(subject, DEAD, { startupTime: RESTARTED_AT })).toEqual({
      eligible: false,
      reason: 'new-incarnation',
    });
  });
});

describe('taskFailoverDecision', () => {
  it.each(TASK_FAILOVER_STATES)('fails over a task of the dead worker in state %s', (state) => {
    expect(taskFailoverDecision(task({ state }), DEAD, null)).toEqual({ eligible: true });
  });

  it('fails over a task stuck in DISPATCH (#16107)', () => {
    const decision = taskFailoverDecision(task({ state: 'DISPATCH' }), DEAD, { startupTime: RESTARTED_AT });

    expect(decision).toEqual({ eligible: true });
  });

  it.each(['SUCCESS', 'FAILURE', 'KILL', 'PAUSE', 'STOP', 'NEED_FAULT_TOLERANCE', 'READY_PAUSE'])(
    'skips a task in state %s',
    (state) => {
      expect(taskFailoverDecision(task({ state }), DEAD, null)).toEqual({
        eligible: false,
        reason: 'not-executing',
      });
    },
  );

  it('skips an unowned task and a task of another worker', () => {
    const { host: _omitted, ...unowned } = task();

    expect(taskFailoverDecision(unowned, DEAD, null)).toEqual({ eligible: false, reason: 'unowned' });
    expect(taskFailoverDecision(task({ host: '110.0.0.1:5678' }), DEAD, null)).toEqual({
      eligible: false,
      reason: 'other-host',
    });
  });

  it.each([
    [RESTARTED_AT - 1, true],
    [RESTARTED_AT, false],
    [RESTARTED_AT + 1, false],
  ])('compares submitTime %d with the new startupTime (eligible: %s)', (submitTime, eligible) => {
    const decision = taskFailoverDecision(task({ submitTime }), DEAD, { startupTime: RESTARTED_AT });

    expect(decision.eligible).toBe(eligible);
  });
});

describe('ids and generations', () => {
  it('counts generations from the recorded failovers', () => {
    expect(failoverGeneration(instance())).toBe(1);
    expect(failoverGeneration(instance({ failoverCount: 2 }))).toBe(3);
  });

  it('derives the same recovery command id for the same instance and generation', () => {
    expect(recoveryCommandId('42', 1)).toBe('recover/42/1');
    expect(recoveryCommandId('42', 1)).toBe(recoveryCommandId('42', 1));
    expect(recoveryCommandId('42', 2)).not.toBe(recoveryCommandId('42', 1));
    expect(recoveryCommandId('4', 21)).not.toBe(recoveryCommandId('42', 1));
  });

  it('derives task notice ids distinct from recovery command ids', () => {
    expect(taskNoticeId('42', 1)).toBe('task-failover/42/1');
    expect(taskNoticeId('42', 1)).not.toBe(recoveryCommandId('42', 1));
  });

  it('hashes ids that would not be valid FIFO deduplication ids, deterministically', () => {
    const weird = `inst ü ${'x'.repeat(200)}`;

    const id = recoveryCommandId(weird, 1);

    expect(isFifoSafeId(id)).toBe(true);
    expect(id).toBe(recoveryCommandId(weird, 1));
    expect(id).not.toBe(recoveryCommandId(weird, 2));
  });
});

describe('buildRecoveryCommand', () => {
  const context = { deadHost: DEAD, fence: 5, now: RESTARTED_AT + 1 };

  it('builds the F4 command with a numeric ProcessInstanceId', () => {
    // Arrange
    const subject = instance({ failoverCount: 1 });

    // Act
    const command = buildRecoveryCommand(subject, context);

    // Assert
    expect(command).toEqual({
      type: 'RecoveryCommand',
      id: 'recover/42/2',
      commandType: 'RECOVER_TOLERANCE_FAULT_PROCESS',
      processInstanceId: '42',
      processDefinitionCode: 9_876_543_210,
      processDefinitionVersion: 3,
      executorId: 7,
      priority: 'MEDIUM',
      commandParam: '{"ProcessInstanceId":42}',
      failedHost: DEAD,
      generation: 2,
      fence: 5,
      createdAt: RESTARTED_AT + 1,
    });
  });

  it('keeps a non-numeric instance id as a string', () => {
    const command = buildRecoveryCommand(instance({ id: 'wf-abc' }), context);

    expect(JSON.parse(command.commandParam)).toEqual({ ProcessInstanceId: 'wf-abc' });
  });

  it('keeps an id too large for a JS number as a string', () => {
    const command = buildRecoveryCommand(instance({ id: '12345678901234567890' }), context);

    expect(JSON.parse(command.commandParam)).toEqual({ ProcessInstanceId: '12345678901234567890' });
  });

  it('copies StartParams from the instance commandParam, and nothing else', () => {
    const subject = instance({
      commandParam: JSON.stringify({
        StartParams: '{"date":"2024-01-01"}',
        RecoverProcessInstanceId: 1,
        x: 2,
      }),
    });

    const command = buildRecoveryCommand(subject, context);

    expect(JSON.parse(command.commandParam)).toEqual({
      ProcessInstanceId: 42,
      StartParams: '{"date":"2024-01-01"}',
    });
  });

  it('copies structured StartParams verbatim', () => {
    const subject = instance({ commandParam: '{"StartParams":{"a":"1","b":[1,2]}}' });

    const command = buildRecoveryCommand(subject, context);

    expect(JSON.parse(command.commandParam)).toEqual({
      ProcessInstanceId: 42,
      StartParams: { a: '1', b: [1, 2] },
    });
  });

  it.each([['not json'], ['{"StartParams":'], ['[1,2]'], ['null'], ['"StartParams"'], ['{"other":1}'], ['']])(
    'does not throw and copies nothing from a malformed or empty commandParam %j',
    (commandParam) => {
      const command = buildRecoveryCommand(instance({ commandParam }), context);

      expect(JSON.parse(command.commandParam)).toEqual({ ProcessInstanceId: 42 });
    },
  );

  it('produces a message that passes the command schema', () => {
    const command = buildRecoveryCommand(instance({ commandParam: '{"StartParams":"{}"}' }), context);

    const parsed = parseCommandMessage(JSON.stringify(command));

    expect(parsed).toEqual({ ok: true, value: command });
  });

  it('is deterministic: a retry builds the same id for the same generation', () => {
    const first = buildRecoveryCommand(instance(), context);
    const retry = buildRecoveryCommand(instance(), { ...context, fence: 6, now: context.now + 1000 });

    expect(retry.id).toBe(first.id);
  });
});

describe('buildTaskNotice', () => {
  it('builds the F5 notice naming task and process instance', () => {
    const notice = buildTaskNotice(task({ failoverCount: 0 }), { deadWorker: DEAD, fence: 3, now: 99 });

    expect(notice).toEqual({
      type: 'TaskFailover',
      id: 'task-failover/1001/1',
      taskInstanceId: '1001',
      processInstanceId: '42',
      failedHost: DEAD,
      fence: 3,
      createdAt: 99,
    });
    expect(parseCommandMessage(JSON.stringify(notice))).toEqual({ ok: true, value: notice });
  });
});

describe('the observation bound (FailoverBounds.observedAt)', () => {
  const OBSERVED_AT = RESTARTED_AT + 30_000;

  it.each([
    [{ startTime: OBSERVED_AT - 1 }, true],
    [{ startTime: OBSERVED_AT }, false],
    [{ startTime: OBSERVED_AT - 60_000, restartTime: OBSERVED_AT + 1 }, false],
    [{ startTime: OBSERVED_AT - 60_000, restartTime: OBSERVED_AT - 1 }, true],
  ])('an instance %o of an unregistered host is eligible: %s', (times, eligible) => {
    const decision = processFailoverDecision(instance(times), DEAD, null, { observedAt: OBSERVED_AT });

    expect(decision).toEqual(
      eligible ? { eligible: true } : { eligible: false, reason: 'after-observation' },
    );
  });

  it('applies on top of F3: a new-incarnation instance keeps its F3 reason', () => {
    const subject = instance({ startTime: OBSERVED_AT + 1 });

    expect(
      processFailoverDecision(subject, DEAD, { startupTime: RESTARTED_AT }, { observedAt: OBSERVED_AT }),
    ).toEqual({ eligible: false, reason: 'new-incarnation' });
  });

  it.each([
    [OBSERVED_AT - 1, true],
    [OBSERVED_AT, false],
  ])('a task submitted at %d is eligible: %s', (submitTime, eligible) => {
    const decision = taskFailoverDecision(task({ submitTime }), DEAD, null, { observedAt: OBSERVED_AT });

    expect(decision.eligible).toBe(eligible);
  });

  it('changes nothing when absent', () => {
    expect(processFailoverDecision(instance({ startTime: Number.MAX_SAFE_INTEGER }), DEAD, null, {})).toEqual(
      {
        eligible: true,
      },
    );
  });
});
