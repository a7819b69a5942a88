// Shared arrange/assert helpers of the failover integration tests (real DynamoDB Local and SQS emulator).
import { randomUUID } from 'node:crypto';
import { type AttributeValue, GetItemCommand, PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { DeleteMessageBatchCommand, type Message, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { T0 } from '../../bench/seed.ts';
import { mapConcurrently } from '../../lib/failover/concurrency.ts';
import { type FailoverDeps, type FailoverSettings, systemClock } from '../../lib/failover/fail-over-host.ts';
import type { ProcessInstance, TaskInstance } from '../../lib/failover/rules.ts';
import type { LocalStack } from '../../lib/local/stack.ts';
import {
  type CommandMessage,
  type FailoverRequest,
  FailoverRequestSchema,
  failoverRequestGroupId,
  parseCommandMessage,
} from '../../lib/messages.ts';
import { silentLog } from '../../lib/observability.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { marshalFlat, unmarshalFlat } from '../../lib/store/dynamodb/attributes.ts';
import { parsePendingItem } from '../../lib/store/dynamodb/commands.ts';
import { parseProcessInstance } from '../../lib/store/dynamodb/instances.ts';
import { DynamoLockStore } from '../../lib/store/dynamodb/locks.ts';
import { parseTaskInstance } from '../../lib/store/dynamodb/tasks.ts';
import { dynamoFailoverPorts } from '../../lib/stores.ts';

// Seeding is shared with the benchmark (same data shape): see bench/seed.ts.
export { instanceItem, putInstances, putTasks, seedInstances, T0, uniqueHost } from '../../bench/seed.ts';

export async function putMirror(
  stack: LocalStack,
  type: 'master' | 'worker',
  host: string,
  row: { alive: boolean; startupTime?: number; czxid?: string },
): Promise<void> {
  await stack.clients.dynamodb.send(
    new PutItemCommand({
      TableName: stack.info.tables.servers,
      Item: {
        ...marshalFlat({
          id: `${type}/${host}`,
          type,
          host,
          czxid: row.czxid ?? '100',
          startupTime: row.startupTime,
        }),
        alive: { BOOL: row.alive },
        seenAt: { N: String(Date.now()) },
      },
    }),
  );
}

export function request(host: string, overrides: Partial<FailoverRequest> = {}): FailoverRequest {
  return FailoverRequestSchema.parse({
    kind: 'NodeRemoved',
    nodeType: 'master',
    host,
    czxid: '4242',
    startupTime: T0 - 3_600_000,
    observedAt: Date.now() + 60_000,
    source: 'watcher',
    ...overrides,
  });
}

/** An SQS event like the event source mapping builds (for direct invocations). */
export function sqsEvent(bodies: ReadonlyArray<FailoverRequest | string>, group?: string): SQSEvent {
  return {
    Records: bodies.map((b): SQSRecord => {
      const body = typeof b === 'string' ? b : JSON.stringify(b);
      return {
        messageId: randomUUID(),
        receiptHandle: `direct-${randomUUID()}`,
        body,
        attributes: {
          ApproximateReceiveCount: '1',
          SentTimestamp: String(Date.now()),
          SenderId: 'test',
          ApproximateFirstReceiveTimestamp: String(Date.now()),
          MessageGroupId: group ?? (typeof b === 'string' ? `g-${randomUUID()}` : failoverRequestGroupId(b)),
        },
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:test',
        awsRegion: 'us-east-1',
      };
    }),
  };
}

export async function getInstance(stack: LocalStack, id: string): Promise<ProcessInstance | undefined> {
  const out = await stack.clients.dynamodb.send(
    new GetItemCommand({
      TableName: stack.info.tables.instances,
      Key: { id: { S: id } },
      ConsistentRead: true,
    }),
  );
  if (!out.Item) return undefined;
  const parsed = parseProcessInstance(out.Item);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.value;
}

export async function getTask(stack: LocalStack, id: string): Promise<TaskInstance | undefined> {
  const out = await stack.clients.dynamodb.send(
    new GetItemCommand({ TableName: stack.info.tables.tasks, Key: { id: { S: id } }, ConsistentRead: true }),
  );
  if (!out.Item) return undefined;
  const parsed = parseTaskInstance(out.Item);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.value;
}

/** The command items with these ids that exist (strongly consistent reads). */
export async function commandItems(
  stack: LocalStack,
  ids: readonly string[],
): Promise<Map<string, Record<string, string | number>>> {
  const found = new Map<string, Record<string, string | number>>();
  await mapConcurrently(ids, 16, async (id) => {
    const out = await stack.clients.dynamodb.send(
      new GetItemCommand({
        TableName: stack.info.tables.commands,
        Key: { id: { S: id } },
        ConsistentRead: true,
      }),
    );
    if (out.Item) found.set(id, unmarshalFlat(out.Item));
  });
  return found;
}

/** Ids of the pending (not yet enqueued) commands: those the pending outbox records list. */
export async function pendingCommandIds(stack: LocalStack): Promise<Set<string>> {
  const ids = new Set<string>();
  let start: Record<string, AttributeValue> | undefined;
  do {
    const out = await stack.clients.dynamodb.send(
      new QueryCommand({
        TableName: stack.info.tables.commands,
        IndexName: 'pending',
        KeyConditionExpression: 'pending = :p',
        ExpressionAttributeValues: { ':p': { S: '1' } },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of out.Items ?? []) {
      const entry = parsePendingItem(item);
      if (entry === undefined) throw new Error(`malformed pending item ${item.id?.S}`);
      for (const id of entry.commandIds) ids.add(id);
    }
    start = out.LastEvaluatedKey;
  } while (start);
  return ids;
}

/**
 * Drains a queue into a running tally, so each test can look up its own messages whatever order they
 * arrived in. Counts every delivery: a duplicate shows as a count of 2.
 */
export class QueueTally {
  readonly counts = new Map<string, number>();
  readonly messages = new Map<string, CommandMessage>();

  constructor(
    private readonly stack: LocalStack,
    private readonly queueUrl: string,
  ) {}

  /** Receives until the queue has been empty for `quietMs`. */
  async drain(quietMs = 600): Promise<void> {
    let quietSince = Date.now();
    while (Date.now() - quietSince < quietMs) {
      const out = await this.stack.clients.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: this.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      const messages: Message[] = out.Messages ?? [];
      if (messages.length === 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      quietSince = Date.now();
      for (const m of messages) {
        const parsed = parseCommandMessage(m.Body ?? '');
        if (!parsed.ok) throw new Error(`commands queue holds an invalid message: ${parsed.reason}`);
        this.counts.set(parsed.value.id, (this.counts.get(parsed.value.id) ?? 0) + 1);
        this.messages.set(parsed.value.id, parsed.value);
      }
      await this.stack.clients.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
        }),
      );
    }
  }

  /** Deliveries of each command of these process instances, by instance id. */
  recoveryCountsFor(instanceIds: readonly string[]): Map<string, number> {
    const wanted = new Set(instanceIds);
    const byInstance = new Map<string, number>();
    for (const [id, message] of this.messages) {
      if (message.type !== 'RecoveryCommand' || !wanted.has(message.processInstanceId)) continue;
      byInstance.set(
        message.processInstanceId,
        (byInstance.get(message.processInstanceId) ?? 0) + (this.counts.get(id) ?? 0),
      );
    }
    return byInstance;
  }
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The failover use case wired to the local stack, in this process. */
export function localFailoverDeps(stack: LocalStack, settings: Partial<FailoverSettings> = {}): FailoverDeps {
  const { dynamodb, sqs } = stack.clients;
  const tables = stack.info.tables;
  return {
    ...dynamoFailoverPorts(
      { dynamodb, sqs },
      {
        instancesTable: tables.instances,
        tasksTable: tables.tasks,
        commandsTable: tables.commands,
        serversTable: tables.servers,
        commandsQueueUrl: stack.info.queues.commands,
      },
    ),
    locks: new DynamoLockStore(dynamodb, tables.locks),
    requestQueue: new SqsFailoverRequestQueue(sqs, stack.info.queues.failover),
    clock: systemClock,
    log: silentLog,
    settings: { leaseMs: 30_000, batchSize: 25, concurrency: 8, ...settings },
  };
}
