// Small pieces the benchmark phases share: statistics, requests and events, the commands-queue tally.
import { randomUUID } from 'node:crypto';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { type FailoverRequest, FailoverRequestSchema, failoverRequestGroupId } from '../lib/messages.ts';
import { T0 } from './seed.ts';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The q-quantile (0..1) by linear interpolation between closest ranks; NaN for no values. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const a = sorted[lower] ?? Number.NaN;
  const b = sorted[upper] ?? Number.NaN;
  return a + (b - a) * (position - lower);
}

export const median = (values: readonly number[]): number => quantile(values, 0.5);

/** Fewest per-invocation values `flatness` compares (a first quarter and three more). */
export const FLATNESS_MIN_VALUES = 4;

/** The highest value of the first quarter of a series and of the rest (undefined: too short to tell). */
export function flatness(values: readonly number[]): { early: number; late: number } | undefined {
  if (values.length < FLATNESS_MIN_VALUES) return undefined;
  const quarter = Math.max(1, Math.floor(values.length / 4));
  return { early: Math.max(...values.slice(0, quarter + 1)), late: Math.max(...values.slice(quarter + 1)) };
}

export const round = (value: number, digits = 0): number => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};

/** A master failover request for `host` whose every seeded instance is eligible (no live incarnation). */
export function failoverRequest(host: string): FailoverRequest {
  return FailoverRequestSchema.parse({
    kind: 'NodeRemoved',
    nodeType: 'master',
    host,
    czxid: '4242',
    startupTime: T0 - 3_600_000,
    // Instances start at T0, long before this observation: all of them belong to the dead incarnation.
    observedAt: Date.now() + 60_000,
    source: 'operator',
  });
}

/** An SQS event as the event source mapping builds it, for a direct invocation of the failover function. */
export function sqsEventOf(request: FailoverRequest): SQSEvent {
  const now = String(Date.now());
  return {
    Records: [
      {
        messageId: randomUUID(),
        receiptHandle: `bench-${randomUUID()}`,
        body: JSON.stringify(request),
        attributes: {
          ApproximateReceiveCount: '1',
          SentTimestamp: now,
          SenderId: 'bench',
          ApproximateFirstReceiveTimestamp: now,
          MessageGroupId: failoverRequestGroupId(request),
        },
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:bench',
        awsRegion: 'us-east-1',
      },
    ],
  };
}

export async function purgeQueue(sqs: SQSClient, queueUrl: string): Promise<void> {
  await sqs.send(new PurgeQueueCommand({ QueueUrl: queueUrl }));
}

/** Visible plus in-flight messages of a queue. */
export async function queueDepth(sqs: SQSClient, queueUrl: string): Promise<number> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

/**
 * Receives and deletes every message of the commands queue with a few concurrent pollers, counting the
 * deliveries of each command id (a duplicate delivery shows as a count of 2) and, per process instance,
 * which command ids arrived. Keeps only ids and counts, never bodies.
 */
export class CommandTally {
  readonly deliveries = new Map<string, number>();
  readonly idsByInstance = new Map<string, string[]>();
  invalid = 0;
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  get received(): number {
    return this.deliveries.size;
  }

  start(pollers = 3): void {
    this.running = true;
    this.loops = Array.from({ length: pollers }, () => this.poll());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** Runs the pollers until the queue has been empty for `quietMs`. */
  async drain(quietMs = 500): Promise<void> {
    let quietSince = Date.now();
    while (Date.now() - quietSince < quietMs) {
      if ((await this.receiveOnce(0)) > 0) quietSince = Date.now();
      else await sleep(50);
    }
  }

  private async poll(): Promise<void> {
    while (this.running) {
      try {
        if ((await this.receiveOnce(1)) === 0) await sleep(20);
      } catch {
        await sleep(100);
      }
    }
  }

  private async receiveOnce(waitSeconds: number): Promise<number> {
    const out = await this.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: waitSeconds,
      }),
    );
    const messages = out.Messages ?? [];
    if (messages.length === 0) return 0;
    for (const m of messages) {
      const parsed = parseIds(m.Body ?? '');
      if (parsed === undefined) {
        this.invalid += 1;
        continue;
      }
      const count = (this.deliveries.get(parsed.id) ?? 0) + 1;
      this.deliveries.set(parsed.id, count);
      if (count === 1) {
        const ids = this.idsByInstance.get(parsed.processInstanceId);
        if (ids) ids.push(parsed.id);
        else this.idsByInstance.set(parsed.processInstanceId, [parsed.id]);
      }
    }
    await this.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: this.queueUrl,
        Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
      }),
    );
    return messages.length;
  }
}

function parseIds(body: string): { id: string; processInstanceId: string } | undefined {
  try {
    const value: unknown = JSON.parse(body);
    if (typeof value !== 'object' || value === null) return undefined;
    const { id, processInstanceId } = value as Record<string, unknown>;
    return typeof id === 'string' && typeof processInstanceId === 'string'
      ? { id, processInstanceId }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Progress lines on stderr (the table goes to stdout). */
export function note(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
