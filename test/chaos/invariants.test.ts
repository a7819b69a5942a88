// The invariant checker itself: it must pass a correct outcome and name each kind of wrong one.
import { describe, expect, it } from 'vitest';
import { checkInvariants, type Flat, type Observations, type TrackedItem } from './invariants.ts';

const dead = '10.0.0.1:5678';
const live = '10.0.0.2:5678';
const worker = '10.0.0.3:1234';
const T = 1_700_000_000_000;

const instance = (id: string, host: string, extra: Flat = {}): TrackedItem => ({
  id,
  key: `pi-${id}`,
  type: 'instance',
  reference: {
    id,
    host,
    state: 'RUNNING_EXECUTION',
    processDefinitionCode: 5,
    processDefinitionVersion: 2,
    executorId: 3,
    priority: 'HIGH',
    startTime: T,
    ...extra,
  },
});

const task = (id: string): TrackedItem => ({
  id,
  key: `ti-${id}`,
  type: 'task',
  reference: { id, processInstanceId: '1', host: worker, state: 'DISPATCH', submitTime: T },
});

function failedOver(item: TrackedItem, fence = 4): Flat {
  const { host, ...rest } = item.reference;
  const lock = `failover/${item.type === 'instance' ? 'master' : 'worker'}/${host}`;
  const base = item.type === 'instance' ? rest : { ...item.reference, state: 'NEED_FAULT_TOLERANCE' };
  return { ...base, lastHost: String(host), failoverCount: 1, failedOverAt: T + 10, fence, fenceLock: lock };
}

function commandOf(item: TrackedItem, fence = 4, id?: string): Flat {
  if (item.type === 'task') {
    return {
      type: 'TaskFailover',
      id: id ?? `task-failover/${item.id}/1`,
      taskInstanceId: item.id,
      processInstanceId: '1',
      failedHost: worker,
      fence,
      createdAt: T + 10,
      enqueuedAt: T + 20,
    };
  }
  return {
    type: 'RecoveryCommand',
    id: id ?? `recover/${item.id}/1`,
    commandType: 'RECOVER_TOLERANCE_FAULT_PROCESS',
    processInstanceId: item.id,
    processDefinitionCode: 5,
    processDefinitionVersion: 2,
    executorId: 3,
    priority: 'HIGH',
    commandParam: JSON.stringify({ ProcessInstanceId: Number(item.id) }),
    failedHost: dead,
    generation: 1,
    fence,
    createdAt: T + 10,
    enqueuedAt: T + 20,
  };
}

const a = instance('11', dead);
const b = instance('12', live, { startTime: T + 5_000 });
const t = task('t1');

function correct(): Observations {
  return {
    items: [a, b, t],
    finalItems: new Map([
      [a.id, failedOver(a)],
      [b.id, b.reference],
      [t.id, failedOver(t, 2)],
    ]),
    registry: new Map([[`master/${live}`, { startupTime: T + 1_000 }]]),
    commands: [commandOf(a), commandOf(t, 2)],
    seededCommandIds: new Set(),
    deliveries: new Map([
      [`recover/${a.id}/1`, 1],
      [`task-failover/${t.id}/1`, 1],
    ]),
    invalidDeliveries: [],
    failoverDlq: [{ body: 'poison', rejectReason: 'body is not valid JSON' }],
    commandsDlq: 0,
    poisonQueued: ['poison'],
    poisonInvoked: [],
    locks: [
      { name: `failover/master/${dead}`, fence: 4 },
      { name: `failover/worker/${worker}`, fence: 2, owner: 'crashed', leaseExpiresAt: T },
    ],
    checkedAt: T + 60_000,
    settled: true,
  };
}

const invariantsOf = (obs: Observations) => checkInvariants(obs).violations.map((v) => v.invariant);

describe('checkInvariants', () => {
  it('passes a correct outcome and counts what happened', () => {
    const result = checkInvariants(correct());

    expect(result.violations).toEqual([]);
    expect(result.summary).toMatchObject({ eligible: 2, failedOver: 2, protected: 1, abandonedLocks: 1 });
  });

  it('flags a second command for the same failover, and a lost one', () => {
    const duplicate = {
      ...correct(),
      commands: [...correct().commands, commandOf(a, 5, `recover/${a.id}/1/x`)],
    };
    const lost = { ...correct(), commands: [commandOf(t, 2)] };

    expect(invariantsOf(duplicate)).toContain('exactly one command per failover');
    expect(invariantsOf(lost)).toContain('every failover has its command (none lost)');
  });

  it('flags a command whose id is not the deterministic one, and one that was never delivered', () => {
    const random = { ...correct(), commands: [commandOf(a, 4, `recover/${a.id}/1/r4nd0m`), commandOf(t, 2)] };
    const undelivered = { ...correct(), deliveries: new Map([[`task-failover/${t.id}/1`, 1]]) };

    expect(invariantsOf(random)).toContain('the command id is deterministic per (item, generation) (F4)');
    expect(invariantsOf(undelivered)).toContain('every command reaches the commands queue');
  });

  it('flags any change to an item of a live incarnation, and an item failed over twice', () => {
    const touched = correct();
    (touched.finalItems as Map<string, Flat>).set(b.id, failedOver(b));
    const twice = correct();
    (twice.finalItems as Map<string, Flat>).set(a.id, { ...failedOver(a), failoverCount: 2 });

    expect(invariantsOf(touched)).toContain('nothing of a live incarnation (or not eligible) is touched');
    expect(invariantsOf(twice)).toContain('failed over exactly once, as F2/F5 say');
  });

  it('reports duplicate deliveries separately, without calling them a violation', () => {
    const obs = { ...correct(), deliveries: new Map([...correct().deliveries, [`recover/${a.id}/1`, 3]]) };

    const result = checkInvariants(obs);

    expect(result.violations).toEqual([]);
    expect(result.summary.duplicateDeliveries).toBe(2);
  });

  it('flags a valid message in the DLQ, a queued poison message missing from it, and a held lock', () => {
    const request = JSON.stringify({ kind: 'NodeRemoved', host: dead });
    const dlq = { ...correct(), failoverDlq: [{ body: request }] };
    const held = {
      ...correct(),
      locks: [{ name: 'failover/master/x', owner: 'o', leaseExpiresAt: T + 90_000 }],
    };

    expect(invariantsOf(dlq)).toEqual(
      expect.arrayContaining([
        'nothing but poison in the failover DLQ',
        'every poison message reaches the DLQ',
      ]),
    );
    expect(invariantsOf(held)).toContain('no lock held once settled');
  });

  it('flags a fence no lock ever granted, and a run that did not settle', () => {
    const fence = correct();
    (fence.finalItems as Map<string, Flat>).set(a.id, failedOver(a, 9));
    const unsettled = { ...correct(), settled: false, settleProblem: 'queue not empty' };

    expect(invariantsOf(fence)).toContain('fences only come from the lock');
    expect(invariantsOf(unsettled)).toContain('settles');
  });
});
