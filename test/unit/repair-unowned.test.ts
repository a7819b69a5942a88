// The sweep's repair of unowned instances (DESIGN D5) with small in-memory fakes: SQL NULL hosts at once,
// 'NULL' without a command only after the grace period, one repairer at a time.
import { describe, expect, it } from 'vitest';
import type { AcquireResult, CommandReceipt, LockStore } from '../../lib/failover/ports.ts';
import {
  type RepairLedger,
  repairUnownedInstances,
  type UnownedInstance,
  type UnownedWork,
} from '../../lib/sweep/repair-unowned.ts';

class FakeWork implements UnownedWork {
  unowned: UnownedInstance[] = [];
  repairs: string[][] = [];
  async listUnowned() {
    return [...this.unowned];
  }
  async repair(ids: readonly string[]): Promise<CommandReceipt[]> {
    this.repairs.push([...ids]);
    this.unowned = this.unowned.filter((u) => !ids.includes(u.id));
    return ids.map((id) => ({ itemId: id, commandId: `c-${id}` }));
  }
}

class FakeLedger implements RepairLedger {
  seen = new Map<string, number>();
  async load() {
    return new Map(this.seen);
  }
  async save(firstSeen: ReadonlyMap<string, number>) {
    this.seen = new Map(firstSeen);
  }
}

function locks(held = false): LockStore {
  return {
    acquire: async (name, owner, leaseMs, now): Promise<AcquireResult> =>
      held
        ? { acquired: false, heldUntil: now + leaseMs }
        : { acquired: true, lease: { name, owner, fence: 1, expiresAt: now + leaseMs } },
    renew: async (lease) => lease,
    release: async () => true,
  };
}

describe('repairUnownedInstances', () => {
  it('repairs SQL NULL hosts at once and a marker without a command only once the grace period has passed', async () => {
    // Arrange
    const work = new FakeWork();
    work.unowned = [
      { id: '1', kind: 'sql-null' },
      { id: '2', kind: 'no-command' },
    ];
    const ledger = new FakeLedger();
    let now = 1_000;
    const deps = { work, ledger, locks: locks(), clock: () => now, graceMs: 500, owner: 'me' };

    // Act
    const first = await repairUnownedInstances(deps);
    now += 499;
    const second = await repairUnownedInstances(deps);
    now += 1;
    const third = await repairUnownedInstances(deps);

    // Assert
    expect(first).toMatchObject({ sqlNullHosts: 1, withoutCommand: 1, waiting: 1 });
    expect(first.repaired.map((r) => r.itemId)).toEqual(['1']);
    expect(second.repaired).toEqual([]);
    expect(third.repaired.map((r) => r.itemId)).toEqual(['2']);
    expect(work.repairs).toEqual([['1'], ['2']]);
    expect(ledger.seen.size).toBe(0);
  });

  it('forgets an instance that got a command (or an owner) meanwhile', async () => {
    const work = new FakeWork();
    work.unowned = [{ id: '7', kind: 'no-command' }];
    const ledger = new FakeLedger();
    let now = 0;
    const deps = { work, ledger, locks: locks(), clock: () => now, graceMs: 100, owner: 'me' };

    await repairUnownedInstances(deps);
    work.unowned = [];
    now = 50;
    await repairUnownedInstances(deps);
    work.unowned = [{ id: '7', kind: 'no-command' }];
    now = 120;
    const again = await repairUnownedInstances(deps);

    // Seen anew at 120: the grace period starts again.
    expect(again.repaired).toEqual([]);
    expect(ledger.seen.get('7')).toBe(120);
  });

  it('leaves the repair to the holder of its lock', async () => {
    const work = new FakeWork();
    work.unowned = [{ id: '1', kind: 'sql-null' }];

    const out = await repairUnownedInstances({
      work,
      ledger: new FakeLedger(),
      locks: locks(true),
      clock: () => 0,
      graceMs: 0,
      owner: 'me',
    });

    expect(out.status).toBe('lock-held');
    expect(work.repairs).toEqual([]);
  });
});
