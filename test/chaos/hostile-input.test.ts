// Bad input at the failover queue (DESIGN.md section 8, "Bad input"): oversized bodies, deep JSON, wrong
// types, unicode and injection-looking hosts, sent to the real failover queue and consumed by the real
// handler in the local Lambda runtime, in batches mixed with good requests. No container may crash, no
// batch may fail as a whole, the good requests are processed, and each poison message lands in the DLQ once
// with its RejectReason.
import { randomUUID } from 'node:crypto';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instanceItem, putInstances } from '../../bench/seed.ts';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import {
  type FailoverRequest,
  FailoverRequestSchema,
  failoverRequestGroupId,
  MAX_REASON_CHARS,
  parseCommandMessage,
} from '../../lib/messages.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { unmarshalFlat } from '../../lib/store/dynamodb/attributes.ts';
import { hostileBodies } from './hostile-bodies.ts';

let stack: LocalStack;
let runtime: LocalRuntime;
let hostCounter = 0;
/** Messages read from the DLQ so far (it is consumed as the tests go). */
const deadLettered: Array<{ body: string; reason?: string; sourceMessageId?: string }> = [];
/** Command deliveries by command id. */
const delivered = new Map<string, number>();

function newHost(): string {
  hostCounter += 1;
  return `10.66.${hostCounter}.1:5678`;
}

async function seed(host: string, n: number): Promise<string[]> {
  const prefix = randomUUID().slice(0, 8);
  const ids = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  await putInstances(
    stack,
    ids.map((id) => instanceItem({ id, host, startTime: Date.now() - 3_600_000 })),
  );
  return ids;
}

function request(host: string): FailoverRequest {
  return FailoverRequestSchema.parse({
    kind: 'NodeRemoved',
    nodeType: 'master',
    host,
    czxid: '77',
    startupTime: Date.now() - 7_200_000,
    observedAt: Date.now(),
    source: 'watcher',
  });
}

async function failoverCount(id: string): Promise<number | undefined> {
  const out = await stack.clients.dynamodb.send(
    new GetItemCommand({
      TableName: stack.info.tables.instances,
      Key: { id: { S: id } },
      ConsistentRead: true,
    }),
  );
  const value = unmarshalFlat(out.Item ?? {}).failoverCount;
  return typeof value === 'number' ? value : undefined;
}

/** Consumes what is on a FIFO queue now (one message per group per receive: delete as we go). */
async function consume(url: string, onMessage: (m: Message) => void): Promise<void> {
  for (let empty = 0, i = 0; empty < 2 && i < 300; i += 1) {
    const out = await stack.clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageAttributeNames: ['All'],
      }),
    );
    const messages = out.Messages ?? [];
    if (messages.length === 0) {
      empty += 1;
      continue;
    }
    empty = 0;
    for (const m of messages) onMessage(m);
    await stack.clients.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: url,
        Entries: messages.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle ?? '' })),
      }),
    );
  }
}

async function collect(): Promise<void> {
  await consume(stack.info.queues.failoverDlq, (m) =>
    deadLettered.push({
      body: m.Body ?? '',
      ...(m.MessageAttributes?.RejectReason?.StringValue === undefined
        ? {}
        : { reason: m.MessageAttributes.RejectReason.StringValue }),
      ...(m.MessageAttributes?.SourceMessageId?.StringValue === undefined
        ? {}
        : { sourceMessageId: m.MessageAttributes.SourceMessageId.StringValue }),
    }),
  );
  await consume(stack.info.queues.commands, (m) => {
    const parsed = parseCommandMessage(m.Body ?? '');
    if (parsed.ok) delivered.set(parsed.value.id, (delivered.get(parsed.value.id) ?? 0) + 1);
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function record(body: string, group?: string): SQSRecord {
  const parsed = FailoverRequestSchema.safeParse(
    (() => {
      try {
        return JSON.parse(body) as unknown;
      } catch {
        return undefined;
      }
    })(),
  );
  return {
    messageId: randomUUID(),
    receiptHandle: `direct-${randomUUID()}`,
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(Date.now()),
      SenderId: 'test',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
      MessageGroupId:
        group ?? (parsed.success ? failoverRequestGroupId(parsed.data) : `hostile-${randomUUID()}`),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:hostile',
    awsRegion: 'us-east-1',
  };
}

function expectDeadLetteredWithReason(bodies: readonly string[]): void {
  for (const body of bodies) {
    const copies = deadLettered.filter((d) => d.body === body);
    expect(copies.length, body.slice(0, 80)).toBe(1);
    const reason = copies[0]?.reason ?? '';
    expect(reason.length, body.slice(0, 80)).toBeGreaterThan(0);
    expect(reason.length).toBeLessThanOrEqual(MAX_REASON_CHARS);
    expect(reason).toMatch(/^[\x20-\x7e]*$/);
    expect(copies[0]?.sourceMessageId).toBeTruthy();
  }
}

beforeAll(async () => {
  stack = await startLocalStack({ queueOverrides: { FailoverQueue: { VisibilityTimeout: '5' } } });
  runtime = startLocalRuntime(stack, {
    functions: ['failover'],
    maxContainers: 2,
    env: {
      failover: {
        LOCK_LEASE_MS: '5000',
        FAILOVER_BATCH_SIZE: '10',
        FAILOVER_CONCURRENCY: '2',
        POWERTOOLS_METRICS_DISABLED: 'true',
      },
    },
  });
});

afterAll(async () => {
  await runtime?.stop();
  await stack?.stop();
});

describe('hostile input on the failover queue', () => {
  it('dead-letters every poison message with its reason, processes the good ones, never fails a batch', async () => {
    // Arrange: good requests for four hosts, interleaved with the whole hostile corpus.
    const hosts = [newHost(), newHost(), newHost(), newHost()];
    const work = new Map<string, string[]>();
    for (const host of hosts) work.set(host, await seed(host, 6));
    const hostile = hostileBodies().map((b) => b.body);
    const invocationsBefore = runtime.invocations().length;
    const good = new SqsFailoverRequestQueue(stack.clients.sqs, stack.info.queues.failover);

    // Act
    for (const [i, body] of hostile.entries()) {
      await stack.clients.sqs.send(
        new SendMessageCommand({
          QueueUrl: stack.info.queues.failover,
          MessageBody: body,
          MessageGroupId: `hostile-${i % 7}`,
          MessageDeduplicationId: randomUUID(),
        }),
      );
      if (i % 15 === 0) await good.send([request(hosts[(i / 15) % hosts.length] as string)]);
    }
    const ids = [...work.values()].flat();
    await until('the good requests to be processed and the poison dead-lettered', async () => {
      await collect();
      const done = await Promise.all(ids.map(failoverCount));
      return done.every((n) => n === 1) && deadLettered.length >= hostile.length;
    });

    // Assert
    expectDeadLetteredWithReason(hostile);
    expect(deadLettered.filter((d) => FailoverRequestSchema.safeParse(safeJson(d.body)).success)).toEqual([]);
    for (const id of ids) expect(delivered.get(`recover/${id}/1`), id).toBe(1);
    const invocations = runtime.invocations().slice(invocationsBefore);
    expect(invocations.length).toBeGreaterThan(0);
    expect(invocations.filter((i) => i.outcome !== 'ok')).toEqual([]);
    for (const i of invocations) expect((i.result as SQSBatchResponse).batchItemFailures).toEqual([]);
  });

  it('handles one batch holding every hostile body and good requests, shuffled, record by record', async () => {
    // Arrange
    const hosts = [newHost(), newHost()];
    const work = new Map<string, string[]>();
    for (const host of hosts) work.set(host, await seed(host, 4));
    const hostile = hostileBodies().map((b) => `${b.body} `); // distinct from the first test's bodies
    const records = [
      ...hostile.map((b) => record(b)),
      ...hosts.map((h) => record(JSON.stringify(request(h)))),
    ];
    for (let i = records.length - 1; i > 0; i -= 1) {
      const j = (i * 7919) % (i + 1);
      [records[i], records[j]] = [records[j] as SQSRecord, records[i] as SQSRecord];
    }
    // A record without a body cannot even be dead-lettered: only it may be reported failed.
    const bodiless = { ...record('x'), body: undefined as unknown as string };
    const event: SQSEvent = { Records: [...records, bodiless] };

    // Act
    const result = (await runtime.invoke('failover', event)) as SQSBatchResponse;
    await until('the poison of the direct batch in the DLQ', async () => {
      await collect();
      return hostile.every((body) => deadLettered.some((d) => d.body === body));
    });

    // Assert
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: bodiless.messageId }]);
    expectDeadLetteredWithReason(hostile);
    for (const id of [...work.values()].flat()) expect(await failoverCount(id), id).toBe(1);
  });
});

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
