// Throughput on DolphinScheduler's database: one dead master with N executing instances among ten times
// as many finished instances of other hosts (no index on host), failed over by
// - the function: the real handler in a local Lambda container, its default settings, its locks included;
// - DolphinScheduler's own routine: SimulatedDsMaster.failOverMaster (lib/sim/ds-master.ts), 3.2's
//   MasterFailoverService reproduced statement for statement, under its ZooKeeper mutex;
// - the floor: the same rows and commands written by bare batched statements (the store's own statement
//   builders), prepared before timing, at the best batch size and concurrency a small search finds;
// - the contract floor: what DESIGN section 10 asks of any implementation, with no logic: the host's
//   instances found by primary-key ranges (D7: no index on host), each batch written by the store's own
//   write (D1, D2: only the rows still matching, a command for each) and recorded in the run journal (D6),
//   pipelined as the function does. No lock, no liveness, no decisions, no checks.
// Each run on a table of its own, checked afterwards: one command row per instance, none left on the host.
import type { SQSBatchResponse } from 'aws-lambda';
import { chunk, mapConcurrently } from '../../lib/failover/concurrency.ts';
import { type FenceStamp, failoverLockName, type Page, type RunJournal } from '../../lib/failover/ports.ts';
import { buildRecoveryCommand } from '../../lib/failover/rules.ts';
import type { LocalRuntime } from '../../lib/local/runtime.ts';
import type { ZkSession } from '../../lib/registry/zk-client.ts';
import { SimulatedDsMaster } from '../../lib/sim/ds-master.ts';
import { NEED_FAILOVER_STATES } from '../../lib/store/dolphinscheduler/codes.ts';
import {
  type DsProcessInstance,
  recoveryCommandParam,
} from '../../lib/store/dolphinscheduler/command-row.ts';
import {
  type Database,
  type Dialect,
  openDatabase,
  parseDatabaseUrl,
} from '../../lib/store/dolphinscheduler/database.ts';
import { CoalescingJournal, DS_DELIVERY_BACKLOG } from '../../lib/store/dolphinscheduler/delivery.ts';
import { DsInstanceStore } from '../../lib/store/dolphinscheduler/instances.ts';
import {
  type FailoverTarget,
  mysqlInsertCommandsSql,
  mysqlReleaseSql,
  pgFailoverSql,
  type Statement,
} from '../../lib/store/dolphinscheduler/sql.ts';
import { WallClock } from '../../lib/store/dolphinscheduler/wall-time.ts';
import { uniqueHost } from '../seed.ts';
import { failoverRequest, median, note, round, sqsEventOf } from '../support.ts';
import { type BenchDatabase, checkFailover, DS_TIME_ZONE, freshTable } from './database.ts';

/** The database as one latency setting sees it: direct, or through the delaying TCP proxy. */
export interface DsView {
  /** The simulated round trip set on the proxy (0: direct). */
  latencyMs: number;
  /** The database URL of the routine and the floor (the proxy's when latencyMs > 0). */
  url: string;
  /** The failover function, configured with the same URL. */
  runtime: LocalRuntime;
}

export interface DsFloorConfig {
  batchSize: number;
  concurrency: number;
  perSecond: number;
}

export interface DsRoutineRate {
  perSecond: number;
  /** Executing instances it failed over (among 10 x N finished ones). */
  sampled: number;
}

export interface DsThroughputResult {
  dialect: Dialect;
  instances: number;
  latencyMs: number;
  /** The function's rate (median of the rounds). */
  perSecond: number;
  dsRoutinePerSecond: number;
  floorPerSecond: number;
  /** Reads by id ranges, the store's writes, the journal, pipelined; no logic: the ceiling of the contract. */
  contractFloorPerSecond: number;
  /** perSecond / dsRoutinePerSecond. */
  vsDsRoutine: number;
  /** perSecond / floorPerSecond. */
  vsFloor: number;
  vsContractFloor: number;
  /** The floor's own ratio to DolphinScheduler's routine: what no implementation's vsDsRoutine can exceed. */
  floorVsDsRoutine: number;
  floorConfig: { batchSize: number; concurrency: number };
  /** The floor at the function's own batch size and concurrency, from the floor search (same run). */
  floorAtFunctionSettingsPerSecond?: number;
  /**
   * Where the contract floor's pipeline waited, as shares of its time (all rounds): for the next page (the
   * store's reads: query and row parsing), for a free write slot (the store's writes), or for the journal to
   * keep up (its records in flight at the bound). What is left is its own work between waits.
   */
  contractFloorWaits: { reads: number; writes: number; journal: number };
  /** Executing instances DolphinScheduler's routine was timed on (its rate does not depend on N). */
  dsRoutineSampled: number;
  /** Finished instances of other hosts in the table, per executing instance. */
  finishedPerInstance: number;
  rounds: Array<{ functionPerSecond: number; floorPerSecond: number; contractFloorPerSecond: number }>;
  /** Every run read back from the tables: duplicate and missing command rows, instances left on the host. */
  duplicates: number;
  missing: number;
  leftovers: number;
}

/** Milliseconds the contract floor spent waiting, by what it waited for. */
export interface ContractFloorWaits {
  totalMs: number;
  readsMs: number;
  writesMs: number;
  journalMs: number;
}

/** Finished instances of other hosts per executing instance of the dead host. */
export const FINISHED_PER_INSTANCE = 10;
const HOUR = 3_600_000;

export class DsThroughputBench {
  /** Checked-run totals across every run of this bench (all must stay 0). */
  readonly checks = { runs: 0, duplicates: 0, missing: 0, leftovers: 0 };
  readonly #pools = new Map<string, Database>();

  constructor(
    private readonly db: BenchDatabase,
    private readonly zk: ZkSession,
    private readonly registryRoot: string,
    /** The function's run journal (DynamoDB), written by the contract floor as the function writes it. */
    private readonly journal: RunJournal,
  ) {}

  /** A pool per URL for the routine and the floor, kept open (its connections made before any timing). */
  private async pool(url: string, size: number): Promise<Database> {
    const key = `${url}#${size}`;
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = openDatabase(parseDatabaseUrl(url), {
        max: size,
        lockTimeoutMs: 10_000,
        statementTimeoutMs: 600_000,
      });
      this.#pools.set(key, pool);
      const opened = pool;
      await Promise.all(Array.from({ length: size }, () => opened.transaction((tx) => tx.query('SELECT 1'))));
    }
    return pool;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#pools.values()].map((p) => p.close()));
    this.#pools.clear();
  }

  private async seed(executing: number, finished: number): Promise<string> {
    const host = uniqueHost();
    await freshTable(this.db.admin, { host, executing, finished, startTime: Date.now() - HOUR });
    return host;
  }

  /** Reads the run's outcome back from the tables; a broken one is counted (and reported), not hidden. */
  private async check(host: string, what: string): Promise<void> {
    const result = await checkFailover(this.db.admin, host);
    this.checks.runs += 1;
    this.checks.duplicates += result.duplicates;
    this.checks.missing += result.missing;
    this.checks.leftovers += result.leftovers;
    if (result.duplicates + result.missing + result.leftovers > 0) {
      note(
        `  ${what}: ${result.duplicates} duplicate and ${result.missing} missing command rows, ${result.leftovers} instances left on ${host}`,
      );
    }
  }

  private static async timed(n: number, work: () => Promise<unknown>): Promise<number> {
    const started = performance.now();
    await work();
    return (n / (performance.now() - started)) * 1_000;
  }

  /** The real failover function, one direct invocation for the whole host. */
  async function_(view: DsView, n: number): Promise<number> {
    const host = await this.seed(n, n * FINISHED_PER_INSTANCE);
    let response: SQSBatchResponse | undefined;
    const perSecond = await DsThroughputBench.timed(n, async () => {
      response = (await view.runtime.invoke('failover', sqsEventOf(failoverRequest(host)))) as
        | SQSBatchResponse
        | undefined;
    });
    if ((response?.batchItemFailures ?? []).length > 0) throw new Error(`failover of ${host} failed`);
    await this.check(host, `function, N=${n}, ${view.latencyMs} ms`);
    return perSecond;
  }

  /**
   * DolphinScheduler's own routine on `sample` executing instances among `finished` others: the simulated
   * 3.2 master's failOverMaster (ZooKeeper mutex, the host's instances in one query without an index, then
   * per instance one transaction: full-row update by id, the schedule lookup, the command insert).
   */
  async routine(view: DsView, sample: number, finished: number): Promise<DsRoutineRate> {
    const host = await this.seed(sample, finished);
    const master = new SimulatedDsMaster({
      db: await this.pool(view.url, 1),
      session: this.zk,
      root: this.registryRoot,
      host: '192.0.2.1:5678',
      timeZone: DS_TIME_ZONE,
    });
    let failedOver = 0;
    const perSecond = await DsThroughputBench.timed(sample, async () => {
      const result = await master.failOverMaster(host);
      if (result.error !== undefined) throw result.error;
      failedOver = result.failedOver.length;
    });
    if (failedOver !== sample)
      throw new Error(`DolphinScheduler's routine failed over ${failedOver} of ${sample}`);
    await this.check(host, `DolphinScheduler's routine, ${sample} instances, ${view.latencyMs} ms`);
    return { perSecond, sampled: sample };
  }

  /**
   * The floor: the host's instances read beforehand, every batch's statements built by the store's own SQL
   * builders before timing, then `concurrency` batches in flight and nothing else (no lock, no decisions,
   * no page reads, no journal). PostgreSQL: the store's one statement per batch (conditional update and
   * command insert). MySQL: one transaction per batch with the conditional update and the command insert
   * (not the store's locking read nor its read-back of the command ids, which only serve to know what
   * changed when something else writes too).
   */
  async floor(view: DsView, n: number, batchSize: number, concurrency: number): Promise<number> {
    const host = await this.seed(n, n * FINISHED_PER_INSTANCE);
    const pool = await this.pool(view.url, concurrency);
    const batches = await this.prepareFloor(host, batchSize);
    const perSecond = await DsThroughputBench.timed(n, () =>
      mapConcurrently(batches, concurrency, async (batch) => {
        if (pool.dialect === 'postgresql') {
          await pool.query(batch[0]?.sql ?? '', batch[0]?.params);
          return;
        }
        await pool.transaction(async (tx) => {
          const [release, insert] = batch as [Statement, Statement];
          await tx.query(release.sql, release.params);
          await tx.query(insert.sql, insert.params);
        });
      }),
    );
    await this.check(host, `floor ${batchSize}x${concurrency}, N=${n}, ${view.latencyMs} ms`);
    return perSecond;
  }

  /**
   * The contract floor: pages of `batchSize x concurrency` read by the store (primary-key ranges, the next
   * page read while this one is written), each page's batches written by the store's own write, up to
   * `concurrency` in flight, and each committed batch recorded in the journal as the function records it
   * (CoalescingJournal, the writes held back only beyond the same backlog as the function's).
   */
  async contractFloor(
    view: DsView,
    n: number,
    batchSize: number,
    concurrency: number,
  ): Promise<{ perSecond: number; waits: ContractFloorWaits }> {
    const host = await this.seed(n, n * FINISHED_PER_INSTANCE);
    const pool = await this.pool(view.url, concurrency + 1);
    const store = new DsInstanceStore(pool, { clock: new WallClock(DS_TIME_ZONE) });
    const lockName = failoverLockName('master', host);
    const waits: ContractFloorWaits = { totalMs: 0, readsMs: 0, writesMs: 0, journalMs: 0 };
    const waited = async (work: Promise<unknown>, into: 'readsMs' | 'writesMs' | 'journalMs') => {
      const started = performance.now();
      await work;
      waits[into] += performance.now() - started;
    };
    // Journalled as the function journals (one record per few batches when they commit quickly).
    const journal = new CoalescingJournal(this.journal);
    const started = performance.now();
    const perSecond = await DsThroughputBench.timed(n, async () => {
      const now = Date.now();
      const stamp: FenceStamp = { host, fence: 1, lockName, now, startedBefore: now + 60_000 };
      const writes = new Set<Promise<void>>();
      const records = new Set<Promise<void>>();
      let failure: { reason: unknown } | undefined;
      const track = (set: Set<Promise<void>>, work: Promise<void>) => {
        const tracked: Promise<void> = work
          .catch((reason: unknown) => {
            failure ??= { reason };
          })
          .finally(() => set.delete(tracked));
        set.add(tracked);
      };
      const pageSize = batchSize * concurrency;
      let next: Promise<Page<DsProcessInstance>> | undefined = store.pageByHost(host, pageSize);
      while (next !== undefined) {
        let page: Page<DsProcessInstance> | undefined;
        await waited(
          next.then((p) => {
            page = p;
          }),
          'readsMs',
        );
        if (page === undefined) throw new Error('no page');
        next = page.cursor === undefined ? undefined : store.pageByHost(host, pageSize, page.cursor);
        for (const batch of chunk(page.items, batchSize)) {
          while (writes.size >= concurrency || records.size > DS_DELIVERY_BACKLOG) {
            await waited(
              Promise.race([...writes, ...records]),
              records.size > DS_DELIVERY_BACKLOG ? 'journalMs' : 'writesMs',
            );
          }
          const write = store
            .failOver(
              batch.map((item) => ({
                item,
                generation: 1,
                message: buildRecoveryCommand(item, { fence: 1, now, deadHost: host }),
              })),
              stamp,
            )
            .then((outcome) => {
              if (outcome.status !== 'committed') throw new Error(`contract floor write ${outcome.status}`);
              const receipts = outcome.receipts ?? [];
              track(records, journal.record({ host, fence: 1, lockName, receipts, writtenAt: Date.now() }));
            });
          track(writes, write);
        }
      }
      await waited(Promise.all(writes), 'writesMs');
      await waited(Promise.all(records), 'journalMs');
      if (failure !== undefined) throw failure.reason;
    });
    waits.totalMs = performance.now() - started;
    await this.check(host, `contract floor ${batchSize}x${concurrency}, N=${n}, ${view.latencyMs} ms`);
    return { perSecond, waits };
  }

  private async prepareFloor(host: string, batchSize: number): Promise<Statement[][]> {
    const clock = new WallClock(DS_TIME_ZONE);
    const dialect = this.db.dialect;
    const precision = dialect === 'postgresql' ? 'ms' : 's';
    const now = Date.now();
    // The request's observation bound, as the function states it (bench/support.ts failoverRequest).
    const bound = clock.format(now + 60_000, precision);
    const stamp = clock.format(now, precision);
    const rows = await this.db.admin.query<{
      id: number | string;
      command_param: string | null;
      process_definition_code: string | number;
      process_definition_version: number | string;
      executor_id: number | string | null;
      process_instance_priority: number | string | null;
      test_flag: number | string | null;
    }>(
      `SELECT id, command_param, process_definition_code, process_definition_version, executor_id,
         process_instance_priority, test_flag
       FROM t_ds_process_instance WHERE host = ${dialect === 'postgresql' ? '$1' : '?'}
         AND state IN (${NEED_FAILOVER_STATES.join(', ')}) ORDER BY id`,
      [host],
    );
    return chunk(rows, batchSize).map((batch) => {
      const targets: FailoverTarget[] = batch.map((r) => ({
        id: Number(r.id),
        commandParam: recoveryCommandParam(Number(r.id), r.command_param, null),
      }));
      if (dialect === 'postgresql') return [pgFailoverSql(targets, host, bound, stamp)];
      const ids = targets.map((t) => t.id);
      return [
        mysqlReleaseSql(ids, host, bound),
        mysqlInsertCommandsSql(
          batch.map((r, i) => ({ ...r, commandParam: targets[i]?.commandParam ?? '' })),
          stamp,
        ),
      ];
    });
  }

  /**
   * JIT, container and connection warm-up, not measured: a small run of each, the function three times (a
   * fresh container's first 10,000-20,000 instances ran up to 1.7x slower than its later ones, while the
   * floors, in this long-running process, were already steady).
   */
  async warmUp(view: DsView, n: number): Promise<void> {
    await view.runtime.invoke('failover', { Records: [] });
    for (let i = 0; i < 3; i += 1) await this.function_(view, n);
    await this.floor(view, n, 49, 4);
    await this.contractFloor(view, n, 49, 4);
    await this.routine(view, Math.min(n, 50), n * FINISHED_PER_INSTANCE);
  }

  /** The best floor over a small grid of batch sizes and concurrencies. */
  async searchFloor(
    view: DsView,
    options: { instances: number; batchSizes: number[]; concurrencies: number[] },
  ): Promise<DsFloorConfig[]> {
    const results: DsFloorConfig[] = [];
    for (const batchSize of options.batchSizes) {
      for (const concurrency of options.concurrencies) {
        const perSecond = await this.floor(view, options.instances, batchSize, concurrency);
        results.push({ batchSize, concurrency, perSecond: round(perSecond) });
      }
    }
    results.sort((a, b) => b.perSecond - a.perSecond);
    note(
      `  ${this.db.dialect} floor search (${view.latencyMs} ms, ${options.instances} instances): ${results
        .slice(0, 4)
        .map((r) => `${r.batchSize}x${r.concurrency}=${r.perSecond}/s`)
        .join(', ')}`,
    );
    return results;
  }

  /**
   * Function, floor and contract floor in interleaved rounds (rotating order); medians and the ratios. The
   * contract floor runs at the function's own batch size and concurrency: it is the function's ceiling.
   */
  async measure(
    view: DsView,
    options: { instances: number; rounds: number },
    routine: DsRoutineRate,
    floorConfig: DsFloorConfig,
    functionSettings: { batchSize: number; concurrency: number },
    search: readonly DsFloorConfig[],
  ): Promise<DsThroughputResult> {
    const n = options.instances;
    const before = { ...this.checks };
    type Round = { function: number; floor: number; contractFloor: number };
    const rounds: Round[] = [];
    const waits: ContractFloorWaits = { totalMs: 0, readsMs: 0, writesMs: 0, journalMs: 0 };
    for (let i = 0; i < options.rounds; i += 1) {
      const runs: Array<[keyof Round, () => Promise<number>]> = [
        ['function', () => this.function_(view, n)],
        ['floor', () => this.floor(view, n, floorConfig.batchSize, floorConfig.concurrency)],
        [
          'contractFloor',
          async () => {
            const run = await this.contractFloor(
              view,
              n,
              functionSettings.batchSize,
              functionSettings.concurrency,
            );
            for (const k of Object.keys(waits) as Array<keyof ContractFloorWaits>) waits[k] += run.waits[k];
            return run.perSecond;
          },
        ],
      ];
      // Rotate the order, so a slow spell of the shared machine does not always hit the same one.
      const order = [...runs.slice(i % runs.length), ...runs.slice(0, i % runs.length)];
      const r: Round = { function: 0, floor: 0, contractFloor: 0 };
      for (const [name, run] of order) r[name] = await run();
      rounds.push(r);
      note(
        `  ${this.db.dialect} N=${n} ${view.latencyMs} ms round ${i + 1}: function ${round(r.function)}/s, floor ${round(r.floor)}/s, contract floor ${round(r.contractFloor)}/s`,
      );
    }
    const perSecond = median(rounds.map((r) => r.function));
    const floorPerSecond = median(rounds.map((r) => r.floor));
    const contractFloorPerSecond = median(rounds.map((r) => r.contractFloor));
    const atFunctionSettings = search.find(
      (s) => s.batchSize === functionSettings.batchSize && s.concurrency === functionSettings.concurrency,
    );
    return {
      dialect: this.db.dialect,
      instances: n,
      latencyMs: view.latencyMs,
      perSecond: round(perSecond),
      dsRoutinePerSecond: round(routine.perSecond, 1),
      floorPerSecond: round(floorPerSecond),
      contractFloorPerSecond: round(contractFloorPerSecond),
      vsDsRoutine: round(perSecond / routine.perSecond, 2),
      vsFloor: round(perSecond / floorPerSecond, 2),
      vsContractFloor: round(perSecond / contractFloorPerSecond, 2),
      floorVsDsRoutine: round(floorPerSecond / routine.perSecond, 2),
      floorConfig: { batchSize: floorConfig.batchSize, concurrency: floorConfig.concurrency },
      ...(atFunctionSettings ? { floorAtFunctionSettingsPerSecond: atFunctionSettings.perSecond } : {}),
      contractFloorWaits: {
        reads: round(waits.readsMs / waits.totalMs, 2),
        writes: round(waits.writesMs / waits.totalMs, 2),
        journal: round(waits.journalMs / waits.totalMs, 2),
      },
      dsRoutineSampled: routine.sampled,
      finishedPerInstance: FINISHED_PER_INSTANCE,
      rounds: rounds.map((r) => ({
        functionPerSecond: round(r.function),
        floorPerSecond: round(r.floor),
        contractFloorPerSecond: round(r.contractFloor),
      })),
      duplicates: this.checks.duplicates - before.duplicates,
      missing: this.checks.missing - before.missing,
      leftovers: this.checks.leftovers - before.leftovers,
    };
  }
}
