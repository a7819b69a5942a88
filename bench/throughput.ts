// Throughput: one dead host with N executing instances, failed over by the real failover function (the
// handler in a local Lambda container), next to (a) the naive sequential approach and (b) the write floor,
// on the same seeded data shape, in one run, with interleaved rounds.
import {
  type DynamoDBClient,
  PutItemCommand,
  QueryCommand,
  type TransactWriteItem,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import { chunk, mapConcurrently } from '../lib/failover/concurrency.ts';
import { type FailoverWrite, type FenceStamp, failoverLockName } from '../lib/failover/ports.ts';
import { buildRecoveryCommand, type ProcessInstance } from '../lib/failover/rules.ts';
import type { LatencyProxy, RequestCounts } from '../lib/local/latency-proxy.ts';
import type { LocalRuntime } from '../lib/local/runtime.ts';
import type { LocalStack } from '../lib/local/stack.ts';
import {
  type CommandMessage,
  commandDedupId,
  commandGroupId,
  type RecoveryCommand,
} from '../lib/messages.ts';
import { commandItem, DynamoCommandStore, outboxId } from '../lib/store/dynamodb/commands.ts';
import { failoverTransaction } from '../lib/store/dynamodb/failover-writes.ts';
import { DynamoInstanceStore } from '../lib/store/dynamodb/instances.ts';
import { seedManyInstances, uniqueHost } from './seed.ts';
import { failoverRequest, median, note, purgeQueue, round, sqsEventOf } from './support.ts';

/** The services as one latency setting sees them: direct, or through the delaying proxies. */
export interface ServiceView {
  latencyMs: number;
  /** DynamoDB client of the floor and the baseline (through the proxy when latencyMs > 0). */
  dynamodb: DynamoDBClient;
  /** SQS client and commands queue URL of the contract floor (through the proxy when latencyMs > 0). */
  sqs: SQSClient;
  commandsQueueUrl: string;
  /** The failover function, configured with the same endpoints. */
  runtime: LocalRuntime;
  proxies?: { dynamodb: LatencyProxy; sqs: LatencyProxy };
}

/** One timed run: instances per second, and DynamoDB Local's CPU per instance meanwhile (µs). */
export interface Timing {
  perSecond: number;
  dynamoCpuUs: number;
}

export interface ThroughputOptions {
  instances: number;
  rounds: number;
}

/** The sequential baseline's rate, timed once per latency on a sample (it does not depend on N). */
export type Baseline = Timing & { count: number };

export interface FloorSearchOptions {
  instances: number;
  batchSizes: number[];
  concurrencies: number[];
}

export interface FloorConfig {
  batchSize: number;
  concurrency: number;
  perSecond: number;
}

export interface ThroughputResult {
  instances: number;
  latencyMs: number;
  perSecond: number;
  baselinePerSecond: number;
  floorPerSecond: number;
  /**
   * The floor plus the outbox (send, mark enqueued) plus the reads (paging the host's index, the next page
   * read ahead), with no logic: the ceiling of any failover that keeps the data contract.
   */
  contractFloorPerSecond: number;
  vsBaseline: number;
  vsFloor: number;
  vsContractFloor: number;
  /** The floor's own ratio to the sequential approach: what no implementation's vsBaseline can exceed. */
  floorVsBaseline: number;
  floorConfig: { batchSize: number; concurrency: number };
  /** DynamoDB Local CPU per instance failed over (µs, medians): where a CPU-bound local service goes. */
  dynamoCpuUsPerInstance: {
    function: number;
    floor: number;
    contractFloor: number;
    baseline: number;
  };
  /** Cores of DynamoDB Local busy during each (rate x CPU per instance): about 1 = the service is the limit. */
  dynamoCores: { function: number; floor: number; baseline: number };
  rounds: Array<{
    functionPerSecond: number;
    floorPerSecond: number;
    contractFloorPerSecond: number;
  }>;
  baselineSampled: number;
  /** Peak resident memory of the function's container after this measurement, MB. */
  functionPeakRssMb: number;
}

/** DynamoInstanceStore with its conditional failover update exposed, so the floor writes exactly the same. */
class WriteBuilder extends DynamoInstanceStore {
  updateOf(write: FailoverWrite<ProcessInstance, RecoveryCommand>, stamp: FenceStamp): TransactWriteItem {
    return this.update(write, stamp);
  }
}

type Write = FailoverWrite<ProcessInstance, RecoveryCommand>;

/** The failover of each of `items`: its generation and its command. */
function failoverWrites(items: readonly ProcessInstance[], stamp: FenceStamp): Write[] {
  return items.map((item) => {
    const message = buildRecoveryCommand(item, { fence: stamp.fence, now: stamp.now, deadHost: stamp.host });
    return { item, generation: message.generation, message };
  });
}

/** One transaction per batch, with exactly the function's items (updates, command puts, outbox record). */
function transactionsOf(
  builder: WriteBuilder,
  commandsTable: string,
  writes: readonly Write[],
  batchSize: number,
  stamp: FenceStamp,
): Array<{ items: TransactWriteItem[]; outboxId: string; commands: RecoveryCommand[] }> {
  return chunk(writes, batchSize).map((batch) => ({
    ...failoverTransaction(batch, (w) => builder.updateOf(w, stamp), commandsTable, stamp),
    commands: batch.map((w) => w.message),
  }));
}

async function readHost(builder: WriteBuilder, host: string, limit?: number): Promise<ProcessInstance[]> {
  const items: ProcessInstance[] = [];
  let cursor: string | undefined;
  do {
    const page = await builder.pageByHost(host, 1_000, cursor);
    items.push(...page.items);
    cursor = page.cursor;
  } while (cursor !== undefined && (limit === undefined || items.length < limit));
  return limit === undefined ? items : items.slice(0, limit);
}

function stampFor(host: string): FenceStamp {
  return { host, fence: 1, lockName: failoverLockName('master', host), now: Date.now() };
}

export class ThroughputBench {
  /** `dynamoCpuMs`: CPU time used so far by the DynamoDB Local process (ms), or 0 when unknown. */
  constructor(
    private readonly stack: LocalStack,
    private readonly dynamoCpuMs: () => number,
  ) {}

  private builder(view: ServiceView): WriteBuilder {
    const { tables } = this.stack.info;
    return new WriteBuilder(view.dynamodb, { instances: tables.instances, commands: tables.commands });
  }

  private async seed(n: number): Promise<string> {
    const host = uniqueHost();
    await seedManyInstances(this.stack, host, n, { concurrency: 8 });
    return host;
  }

  /** Runs `work` on `n` instances and times it, with DynamoDB Local's CPU meanwhile. */
  private async timed(n: number, work: () => Promise<unknown>): Promise<Timing> {
    const cpu = this.dynamoCpuMs();
    const started = performance.now();
    await work();
    const ms = performance.now() - started;
    return { perSecond: (n / ms) * 1_000, dynamoCpuUs: ((this.dynamoCpuMs() - cpu) / n) * 1_000 };
  }

  /** Bare TransactWriteItems: every batch prepared beforehand, `concurrency` in flight, nothing else. */
  async floor(view: ServiceView, n: number, batchSize: number, concurrency: number): Promise<Timing> {
    const host = await this.seed(n);
    const builder = this.builder(view);
    const stamp = stampFor(host);
    const writes = failoverWrites(await readHost(builder, host), stamp);
    const prepared = transactionsOf(builder, this.stack.info.tables.commands, writes, batchSize, stamp);
    const timing = await this.timed(writes.length, () =>
      mapConcurrently(prepared, concurrency, ({ items }) =>
        view.dynamodb.send(new TransactWriteItemsCommand({ TransactItems: items })),
      ),
    );
    await this.settle(prepared.map((t) => t.outboxId));
    return timing;
  }

  /**
   * The floor plus the outbox the data contract asks for plus the reads no implementation can skip: the
   * host's instances are found by paging
   * its `byHost` index (pages of batch x concurrency, the next page read while this one is written), and
   * each page's writes are built from what was read. Still no logic (no lock, no liveness, no decisions,
   * no checks): the ceiling of any failover that keeps the data contract, on the same service.
   */
  async contractFloor(view: ServiceView, n: number, batchSize: number, concurrency: number): Promise<Timing> {
    const host = await this.seed(n);
    const builder = this.builder(view);
    const stamp = stampFor(host);
    const commandsTable = this.stack.info.tables.commands;
    const timing = await this.timed(n, async () => {
      const writer = this.outboxWriter(view, concurrency);
      let next: ReturnType<WriteBuilder['pageByHost']> | undefined = builder.pageByHost(
        host,
        batchSize * concurrency,
      );
      while (next !== undefined) {
        const page: Awaited<ReturnType<WriteBuilder['pageByHost']>> = await next;
        next =
          page.cursor === undefined
            ? undefined
            : builder.pageByHost(host, batchSize * concurrency, page.cursor);
        const writes = failoverWrites(page.items, stamp);
        for (const transaction of transactionsOf(builder, commandsTable, writes, batchSize, stamp)) {
          await writer.submit(transaction);
        }
      }
      await writer.done();
    });
    await purgeQueue(this.stack.clients.sqs, this.stack.info.queues.commands);
    return timing;
  }

  /**
   * What the data contract's outbox adds to the bare transactions, with no logic: as each transaction
   * commits, its commands are sent (SendMessageBatch, 10 per call) and its outbox record marked enqueued
   * (one UpdateItem), without holding up the next transactions (up to `concurrency` deliveries in flight).
   * `submit` returns once the batch's transaction has started (waiting for a free slot).
   */
  private outboxWriter(view: ServiceView, concurrency: number) {
    const outbox = new DynamoCommandStore(view.dynamodb, this.stack.info.tables.commands);
    const deliver = async (record: string, commands: CommandMessage[]) => {
      await Promise.all(
        chunk(commands, 10).map((group) =>
          view.sqs.send(
            new SendMessageBatchCommand({
              QueueUrl: view.commandsQueueUrl,
              Entries: group.map((c, i) => ({
                Id: String(i),
                MessageBody: JSON.stringify(c),
                MessageGroupId: commandGroupId(c),
                MessageDeduplicationId: commandDedupId(c),
              })),
            }),
          ),
        ),
      );
      await outbox.markEnqueued(record, Date.now());
    };
    const transactions = new Set<Promise<void>>();
    const deliveries = new Set<Promise<void>>();
    return {
      submit: async (transaction: {
        items: TransactWriteItem[];
        outboxId: string;
        commands: CommandMessage[];
      }) => {
        while (transactions.size >= concurrency || deliveries.size > concurrency) {
          await Promise.race([...transactions, ...deliveries]);
        }
        const run: Promise<void> = view.dynamodb
          .send(new TransactWriteItemsCommand({ TransactItems: transaction.items }))
          .then(() => {
            const delivery: Promise<void> = deliver(transaction.outboxId, transaction.commands).finally(() =>
              deliveries.delete(delivery),
            );
            deliveries.add(delivery);
          })
          .finally(() => transactions.delete(run));
        transactions.add(run);
      },
      done: async () => {
        await Promise.all(transactions);
        await Promise.all(deliveries);
      },
    };
  }

  /**
   * Takes the outbox records the floor wrote out of the `pending` index (untimed), as the function's outbox
   * does for its own: otherwise every later failover run would page through them when it looks for its
   * host's leftover commands, and measure this harness instead of itself.
   */
  private async settle(records: readonly string[]): Promise<void> {
    const outbox = new DynamoCommandStore(this.stack.clients.dynamodb, this.stack.info.tables.commands);
    await mapConcurrently(records, 4, (record) => outbox.markEnqueued(record, Date.now()));
  }

  /**
   * The naive approach: read the host's instances, then per instance one UpdateItem and one PutItem (the
   * same conditional update, and the same command item; no outbox, as the original had none).
   */
  async baseline(view: ServiceView, n: number): Promise<Baseline> {
    const host = await this.seed(n);
    const builder = this.builder(view);
    const stamp = stampFor(host);
    const table = this.stack.info.tables.commands;
    let count = 0;
    const timing = await this.timed(n, async () => {
      const writes = failoverWrites(await readHost(builder, host), stamp);
      for (const write of writes) {
        const update = builder.updateOf(write, stamp).Update;
        if (update === undefined) throw new Error('unexpected write shape');
        await view.dynamodb.send(new UpdateItemCommand(update));
        await view.dynamodb.send(
          new PutItemCommand({
            TableName: table,
            Item: commandItem(write.message, outboxId([write.message])),
            ConditionExpression: 'attribute_not_exists(id)',
          }),
        );
      }
      count = writes.length;
    });
    return { ...timing, count };
  }

  /** The real failover function, one direct invocation for the whole host. */
  async function_(view: ServiceView, n: number): Promise<Timing & { counts?: ProxyCounts }> {
    const host = await this.seed(n);
    view.proxies?.dynamodb.resetCounts();
    view.proxies?.sqs.resetCounts();
    let response: SQSBatchResponse | undefined;
    const timing = await this.timed(n, async () => {
      response = (await view.runtime.invoke('failover', sqsEventOf(failoverRequest(host)))) as
        | SQSBatchResponse
        | undefined;
    });
    const counts = view.proxies
      ? { dynamodb: view.proxies.dynamodb.counts(), sqs: view.proxies.sqs.counts() }
      : undefined;
    if ((response?.batchItemFailures ?? []).length > 0) throw new Error(`failover of ${host} failed`);
    const left = await this.executingLeft(host);
    if (left !== 0) throw new Error(`failover of ${host} left ${left} executing instances`);
    await purgeQueue(this.stack.clients.sqs, this.stack.info.queues.commands);
    return { ...timing, ...(counts ? { counts } : {}) };
  }

  private async executingLeft(host: string): Promise<number> {
    const out = await this.stack.clients.dynamodb.send(
      new QueryCommand({
        TableName: this.stack.info.tables.instances,
        IndexName: 'byHost',
        KeyConditionExpression: '#host = :host',
        ExpressionAttributeNames: { '#host': 'host' },
        ExpressionAttributeValues: { ':host': { S: host } },
        Select: 'COUNT',
      }),
    );
    return out.Count ?? 0;
  }

  /** JIT and container warm-up: a small failover through every path, not measured. */
  async warmUp(view: ServiceView, n: number, times: number): Promise<void> {
    await view.runtime.invoke('failover', { Records: [] });
    for (let i = 0; i < times; i += 1) {
      await this.floor(view, n, 25, 8);
      await this.contractFloor(view, n, 25, 8);
      await this.function_(view, n);
    }
    await this.baseline(view, Math.min(n, 50));
  }

  /** The best floor over a small grid of batch sizes and concurrencies. */
  async searchFloor(view: ServiceView, options: FloorSearchOptions): Promise<FloorConfig[]> {
    const results: FloorConfig[] = [];
    for (const batchSize of options.batchSizes) {
      for (const concurrency of options.concurrencies) {
        const { perSecond } = await this.floor(view, options.instances, batchSize, concurrency);
        results.push({ batchSize, concurrency, perSecond: round(perSecond) });
      }
    }
    results.sort((a, b) => b.perSecond - a.perSecond);
    note(
      `floor search (latency ${view.latencyMs} ms, ${options.instances} instances): ${results
        .slice(0, 4)
        .map((r) => `${r.batchSize}x${r.concurrency}=${r.perSecond}/s`)
        .join(', ')}`,
    );
    return results;
  }

  /** Function and the three floors in interleaved rounds (rotating order); medians, and the ratios. */
  async measure(
    view: ServiceView,
    options: ThroughputOptions,
    baseline: Baseline,
    floorConfig: { batchSize: number; concurrency: number },
    onCounts?: (counts: ProxyCounts, instances: number) => void,
  ): Promise<ThroughputResult> {
    const n = options.instances;
    const { batchSize, concurrency } = floorConfig;
    const rounds: Array<{ function: Timing; floor: Timing; contractFloor: Timing }> = [];
    for (let i = 0; i < options.rounds; i += 1) {
      const runs: Array<[keyof (typeof rounds)[number], () => Promise<Timing>]> = [
        [
          'function',
          async () => {
            const fn = await this.function_(view, n);
            if (fn.counts) onCounts?.(fn.counts, n);
            return fn;
          },
        ],
        ['floor', () => this.floor(view, n, batchSize, concurrency)],
        ['contractFloor', () => this.contractFloor(view, n, batchSize, concurrency)],
      ];
      // Rotate the order, so a slow spell of the shared machine does not always hit the same one.
      const order = [...runs.slice(i % runs.length), ...runs.slice(0, i % runs.length)];
      const round_: Partial<(typeof rounds)[number]> = {};
      for (const [name, run] of order) round_[name] = await run();
      const r = round_ as (typeof rounds)[number];
      rounds.push(r);
      note(
        `  N=${n} latency=${view.latencyMs}ms round ${i + 1}: function ${round(r.function.perSecond)}/s, floor ${round(r.floor.perSecond)}/s, contract floor ${round(r.contractFloor.perSecond)}/s (DynamoDB Local CPU per instance: ${round(r.function.dynamoCpuUs)} / ${round(r.floor.dynamoCpuUs)} / ${round(r.contractFloor.dynamoCpuUs)} µs)`,
      );
    }
    const med = (pick: (r: (typeof rounds)[number]) => number) => median(rounds.map(pick));
    const perSecond = med((r) => r.function.perSecond);
    const floorPerSecond = med((r) => r.floor.perSecond);
    const contractFloorPerSecond = med((r) => r.contractFloor.perSecond);
    return {
      instances: n,
      latencyMs: view.latencyMs,
      perSecond: round(perSecond),
      baselinePerSecond: round(baseline.perSecond, 1),
      floorPerSecond: round(floorPerSecond),
      contractFloorPerSecond: round(contractFloorPerSecond),
      vsBaseline: round(perSecond / baseline.perSecond, 2),
      vsFloor: round(perSecond / floorPerSecond, 2),
      vsContractFloor: round(perSecond / contractFloorPerSecond, 2),
      floorVsBaseline: round(floorPerSecond / baseline.perSecond, 2),
      floorConfig: { batchSize, concurrency },
      dynamoCpuUsPerInstance: {
        function: round(med((r) => r.function.dynamoCpuUs)),
        floor: round(med((r) => r.floor.dynamoCpuUs)),
        contractFloor: round(med((r) => r.contractFloor.dynamoCpuUs)),
        baseline: round(baseline.dynamoCpuUs),
      },
      dynamoCores: {
        function: round((perSecond * med((r) => r.function.dynamoCpuUs)) / 1e6, 2),
        floor: round((floorPerSecond * med((r) => r.floor.dynamoCpuUs)) / 1e6, 2),
        baseline: round((baseline.perSecond * baseline.dynamoCpuUs) / 1e6, 2),
      },
      rounds: rounds.map((r) => ({
        functionPerSecond: round(r.function.perSecond),
        floorPerSecond: round(r.floor.perSecond),
        contractFloorPerSecond: round(r.contractFloor.perSecond),
      })),
      baselineSampled: baseline.count,
      functionPeakRssMb: round(peakRssMb(view.runtime), 1),
    };
  }
}

export interface ProxyCounts {
  dynamodb: RequestCounts;
  sqs: RequestCounts;
}

/** Peak resident memory of the failover containers, MB (the process-lifetime maximum). */
export function peakRssMb(runtime: LocalRuntime): number {
  const bytes = Math.max(
    0,
    ...runtime
      .invocations()
      .filter((r) => r.functionName === 'failover')
      .map((r) => r.maxRssBytes ?? r.rssBytes ?? 0),
  );
  return bytes / 1024 / 1024;
}
