// Scale: one dead host with many executing instances, failed over through the local Lambda runtime (SQS
// event source, partial batch responses) with a reduced function timeout, so the work spans many
// invocations chained by continuation requests. Verified twice: every command item in the commands table,
// and every message drained from the commands queue.
import { mapConcurrently } from '../lib/failover/concurrency.ts';
import { recoveryCommandId } from '../lib/failover/rules.ts';
import { startLocalRuntime } from '../lib/local/runtime.ts';
import type { LocalStack } from '../lib/local/stack.ts';
import { SqsFailoverRequestQueue } from '../lib/queue/failover-requests.ts';
import { batchGetConsistent } from '../lib/store/dynamodb/attributes.ts';
import { commandsWithOutboxState } from '../lib/store/dynamodb/commands.ts';
import { seededId, seedManyInstances, uniqueHost } from './seed.ts';
import { CommandTally, failoverRequest, note, purgeQueue, queueDepth, round, sleep } from './support.ts';

export interface ScaleOptions {
  instances: number;
  /** Function timeout of each invocation, ms. */
  timeoutMs: number;
  /** DEADLINE_MARGIN_MS of the function: it stops taking pages when less than this is left. */
  deadlineMarginMs: number;
  /** Give up after this long (the phase then reports what it found). */
  limitMs: number;
  /** More environment of the function (its batch size and concurrency, when compared). */
  env?: Record<string, string>;
}

export interface ScaleResult {
  instances: number;
  invocations: number;
  seconds: number;
  perSecond: number;
  duplicates: number;
  missing: number;
  peakRssMb: number;
  /** Peak RSS of the container so far, after each invocation, MB, in order (a high-water mark). */
  rssByInvocationMb: number[];
  /** Resident memory at the end of each invocation, MB, in order. */
  rssAfterInvocationMb: number[];
  /**
   * Heap still referenced after a full collection at the end of each invocation, MB, in order: what one
   * invocation leaves to the next (flat = nothing held per instance failed over).
   */
  liveHeapAfterInvocationMb: number[];
  timedOut: number;
  functionTimeoutMs: number;
  check: {
    /** Command items read back (of the `instances` expected). */
    commandItems: number;
    /** Instances with a second-generation command item. */
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
    env: { failover: { ...options.env, DEADLINE_MARGIN_MS: String(options.deadlineMarginMs) } },
    sqsConcurrency: 1,
    maxContainers: 1,
    measureLiveHeap: true,
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
  const verifyStarted = performance.now();
  const items = await readCommands(stack, prefix, n);
  const wanted = (id: string) => id.startsWith(`${prefix}-`) && Number(id.slice(prefix.length + 1)) < n;
  const itemDuplicates = items.secondGeneration;
  const itemMissing = items.missing;
  let queueDuplicates = 0;
  let queueInstances = 0;
  for (const count of tally.deliveries.values()) queueDuplicates += count - 1;
  for (const [instance, ids] of tally.idsByInstance) {
    if (!wanted(instance)) continue;
    queueInstances += 1;
    queueDuplicates += ids.length - 1;
  }
  const queueMissing = n - queueInstances;
  note(`scale: verified in ${round((performance.now() - verifyStarted) / 1_000, 1)} s`);
  const mb = (bytes: number | undefined) => round((bytes ?? 0) / 1024 / 1024, 1);
  const rssByInvocationMb = invocations.map((r) => mb(r.maxRssBytes ?? r.rssBytes));
  const rssAfterInvocationMb = invocations.map((r) => mb(r.rssBytes));
  const liveHeapAfterInvocationMb = invocations.flatMap((r) =>
    r.liveHeapBytes === undefined ? [] : [mb(r.liveHeapBytes)],
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
    rssAfterInvocationMb,
    liveHeapAfterInvocationMb,
    timedOut: invocations.filter((r) => r.outcome === 'timeout').length,
    functionTimeoutMs: options.timeoutMs,
    check: {
      commandItems: items.found,
      itemDuplicates,
      itemMissing,
      pending: items.pending,
      queueDeliveries: [...tally.deliveries.values()].reduce((a, b) => a + b, 0),
      queueDuplicates,
      queueMissing,
    },
  };
}

/**
 * Reads back every command item the run had to write (`recover/<instance>/1`, consistent reads) and probes
 * for a second generation (`recover/<instance>/2`, which a repeated failover of the same instance would
 * have written); then reads the outbox records the commands name, to count those still pending. Reads only
 * these keys, so the cost does not grow with what else the table holds.
 */
async function readCommands(
  stack: LocalStack,
  prefix: string,
  n: number,
): Promise<{ found: number; missing: number; secondGeneration: number; pending: number }> {
  const { dynamodb } = stack.clients;
  const table = stack.info.tables.commands;
  const totals = { found: 0, missing: 0, secondGeneration: 0, pending: 0 };
  const slices = Array.from({ length: Math.ceil(n / 50) }, (_, i) => i);
  await mapConcurrently(slices, 8, async (slice) => {
    const ids: string[] = [];
    for (let i = slice * 50; i < Math.min(n, slice * 50 + 50); i += 1) ids.push(seededId(prefix, i));
    const wanted = new Set(ids.map((id) => recoveryCommandId(id, 1)));
    const second = new Set(ids.map((id) => recoveryCommandId(id, 2)));
    const items = await batchGetConsistent(dynamodb, table, [...wanted, ...second]);
    const seen = new Set(items.map((item) => item.id?.S ?? ''));
    for (const id of seen) if (second.has(id)) totals.secondGeneration += 1;
    for (const id of wanted) {
      if (seen.has(id)) totals.found += 1;
      else totals.missing += 1;
    }
    const written = items.filter((item) => wanted.has(item.id?.S ?? ''));
    const states = commandsWithOutboxState([
      ...written,
      ...(await batchGetConsistent(
        dynamodb,
        table,
        written.flatMap((item) => item.outbox?.S ?? []),
      )),
    ]);
    totals.pending += states.filter((c) => c.pending !== undefined || c.enqueuedAt === undefined).length;
  });
  return totals;
}
