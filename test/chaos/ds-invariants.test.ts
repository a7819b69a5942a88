// The DolphinScheduler chaos invariants' own tests: each invariant fires on the outcome it names and stays
// quiet on a correct run, and duplicates are charged to the side that wrote them.
import { describe, expect, it } from 'vitest';
import type { CommandLogRow, InstanceLogRow } from './ds-db.ts';
import {
  checkDsInvariants,
  type DsObservations,
  type DsTrackedInstance,
  expectedCommandParam,
  mustFailOver,
  type Row,
} from './ds-invariants.ts';

const dead = '10.0.0.1:5678';
const live = '10.0.0.2:5678';
const T = 1_700_000_000_000;

function row(id: number, overrides: Partial<Record<string, string | null>> = {}): Row {
  return {
    id: String(id),
    host: dead,
    state: '1',
    start_time: '2023-11-14 22:00:00',
    restart_time: null,
    command_param: '{"StartParams":"{\\"a\\":1}"}',
    process_definition_code: '9000',
    process_definition_version: '2',
    executor_id: '3',
    process_instance_priority: '1',
    test_flag: '0',
    update_time: null,
    ...overrides,
  };
}

function instance(id: number, overrides: Partial<DsTrackedInstance> = {}): DsTrackedInstance {
  return {
    id,
    key: `pi${id}`,
    origin: 'dying',
    reference: row(id),
    startTime: T - 3_600_000,
    scheduleTimeZone: null,
    ...overrides,
  };
}

function command(
  seq: number,
  commandId: number,
  instanceId: number,
  writer: string,
  at = T + 1_000,
  overrides: Record<string, string | number | null> = {},
): CommandLogRow {
  return {
    seq,
    op: 'I',
    commandId,
    instanceId,
    writer,
    at,
    columns: {
      process_instance_id: instanceId,
      command_type: 2,
      command_param: JSON.stringify({ StartParams: '{"a":1}', ProcessInstanceId: instanceId }),
      process_definition_code: '9000',
      process_definition_version: 2,
      executor_id: 3,
      process_instance_priority: 1,
      test_flag: 0,
      task_depend_type: 2,
      failure_strategy: 1,
      warning_type: 0,
      dry_run: 0,
      worker_group: null,
      tenant_code: 'default',
      environment_code: '-1',
      start_time: '2023-11-14 22:13:21',
      update_time: '2023-11-14 22:13:21',
      ...overrides,
    },
  };
}

function failedOverBy(writer: string, id: number, seq: number): InstanceLogRow {
  return {
    seq,
    instanceId: id,
    oldHost: dead,
    newHost: 'NULL',
    oldState: 1,
    newState: 1,
    oldRestartTime: null,
    newRestartTime: null,
    writer,
    at: T + 1_000,
  };
}

function observations(overrides: Partial<DsObservations> = {}): DsObservations {
  return {
    instances: [instance(1)],
    finalRows: new Map([[1, row(1, { host: 'NULL' })]]),
    registry: new Map([[`master/${live}`, { startupTime: T - 86_400_000 }]]),
    commandLog: [command(1, 101, 1, 'zk-failover')],
    instanceLog: [failedOverBy('zk-failover', 1, 1)],
    pendingCommandIds: new Set([101]),
    errorCommands: [],
    sqlNullHost: [],
    nullHostWithoutCommand: [],
    taskChanges: [],
    journal: [{ host: dead, fence: 1, receipts: [{ itemId: '1', commandId: '101' }] }],
    dsLockHolds: [],
    leasesHeld: [],
    dsLockNodes: [],
    commandTimeWindow: { from: T, to: T + 10_000 },
    // The test's wall times are UTC.
    instantOf: (text) => Date.parse(`${text.replace(' ', 'T')}Z`),
    dialect: 'postgresql',
    settled: true,
    ...overrides,
  };
}

describe('the DolphinScheduler chaos invariants', () => {
  it('hold for an instance failed over once by the function, its command pending', () => {
    // Arrange, Act
    const result = checkDsInvariants(observations());

    // Assert
    expect(result.violations).toEqual([]);
    expect(result.summary).toMatchObject({ eligible: 1, byFunction: 1, pending: 1 });
  });

  it('an eligible instance without a command is lost', () => {
    const result = checkDsInvariants(
      observations({ commandLog: [], instanceLog: [], journal: [], finalRows: new Map([[1, row(1)]]) }),
    );
    expect(result.violations.map((v) => v.invariant)).toEqual([
      'every eligible instance gets exactly one recovery command (none lost)',
    ]);
  });

  it("a second command from the function, or one written under DolphinScheduler's lock, is the function's duplicate", () => {
    // Arrange: DolphinScheduler first; the function wrote while a master held the lock.
    const o = observations({
      commandLog: [command(1, 101, 1, 'ds-master', T + 1_000), command(2, 102, 1, 'zk-failover', T + 1_500)],
      pendingCommandIds: new Set([101, 102]),
      dsLockHolds: [{ master: live, deadHost: dead, acquiredAt: T + 900, releasedAt: T + 2_000 }],
      journal: [],
    });

    // Act
    const result = checkDsInvariants(o);

    // Assert
    expect(result.violations.map((v) => v.invariant)).toContain(
      'every eligible instance gets exactly one recovery command (no duplicate)',
    );
    expect(result.dolphinScheduler).toEqual([]);
  });

  it("a duplicate only DolphinScheduler's own unconditional write made is reported apart", () => {
    // Arrange: the function wrote first, outside any DolphinScheduler hold; a master wrote again later.
    const o = observations({
      commandLog: [command(1, 101, 1, 'zk-failover', T + 1_000), command(2, 102, 1, 'ds-master', T + 5_000)],
      pendingCommandIds: new Set([101, 102]),
      dsLockHolds: [{ master: live, deadHost: dead, acquiredAt: T + 4_000, releasedAt: T + 6_000 }],
    });

    // Act
    const result = checkDsInvariants(o);

    // Assert
    expect(result.violations).toEqual([]);
    expect(result.dolphinScheduler.map((v) => v.invariant)).toEqual([
      'every eligible instance gets exactly one recovery command (no duplicate)',
    ]);
  });

  it("an instance of a live incarnation touched by the function is a violation; DolphinScheduler's is reported apart", () => {
    // Arrange: the instance started after its (restarted) master's new startup.
    const restarted = new Map([
      [`master/${dead}`, { startupTime: T - 60_000 }],
      [`master/${live}`, { startupTime: T - 86_400_000 }],
    ]);
    const newer = instance(1, { origin: 'new-incarnation', startTime: T - 1_000 });
    expect(mustFailOver(newer, restarted)).toBe(false);

    // Act
    const byFunction = checkDsInvariants(observations({ instances: [newer], registry: restarted }));
    const byDolphinScheduler = checkDsInvariants(
      observations({
        instances: [newer],
        registry: restarted,
        commandLog: [command(1, 101, 1, 'ds-master')],
        instanceLog: [failedOverBy('ds-master', 1, 1)],
        journal: [],
      }),
    );

    // Assert
    expect(byFunction.violations.map((v) => v.invariant)).toEqual([
      'no instance of a live incarnation (or changed by the scheduler) is touched',
    ]);
    expect(byDolphinScheduler.violations).toEqual([]);
    expect(byDolphinScheduler.dolphinScheduler).toHaveLength(1);
  });

  it('a finished instance changed by anyone but the scheduler is a violation', () => {
    const finished = instance(1, { reference: row(1, { state: '7' }) });
    const result = checkDsInvariants(
      observations({
        instances: [finished],
        finalRows: new Map([[1, row(1, { state: '7', host: 'NULL' })]]),
        commandLog: [],
        journal: [],
      }),
    );
    expect(result.violations.map((v) => v.invariant)).toEqual(['finished instances are untouched']);
  });

  it('the command must be the one DolphinScheduler writes (command_param, copied columns, times)', () => {
    const result = checkDsInvariants(
      observations({
        commandLog: [
          command(1, 101, 1, 'zk-failover', T + 1_000, {
            command_param: '{"ProcessInstanceId":1}',
            executor_id: 4,
            start_time: '2020-01-01 00:00:00',
          }),
        ],
      }),
    );
    const [violation] = result.violations;
    expect(violation?.invariant).toBe('the recovery command is the one DolphinScheduler 3.2 writes');
    expect(violation?.detail).toContain('command_param');
    expect(violation?.detail).toContain('executor_id');
    expect(violation?.detail).toContain('start_time');
  });

  it('a scheduled workflow gets string values and its schedule time zone', () => {
    expect(expectedCommandParam(instance(7, { scheduleTimeZone: 'Asia/Shanghai' }))).toEqual({
      StartParams: '{"a":1}',
      ProcessInstanceId: '7',
      schedule_timezone: 'Asia/Shanghai',
    });
  });

  it('the function writing any other column than host breaks D1', () => {
    const result = checkDsInvariants(
      observations({
        finalRows: new Map([[1, row(1, { host: 'NULL', update_time: '2023-11-14 22:13:21' })]]),
      }),
    );
    expect(result.violations.map((v) => v.invariant)).toEqual(['failover writes host and nothing else (D1)']);
  });

  it("an instance the function moved to 'NULL' whose command the sweep had to write breaks the one transaction", () => {
    const result = checkDsInvariants(
      observations({
        commandLog: [command(1, 101, 1, 'zk-sweep')],
        journal: [],
      }),
    );
    expect(result.violations.map((v) => v.invariant)).toEqual([
      'a failover writes the host and its command in one transaction (none left for the sweep to repair)',
    ]);
  });

  it('an instance seeded without owner and command gets exactly one command from the sweep', () => {
    const orphan = instance(1, { origin: 'to-repair', reference: row(1, { host: null }) });
    const repaired = checkDsInvariants(
      observations({
        instances: [orphan],
        commandLog: [command(1, 101, 1, 'zk-sweep')],
        instanceLog: [],
        journal: [],
      }),
    );
    const twice = checkDsInvariants(
      observations({
        instances: [orphan],
        commandLog: [command(1, 101, 1, 'zk-sweep'), command(2, 102, 1, 'zk-sweep')],
        pendingCommandIds: new Set([101, 102]),
        instanceLog: [],
        journal: [],
      }),
    );
    expect(repaired.violations).toEqual([]);
    expect(twice.violations.map((v) => v.invariant)).toEqual([
      'the sweep gives every executing instance without owner and command exactly one command (D5)',
    ]);
  });

  it("after a takeover, the new owner's death needs a command of its own; while it lives, none", () => {
    // Arrange: failed over by the function, taken over by a master, then failed over again by the function.
    const takeover: InstanceLogRow = {
      seq: 2,
      instanceId: 1,
      oldHost: 'NULL',
      newHost: live,
      oldState: 1,
      newState: 1,
      oldRestartTime: null,
      newRestartTime: '2023-11-14 22:13:22',
      writer: 'ds-master',
      at: T + 2_000,
    };
    const again: InstanceLogRow = { ...failedOverBy('zk-failover', 1, 3), oldHost: live, at: T + 3_000 };
    const log = {
      commandLog: [
        command(1, 101, 1, 'zk-failover', T + 1_000),
        { ...command(2, 101, 1, 'ds-master', T + 2_000), op: 'D' as const },
        command(3, 102, 1, 'zk-failover', T + 3_000),
      ],
      instanceLog: [failedOverBy('zk-failover', 1, 1), takeover, again],
      pendingCommandIds: new Set([102]),
      journal: [],
    };

    // Act
    const ownerDied = checkDsInvariants(observations({ ...log, registry: new Map() }));
    const ownerLives = checkDsInvariants(observations(log));

    // Assert
    expect(ownerDied.violations).toEqual([]);
    expect(ownerDied.summary.eligible).toBe(2);
    expect(ownerLives.violations.map((v) => v.invariant)).toEqual([
      'no instance of a live incarnation (or changed by the scheduler) is touched',
    ]);
  });

  it('SQL NULL hosts, NULL hosts without a command, error commands, task writes, held locks, journal entries fire', () => {
    const result = checkDsInvariants(
      observations({
        sqlNullHost: [5],
        nullHostWithoutCommand: [6],
        errorCommands: [{ id: 9, instanceId: 1, message: 'process instance is null' }],
        taskChanges: ['task 3: state'],
        leasesHeld: ['failover/master/x'],
        dsLockNodes: ['x/_c_1-lock-0000000001'],
        journal: [{ host: dead, fence: 2, receipts: [{ itemId: '1', commandId: '999' }] }],
        settled: false,
      }),
    );
    expect(new Set(result.violations.map((v) => v.invariant))).toEqual(
      new Set([
        'no executing instance has SQL NULL host',
        "no executing instance is left with host 'NULL' and no command",
        'DolphinScheduler can handle every recovery command',
        'worker removals write no task row (D4)',
        'no lease lock held once settled',
        'no DolphinScheduler failover lock node is left once settled',
        'the run journal records only commands the function wrote (D6)',
        'the run settles',
      ]),
    );
  });
});
