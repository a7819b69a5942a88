import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReceiveMessageCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import type { LocalStack } from '../../lib/local/stack.ts';
import { startLocalStack } from '../../lib/local/stack.ts';

const fixtures = 'test/fixtures/runtime-handlers';

async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function readLog<T>(path: string): T[] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as T);
  } catch {
    return [];
  }
}

describe('local Lambda runtime', () => {
  let stack: LocalStack;
  const dir = mkdtempSync(join(tmpdir(), 'zkf-runtime-'));
  beforeAll(async () => {
    // Short visibility timeout so failed records come back within the test, long enough that a slow
    // invocation on a loaded machine still finishes before its records reappear.
    stack = await startLocalStack({ queueOverrides: { FailoverQueue: { VisibilityTimeout: '4' } } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('deletes only the successful records of a partial batch; failures return until the DLQ takes them', async () => {
    const log = join(dir, 'partial.log');
    const runtime = startLocalRuntime(stack, {
      functions: ['failover'],
      handlers: { failover: `${fixtures}.partialBatch` },
      env: { failover: { FIXTURE_LOG: log } },
      sqsConcurrency: 1,
    });
    try {
      await stack.clients.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: stack.info.queues.failover,
          Entries: ['ok-1', 'fail-1', 'ok-2'].map((body) => ({
            Id: body,
            MessageBody: body,
            MessageGroupId: body, // separate groups, so FIFO ordering does not hold the good ones back
            MessageDeduplicationId: body,
          })),
        }),
      );
      const dead = await until('the failing record in the DLQ', async () => {
        const out = await stack.clients.sqs.send(
          new ReceiveMessageCommand({ QueueUrl: stack.info.queues.failoverDlq, WaitTimeSeconds: 1 }),
        );
        return out.Messages?.length ? out.Messages : undefined;
      });
      expect(dead.map((m) => m.Body)).toEqual(['fail-1']);
      const seen = readLog<{ body: string; receiveCount: string }>(log);
      // Successful records were processed once and deleted; the failing one came back maxReceiveCount (5) times.
      expect(seen.filter((s) => s.body === 'ok-1')).toHaveLength(1);
      expect(seen.filter((s) => s.body === 'ok-2')).toHaveLength(1);
      expect(seen.filter((s) => s.body === 'fail-1').map((s) => s.receiveCount)).toEqual([
        '1',
        '2',
        '3',
        '4',
        '5',
      ]);
    } finally {
      await runtime.stop();
    }
  });

  it('returns a whole batch to the queue when the function throws', async () => {
    const runtime = startLocalRuntime(stack, {
      functions: ['failover'],
      handlers: { failover: `${fixtures}.broken` },
      sqsConcurrency: 1,
    });
    try {
      await stack.clients.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: stack.info.queues.failover,
          Entries: [
            { Id: 'a', MessageBody: 'thrown', MessageGroupId: 'thrown', MessageDeduplicationId: 'thrown' },
          ],
        }),
      );
      const errors = await until('two failed invocations', () => {
        const failed = runtime.invocations().filter((r) => r.outcome === 'error');
        return failed.length >= 2 ? failed : undefined;
      });
      expect(errors[0]?.error).toContain('fixture failure');
    } finally {
      await runtime.stop();
    }
  });

  it('gives handlers a Lambda context whose remaining time follows the declared or configured timeout', async () => {
    const runtime = startLocalRuntime(stack, {
      functions: ['sweep'],
      handlers: { sweep: `${fixtures}.introspect` },
      timeoutMs: { sweep: 2_500 },
      eventSources: false,
    });
    try {
      const seen = (await runtime.invoke('sweep', {})) as {
        remainingMs: number;
        functionName: string;
        env: Record<string, string>;
        node: string;
      };
      expect(seen.remainingMs).toBeGreaterThan(0);
      expect(seen.remainingMs).toBeLessThanOrEqual(2_500);
      expect(seen.functionName).toBe('zk-failover-local-sweep');
      expect(seen.env.INSTANCES_TABLE).toBe(stack.info.tables.instances);
      expect(seen.env.AWS_ENDPOINT_URL_DYNAMODB).toBe(stack.info.dynamodb);
      expect(seen.node.startsWith('22.')).toBe(true);
    } finally {
      await runtime.stop();
    }
  });

  it('kills a container that runs past its timeout and reports the timeout', async () => {
    const runtime = startLocalRuntime(stack, {
      functions: ['sweep'],
      handlers: { sweep: `${fixtures}.sleep` },
      timeoutMs: { sweep: 500 },
      eventSources: false,
    });
    try {
      await expect(runtime.invoke('sweep', { ms: 60_000 })).rejects.toThrow(/timed out/);
      // The next invocation gets a fresh container and works.
      await expect(runtime.invoke('sweep', { ms: 1 })).resolves.toEqual({ slept: 1 });
      expect(runtime.invocations().map((r) => r.outcome)).toEqual(['timeout', 'ok']);
    } finally {
      await runtime.stop();
    }
  });

  it('fires schedules at start-up and lets invocations overlap', async () => {
    const log = join(dir, 'schedule.log');
    const runtime = startLocalRuntime(stack, {
      functions: ['watcher'],
      handlers: { watcher: `${fixtures}.scheduled` },
      scheduleMs: { watcher: 300 },
      env: { watcher: { FIXTURE_LOG: log, FIXTURE_HOLD_MS: '3000' } },
    });
    let events: Array<{ at: string; t: number; pid: number; type?: string }> = [];
    try {
      events = await until('three scheduled invocations', () => {
        const e = readLog<{ at: string; t: number; pid: number; type?: string }>(log);
        return e.filter((x) => x.at === 'start').length >= 3 ? e : undefined;
      });
    } finally {
      await runtime.stop();
    }
    const starts = events.filter((e) => e.at === 'start');
    expect(starts[0]?.type).toBe('Scheduled Event');
    // Each invocation holds for 3 s while the period is 0.3 s: the second one started while the first was
    // still running, in another container (process), as AWS does.
    const first = starts[0];
    const firstEnd = events.find((e) => e.at === 'end' && e.pid === first?.pid);
    const overlapping = starts.filter(
      (s) => s.pid !== first?.pid && (firstEnd === undefined || s.t < firstEnd.t),
    );
    expect(overlapping.length).toBeGreaterThan(0);
  });

  it('fires the first scheduled invocation at start-up, not after the first period', async () => {
    const log = join(dir, 'first.log');
    const runtime: LocalRuntime = startLocalRuntime(stack, {
      functions: ['watcher'],
      handlers: { watcher: `${fixtures}.scheduled` },
      // The declared rate (1 minute) applies: an invocation seen within this test's timeout came from start-up.
      env: { watcher: { FIXTURE_LOG: log } },
    });
    try {
      const first = await until(
        'the start-up invocation',
        () => readLog<{ at: string }>(log).find((e) => e.at === 'end'),
        30_000,
      );
      expect(first.at).toBe('end');
      expect(runtime.invocations().filter((r) => r.trigger === 'schedule')).toHaveLength(1);
    } finally {
      await runtime.stop();
    }
  });
});
