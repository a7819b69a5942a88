// The failover use case against in-memory fakes that enforce the same conditions as the DynamoDB stores,
// for the paths a real DynamoDB rarely takes on demand: lost commit responses, conflicts, refused items,
// items changing between read and write, continuation checkpoints.
import { describe, expect, it } from 'vitest';
import {
  type Budget,
  checkpointKey,
  type FailoverDeps,
  failOverHost,
  TransactionRetryError,
} from '../../lib/failover/fail-over-host.ts';
import {
  type AcquireResult,
  type Checkpoint,
  CommandSendError,
  type FailoverWrite,
  type FenceStamp,
  type Lease,
  type LockStore,
  type OutboxBatch,
  type Page,
  type TransactOutcome,
} from '../../lib/failover/ports.ts';
import { isExecutingProcessState, type ProcessInstance } from '../../lib/failover/rules.ts';
import { type CommandMessage, type FailoverRequest, FailoverRequestSchema } from '../../lib/messages.ts';
import { silentLog } from '../../lib/observability.ts';
import { type CommandQueue, MAX_COMMAND_BYTES } from '../../lib/queue/commands.ts';
import { OutboxCommandDelivery } from '../../lib/queue/outbox.ts';
import { type CommandStore, outboxId } from '../../lib/store/dynamodb/commands.ts';
import type { InstanceStore } from '../../lib/store/dynamodb/instances.ts';

const HOST = '10.0.0.1:5678';

type Hook = (
  writes: ReadonlyArray<FailoverWrite<ProcessInstance, CommandMessage>>,
) => TransactOutcome | 'commit-and-lose-response' | undefined;

/** An outbox record as the fake transaction writes it: the commands it lists, pending until marked. */
interface MemoryRecord {
  commandIds: string[];
  failedHost: string;
  pending: boolean;
}

class MemoryInstances implements InstanceStore {
  readonly items = new Map<string, ProcessInstance>();
  readonly commands = new Map<string, CommandMessage>();
  readonly outbox = new Map<string, MemoryRecord>();
  pagesRead = 0;
  hook: Hook | undefined;

  async pageByHost(host: string, limit: number, cursor?: string): Promise<Page<ProcessInstance>> {
    this.pagesRead += 1;
    const all = [...this.items.values()]
      .filter((i) => i.host === host)
      .sort((a, b) => a.id.localeCompare(b.id));
    const from = cursor === undefined ? all : all.filter((i) => i.id > cursor);
    const slice = from.slice(0, limit);
    const last = slice[slice.length - 1];
    return {
      items: slice.filter((i) => isExecutingProcessState(i.state)).map((i) => ({ ...i })),
      malformed: [],
      ...(from.length > limit && last ? { cursor: last.id } : {}),
    };
  }

  async getMany(ids: readonly string[]): Promise<Map<string, ProcessInstance>> {
    return new Map(
      ids.flatMap((id) => (this.items.has(id) ? [[id, { ...this.items.get(id) }] as const] : [])) as [
        string,
        ProcessInstance,
      ][],
    );
  }

  async failOver(
    writes: ReadonlyArray<FailoverWrite<ProcessInstance, CommandMessage>>,
    stamp: FenceStamp,
  ): Promise<TransactOutcome> {
    const hooked = this.hook?.(writes);
    if (hooked !== undefined && hooked !== 'commit-and-lose-response') return hooked;
    const failed = writes.filter(({ item, message }) => {
      const current = this.items.get(item.id);
      const fenceOk =
        current?.fence === undefined || current.fenceLock !== stamp.lockName || current.fence <= stamp.fence;
      return (
        current === undefined ||
        current.host !== stamp.host ||
        current.state !== item.state ||
        current.failoverCount !== item.failoverCount ||
        current.startTime !== item.startTime ||
        current.restartTime !== item.restartTime ||
        !fenceOk ||
        this.commands.has(message.id)
      );
    });
    if (failed.length > 0) {
      return {
        status: 'cancelled',
        conditionFailed: failed.map((w) => w.item.id),
        retryable: false,
        reasons: [],
      };
    }
    for (const { item, generation, message } of writes) {
      const { host: _removed, ...rest } = this.items.get(item.id) as ProcessInstance;
      this.items.set(item.id, {
        ...rest,
        lastHost: stamp.host,
        failoverCount: generation,
        fence: stamp.fence,
        fenceLock: stamp.lockName,
      });
      this.commands.set(message.id, message);
    }
    const id = outboxId(writes.map((w) => w.message));
    this.outbox.set(id, {
      commandIds: writes.map((w) => w.message.id),
      failedHost: stamp.host,
      pending: true,
    });
    if (hooked === 'commit-and-lose-response') {
      return { status: 'cancelled', conditionFailed: [], retryable: true, reasons: ['NetworkError'] };
    }
    return { status: 'committed', outboxId: id };
  }
}

/** The outbox over MemoryInstances' records, plus `leftovers`: pending batches of an earlier run. */
function memoryCommands(instances: MemoryInstances, leftovers: CommandMessage[]): CommandStore {
  const batchOf = (id: string, record: MemoryRecord): OutboxBatch => ({
    outboxId: id,
    commands: record.commandIds.flatMap((c) => instances.commands.get(c) ?? []),
  });
  return {
    pendingPage: async (filter) => ({
      batches: [
        ...leftovers
          .splice(0)
          .filter((c) => c.failedHost === filter.failedHost)
          .map((c) => ({ outboxId: c.id, commands: [c] })),
        ...[...instances.outbox]
          .filter(([, r]) => r.pending && r.failedHost === filter.failedHost)
          .map(([id, r]) => batchOf(id, r)),
      ],
      malformed: [],
    }),
    pendingRecordsOf: async (ids) =>
      [...instances.outbox]
        .filter(([, r]) => r.pending && r.commandIds.some((c) => ids.includes(c)))
        .map(([id, r]) => batchOf(id, r)),
    markEnqueued: async (id) => {
      const record = instances.outbox.get(id);
      if (record) record.pending = false;
    },
    keepPending: async (id, remaining) => {
      const record = instances.outbox.get(id);
      if (record?.pending) record.commandIds = [...remaining];
    },
    get: async () => undefined,
  };
}

class MemoryLocks implements LockStore {
  fence = 0;
  owner: string | undefined;
  expiresAt = 0;
  checkpoint: Checkpoint | undefined;

  async acquire(name: string, owner: string, leaseMs: number, now: number): Promise<AcquireResult> {
    if (this.owner !== undefined && this.expiresAt > now) {
      return { acquired: false, heldUntil: this.expiresAt, fence: this.fence };
    }
    this.fence += 1;
    this.owner = owner;
    this.expiresAt = now + leaseMs;
    return {
      acquired: true,
      lease: { name, owner, fence: this.fence, expiresAt: this.expiresAt },
      ...(this.checkpoint ? { checkpoint: this.checkpoint } : {}),
    };
  }

  async renew(lease: Lease, leaseMs: number, now: number): Promise<Lease> {
    return { ...lease, expiresAt: now + leaseMs };
  }

  async release(lease: Lease, checkpoint?: Checkpoint): Promise<boolean> {
    if (this.owner !== lease.owner || this.fence !== lease.fence) return false;
    this.owner = undefined;
    this.checkpoint = checkpoint;
    return true;
  }
}

function setup(n: number, overrides: Partial<ProcessInstance> = {}) {
  const instances = new MemoryInstances();
  for (let i = 0; i < n; i += 1) {
    const id = `i${String(i).padStart(4, '0')}`;
    instances.items.set(id, {
      id,
      host: HOST,
      state: 'RUNNING_EXECUTION',
      processDefinitionCode: 1,
      processDefinitionVersion: 1,
      executorId: 1,
      priority: 'MEDIUM',
      startTime: 1_000,
      ...overrides,
    });
  }
  const locks = new MemoryLocks();
  const sent: CommandMessage[] = [];
  const continuations: FailoverRequest[] = [];
  const pendingLeftovers: CommandMessage[] = [];
  const commands = memoryCommands(instances, pendingLeftovers);
  // Mutable, so that a test can make the queue refuse some commands.
  const queue: CommandQueue & { refuse?: (m: CommandMessage) => boolean } = {
    send: async (messages) => {
      const refused = messages.filter((m) => queue.refuse?.(m) === true);
      const accepted = messages.filter((m) => !refused.includes(m));
      sent.push(...accepted);
      return {
        sent: accepted.map((m) => m.id),
        failed: refused.map((m) => ({ id: m.id, reason: 'refused' })),
      };
    },
  };
  const deps: FailoverDeps = {
    instances,
    tasks: {
      pageByHost: async () => ({ items: [], malformed: [] }),
      getMany: async () => new Map(),
      failOver: async () => ({ status: 'committed', outboxId: 'outbox/none' }),
    },
    delivery: new OutboxCommandDelivery({ commands, queue }),
    maxCommandBytes: MAX_COMMAND_BYTES,
    locks,
    liveness: { liveIncarnation: async () => null },
    requestQueue: {
      send: async (requests) => {
        continuations.push(...requests.map((r) => FailoverRequestSchema.parse(r)));
      },
    },
    clock: { now: () => 10_000 },
    log: silentLog,
    settings: { leaseMs: 30_000, batchSize: 5, concurrency: 2 },
  };
  return { instances, locks, sent, continuations, pendingLeftovers, deps, queue };
}

const REQUEST: FailoverRequest = FailoverRequestSchema.parse({
  kind: 'NodeRemoved',
  nodeType: 'master',
  host: HOST,
  czxid: '1',
  startupTime: 500,
  observedAt: 20_000,
  source: 'watcher',
});

/** A command an earlier run of HOST wrote and never got onto the queue. */
const LEFTOVER: CommandMessage = {
  type: 'RecoveryCommand',
  id: 'recover/old/1',
  commandType: 'RECOVER_TOLERANCE_FAULT_PROCESS',
  processInstanceId: 'old',
  processDefinitionCode: 1,
  processDefinitionVersion: 1,
  executorId: 1,
  priority: 'MEDIUM',
  commandParam: '{"ProcessInstanceId":"old"}',
  failedHost: HOST,
  generation: 1,
  fence: 1,
  createdAt: 1,
};

const unlimited: Budget = { shouldStop: () => false };

function sentCounts(sent: readonly CommandMessage[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of sent) counts.set(m.id, (counts.get(m.id) ?? 0) + 1);
  return counts;
}

describe('failOverHost', () => {
  it('fails over every eligible instance across pages, sends each command once, releases the lock', async () => {
    // Arrange
    const { instances, locks, sent, deps } = setup(23);
    instances.items.set('i0005', { ...(instances.items.get('i0005') as ProcessInstance), state: 'SUCCESS' });

    // Act
    const outcome = await failOverHost(REQUEST, deps, unlimited);

    // Assert
    expect(outcome).toMatchObject({ status: 'done', stats: { failedOver: 22, commandsEnqueued: 22 } });
    expect(sent).toHaveLength(22);
    expect([...sentCounts(sent).values()].every((n) => n === 1)).toBe(true);
    expect(instances.items.get('i0005')?.host).toBe(HOST);
    expect(locks.owner).toBeUndefined();
    expect(locks.checkpoint).toBeUndefined();
  });

  it('a commit whose response was lost is recognised as its own write on retry, not dropped or duplicated', async () => {
    // Arrange: the first transaction commits, but the caller sees a transient error.
    const { instances, sent, deps } = setup(5);
    let calls = 0;
    instances.hook = () => (++calls === 1 ? 'commit-and-lose-response' : undefined);

    // Act
    const outcome = await failOverHost(REQUEST, deps, unlimited);

    // Assert: sent once each, and the record the lost commit wrote is marked.
    expect(outcome).toMatchObject({ status: 'done', stats: { failedOver: 5, commandsEnqueued: 5 } });
    expect(sent.map((m) => m.id).sort()).toEqual([...instances.commands.keys()].sort());
    expect([...instances.items.values()].every((i) => i.failoverCount === 1)).toBe(true);
    expect(instances.outbox.size).toBe(1);
    expect([...instances.outbox.values()].filter((r) => r.pending)).toEqual([]);
  });

  it('retries a transaction cancelled by a conflict', async () => {
    const { instances, sent, deps } = setup(5);
    let calls = 0;
    instances.hook = () =>
      ++calls <= 2
        ? { status: 'cancelled', conditionFailed: [], retryable: true, reasons: ['TransactionConflict'] }
        : undefined;

    const outcome = await failOverHost(REQUEST, deps, unlimited);

    expect(outcome).toMatchObject({ status: 'done', stats: { failedOver: 5, retries: 2 } });
    expect(sent).toHaveLength(5);
  });

  it('re-reads an item that changed since the page was read: still executing -> failed over with its new state', async () => {
    // Arrange: between the read and the write, i0001 goes to READY_PAUSE and i0002 finishes.
    const { instances, sent, deps } = setup(5);
    let first = true;
    instances.hook = () => {
      if (first) {
        first = false;
        const a = instances.items.get('i0001') as ProcessInstance;
        const b = instances.items.get('i0002') as ProcessInstance;
        instances.items.set('i0001', { ...a, state: 'READY_PAUSE' });
        instances.items.set('i0002', { ...b, state: 'SUCCESS' });
      }
      return undefined;
    };

    // Act
    const outcome = await failOverHost(REQUEST, deps, unlimited);

    // Assert
    expect(outcome).toMatchObject({
      status: 'done',
      stats: { failedOver: 4, skipped: { 'not-executing': 1 } },
    });
    expect(instances.items.get('i0001')).toMatchObject({ state: 'READY_PAUSE', failoverCount: 1 });
    expect(instances.items.get('i0002')).toMatchObject({ state: 'SUCCESS', host: HOST });
    expect(sent.map((m) => (m.type === 'RecoveryCommand' ? m.processInstanceId : '')).sort()).toEqual([
      'i0000',
      'i0001',
      'i0003',
      'i0004',
    ]);
  });

  it('splits a refused batch to find the culprit, and writes the others', async () => {
    const { instances, sent, deps } = setup(5);
    instances.hook = (writes) =>
      writes.some((w) => w.item.id === 'i0003')
        ? { status: 'invalid', reason: 'Item size too large' }
        : undefined;

    const outcome = await failOverHost(REQUEST, deps, unlimited);

    expect(outcome).toMatchObject({ status: 'done', stats: { failedOver: 4, skipped: { invalid: 1 } } });
    expect(instances.items.get('i0003')?.host).toBe(HOST);
    expect(sent).toHaveLength(4);
  });

  it('gives up after repeated transient cancellations and releases the lock at once', async () => {
    const { instances, locks, deps } = setup(5);
    instances.hook = () => ({
      status: 'cancelled',
      conditionFailed: [],
      retryable: true,
      reasons: ['ThrottlingError'],
    });

    await expect(failOverHost(REQUEST, deps, unlimited)).rejects.toBeInstanceOf(TransactionRetryError);

    expect(locks.owner).toBeUndefined();
  });

  it('stops between pages near the deadline, and the continuation resumes from the checkpoint', async () => {
    // Arrange: pages of 10 (batch 5 x concurrency 2); the first invocation may take one page only.
    const { instances, locks, sent, continuations, deps } = setup(35);
    let pages = 0;
    const onePage: Budget = { shouldStop: () => pages++ >= 1 };

    // Act
    const first = await failOverHost(REQUEST, deps, onePage);
    const readBySecond = instances.pagesRead;
    const second = await failOverHost(continuations[0] as FailoverRequest, deps, unlimited);

    // Assert
    expect(first).toMatchObject({ status: 'continued', stats: { failedOver: 10 } });
    expect(continuations[0]).toMatchObject({ ...REQUEST, source: 'continuation', attempt: 1 });
    expect(second).toMatchObject({ status: 'done', stats: { failedOver: 25 } });
    expect(instances.pagesRead - readBySecond).toBe(3);
    expect(sent).toHaveLength(35);
    expect(locks.checkpoint).toBeUndefined();
  });

  it('ignores a checkpoint left for another chain or attempt', async () => {
    const { instances, locks, deps } = setup(12);
    locks.checkpoint = { key: checkpointKey(REQUEST, 3), cursor: 'i0009' };

    const outcome = await failOverHost(REQUEST, deps, unlimited);

    expect(outcome).toMatchObject({ status: 'done', stats: { failedOver: 12 } });
    expect([...instances.items.values()].every((i) => i.host === undefined)).toBe(true);
  });

  it('reports a lock held by a live owner without waiting', async () => {
    const { locks, deps } = setup(3);
    await locks.acquire('x', 'other', 4_000, 10_000);

    const outcome = await failOverHost(REQUEST, deps, unlimited);

    expect(outcome).toEqual({ status: 'lock-held', retryAfterMs: 4_000, holderFence: 1 });
  });

  it('reads the liveness and the first page while it takes the lock, and drops them when the lock is held', async () => {
    const { instances, locks, sent, deps } = setup(3);
    await locks.acquire('x', 'other', 4_000, 10_000);
    const seenAtAcquire: Array<{ pagesRead: number; liveReads: number }> = [];
    let liveReads = 0;
    deps.liveness = {
      liveIncarnation: async () => {
        liveReads += 1;
        return null;
      },
    };
    const acquire = locks.acquire.bind(locks);
    locks.acquire = (...args) => {
      seenAtAcquire.push({ pagesRead: instances.pagesRead, liveReads });
      return acquire(...args);
    };

    const held = await failOverHost(REQUEST, deps, unlimited);
    locks.owner = undefined;
    const done = await failOverHost(REQUEST, deps, unlimited);

    expect(seenAtAcquire).toEqual([
      { pagesRead: 1, liveReads: 1 },
      { pagesRead: 2, liveReads: 2 },
    ]);
    // The second run wrote from the page it read while taking the lock: no page read after it.
    expect(instances.pagesRead).toBe(2);
    expect(held).toMatchObject({ status: 'lock-held' });
    expect(done).toMatchObject({ status: 'done', stats: { failedOver: 3, pages: 1 } });
    expect(sent).toHaveLength(3);
  });

  it('re-sends commands an earlier run of this host left pending, alongside its own', async () => {
    const { sent, pendingLeftovers, deps } = setup(2);
    pendingLeftovers.push(LEFTOVER);

    const outcome = await failOverHost(REQUEST, deps, unlimited);

    expect(outcome).toMatchObject({ status: 'done', stats: { failedOver: 2, commandsEnqueued: 3 } });
    expect(sent).toContainEqual(LEFTOVER);
    expect(sent).toHaveLength(3);
  });

  it('fails the run when a leftover command cannot be sent, its own commands sent and the lock released', async () => {
    const { locks, sent, pendingLeftovers, deps, queue } = setup(2);
    pendingLeftovers.push(LEFTOVER);
    queue.refuse = (m) => m.id === 'recover/old/1';

    await expect(failOverHost(REQUEST, deps, unlimited)).rejects.toBeInstanceOf(CommandSendError);

    expect(sent.map((m) => m.id).sort()).toEqual(['recover/i0000/1', 'recover/i0001/1']);
    expect(locks.owner).toBeUndefined();
  });

  it.each([
    // The default: at most the concurrency's worth of deliveries waiting, then the transactions wait.
    { backlog: undefined, committedWhileHeld: 4 },
    // A delivery that asks for a longer backlog (the DolphinScheduler journal) never holds writes back here.
    { backlog: 64, committedWhileHeld: 8 },
  ])(
    'holds the transactions back while deliveries lag beyond the backlog ($backlog)',
    async ({ backlog, committedWhileHeld }) => {
      // Arrange: 8 batches of 5; no delivery ends until the test lets them.
      const { deps } = setup(40);
      const held: Array<() => void> = [];
      deps.delivery = {
        ...(backlog === undefined ? {} : { backlog }),
        deliver: (batch: OutboxBatch) =>
          new Promise<number>((resolve) => held.push(() => resolve(batch.commands.length))),
        deliverPending: async () => ({ enqueued: 0, failed: [] }),
      };

      // Act
      const run = failOverHost(REQUEST, deps, unlimited);
      for (let i = 0; i < 50; i += 1) await new Promise((resolve) => setImmediate(resolve));
      const committed = held.length;
      const release = async () => {
        while (held.length > 0) {
          held.shift()?.();
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      await Promise.all([run, release()]);

      // Assert
      expect(committed).toBe(committedWhileHeld);
      await expect(run).resolves.toMatchObject({ status: 'done', stats: { failedOver: 40 } });
    },
  );
});
