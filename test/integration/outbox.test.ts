// The outbox on DynamoDB Local and the SQS emulator: one record per failover transaction, found through the
// sparse `pending` index, marked once its commands are on the queue; partial sends, commands of an earlier
// build (pending on the command itself), and records that cannot be delivered.
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CommandSendError,
  type FenceStamp,
  failoverLockName,
  type OutboxBatch,
} from '../../lib/failover/ports.ts';
import { buildRecoveryCommand, type ProcessInstance } from '../../lib/failover/rules.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import type { CommandMessage } from '../../lib/messages.ts';
import { type CommandQueue, SqsCommandQueue } from '../../lib/queue/commands.ts';
import { deliverCommands, deliverPendingCommands } from '../../lib/queue/outbox.ts';
import { marshalFlat } from '../../lib/store/dynamodb/attributes.ts';
import { DynamoCommandStore } from '../../lib/store/dynamodb/commands.ts';
import { DynamoInstanceStore } from '../../lib/store/dynamodb/instances.ts';
import { commandItems, instanceItem, putInstances, QueueTally, uniqueHost } from './failover-support.ts';

let stack: LocalStack;
let store: DynamoCommandStore;
let instances: DynamoInstanceStore;
let queue: SqsCommandQueue;
let tally: QueueTally;

beforeAll(async () => {
  stack = await startLocalStack();
  store = new DynamoCommandStore(stack.clients.dynamodb, stack.info.tables.commands);
  instances = new DynamoInstanceStore(stack.clients.dynamodb, stack.info.tables);
  queue = new SqsCommandQueue(stack.clients.sqs, stack.info.queues.commands);
  tally = new QueueTally(stack, stack.info.queues.commands);
});

afterAll(async () => {
  await stack?.stop();
});

/** `n` instances of a fresh host failed over in one transaction by the real store: its commands and record. */
async function failOverOne(
  n: number,
): Promise<{ host: string; outboxId: string; commands: CommandMessage[] }> {
  const host = uniqueHost();
  const seeded: ProcessInstance[] = Array.from({ length: n }, (_, i) =>
    instanceItem({ id: `${host.replaceAll(/[.:]/g, '-')}-${i}`, host }),
  );
  await putInstances(stack, seeded);
  const stamp: FenceStamp = { host, fence: 1, lockName: failoverLockName('master', host), now: Date.now() };
  const writes = seeded.map((item) => {
    const message = buildRecoveryCommand(item, { fence: 1, now: stamp.now, deadHost: host });
    return { item, generation: message.generation, message };
  });
  const outcome = await instances.failOver(writes, stamp);
  if (outcome.status !== 'committed') throw new Error(`transaction ${outcome.status}`);
  if (outcome.outboxId === undefined) throw new Error('transaction wrote no outbox record');
  return { host, outboxId: outcome.outboxId, commands: writes.map((w) => w.message) };
}

async function pendingOf(host: string): Promise<OutboxBatch[]> {
  const batches: OutboxBatch[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.pendingPage({ failedHost: host }, 10, cursor);
    batches.push(...page.batches);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return batches;
}

describe('the outbox', () => {
  it('a failover transaction writes one pending record listing its commands; marking it takes it out of the index', async () => {
    // Arrange
    const { host, outboxId, commands } = await failOverOne(3);

    // Assert: the record, the commands' state, and no outbox state on the command items themselves.
    expect(outboxId).toBe(`outbox/${commands[0]?.id}`);
    expect(await pendingOf(host)).toEqual([{ outboxId, commands, unsendable: [] }]);
    expect(await store.get(commands[1]?.id ?? '')).toEqual({ command: commands[1], pending: true });
    const items = await commandItems(
      stack,
      commands.map((c) => c.id),
    );
    expect([...items.values()].map((i) => [i.outbox, i.pending, i.enqueuedAt])).toEqual(
      commands.map(() => [outboxId, undefined, undefined]),
    );

    // Act
    const enqueued = await deliverCommands({ commands: store, queue }, { outboxId, commands }, () => 1_234);

    // Assert
    expect(enqueued).toBe(3);
    expect(await pendingOf(host)).toEqual([]);
    expect(await store.get(commands[2]?.id ?? '')).toEqual({
      command: commands[2],
      pending: false,
      enqueuedAt: 1_234,
    });
    await tally.drain();
    expect(commands.map((c) => tally.counts.get(c.id))).toEqual([1, 1, 1]);
  });

  it('a partial send keeps the record pending with only the unsent commands, which a re-send delivers', async () => {
    // Arrange: the queue refuses the second command once.
    const { host, outboxId, commands } = await failOverOne(3);
    const refused = commands[1]?.id;
    const flaky: CommandQueue = {
      send: async (messages) => {
        const out = await queue.send(messages.filter((m) => m.id !== refused));
        return { sent: out.sent, failed: [...out.failed, { id: refused ?? '', reason: 'refused' }] };
      },
    };

    // Act
    const first = deliverCommands({ commands: store, queue: flaky }, { outboxId, commands }, () => 1);

    // Assert
    await expect(first).rejects.toBeInstanceOf(CommandSendError);
    expect(await pendingOf(host)).toEqual([{ outboxId, commands: [commands[1]], unsendable: [] }]);
    expect((await store.get(commands[0]?.id ?? ''))?.pending).toBe(false);
    expect((await store.get(refused ?? ''))?.pending).toBe(true);

    // Act: the re-send of the sweep or of the next run.
    const resent = await deliverPendingCommands({ commands: store, queue }, { failedHost: host }, () => 2);

    // Assert
    expect(resent).toEqual({ enqueued: 1, failed: [], malformed: 0 });
    expect(await pendingOf(host)).toEqual([]);
    await tally.drain();
    expect(commands.map((c) => tally.counts.get(c.id))).toEqual([1, 1, 1]);
  });

  it('finds the pending record of a command by the command, without the index (a lost commit response)', async () => {
    const { outboxId, commands } = await failOverOne(2);

    expect(await store.pendingRecordsOf([commands[1]?.id ?? ''])).toEqual([
      { outboxId, commands, unsendable: [] },
    ]);
    await deliverCommands({ commands: store, queue }, { commands: [commands[0] as CommandMessage] }, () => 3);
    expect(await store.pendingRecordsOf(commands.map((c) => c.id))).toEqual([]);
    await tally.drain();
    expect(commands.map((c) => tally.counts.get(c.id))).toEqual([1, 1]);
  });

  it("delivers and marks an earlier build's pending command, which carries its own outbox state", async () => {
    // Arrange
    const host = uniqueHost();
    const legacy = buildRecoveryCommand(
      instanceItem({ id: `legacy-${host.replaceAll(/[.:]/g, '-')}`, host }),
      {
        fence: 1,
        now: 5,
        deadHost: host,
      },
    );
    await stack.clients.dynamodb.send(
      new PutItemCommand({
        TableName: stack.info.tables.commands,
        Item: { ...marshalFlat(legacy), pending: { S: '1' } },
      }),
    );
    expect(await store.get(legacy.id)).toEqual({ command: legacy, pending: true });

    // Act
    const result = await deliverPendingCommands({ commands: store, queue }, { failedHost: host }, () => 6);

    // Assert
    expect(result).toEqual({ enqueued: 1, failed: [], malformed: 0 });
    expect(await store.get(legacy.id)).toEqual({ command: legacy, pending: false, enqueuedAt: 6 });
    await tally.drain();
    expect(tally.counts.get(legacy.id)).toBe(1);
  });

  it('never sends what a record lists but cannot be read as a command, and keeps it pending for an operator', async () => {
    // Arrange: a record whose commands include one that is not a command, and a record without a list.
    const { host, outboxId, commands } = await failOverOne(2);
    const broken = commands[0] as CommandMessage;
    await stack.clients.dynamodb.send(
      new PutItemCommand({
        TableName: stack.info.tables.commands,
        Item: { id: { S: broken.id }, outbox: { S: outboxId }, note: { S: 'hand-edited' } },
      }),
    );
    await stack.clients.dynamodb.send(
      new PutItemCommand({
        TableName: stack.info.tables.commands,
        Item: {
          id: { S: `outbox/${host}/listless` },
          pending: { S: '1' },
          failedHost: { S: host },
          type: { S: 'RecoveryCommand' },
          createdAt: { N: '1' },
        },
      }),
    );

    // Act
    const result = await deliverPendingCommands({ commands: store, queue }, { failedHost: host }, () => 7);

    // Assert: the good command sent; the record keeps only the broken one; the listless one is reported.
    expect(result).toEqual({ enqueued: 1, failed: [], malformed: 2 });
    const page = await store.pendingPage({ failedHost: host }, 10);
    expect(page.batches).toEqual([{ outboxId, commands: [], unsendable: [broken.id] }]);
    expect(page.malformed.sort()).toEqual([broken.id, `outbox/${host}/listless`].sort());
    await tally.drain();
    expect(tally.counts.get(commands[1]?.id ?? '')).toBe(1);
    expect(tally.counts.get(broken.id)).toBeUndefined();
  });
});
