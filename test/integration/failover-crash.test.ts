// Crashes, zombies and the outbox: the failover function killed at every failpoint, a holder whose lease
// expired while it stalled, a crash between the transaction and the queue send.
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failoverLockName } from '../../lib/failover/ports.ts';
import { buildRecoveryCommand, failoverGeneration } from '../../lib/failover/rules.ts';
import { FunctionCrashedError, type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import type { FailoverRequest } from '../../lib/messages.ts';
import { SqsCommandQueue } from '../../lib/queue/commands.ts';
import { resendPendingCommands } from '../../lib/queue/outbox.ts';
import { DynamoCommandStore } from '../../lib/store/dynamodb/commands.ts';
import { DynamoInstanceStore } from '../../lib/store/dynamodb/instances.ts';
import { DynamoLockStore } from '../../lib/store/dynamodb/locks.ts';
import {
  commandItems,
  getInstance,
  pendingCommandIds,
  QueueTally,
  request,
  seedInstances,
  sqsEvent,
  uniqueHost,
  waitFor,
} from './failover-support.ts';

const LEASE_MS = 1_000;

let stack: LocalStack;
let healthy: LocalRuntime;
let tally: QueueTally;

/** A runtime whose failover function carries these failpoints (direct invocations only). */
function faultyRuntime(failpoints: string, extraEnv: Record<string, string> = {}): LocalRuntime {
  return startLocalRuntime(stack, {
    functions: ['failover'],
    eventSources: false,
    maxContainers: 1,
    env: {
      failover: {
        ZKF_FAILPOINTS: failpoints,
        LOCK_LEASE_MS: String(LEASE_MS),
        FAILOVER_BATCH_SIZE: '10',
        FAILOVER_CONCURRENCY: '3',
        ...extraEnv,
      },
    },
  });
}

/** Invokes the healthy function with the event until no record fails (a held lock expires meanwhile). */
async function retryUntilDone(req: FailoverRequest): Promise<number> {
  let invocations = 0;
  await waitFor(
    'a successful retry',
    async () => {
      invocations += 1;
      const out = (await healthy.invoke('failover', sqsEvent([req]))) as SQSBatchResponse;
      return out.batchItemFailures.length === 0;
    },
    20_000,
    250,
  );
  return invocations;
}

/** Every instance failed over exactly once, with exactly one command, on the queue exactly once. */
async function expectExactlyOnce(ids: readonly string[]): Promise<void> {
  await tally.drain();
  for (const id of ids) {
    const instance = await getInstance(stack, id);
    expect(instance?.host, id).toBeUndefined();
    expect(instance?.failoverCount, id).toBe(1);
  }
  const first = await commandItems(
    stack,
    ids.map((id) => `recover/${id}/1`),
  );
  const second = await commandItems(
    stack,
    ids.map((id) => `recover/${id}/2`),
  );
  expect(first.size).toBe(ids.length);
  expect(second.size).toBe(0);
  const counts = tally.recoveryCountsFor(ids);
  expect(counts.size).toBe(ids.length);
  expect([...counts.entries()].filter(([, n]) => n !== 1)).toEqual([]);
  const pending = await pendingCommandIds(stack);
  expect(ids.filter((id) => pending.has(`recover/${id}/1`))).toEqual([]);
}

beforeAll(async () => {
  stack = await startLocalStack();
  healthy = startLocalRuntime(stack, {
    functions: ['failover'],
    eventSources: false,
    env: {
      failover: { LOCK_LEASE_MS: String(LEASE_MS), FAILOVER_BATCH_SIZE: '10', FAILOVER_CONCURRENCY: '3' },
    },
  });
  tally = new QueueTally(stack, stack.info.queues.commands);
});

afterAll(async () => {
  await healthy?.stop();
  await stack?.stop();
});

describe('a function killed mid-run', () => {
  it.each([
    'after-transaction=1:exit',
    'after-transaction=4:exit',
    'after-transaction=9:exit',
    'after-lock=1:exit',
    'after-page-read=2:exit',
    'before-outbox-send=2:exit',
    'after-outbox-send=1:exit',
    'before-mark-enqueued=3:exit',
    'before-release=1:exit',
  ])('%s: the retry completes with no duplicate and no missing command', async (failpoints) => {
    // Arrange: 95 instances = 10 transactions of up to 10, pages of 30.
    const host = uniqueHost();
    const ids = await seedInstances(stack, host, 95);
    const req = request(host);
    const faulty = faultyRuntime(failpoints);

    // Act
    try {
      await expect(faulty.invoke('failover', sqsEvent([req]))).rejects.toBeInstanceOf(FunctionCrashedError);
    } finally {
      await faulty.stop();
    }
    await retryUntilDone(req);

    // Assert
    await expectExactlyOnce(ids);
  });

  it('a failing (not killed) run releases the lock at once and its retry resumes', async () => {
    // Arrange
    const host = uniqueHost();
    const ids = await seedInstances(stack, host, 95);
    const req = request(host);
    const faulty = faultyRuntime('after-transaction=5:throw');

    // Act
    let first: SQSBatchResponse;
    try {
      first = (await faulty.invoke('failover', sqsEvent([req]))) as SQSBatchResponse;
    } finally {
      await faulty.stop();
    }
    const retries = await retryUntilDone(req);

    // Assert: the record failed, and the retry did not have to wait for the lease.
    expect(first.batchItemFailures).toHaveLength(1);
    expect(retries).toBe(1);
    await expectExactlyOnce(ids);
  });
});

describe('fencing', () => {
  it('a zombie whose lease was taken over writes nothing', async () => {
    // Arrange: the zombie stalls 6 s after reading its first page; its 1 s lease expires meanwhile.
    const host = uniqueHost();
    const ids = await seedInstances(stack, host, 40);
    const req = request(host);
    const zombie = faultyRuntime('after-page-read=1:delay-6000');
    try {
      await zombie.invoke('failover', { Records: [] }); // warm
      const zombieRun = zombie.invoke('failover', sqsEvent([req])) as Promise<SQSBatchResponse>;
      await new Promise((r) => setTimeout(r, 1_500));

      // Act: a healthy function takes the expired lock over and does the work; then the zombie wakes.
      await retryUntilDone(req);
      const zombieResult = await zombieRun;

      // Assert: the zombie's record failed (lock lost), every write carries the newer fence.
      expect(zombieResult.batchItemFailures).toHaveLength(1);
      const fences = new Set<number | undefined>();
      for (const id of ids) fences.add((await getInstance(stack, id))?.fence);
      expect(fences.size).toBe(1);
      expect([...fences][0]).toBeGreaterThanOrEqual(2);
      await expectExactlyOnce(ids);
    } finally {
      await zombie.stop();
    }
  });

  it('an item written under a newer fence of the same lock refuses a stale holder', async () => {
    // Arrange: fence 2 was granted after fence 1; the item carries fence 2 and still matches otherwise.
    const host = uniqueHost();
    const [id = ''] = await seedInstances(stack, host, 1, {
      fence: 2,
      fenceLock: failoverLockName('master', host),
    });
    const store = new DynamoInstanceStore(stack.clients.dynamodb, {
      instances: stack.info.tables.instances,
      commands: stack.info.tables.commands,
    });
    const item = await getInstance(stack, id);
    if (!item) throw new Error('seed failed');
    const stamp = { host, fence: 1, lockName: failoverLockName('master', host), now: Date.now() };
    const message = buildRecoveryCommand(item, { fence: 1, now: stamp.now, deadHost: host });

    // Act
    const outcome = await store.failOver([{ item, generation: failoverGeneration(item), message }], stamp);

    // Assert
    expect(outcome).toMatchObject({ status: 'cancelled', conditionFailed: [id] });
    expect(await getInstance(stack, id)).toEqual(item);
    expect((await commandItems(stack, [message.id])).size).toBe(0);
  });

  it('a stale holder can neither renew nor release the lock', async () => {
    // Arrange
    const locks = new DynamoLockStore(stack.clients.dynamodb, stack.info.tables.locks);
    const name = failoverLockName('worker', uniqueHost());
    const stale = await locks.acquire(name, 'zombie', 50, Date.now());
    await new Promise((r) => setTimeout(r, 80));
    const fresh = await locks.acquire(name, 'successor', 10_000, Date.now());
    if (!stale.acquired || !fresh.acquired) throw new Error('acquire failed');

    // Act / Assert
    expect(fresh.lease.fence).toBe(stale.lease.fence + 1);
    await expect(locks.renew(stale.lease, 10_000, Date.now())).rejects.toMatchObject({
      name: 'LockLostError',
    });
    expect(await locks.release(stale.lease)).toBe(false);
    expect(await locks.acquire(name, 'third', 10_000, Date.now())).toMatchObject({ acquired: false });
    expect(await locks.release(fresh.lease)).toBe(true);
    expect(await locks.acquire(name, 'third', 10_000, Date.now())).toMatchObject({
      acquired: true,
      lease: { fence: stale.lease.fence + 2 },
    });
  });
});

describe('the outbox', () => {
  it('a crash between the transaction and the send: the sweep re-sends the pending commands', async () => {
    // Arrange: the run dies before its first send; nobody retries the request.
    const host = uniqueHost();
    const ids = await seedInstances(stack, host, 25);
    const faulty = faultyRuntime('before-outbox-send=1:exit');
    try {
      await expect(faulty.invoke('failover', sqsEvent([request(host)]))).rejects.toBeInstanceOf(
        FunctionCrashedError,
      );
    } finally {
      await faulty.stop();
    }
    const pendingBefore = await pendingCommandIds(stack);
    const written = ids.filter((id) => pendingBefore.has(`recover/${id}/1`));
    expect(written.length).toBeGreaterThan(0);

    // Act
    const result = await resendPendingCommands({
      commands: new DynamoCommandStore(stack.clients.dynamodb, stack.info.tables.commands),
      queue: new SqsCommandQueue(stack.clients.sqs, stack.info.queues.commands),
      now: Date.now(),
      olderThanMs: 0,
    });

    // Assert
    expect(result.resent).toBeGreaterThanOrEqual(written.length);
    await tally.drain();
    const counts = tally.recoveryCountsFor(written);
    expect(counts.size).toBe(written.length);
    const pendingAfter = await pendingCommandIds(stack);
    expect(written.filter((id) => pendingAfter.has(`recover/${id}/1`))).toEqual([]);
  });

  it('the sweep leaves commands younger than olderThanMs to the run that wrote them', async () => {
    // Arrange
    const host = uniqueHost();
    const ids = await seedInstances(stack, host, 5);
    const faulty = faultyRuntime('before-outbox-send=1:exit');
    try {
      await expect(faulty.invoke('failover', sqsEvent([request(host)]))).rejects.toBeInstanceOf(
        FunctionCrashedError,
      );
    } finally {
      await faulty.stop();
    }

    // Act
    const result = await resendPendingCommands({
      commands: new DynamoCommandStore(stack.clients.dynamodb, stack.info.tables.commands),
      queue: new SqsCommandQueue(stack.clients.sqs, stack.info.queues.commands),
      now: Date.now(),
      olderThanMs: 60_000,
    });

    // Assert: nothing re-sent, still pending; then the request's retry delivers them.
    expect(result.resent).toBe(0);
    const pending = await pendingCommandIds(stack);
    expect(ids.every((id) => pending.has(`recover/${id}/1`))).toBe(true);
    await retryUntilDone(request(host));
    await expectExactlyOnce(ids);
  });
});

describe('the continuation checkpoint', () => {
  it('is handed from one holder to the next and dropped by a plain release', async () => {
    // Arrange
    const locks = new DynamoLockStore(stack.clients.dynamodb, stack.info.tables.locks);
    const name = failoverLockName('master', uniqueHost());
    const first = await locks.acquire(name, 'a', 10_000, Date.now());
    if (!first.acquired) throw new Error('acquire failed');

    // Act
    await locks.release(first.lease, { key: 'chain/1', cursor: '{"id":{"S":"x"}}' });
    const second = await locks.acquire(name, 'b', 10_000, Date.now());
    if (!second.acquired) throw new Error('acquire failed');
    await locks.release(second.lease);
    const third = await locks.acquire(name, 'c', 10_000, Date.now());

    // Assert
    expect(second.checkpoint).toEqual({ key: 'chain/1', cursor: '{"id":{"S":"x"}}' });
    expect(third).toMatchObject({ acquired: true, lease: { fence: first.lease.fence + 2 } });
    expect(third.acquired && third.checkpoint).toBeUndefined();
  });
});
