// A large host: 2,000 instances failed over across several time-bounded invocations (continuations), with
// no duplicate and no missing command. Its speed is measured by the benchmark (bench/), not here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import {
  getInstance,
  pendingCommandIds,
  QueueTally,
  request,
  seedInstances,
  uniqueHost,
  waitFor,
} from './failover-support.ts';

let stack: LocalStack;
let tally: QueueTally;

beforeAll(async () => {
  stack = await startLocalStack({ queueOverrides: { FailoverQueue: { VisibilityTimeout: '5' } } });
  tally = new QueueTally(stack, stack.info.queues.commands);
});

afterAll(async () => {
  await stack?.stop();
});

describe('a host with 2,000 instances', () => {
  it('completes across several short invocations with exactly one command per instance', async () => {
    // Arrange: 3 s invocations that stop taking pages 2.5 s before their end; pages of 40 instances.
    const host = uniqueHost();
    const ids = await seedInstances(stack, host, 2_000);
    // Finished instances interleaved in the host's index: continuations must not re-read them forever.
    await seedInstances(stack, host, 500, { state: 'SUCCESS' });
    const runtime = startLocalRuntime(stack, {
      functions: ['failover'],
      timeoutMs: { failover: 3_000 },
      env: {
        failover: { DEADLINE_MARGIN_MS: '2500', FAILOVER_BATCH_SIZE: '10', FAILOVER_CONCURRENCY: '4' },
      },
      sqsConcurrency: 1,
    });
    try {
      // Act
      await new SqsFailoverRequestQueue(stack.clients.sqs, stack.info.queues.failover).send([request(host)]);
      const seen = new Set<string>();
      await waitFor(
        'every instance failed over',
        async () => {
          await tally.drain(200);
          for (const id of tally.recoveryCountsFor(ids).keys()) seen.add(id);
          return seen.size === ids.length;
        },
        120_000,
        500,
      );
      await tally.drain();

      // Assert
      const invocations = runtime.invocations().filter((r) => r.trigger === 'sqs');
      expect(invocations.length).toBeGreaterThanOrEqual(3);
      const counts = tally.recoveryCountsFor(ids);
      expect(counts.size).toBe(ids.length);
      expect([...counts.entries()].filter(([, n]) => n !== 1)).toEqual([]);
      const sample = await getInstance(stack, ids[1_234] ?? '');
      expect(sample).toMatchObject({ lastHost: host, failoverCount: 1 });
      const pending = await pendingCommandIds(stack);
      expect(ids.filter((id) => pending.has(`recover/${id}/1`))).toEqual([]);
      console.log(
        `2,000 instances: ${invocations.length} invocations (${invocations.filter((r) => r.outcome === 'timeout').length} timed out)`,
      );
    } finally {
      await runtime.stop();
    }
  }, 240_000);
});
