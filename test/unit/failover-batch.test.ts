// The SQS batch edge of the failover function with small fakes: poison handling, the FIFO rule, retry
// delays. The failover itself runs against an in-memory lock that is either free or held.
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { FailoverDeps } from '../../lib/failover/fail-over-host.ts';
import type {
  AcquireResult,
  FailoverRecordControl,
  LockStore,
  RejectedRecord,
} from '../../lib/failover/ports.ts';
import {
  type BatchDeps,
  errorRetrySeconds,
  lockRetrySeconds,
  processFailoverBatch,
} from '../../lib/failover/process-batch.ts';
import { type FailoverRequest, FailoverRequestSchema } from '../../lib/messages.ts';
import { type FailoverMetricName, silentLog } from '../../lib/observability.ts';

const HOST_A = '10.0.0.1:5678';
const HOST_B = '10.0.0.2:5678';

function body(host: string): string {
  const request: FailoverRequest = FailoverRequestSchema.parse({
    kind: 'NodeRemoved',
    nodeType: 'master',
    host,
    czxid: '7',
    startupTime: 1,
    observedAt: 2,
    source: 'watcher',
  });
  return JSON.stringify(request);
}

function record(id: string, text: string, group: string, receiveCount = '1'): SQSRecord {
  return {
    messageId: id,
    receiptHandle: `rh-${id}`,
    body: text,
    attributes: {
      ApproximateReceiveCount: receiveCount,
      SentTimestamp: '0',
      SenderId: 'x',
      ApproximateFirstReceiveTimestamp: '0',
      MessageGroupId: group,
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn',
    awsRegion: 'us-east-1',
  };
}

class FakeControl implements FailoverRecordControl {
  deadLettered: Array<{ record: RejectedRecord; reason: string }> = [];
  retries: Array<{ receiptHandle: string; seconds: number }> = [];
  failDeadLetter = false;

  async deadLetter(record: RejectedRecord, reason: string): Promise<void> {
    if (this.failDeadLetter) throw new Error('DLQ unavailable');
    this.deadLettered.push({ record, reason });
  }

  async retryAfter(receiptHandle: string, seconds: number): Promise<void> {
    this.retries.push({ receiptHandle, seconds });
  }
}

/** A lock per host that is held by someone else until `heldUntil`, or free; a host in `broken` throws. */
function lockStore(held: Record<string, number>, broken: Set<string> = new Set()): LockStore {
  return {
    async acquire(name, owner, leaseMs, now): Promise<AcquireResult> {
      const host = name.split('/').pop() ?? '';
      if (broken.has(host)) throw new Error('DynamoDB unavailable');
      const until = held[host];
      if (until !== undefined && until > now) return { acquired: false, heldUntil: until, fence: 4 };
      return { acquired: true, lease: { name, owner, fence: 5, expiresAt: now + leaseMs } };
    },
    async renew(lease) {
      return lease;
    },
    async release() {
      return true;
    },
  };
}

function deps(control: FakeControl, locks: LockStore, counted: Map<string, number>): BatchDeps {
  const emptyPage = async () => ({ items: [], malformed: [] });
  const store = {
    pageByHost: emptyPage,
    getMany: async () => new Map(),
    failOver: async () => ({ status: 'committed' as const, outboxId: 'outbox/none' }),
  };
  const failover: FailoverDeps = {
    instances: store,
    tasks: store,
    delivery: {
      deliver: async (batch) => batch.commands.length,
      deliverPending: async () => ({ enqueued: 0, failed: [] }),
    },
    maxCommandBytes: 256 * 1024,
    locks,
    liveness: { liveIncarnation: async () => null },
    requestQueue: { send: async () => undefined },
    clock: { now: () => 1_000_000 },
    log: silentLog,
    settings: { leaseMs: 30_000, batchSize: 25, concurrency: 8 },
  };
  return {
    failover,
    records: control,
    log: silentLog,
    deadlineMarginMs: 1_000,
    metrics: {
      count: (name: FailoverMetricName, value: number) => counted.set(name, (counted.get(name) ?? 0) + value),
      milliseconds: () => undefined,
    },
  };
}

const context = { getRemainingTimeInMillis: () => 60_000 };

describe('processFailoverBatch', () => {
  it('dead-letters poison with its reason, counts it done, and processes the good records', async () => {
    // Arrange
    const control = new FakeControl();
    const metrics = new Map<string, number>();
    const event: SQSEvent = {
      Records: [
        record('1', 'garbage', 'g1'),
        record('2', body(HOST_A), 'a'),
        record('3', '{"kind":1}', 'g3'),
      ],
    };

    // Act
    const response = await processFailoverBatch(event, context, deps(control, lockStore({}), metrics));

    // Assert
    expect(response.batchItemFailures).toEqual([]);
    expect(control.deadLettered.map((d) => d.record.messageId)).toEqual(['1', '3']);
    expect(control.deadLettered[0]?.reason).toMatch(/not valid JSON/);
    expect(control.deadLettered[1]?.record).toMatchObject({ body: '{"kind":1}', groupId: 'g3' });
    expect(metrics.get('PoisonMessages')).toBe(2);
  });

  it('fails a poison record whose dead-lettering failed, and only that one', async () => {
    const control = new FakeControl();
    control.failDeadLetter = true;
    const event: SQSEvent = { Records: [record('1', 'garbage', 'g1'), record('2', body(HOST_A), 'a')] };

    const response = await processFailoverBatch(event, context, deps(control, lockStore({}), new Map()));

    expect(response.batchItemFailures).toEqual([{ itemIdentifier: '1' }]);
  });

  it('fails a record whose lock is held, shortens its visibility to the lease, and fails the rest of its group', async () => {
    // Arrange: host A's lock is held for 7.2 more seconds.
    const control = new FakeControl();
    const metrics = new Map<string, number>();
    const locks = lockStore({ [HOST_A]: 1_000_000 + 7_200 });
    const event: SQSEvent = {
      Records: [
        record('1', body(HOST_A), 'master/A'),
        record('2', body(HOST_B), 'master/B'),
        record('3', body(HOST_A), 'master/A'),
      ],
    };

    // Act
    const response = await processFailoverBatch(event, context, deps(control, locks, metrics));

    // Assert
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: '1' }, { itemIdentifier: '3' }]);
    expect(control.retries).toEqual([{ receiptHandle: 'rh-1', seconds: 8 }]);
    expect(metrics.get('LockContention')).toBe(1);
  });

  it('fails a record whose failover throws, with a backoff by receive count', async () => {
    const control = new FakeControl();
    const metrics = new Map<string, number>();
    const locks = lockStore({}, new Set([HOST_A]));
    const event: SQSEvent = {
      Records: [record('1', body(HOST_A), 'a', '3'), record('2', body(HOST_B), 'b')],
    };

    const response = await processFailoverBatch(event, context, deps(control, locks, metrics));

    expect(response.batchItemFailures).toEqual([{ itemIdentifier: '1' }]);
    expect(control.retries).toEqual([{ receiptHandle: 'rh-1', seconds: 20 }]);
    expect(metrics.get('FailedRequests')).toBe(1);
  });
});

describe('retry delays', () => {
  it.each([
    [1, 5],
    [2, 10],
    [5, 80],
    [20, 300],
    [Number.NaN, 5],
  ])('after receive %d an error retries in %d s', (count, seconds) => {
    expect(errorRetrySeconds(count)).toBe(seconds);
  });

  it.each([
    [0, 1],
    [1, 1],
    [1_001, 2],
    [29_500, 30],
    [10_000_000, 900],
  ])('a lock held for %d ms retries in %d s', (ms, seconds) => {
    expect(lockRetrySeconds(ms)).toBe(seconds);
  });
});
