// The failover function end to end through the local Lambda runtime: SQS event source with partial batch
// responses, DynamoDB Local, the SQS emulator. Rules F1-F5, duplicates, concurrency, poison messages.
import { randomUUID } from 'node:crypto';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failoverLockName } from '../../lib/failover/ports.ts';
import { EXECUTING_PROCESS_STATES, TASK_FAILOVER_STATES } from '../../lib/failover/rules.ts';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { type FailoverRequest, failoverRequestGroupId } from '../../lib/messages.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { DynamoCommandStore } from '../../lib/store/dynamodb/commands.ts';
import { DynamoLockStore } from '../../lib/store/dynamodb/locks.ts';
import {
  commandItems,
  getInstance,
  getTask,
  instanceItem,
  putInstances,
  putMirror,
  putTasks,
  QueueTally,
  request,
  seedInstances,
  sqsEvent,
  T0,
  uniqueHost,
  waitFor,
} from './failover-support.ts';

let stack: LocalStack;
let runtime: LocalRuntime;
let tally: QueueTally;
let requests: SqsFailoverRequestQueue;
const logs: Array<Record<string, unknown>> = [];

function captureLog(_fn: string, line: string): void {
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed && typeof parsed === 'object') logs.push(parsed as Record<string, unknown>);
  } catch {
    // not a structured line
  }
}

const doneLogs = (host: string) => logs.filter((l) => l.message === 'failover done' && l.host === host);

async function failOverThroughQueue(req: FailoverRequest, runs = 1): Promise<void> {
  const before = doneLogs(req.host).length;
  await requests.send([req]);
  await waitFor(`failover of ${req.host}`, () => doneLogs(req.host).length >= before + runs, 30_000);
}

beforeAll(async () => {
  // A long visibility timeout: a retry that comes sooner proves the function shortened it.
  stack = await startLocalStack({ queueOverrides: { FailoverQueue: { VisibilityTimeout: '30' } } });
  runtime = startLocalRuntime(stack, {
    functions: ['failover'],
    env: { failover: { LOCK_LEASE_MS: '3000' } },
    sqsConcurrency: 2,
    onLog: captureLog,
  });
  tally = new QueueTally(stack, stack.info.queues.commands);
  requests = new SqsFailoverRequestQueue(stack.clients.sqs, stack.info.queues.failover);
});

afterAll(async () => {
  await runtime?.stop();
  await stack?.stop();
});

describe('master failover (F1-F4)', () => {
  it('fails over exactly the executing instances of the exact host, one recovery command each', async () => {
    // Arrange
    const host = uniqueHost();
    const superstring = `1${host}`; // 10.x.y.z:5678 -> 110.x.y.z:5678, a different server
    const p = randomUUID().slice(0, 8);
    const executing = EXECUTING_PROCESS_STATES.map((state) =>
      instanceItem({ id: `${p}-${state}`, host, state, commandParam: '{"StartParams":{"k":"v"},"x":1}' }),
    );
    const finished = ['SUCCESS', 'FAILURE', 'PAUSE', 'STOP', 'KILL', 'NEED_FAULT_TOLERANCE'].map((state) =>
      instanceItem({ id: `${p}-${state}`, host, state }),
    );
    const unowned = instanceItem({ id: `${p}-unowned` });
    const otherHost = instanceItem({ id: `${p}-other`, host: superstring });
    await putInstances(stack, [...executing, ...finished, unowned, otherHost]);

    // Act
    await failOverThroughQueue(request(host));
    await tally.drain();

    // Assert
    for (const original of executing) {
      const after = await getInstance(stack, original.id);
      expect(after?.host, original.state).toBeUndefined();
      expect(after).toMatchObject({ state: original.state, lastHost: host, failoverCount: 1 });
    }
    for (const untouched of [...finished, unowned, otherHost]) {
      expect(await getInstance(stack, untouched.id)).toEqual(untouched);
    }
    const counts = tally.recoveryCountsFor([...executing, ...finished, unowned, otherHost].map((i) => i.id));
    expect(new Set(counts.keys())).toEqual(new Set(executing.map((i) => i.id)));
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    const command = tally.messages.get(`recover/${p}-DELAY_EXECUTION/1`);
    expect(command).toMatchObject({
      type: 'RecoveryCommand',
      commandType: 'RECOVER_TOLERANCE_FAULT_PROCESS',
      processInstanceId: `${p}-DELAY_EXECUTION`,
      processDefinitionCode: 9_876_543_210,
      processDefinitionVersion: 3,
      executorId: 7,
      priority: 'MEDIUM',
      failedHost: host,
      generation: 1,
    });
    expect(JSON.parse(command?.type === 'RecoveryCommand' ? command.commandParam : '{}')).toEqual({
      ProcessInstanceId: `${p}-DELAY_EXECUTION`,
      StartParams: { k: 'v' },
    });
    const stored = await commandItems(stack, [`recover/${p}-READY_STOP/1`]);
    expect(stored.get(`recover/${p}-READY_STOP/1`)).toMatchObject({
      failedHost: host,
      fence: expect.any(Number),
    });
    // Marked through its transaction's outbox record, not on the command item.
    expect(stored.get(`recover/${p}-READY_STOP/1`)?.pending).toBeUndefined();
    const state = await new DynamoCommandStore(stack.clients.dynamodb, stack.info.tables.commands).get(
      `recover/${p}-READY_STOP/1`,
    );
    expect(state).toMatchObject({ pending: false, enqueuedAt: expect.any(Number) });
  });

  it('leaves the instances of a restarted host that belong to its new incarnation (F3)', async () => {
    // Arrange: the host came back at `restartedAt`; the mirror shows the new incarnation.
    const host = uniqueHost();
    const restartedAt = T0 + 100_000;
    await putMirror(stack, 'master', host, { alive: true, startupTime: restartedAt, czxid: '999' });
    const p = randomUUID().slice(0, 8);
    const old = instanceItem({ id: `${p}-old`, host, startTime: restartedAt - 1 });
    const startedAtRestart = instanceItem({ id: `${p}-at`, host, startTime: restartedAt });
    const startedAfter = instanceItem({ id: `${p}-after`, host, startTime: restartedAt + 5 });
    const restartedAfter = instanceItem({
      id: `${p}-restarted`,
      host,
      startTime: restartedAt - 60_000,
      restartTime: restartedAt + 1,
    });
    await putInstances(stack, [old, startedAtRestart, startedAfter, restartedAfter]);

    // Act
    await failOverThroughQueue(request(host, { startupTime: T0 }));
    await tally.drain();

    // Assert
    expect((await getInstance(stack, old.id))?.host).toBeUndefined();
    for (const kept of [startedAtRestart, startedAfter, restartedAfter]) {
      expect(await getInstance(stack, kept.id)).toEqual(kept);
    }
    expect([
      ...tally.recoveryCountsFor([old.id, startedAtRestart.id, startedAfter.id, restartedAfter.id]),
    ]).toEqual([[old.id, 1]]);
  });

  it('fails over every matching instance of a host that is not registered, but none started after the observation', async () => {
    // Arrange: the mirror says the host is gone; one instance started after the removal was observed
    // (it can only belong to an incarnation the mirror has not caught up with).
    const host = uniqueHost();
    await putMirror(stack, 'master', host, { alive: false, startupTime: T0 - 1 });
    const observedAt = T0 + 50_000;
    const p = randomUUID().slice(0, 8);
    const before = instanceItem({ id: `${p}-before`, host, startTime: observedAt - 1 });
    const after = instanceItem({ id: `${p}-after`, host, startTime: observedAt });

    await putInstances(stack, [before, after]);

    // Act
    await failOverThroughQueue(request(host, { observedAt }));
    await tally.drain();

    // Assert
    expect((await getInstance(stack, before.id))?.host).toBeUndefined();
    expect(await getInstance(stack, after.id)).toEqual(after);
    expect([...tally.recoveryCountsFor([before.id, after.id])]).toEqual([[before.id, 1]]);
  });
});

describe('worker failover (F5)', () => {
  it('marks the executing tasks of the exact worker NEED_FAULT_TOLERANCE and notifies their workflows', async () => {
    // Arrange
    const worker = uniqueHost();
    const restartedAt = T0 + 100_000;
    await putMirror(stack, 'worker', worker, { alive: true, startupTime: restartedAt });
    const p = randomUUID().slice(0, 8);
    const base = { processInstanceId: `${p}-wf`, host: worker, submitTime: restartedAt - 1 };
    const executing = TASK_FAILOVER_STATES.map((state) => ({ ...base, id: `${p}-${state}`, state }));
    const others = ['SUCCESS', 'KILL', 'NEED_FAULT_TOLERANCE', 'FAILURE'].map((state) => ({
      ...base,
      id: `${p}-${state}`,
      state,
    }));
    const newIncarnation = { ...base, id: `${p}-new`, state: 'RUNNING_EXECUTION', submitTime: restartedAt };
    const otherWorker = { ...base, id: `${p}-other`, state: 'RUNNING_EXECUTION', host: `1${worker}` };
    await putTasks(stack, [...executing, ...others, newIncarnation, otherWorker]);

    // Act
    await failOverThroughQueue(request(worker, { nodeType: 'worker' }));
    await tally.drain();

    // Assert
    for (const task of executing) {
      expect(await getTask(stack, task.id)).toMatchObject({
        state: 'NEED_FAULT_TOLERANCE',
        host: worker,
        lastHost: worker,
        failoverCount: 1,
      });
    }
    for (const task of [...others, newIncarnation, otherWorker]) {
      expect(await getTask(stack, task.id)).toEqual(task);
    }
    const notices = [...tally.messages.values()].filter(
      (m) => m.type === 'TaskFailover' && m.processInstanceId === `${p}-wf`,
    );
    expect(notices.map((n) => (n.type === 'TaskFailover' ? n.taskInstanceId : '')).sort()).toEqual(
      executing.map((t) => t.id).sort(),
    );
    expect(notices.every((n) => tally.counts.get(n.id) === 1 && n.failedHost === worker)).toBe(true);
  });
});

describe('exactly once', () => {
  it.each([2, 10])('delivering the same request %i times yields one command per instance', async (copies) => {
    // Arrange
    const host = uniqueHost();
    const ids = await seedInstances(stack, host, 30);
    const req = request(host);

    // Act: the same body, with distinct deduplication ids (a redelivery after the 5-minute window)
    const before = doneLogs(host).length;
    for (let i = 0; i < copies; i += 10) {
      await stack.clients.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: stack.info.queues.failover,
          Entries: Array.from({ length: Math.min(10, copies - i) }, (_, j) => ({
            Id: String(j),
            MessageBody: JSON.stringify(req),
            MessageGroupId: failoverRequestGroupId(req),
            MessageDeduplicationId: randomUUID(),
          })),
        }),
      );
    }
    await waitFor('every copy processed', () => doneLogs(host).length >= before + copies, 45_000);
    await tally.drain();

    // Assert
    const counts = tally.recoveryCountsFor(ids);
    expect(counts.size).toBe(ids.length);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    const done = doneLogs(host).slice(before);
    expect(done.map((l) => l.failedOver)).toEqual([30, ...Array(copies - 1).fill(0)]);
    const secondGeneration = await commandItems(
      stack,
      ids.map((id) => `recover/${id}/2`),
    );
    expect(secondGeneration.size).toBe(0);
  });

  it('two functions failing over the same host at once: one holds the lock, the other retries and finds nothing', async () => {
    // Arrange: a second runtime whose holder stalls right after taking the lock, two warm containers.
    const host = uniqueHost();
    const ids = await seedInstances(stack, host, 60);
    const slowLogs: Array<Record<string, unknown>> = [];
    const slow = startLocalRuntime(stack, {
      functions: ['failover'],
      eventSources: false,
      maxContainers: 2,
      env: { failover: { ZKF_FAILPOINTS: 'after-lock=1:delay-3000', LOCK_LEASE_MS: '10000' } },
      onLog: (_fn, line) => {
        try {
          slowLogs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not JSON
        }
      },
    });
    try {
      await Promise.all([slow.invoke('failover', { Records: [] }), slow.invoke('failover', { Records: [] })]);
      const first = sqsEvent([request(host, { source: 'watcher' })]);
      const second = sqsEvent([request(host, { source: 'operator' })]);

      // Act
      const [a, b] = (await Promise.all([
        slow.invoke('failover', first),
        slow.invoke('failover', second),
      ])) as [SQSBatchResponse, SQSBatchResponse];
      const failed = [a, b].filter((r) => r.batchItemFailures.length > 0);
      const retried = (await slow.invoke('failover', failed[0] === a ? first : second)) as SQSBatchResponse;
      await tally.drain();

      // Assert
      expect(failed).toHaveLength(1);
      expect(retried.batchItemFailures).toEqual([]);
      const done = slowLogs.filter((l) => l.message === 'failover done' && l.host === host);
      expect(done.map((l) => l.failedOver)).toEqual([60, 0]);
      const counts = tally.recoveryCountsFor(ids);
      expect(counts.size).toBe(60);
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
    } finally {
      await slow.stop();
    }
  });

  it('a held lock fails the record and brings its retry forward to the end of the lease', async () => {
    // Arrange: someone else holds the host's lock for 4 more seconds.
    const host = uniqueHost();
    const ids = await seedInstances(stack, host, 5);
    const locks = new DynamoLockStore(stack.clients.dynamodb, stack.info.tables.locks);
    const held = await locks.acquire(failoverLockName('master', host), 'someone-else', 4_000, Date.now());
    expect(held.acquired).toBe(true);
    const started = Date.now();

    // Act
    await failOverThroughQueue(request(host));

    // Assert: retried well before the queue's 30 s visibility timeout.
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
    expect(logs.some((l) => l.message === 'lock held by another run; retry later' && l.host === host)).toBe(
      true,
    );
    await tally.drain();
    expect(tally.recoveryCountsFor(ids).size).toBe(5);
  });
});

describe('poison messages', () => {
  it('moves malformed and oversized messages to the DLQ with a reason and processes the good ones', async () => {
    // Arrange
    const host = uniqueHost();
    const ids = await seedInstances(stack, host, 3);
    const good = request(host);
    const poison = [
      'not json at all',
      JSON.stringify({ ...good, host: '' }),
      JSON.stringify({ ...good, nodeType: 'coordinator' }),
      JSON.stringify({ ...good, extra: 'field' }),
      JSON.stringify({ ...good, pad: 'x'.repeat(20_000) }),
    ];
    const entries = [
      { body: JSON.stringify(good), group: failoverRequestGroupId(good) },
      ...poison.map((body, i) => ({ body, group: `poison-test-${i}` })),
    ];

    // Act
    const before = doneLogs(host).length;
    await stack.clients.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: stack.info.queues.failover,
        Entries: entries.map((e, i) => ({
          Id: String(i),
          MessageBody: e.body,
          MessageGroupId: e.group,
          MessageDeduplicationId: randomUUID(),
        })),
      }),
    );
    await waitFor('good request processed', () => doneLogs(host).length > before);
    const dead: Array<{ body: string; reason: string | undefined; source: string | undefined }> = [];
    await waitFor(
      'poison in the DLQ',
      async () => {
        const out = await stack.clients.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: stack.info.queues.failoverDlq,
            MaxNumberOfMessages: 10,
            MessageAttributeNames: ['All'],
          }),
        );
        for (const m of out.Messages ?? []) {
          dead.push({
            body: m.Body ?? '',
            reason: m.MessageAttributes?.RejectReason?.StringValue,
            source: m.MessageAttributes?.SourceMessageId?.StringValue,
          });
          // FIFO: the next message of the group is only handed out once this one is gone.
          await stack.clients.sqs.send(
            new DeleteMessageCommand({
              QueueUrl: stack.info.queues.failoverDlq,
              ReceiptHandle: m.ReceiptHandle,
            }),
          );
        }
        return dead.length >= poison.length;
      },
      20_000,
    );
    await tally.drain();

    // Assert
    expect(dead.map((d) => d.body).sort()).toEqual([...poison].sort());
    expect(dead.every((d) => typeof d.reason === 'string' && d.reason.length > 0 && d.source)).toBe(true);
    expect(dead.find((d) => d.body === 'not json at all')?.reason).toMatch(/not valid JSON/);
    expect(dead.find((d) => d.body.includes('xxxx'))?.reason).toMatch(/exceeds/);
    expect(tally.recoveryCountsFor(ids).size).toBe(3);
    expect(logs.filter((l) => l.message === 'poison message rejected').length).toBeGreaterThanOrEqual(
      poison.length,
    );
  });
});
