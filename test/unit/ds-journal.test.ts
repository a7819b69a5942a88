// The run journal of the DolphinScheduler store (DESIGN D6) as the failover writes it: every committed
// batch's receipts end up in a written record of its own run, in commit order, and a batch's `record`
// resolves only once they are written. Busy, batches share records; idle, each is its own.
import { describe, expect, it } from 'vitest';
import type { RunJournal, RunRecord } from '../../lib/failover/ports.ts';
import { CoalescingJournal } from '../../lib/store/dolphinscheduler/delivery.ts';

/** A journal whose writes end only when the test says so. */
class HeldJournal implements RunJournal {
  readonly written: RunRecord[] = [];
  readonly pending: Array<{ record: RunRecord; finish: (error?: Error) => void }> = [];

  record(entry: RunRecord): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({
        record: entry,
        finish: (error) => {
          if (error) return reject(error);
          this.written.push(entry);
          resolve();
        },
      });
    });
  }

  /** Ends the oldest write under way. */
  finishOldest(error?: Error): void {
    const next = this.pending.shift();
    if (next === undefined) throw new Error('no write under way');
    next.finish(error);
  }
}

const batch = (ids: number[], fence = 1, lockName = 'failover/master/10.0.0.1:5678'): RunRecord => ({
  lockName,
  host: lockName.split('/').at(-1) ?? '',
  fence,
  receipts: ids.map((id) => ({ itemId: String(id), commandId: String(id + 1000) })),
  writtenAt: 1_000 + (ids[0] ?? 0),
});

const ids = (record: RunRecord) => record.receipts.map((r) => Number(r.itemId));
const settled = () => new Promise((resolve) => setImmediate(resolve));

/** Ends writes one at a time until none is left; returns the most that were under way at once. */
async function finishAll(inner: HeldJournal): Promise<number> {
  let most = 0;
  while (inner.pending.length > 0) {
    most = Math.max(most, inner.pending.length);
    inner.finishOldest();
    await settled();
  }
  return most;
}

describe('CoalescingJournal', () => {
  it('writes each batch as its own record while writes are free', async () => {
    // Arrange
    const inner = new HeldJournal();
    const journal = new CoalescingJournal(inner, { inFlight: 2 });

    // Act
    const first = journal.record(batch([1, 2]));
    const second = journal.record(batch([3, 4]));

    // Assert
    expect(inner.pending.map((p) => ids(p.record))).toEqual([
      [1, 2],
      [3, 4],
    ]);
    inner.finishOldest();
    inner.finishOldest();
    await Promise.all([first, second]);
    expect(inner.written.map(ids)).toEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  it('folds the batches that commit during a write into the next record, in commit order', async () => {
    // Arrange
    const inner = new HeldJournal();
    const journal = new CoalescingJournal(inner, { inFlight: 1 });
    let resolved = 0;
    const track = (p: Promise<void>) => p.then(() => (resolved += 1));

    // Act: one write under way, three more batches commit meanwhile.
    const all = [
      track(journal.record(batch([1]))),
      track(journal.record(batch([2]))),
      track(journal.record(batch([3]))),
      track(journal.record(batch([4]))),
    ];

    // Assert: the three wait together, and none resolves before its own record is written.
    expect(inner.pending.map((p) => ids(p.record))).toEqual([[1]]);
    inner.finishOldest();
    await settled();
    expect(resolved).toBe(1);
    expect(inner.pending.map((p) => ids(p.record))).toEqual([[2, 3, 4]]);
    inner.finishOldest();
    await Promise.all(all);
    expect(inner.written.map(ids)).toEqual([[1], [2, 3, 4]]);
    expect(inner.written[1]?.writtenAt).toBe(1_004);
  });

  it('never mixes runs: another fence or another lock gets its own record', async () => {
    const inner = new HeldJournal();
    const journal = new CoalescingJournal(inner, { inFlight: 1 });

    const all = [
      journal.record(batch([1])),
      journal.record(batch([2], 1)),
      journal.record(batch([3], 2)),
      journal.record(batch([4], 1, 'failover/master/10.0.0.2:5678')),
      journal.record(batch([5], 1)),
    ];
    await finishAll(inner);
    await Promise.all(all);

    expect(inner.written.map((r) => [r.lockName, r.fence, ids(r)])).toEqual([
      ['failover/master/10.0.0.1:5678', 1, [1]],
      ['failover/master/10.0.0.1:5678', 1, [2, 5]],
      ['failover/master/10.0.0.1:5678', 2, [3]],
      ['failover/master/10.0.0.2:5678', 1, [4]],
    ]);
    expect(inner.written[3]?.host).toBe('10.0.0.2:5678');
  });

  it('starts a new record when the next batch would take one past maxReceipts', async () => {
    const inner = new HeldJournal();
    const journal = new CoalescingJournal(inner, { inFlight: 1, maxReceipts: 4 });

    const all = [
      journal.record(batch([1])),
      journal.record(batch([2, 3])),
      journal.record(batch([4, 5])),
      journal.record(batch([6, 7, 8])),
    ];
    await finishAll(inner);
    await Promise.all(all);

    expect(inner.written.map(ids)).toEqual([[1], [2, 3, 4, 5], [6, 7, 8]]);
  });

  it('rejects every batch of a record whose write failed, and goes on with the next record', async () => {
    const inner = new HeldJournal();
    const journal = new CoalescingJournal(inner, { inFlight: 1 });

    const outcomes = Promise.allSettled([
      journal.record(batch([1])),
      journal.record(batch([2])),
      journal.record(batch([3])),
    ]);
    inner.finishOldest();
    await settled();
    inner.finishOldest(new Error('throttled'));
    await settled();
    const fourth = journal.record(batch([4]));
    inner.finishOldest();

    const [first, second, third] = await outcomes;
    expect(first?.status).toBe('fulfilled');
    expect(second).toMatchObject({ status: 'rejected', reason: new Error('throttled') });
    expect(third).toMatchObject({ status: 'rejected', reason: new Error('throttled') });
    await expect(fourth).resolves.toBeUndefined();
    expect(inner.written.map(ids)).toEqual([[1], [4]]);
  });

  it('keeps at most inFlight writes under way', async () => {
    const inner = new HeldJournal();
    const journal = new CoalescingJournal(inner, { inFlight: 2 });

    const all = Array.from({ length: 10 }, (_, i) => journal.record(batch([i])));
    const most = await finishAll(inner);
    await Promise.all(all);

    expect(most).toBe(2);
    expect(inner.written.map(ids)).toEqual([[0], [1], [2, 3, 4, 5, 6, 7, 8, 9]]);
  });
});
