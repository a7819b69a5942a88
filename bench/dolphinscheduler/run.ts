// The benchmark's DolphinScheduler part (issue 16): per dialect (PostgreSQL, MariaDB), on the real server
// the local stack starts, throughput against DolphinScheduler's own routine and the write floor (plain and
// with a simulated round trip to the database), the database cost per 1,000 instances, 100,000 instances
// among 1,000,000 finished ones without and with the index on host, and detection to command rows.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { withoutRequestLogging } from '../../lib/aws.ts';
import { loadConfig } from '../../lib/config.ts';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, localCredentials } from '../../lib/local/stack.ts';
import { startTcpProxy, type TcpProxy } from '../../lib/local/tcp-proxy.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { type Dialect, openDatabase, parseDatabaseUrl } from '../../lib/store/dolphinscheduler/database.ts';
import { DynamoRunJournal } from '../../lib/store/dynamodb/run-journal.ts';
import { type Cores, describeCores } from '../cores.ts';
import type { TargetCheck } from '../format.ts';
import { FLATNESS_MIN_VALUES, flatness, median, note, round } from '../support.ts';
import { type DsCostResult, measureDsCost } from './cost.ts';
import { type BenchDatabase, DS_TIME_ZONE, hostIndexDdl, startBenchDatabase } from './database.ts';
import { type DsDetectionResult, measureDsDetection } from './detection.ts';
import { type DsScaleResult, type DsSweepCost, measureDsScale } from './scale.ts';
import {
  type DsFloorConfig,
  DsThroughputBench,
  type DsThroughputResult,
  type DsView,
  FINISHED_PER_INSTANCE,
} from './throughput.ts';

export interface DsPlan {
  dialects: Dialect[];
  sizes: number[];
  /** Simulated round trips to the database, ms (0: direct). */
  latencies: number[];
  /** Interleaved rounds (function, floor, contract floor) per N. */
  rounds: (instances: number) => number;
  /** Instances of the warm-up runs. */
  warmUp: number;
  /**
   * Executing instances DolphinScheduler's routine is timed on, per latency, among the finished instances of
   * the largest N's table: its rate does not depend on N (one scan of the table, then the same transaction
   * per instance), so it is timed once per latency and every N's row uses it.
   */
  routineSample: (latencyMs: number) => number;
  search: { instances: number; batchSizes: number[]; concurrencies: number[] };
  cost: { functionInstances: number; routineInstances: number };
  scale: {
    instances: number;
    finished: number;
    timeoutMs: number;
    deadlineMarginMs: number;
    limitMs: number;
  };
  detection: { dialect: Dialect; removals: number; instancesPerMaster: number };
}

export const dsPlans: Record<'full' | 'quick', DsPlan> = {
  full: {
    dialects: ['postgresql', 'mysql'],
    sizes: [1_000, 10_000],
    latencies: [0, 1],
    rounds: (instances) => (instances >= 10_000 ? 2 : 3),
    warmUp: 2_000,
    routineSample: (latencyMs) => (latencyMs > 0 ? 200 : 1_000),
    search: { instances: 2_000, batchSizes: [49, 196], concurrencies: [4, 8] },
    cost: { functionInstances: 10_000, routineInstances: 1_000 },
    scale: {
      instances: 100_000,
      finished: 1_000_000,
      // Short invocations (about 0.5 s of work each, 10-15 of them at 15,000-20,000 a second), so that
      // the live heap is measured across many continuations.
      timeoutMs: 3_000,
      deadlineMarginMs: 2_500,
      limitMs: 240_000,
    },
    detection: { dialect: 'postgresql', removals: 30, instancesPerMaster: 3 },
  },
  quick: {
    dialects: ['postgresql', 'mysql'],
    sizes: [200],
    latencies: [0, 1],
    rounds: () => 1,
    warmUp: 100,
    routineSample: () => 50,
    search: { instances: 200, batchSizes: [49], concurrencies: [2, 4] },
    cost: { functionInstances: 200, routineInstances: 50 },
    scale: {
      instances: 1_000,
      finished: 10_000,
      timeoutMs: 3_000,
      deadlineMarginMs: 2_900,
      limitMs: 120_000,
    },
    detection: { dialect: 'postgresql', removals: 5, instancesPerMaster: 3 },
  },
};

export interface DsRoundTrip {
  dialect: Dialect;
  latencyMs: number;
  /** `SELECT 1` straight to the server and through the proxy (median ms), and the difference. */
  directMs: number;
  proxiedMs: number;
  addedMs: number;
}

export interface DolphinSchedulerResults {
  dialects: Dialect[];
  timeZone: string;
  version: '3.2';
  /** The function's settings in every run (its defaults unless the bench's environment sets them). */
  settings: { failoverBatchSize: number; failoverConcurrency: number; scanSpan: number; poolMax: number };
  /** Where the database servers ran. */
  cores: string;
  /** The index of the `indexed` scale runs, per dialect. */
  hostIndex: Record<string, string>;
  /** What the simulated round trip really adds, measured per dialect and setting. */
  roundTrips: DsRoundTrip[];
  throughput: Array<DsThroughputResult & { measuredRoundTripMs: number }>;
  floorSearch: Array<{ dialect: Dialect; latencyMs: number; instances: number; results: DsFloorConfig[] }>;
  cost: DsCostResult[];
  scale: DsScaleResult[];
  sweep: DsSweepCost[];
  detection: DsDetectionResult;
  /** Every throughput run (function, routine, floors) read back from the tables. */
  checks: { runs: number; duplicates: number; missing: number; leftovers: number };
  durationSeconds: number;
}

const REGISTRY_ROOT = '/dolphinscheduler';

/** Median `SELECT 1` time over a connection of `url`, ms. */
async function pingMs(url: string, times = 60): Promise<number> {
  const db = openDatabase(parseDatabaseUrl(url), {
    max: 1,
    lockTimeoutMs: 5_000,
    statementTimeoutMs: 10_000,
  });
  try {
    await db.query('SELECT 1');
    const samples: number[] = [];
    for (let i = 0; i < times; i += 1) {
      const started = performance.now();
      await db.query('SELECT 1');
      samples.push(performance.now() - started);
    }
    return median(samples);
  } finally {
    await db.close();
  }
}

/** Stops what the part started when the run is interrupted. */
export type Stopper = { stop(): Promise<void> };

export async function runDolphinSchedulerBench(
  stack: LocalStack,
  options: { plan: DsPlan; cores: Cores; onStarted?: (stopper: Stopper) => void },
): Promise<DolphinSchedulerResults> {
  const { plan } = options;
  const t0 = performance.now();
  const env = loadConfig(
    ['DS_BATCH_SIZE', 'FAILOVER_CONCURRENCY', 'DS_SCAN_SPAN', 'DS_POOL_MAX'],
    process.env,
  );
  const settings = {
    failoverBatchSize: env.DS_BATCH_SIZE,
    failoverConcurrency: env.FAILOVER_CONCURRENCY,
    scanSpan: env.DS_SCAN_SPAN,
    poolMax: env.DS_POOL_MAX,
  };
  const functionEnv = (url: string): Record<string, string> => ({
    STORE: 'dolphinscheduler',
    DS_DATABASE_URL: url,
    DS_TIME_ZONE,
    DS_VERSION: '3.2',
    POWERTOOLS_METRICS_DISABLED: 'true',
    DS_BATCH_SIZE: String(settings.failoverBatchSize),
    FAILOVER_CONCURRENCY: String(settings.failoverConcurrency),
    DS_SCAN_SPAN: String(settings.scanSpan),
    DS_POOL_MAX: String(settings.poolMax),
  });
  const dynamodb = withoutRequestLogging(
    new DynamoDBClient({
      endpoint: stack.info.dynamodb,
      region: stack.info.region,
      credentials: localCredentials,
    }),
  );
  const journal = new DynamoRunJournal(dynamodb, stack.info.tables.commands);
  const results: Omit<DolphinSchedulerResults, 'detection' | 'durationSeconds' | 'cores'> & {
    detection?: DsDetectionResult;
    cores: string[];
  } = {
    dialects: plan.dialects,
    timeZone: DS_TIME_ZONE,
    version: '3.2',
    settings,
    cores: [],
    hostIndex: Object.fromEntries(plan.dialects.map((d) => [d, hostIndexDdl(d)])),
    roundTrips: [],
    throughput: [],
    floorSearch: [],
    cost: [],
    scale: [],
    sweep: [],
    checks: { runs: 0, duplicates: 0, missing: 0, leftovers: 0 },
  };
  // What is running now, for an interrupted run.
  let db: BenchDatabase | undefined;
  let proxy: TcpProxy | undefined;
  let zk: ZkSession | undefined;
  let bench: DsThroughputBench | undefined;
  const runtimes: LocalRuntime[] = [];
  const stopDialect = async () => {
    await Promise.allSettled(runtimes.splice(0).map((r) => r.stop()));
    await bench?.close();
    await zk?.close().catch(() => undefined);
    await proxy?.stop();
    await db?.stop();
    bench = undefined;
    zk = undefined;
    proxy = undefined;
    db = undefined;
  };
  options.onStarted?.({
    stop: async () => {
      await stopDialect();
      dynamodb.destroy();
    },
  });
  try {
    for (const dialect of plan.dialects) {
      note(`dolphinscheduler ${dialect}: starting the database`);
      db = await startBenchDatabase(dialect, options.cores);
      results.cores.push(
        `${dialect}: ${'shared' in db.cores ? describeCores(db.cores) : `server on CPU ${db.cores.dynamoDbLocal.join(',')} with DynamoDB Local, the benchmark and its containers on ${db.cores.clients.join(',')}`}`,
      );
      const target = new URL(db.url);
      proxy = await startTcpProxy({ target: { host: target.hostname, port: Number(target.port) } });
      zk = await connectZk({
        connectString: stack.zookeeper.connectString,
        sessionTimeoutMs: 10_000,
        connectTimeoutMs: 10_000,
      });
      bench = new DsThroughputBench(db, zk, REGISTRY_ROOT, journal);
      const directMs = await pingMs(db.url);
      for (const latencyMs of plan.latencies) {
        const url = latencyMs > 0 ? proxy.proxiedUrl(db.url) : db.url;
        proxy.roundTripMs = latencyMs;
        const proxiedMs = latencyMs > 0 ? await pingMs(url) : directMs;
        const roundTrip = {
          dialect,
          latencyMs,
          directMs: round(directMs, 3),
          proxiedMs: round(proxiedMs, 3),
          addedMs: round(proxiedMs - directMs, 2),
        };
        results.roundTrips.push(roundTrip);
        const runtime = startLocalRuntime(stack, {
          functions: ['failover'],
          eventSources: false,
          maxContainers: 1,
          timeoutMs: { failover: 600_000 },
          env: { failover: functionEnv(url) },
        });
        runtimes.push(runtime);
        const view: DsView = { latencyMs, url, runtime };
        note(
          `dolphinscheduler ${dialect} ${latencyMs} ms (adds ${roundTrip.addedMs} ms a round trip): warm-up`,
        );
        await bench.warmUp(view, plan.warmUp);
        // DolphinScheduler's routine, once per latency, on a sample among the largest N's finished instances.
        const largest = Math.max(...plan.sizes);
        const sample = Math.min(largest, plan.routineSample(latencyMs));
        const routine = await bench.routine(view, sample, largest * FINISHED_PER_INSTANCE);
        note(
          `  ${dialect} ${latencyMs} ms DolphinScheduler's routine ${round(routine.perSecond, 1)}/s (${sample} instances among ${largest * FINISHED_PER_INSTANCE} finished)`,
        );
        const search = await bench.searchFloor(view, plan.search);
        results.floorSearch.push({ dialect, latencyMs, instances: plan.search.instances, results: search });
        const best = search[0] as DsFloorConfig;
        for (const n of plan.sizes) {
          const row = await bench.measure(
            view,
            { instances: n, rounds: plan.rounds(n) },
            routine,
            best,
            { batchSize: settings.failoverBatchSize, concurrency: settings.failoverConcurrency },
            search,
          );
          results.throughput.push({ ...row, measuredRoundTripMs: roundTrip.addedMs });
        }
      }
      // Nothing of the throughput phase stays connected: the cost counts what connects afterwards.
      await Promise.allSettled(runtimes.splice(0).map((r) => r.stop()));
      await bench.close();
      proxy.roundTripMs = 0;
      for (const [k, v] of Object.entries(bench.checks))
        results.checks[k as keyof typeof results.checks] += v;

      note(`dolphinscheduler ${dialect}: database cost`);
      results.cost.push(
        await measureDsCost(stack, db, zk, {
          functionInstances: plan.cost.functionInstances,
          routineInstances: plan.cost.routineInstances,
          registryRoot: REGISTRY_ROOT,
          functionEnv: functionEnv(db.url),
        }),
      );

      note(
        `dolphinscheduler ${dialect}: scale, ${plan.scale.instances} among ${plan.scale.finished} finished, without and with the index`,
      );
      const scale = await measureDsScale(stack, db, { ...plan.scale, env: functionEnv(db.url) });
      results.scale.push(...scale.runs);
      results.sweep.push(...scale.sweeps);

      if (dialect === plan.detection.dialect) {
        note(`dolphinscheduler ${dialect}: detection, ${plan.detection.removals} masters removed`);
        results.detection = await measureDsDetection(stack, db, {
          removals: plan.detection.removals,
          instancesPerMaster: plan.detection.instancesPerMaster,
          registryRoot: REGISTRY_ROOT,
          functionEnv: functionEnv(db.url),
        });
        const d = results.detection;
        note(
          `  detection: p50 ${d.p50Ms} ms, p99 ${d.p99Ms} ms after the raw watch (raw p99 ${d.rawP99Ms} ms)`,
        );
      }
      await stopDialect();
    }
  } finally {
    await stopDialect();
    dynamodb.destroy();
  }
  return {
    ...results,
    cores: results.cores.join('; '),
    detection: results.detection ?? emptyDetection(plan.detection.dialect),
    durationSeconds: round((performance.now() - t0) / 1_000, 1),
  };
}

function emptyDetection(dialect: Dialect): DsDetectionResult {
  return {
    dialect,
    removals: 0,
    relayed: 0,
    instancesPerMaster: 0,
    p50Ms: Number.NaN,
    p99Ms: Number.NaN,
    maxMs: Number.NaN,
    rawP50Ms: Number.NaN,
    rawP99Ms: Number.NaN,
    endToEndP99Ms: Number.NaN,
    pollMs: 0,
    samples: [],
  };
}

/** Issue 16's targets, each with the ceiling measured in the same run that stands in the way when missed. */
export function evaluateDsTargets(ds: DolphinSchedulerResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const name = (t: DsThroughputResult) => `DS ${t.dialect} N=${t.instances}, ${t.latencyMs} ms`;
  for (const t of ds.throughput) {
    const contractShare = t.contractFloorPerSecond / t.floorPerSecond;
    const w = t.contractFloorWaits;
    const atSettings =
      t.floorAtFunctionSettingsPerSecond === undefined
        ? ''
        : `; bare statements at the function's own ${ds.settings.failoverBatchSize} x ${ds.settings.failoverConcurrency} reach ${(t.floorAtFunctionSettingsPerSecond / t.floorPerSecond).toFixed(2)} of the floor`;
    const waits = `its pipeline waits for page reads ${Math.round(w.reads * 100)}% of its time, for the journal ${Math.round(w.journal * 100)}%, for write slots ${Math.round(w.writes * 100)}%${atSettings}`;
    checks.push({
      name: `${name(t)}: share of the floor`,
      target: '>= 0.8',
      value: t.vsFloor.toFixed(2),
      holds: t.vsFloor >= 0.8,
      note:
        t.vsFloor >= 0.8
          ? undefined
          : contractShare < 0.8
            ? `out of reach here: the contract floor (reads by id ranges, the store's writes, the journal; no logic) is itself ${contractShare.toFixed(2)} of the floor (${waits}); the function is at ${t.vsContractFloor.toFixed(2)} of it`
            : `the contract floor reaches ${contractShare.toFixed(2)} of the floor (${waits}); the function is at ${t.vsContractFloor.toFixed(2)} of it`,
    });
    if (t.instances < 10_000) continue;
    const wanted = t.latencyMs > 0 ? 30 : 10;
    const contractRatio = t.contractFloorPerSecond / t.dsRoutinePerSecond;
    checks.push({
      name: `${name(t)}: vs DolphinScheduler's routine`,
      target: `>= ${wanted}x`,
      value: `${t.vsDsRoutine.toFixed(1)}x`,
      holds: t.vsDsRoutine >= wanted,
      note:
        t.vsDsRoutine >= wanted
          ? undefined
          : t.floorVsDsRoutine < wanted
            ? `out of reach here: bare batched statements (the floor) reach ${t.floorVsDsRoutine.toFixed(1)}x, the contract floor ${contractRatio.toFixed(1)}x`
            : contractRatio < wanted
              ? `out of reach here: the contract floor is itself ${contractRatio.toFixed(1)}x (the floor ${t.floorVsDsRoutine.toFixed(1)}x)`
              : `the contract floor reaches ${contractRatio.toFixed(1)}x; the function is at ${t.vsContractFloor.toFixed(2)} of it`,
    });
  }
  if (ds.checks.runs > 0) {
    const c = ds.checks;
    checks.push({
      name: `DS throughput: every run read back (${c.runs} runs)`,
      target: '0 duplicate / 0 missing / 0 left',
      value: `${c.duplicates} / ${c.missing} / ${c.leftovers}`,
      holds: c.duplicates === 0 && c.missing === 0 && c.leftovers === 0,
    });
  }
  for (const s of ds.scale) {
    const label = `DS ${s.dialect} scale ${s.instances} among ${s.finishedRows}${s.indexed ? ', indexed' : ''}`;
    checks.push({
      name: `${label}: duplicates / missing / left`,
      target: '0 / 0 / 0',
      value: `${s.duplicates} / ${s.missing} / ${s.leftovers}`,
      holds: s.duplicates === 0 && s.missing === 0 && s.leftovers === 0,
    });
    const heap = flatness(s.liveHeapAfterInvocationMb);
    checks.push({
      name: `${label}: live heap over the last 3/4 of the run`,
      target: '<= 1.1x of the first 1/4 (flat)',
      ...(heap === undefined
        ? {
            value: `not measured: ${s.liveHeapAfterInvocationMb.length} invocation(s) measured, ${FLATNESS_MIN_VALUES} needed`,
            holds: false,
          }
        : {
            value: `${heap.late} MB vs ${heap.early} MB (peak RSS ${s.peakRssMb} MB, ${s.invocations} invocations)`,
            holds: heap.late <= heap.early * 1.1,
          }),
    });
  }
  const d = ds.detection;
  if (d.removals > 0) {
    const holds = d.p99Ms <= 250 && d.relayed === d.removals;
    // No ceiling to measure here: say whether the whole distribution or a few removals carry the p99.
    const slow = d.samples.map((x) => x.commandMs).filter((ms) => ms > 250);
    checks.push({
      name: `DS ${d.dialect} detection to command rows, p99 after the raw watch`,
      target: '<= 250 ms',
      value: `${d.p99Ms} ms (${d.relayed}/${d.removals} removals)`,
      holds,
      note: holds
        ? undefined
        : `${slow.length} of ${d.samples.length} removals over 250 ms (${slow
            .sort((a, b) => a - b)
            .map((ms) => Math.round(ms))
            .join(', ')} ms); p50 ${d.p50Ms} ms, raw watch p99 ${d.rawP99Ms} ms`,
    });
  }
  return checks;
}
