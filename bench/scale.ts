// Scale: one dead host with many executing instances, failed over through the local Lambda runtime (SQS
// event source, partial batch responses) with a reduced function timeout, so the work spans many
// invocations chained by continuation requests. Verified twice: every command item in the commands table,
// and every message drained from the commands queue.
import { type AttributeValue, ScanCommand } from '@aws-sdk/client-dynamodb';
import { mapConcurrently } from '../lib/failover/concurrency.ts';
import { startLocalRuntime } from '../lib/local/runtime.ts';
import type { LocalStack } from '../lib/local/stack.ts';
import { SqsFailoverRequestQueue } from '../lib/queue/failover-requests.ts';
import { seedManyInstances, uniqueHost } from './seed.ts';
import { CommandTally, failoverRequest, note, purgeQueue, queueDepth, round, sleep } from './support.ts';

export interface ScaleOptions {
  instances: number;
  /** Function timeout of each invocation, ms. */
  timeoutMs: number;
  /** DEADLINE_MARGIN_MS of the function: it stops taking pages when less than this is left. */
  deadlineMarginMs: number;
  /** Give up after this long (the phase then reports what it found). */
  limitMs: number;
}

export interface ScaleResult {
  instances: number;
  invocations: number;
  seconds: number;
  perSecond: number;
  duplicates: number;
  missing: number;
  peakRssMb: number;
  /** Peak RSS of the container after each invocation, MB, in order (flat = no growth with progress). */
  rssByInvocationMb: number[];
  timedOut: number;
  functionTimeoutMs: number;
  check: {
    commandItems: number;
    itemDuplicates: number;
    itemMissing: number;
    /** Command items still marked pending (written, never confirmed on the queue). */
    pending: number;
    queueDeliveries: number;
    queueDuplicates: number;
    queueMissing: number;
  };
}

export async function measureScale(stack: LocalStack, options: ScaleOptions): Promise<ScaleResult> {
  const { sqs } = stack.clients;
  const host = uniqueHost();
  const n = options.instances;
  const seedStarted = performance.now();
  const prefix = await seedManyInstances(stack, host, n, { concurrency: 8 });
  note(`scale: seeded ${n} instances in ${round((performance.now() - seedStarted) / 1_000, 1)} s`);
  await purgeQueue(sqs, stack.info.queues.commands);

  const tally = new CommandTally(sqs, stack.info.queues.commands);
  const runtime = startLocalRuntime(stack, {
    functions: ['failover'],
    timeoutMs: { failover: options.timeoutMs },
    env: { failover: { DEADLINE_MARGIN_MS: String(options.deadlineMarginMs) } },
    sqsConcurrency: 1,
    maxContainers: 1,
  });
  const started = performance.now();
  let seconds: number;
  try {
    tally.start(2);
    await new SqsFailoverRequestQueue(sqs, stack.info.queues.failover).send([failoverRequest(host)]);
    const deadline = Date.now() + options.limitMs;
    let lastReport = Date.now();
    for (;;) {
      const sqsInvocations = runtime.invocations().filter((r) => r.trigger === 'sqs');
      const busy = (await queueDepth(sqs, stack.info.queues.failover)) > 0;
      if (tally.received >= n && !busy) break;
      if (Date.now() > deadline) {
        note(`scale: gave up after ${options.limitMs} ms with ${tally.received} of ${n} commands`);
        break;
      }
      if (Date.now() - lastReport > 15_000) {
        lastReport = Date.now();
        note(`scale: ${tally.received} of ${n} commands on the queue, ${sqsInvocations.length} invocations`);
      }
      await sleep(200);
    }
    seconds = (performance.now() - started) / 1_000;
    await tally.stop();
    await tally.drain(1_000);
  } finally {
    await tally.stop();
    await runtime.stop();
  }

  const invocations = runtime.invocations().filter((r) => r.trigger === 'sqs');
  const items = await scanCommands(stack, host);
  const wanted = (id: string) => id.startsWith(`${prefix}-`) && Number(id.slice(prefix.length + 1)) < n;
  let itemDuplicates = 0;
  let strangers = 0;
  for (const [instance, count] of items.byInstance) {
    if (!wanted(instance)) strangers += 1;
    itemDuplicates += count - 1;
  }
  const itemMissing = n - (items.byInstance.size - strangers);
  let queueDuplicates = 0;
  let queueInstances = 0;
  for (const count of tally.deliveries.values()) queueDuplicates += count - 1;
  for (const [instance, ids] of tally.idsByInstance) {
    if (!wanted(instance)) continue;
    queueInstances += 1;
    queueDuplicates += ids.length - 1;
  }
  const queueMissing = n - queueInstances;
  const rssByInvocationMb = invocations.map((r) =>
    round((r.maxRssBytes ?? r.rssBytes ?? 0) / 1024 / 1024, 1),
  );
  return {
    instances: n,
    invocations: invocations.length,
    seconds: round(seconds, 1),
    perSecond: round(n / seconds),
    duplicates: itemDuplicates + queueDuplicates,
    missing: itemMissing + queueMissing,
    peakRssMb: Math.max(0, ...rssByInvocationMb),
    rssByInvocationMb,
    timedOut: invocations.filter((r) => r.outcome === 'timeout').length,
    functionTimeoutMs: options.timeoutMs,
    check: {
      commandItems: items.total,
      itemDuplicates,
      itemMissing,
      pending: items.pending,
      queueDeliveries: [...tally.deliveries.values()].reduce((a, b) => a + b, 0),
      queueDuplicates,
      queueMissing,
    },
  };
}

/** Every command item of the host (parallel scan): per process instance, how many command items it has. */
async function scanCommands(
  stack: LocalStack,
  host: string,
): Promise<{ byInstance: Map<string, number>; total: number; pending: number }> {
  const byInstance = new Map<string, number>();
  let total = 0;
  let pending = 0;
  const segments = 4;
  await mapConcurrently(
    Array.from({ length: segments }, (_, i) => i),
    segments,
    async (segment) => {
      let start: Record<string, AttributeValue> | undefined;
      do {
        const out = await stack.clients.dynamodb.send(
          new ScanCommand({
            TableName: stack.info.tables.commands,
            Segment: segment,
            TotalSegments: segments,
            FilterExpression: 'failedHost = :host',
            ProjectionExpression: 'processInstanceId, pending',
            ExpressionAttributeValues: { ':host': { S: host } },
            ExclusiveStartKey: start,
          }),
        );
        for (const item of out.Items ?? []) {
          const instance = item.processInstanceId?.S ?? '';
          byInstance.set(instance, (byInstance.get(instance) ?? 0) + 1);
          total += 1;
          if (item.pending !== undefined) pending += 1;
        }
        start = out.LastEvaluatedKey;
      } while (start !== undefined);
    },
  );
  return { byInstance, total, pending };
}
