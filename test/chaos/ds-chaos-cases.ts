// The chaos suite on DolphinScheduler's database in CI, one dialect per test file: directed regressions of
// the two bugs the suite found (a write committing after the function had lost DolphinScheduler's lock: its
// connection cut, or its ZooKeeper session lost, while the batch waited for a row lock), then a few fixed seeds that together exercise every fault kind of the
// DolphinScheduler plans. The randomized runs are on demand: `npm run chaos -- --store <dialect> --runs 200`.
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FunctionCrashedError } from '../../lib/local/runtime.ts';
import { FailoverRequestSchema } from '../../lib/messages.ts';
import type { Dialect } from '../../lib/store/dolphinscheduler/database.ts';
import { FUNCTION_WRITER, functionConnections, holdRowLocks, readCommandLog, sqlFor } from './ds-db.ts';
import { DsChaosEnvironment } from './ds-environment.ts';
import { formatDsViolationReport } from './ds-report.ts';
import { executeDsRun } from './ds-run.ts';
import { allDsFaultKinds, dsFaultKindsOf, planDsRun } from './ds-scenario.ts';
import { sleep } from './registry-actors.ts';
import { sqsEvent } from './run.ts';

export function defineDsChaosTests(dialect: Dialect, seeds: readonly number[]): void {
  let env: DsChaosEnvironment | undefined;

  beforeAll(async () => {
    env = await DsChaosEnvironment.start(dialect);
  }, 180_000);

  afterAll(async () => {
    await env?.stop();
  }, 120_000);

  describe(`a write in flight when the function loses its hold, on ${dialect}`, () => {
    it("a statement cut off while it waits for a row lock never commits after the function gave DolphinScheduler's lock back", async () => {
      if (env === undefined) throw new Error('the chaos environment did not start');
      const e = env;
      const outcome = await inFlightWrite(e, dialect, 'database', async () => {
        expect(e.dbProxy.dropConnections()).toBeGreaterThan(0);
      });
      expect(outcome.outcome, 'the run failed and its record is to be retried').toBe('retried');
      expect(
        outcome.writers.filter((w) => w.length !== 1),
        'instances without exactly one command',
      ).toEqual([]);
    }, 120_000);

    it("a batch waiting when the function's ZooKeeper session is lost rolls back instead of committing behind DolphinScheduler's master", async () => {
      if (env === undefined) throw new Error('the chaos environment did not start');
      const e = env;
      const outcome = await inFlightWrite(e, dialect, 'zookeeper', async () => {
        expect(e.zkProxy.dropConnections()).toBeGreaterThan(0);
      });
      expect(outcome.outcome, 'the run failed (its record retried, or its container died)').not.toBe('done');
      expect(
        outcome.writers.filter((w) => w.length !== 1),
        'instances without exactly one command',
      ).toEqual([]);
    }, 120_000);
  });

  describe(`chaos on ${dialect}, fixed seeds`, () => {
    it.each(seeds.map((seed, slot) => [seed, slot] as const))(
      'seed %i: every invariant holds',
      async (seed, slot) => {
        if (env === undefined) throw new Error('the chaos environment did not start');
        const report = await executeDsRun(env, planDsRun(seed), { slot: 200 + slot });
        expect(report.violations, formatDsViolationReport(report, true)).toEqual([]);
        expect(report.summary?.eligible ?? 0).toBeGreaterThan(0);
      },
      180_000,
    );
  });
}

/** Fault kinds left out of the CI seeds (none: every kind of the plans is covered). */
export const notInCi: readonly string[] = [];

/** The plans of the seeds name only known fault kinds, and together every one of them but `notInCi`. */
export function coverageOf(seeds: readonly number[]): { missing: string[]; unknown: string[] } {
  const kinds = seeds.flatMap((seed) => dsFaultKindsOf(planDsRun(seed)));
  const known: ReadonlySet<string> = new Set(allDsFaultKinds);
  return {
    missing: allDsFaultKinds.filter((kind) => !kinds.includes(kind) && !notInCi.includes(kind)),
    unknown: kinds.filter((kind) => !known.has(kind)),
  };
}

/**
 * Six executing instances of a dead master; a live master (a simulated DolphinScheduler 3.2 master); a
 * competing transaction holding the third instance's row. The function's batch waits for that row; `cut`
 * takes its hold away (its database connection, or its ZooKeeper session). A DolphinScheduler master then
 * fails the dead master over itself: it takes the lock, reads the rows, and its writes wait; then the
 * competing transaction ends. Returns the writers of each instance's recovery commands.
 */
export async function inFlightWrite(
  e: DsChaosEnvironment,
  dialect: Dialect,
  what: 'database' | 'zookeeper',
  cut: () => Promise<void>,
): Promise<{ outcome: 'done' | 'retried' | 'crashed'; writers: string[][] }> {
  const root = `/chaos/in-flight-${what}-${dialect}`;
  const target = { connect: e.stack.zookeeper.connectString, root };
  const dead = '10.99.0.1:5678';
  const live = '10.99.0.2:5678';
  await e.agent.prepare(target);
  await e.agent.register(target, {
    key: `in-flight-${what}/live`,
    nodeType: 'master',
    host: live,
    startupTime: Date.now() - 3_600_000,
  });
  const ids: number[] = [];
  for (let i = 0; i < 6; i += 1) {
    const insert = sqlFor(
      dialect,
      `INSERT INTO t_ds_process_instance (name, process_definition_code, process_definition_version, state,
         start_time, host, executor_id, run_times, max_try_times, timeout, dry_run, next_process_instance_id,
         test_flag, command_param)
       VALUES (?, ?, 1, 1, ?, ?, 1, 1, 0, 0, 0, 0, 0, '{}')`,
    );
    const params = [`in-flight-${i}`, 8_800_000_000 + i, '2024-01-01 00:00:00', dead];
    if (dialect === 'postgresql') {
      const [row] = await e.harness.query<{ id: number }>(`${insert} RETURNING id`, params);
      ids.push(Number(row?.id));
    } else {
      ids.push(
        await e.harness.transaction(async (tx) => {
          await tx.query(insert, params);
          const [row] = await tx.query<{ id: number }>('SELECT LAST_INSERT_ID() AS id');
          return Number(row?.id);
        }),
      );
    }
  }
  const lock = await holdRowLocks(e.scheduler, [ids[2] as number], 40_000);
  await e.dsAgent.begin({
    connect: target.connect,
    root,
    timeZone: 'UTC',
    running: {},
    lockTimeoutMs: 30_000,
  });
  const runtime = e.startRuntime({
    label: 'healthy',
    timeZone: 'UTC',
    root,
    zkSessionTimeoutMs: 1_000,
    scanSpan: 50_000,
    leaseMs: 20_000,
    batchSize: 10,
    concurrency: 1,
    timeoutMs: 30_000,
    deadlineMarginMs: 4_000,
    eventSource: false,
    maxContainers: 1,
    sqsConcurrency: 1,
  });
  try {
    const request = FailoverRequestSchema.parse({
      kind: 'Orphaned',
      nodeType: 'master',
      host: dead,
      czxid: null,
      startupTime: null,
      observedAt: Date.now(),
      source: 'operator',
    });
    // The record failed (to be retried), or its container died: both leave the work to a retry. The native
    // ZooKeeper client may abort the process when its connection is cut under it (node-zookeeper's poll
    // handling); nothing is committed by a process that dies before its COMMIT.
    const invocation = runtime.invoke('failover', sqsEvent([JSON.stringify(request)])).then(
      (out) =>
        ((out as SQSBatchResponse).batchItemFailures.length > 0 ? 'retried' : 'done') as 'retried' | 'done',
      (error: unknown) => {
        if (error instanceof FunctionCrashedError) return 'crashed' as const;
        throw error;
      },
    );
    const tagged = new Set([...e.harness.connectionIds(), ...e.scheduler.connectionIds()]);
    if (dialect === 'mysql') for (const id of await e.dsAgent.connectionIds()) tagged.add(id);
    let waiting: number[] = [];
    for (let i = 0; i < 300 && waiting.length === 0; i += 1) {
      await sleep(50);
      waiting = await functionConnections(e.harness, tagged, 'busy');
    }
    if (waiting.length === 0) throw new Error("the function's batch never waited for the locked row");
    await sleep(300);
    await cut();
    const theirs = e.dsAgent.failOver(live, dead, 60_000);
    for (let i = 0; i < 400; i += 1) {
      if ((await e.dsAgent.lockHolds()).some((h) => h.deadHost === dead)) break;
      await sleep(25);
    }
    await sleep(500);
    lock.release();
    await lock.done;
    await theirs;
    const outcome = await invocation;
    const log = await readCommandLog(e.harness);
    return {
      outcome,
      writers: ids.map((id) =>
        log
          .filter(
            (r) =>
              r.op === 'I' &&
              r.instanceId === id &&
              (r.writer === FUNCTION_WRITER || r.writer === 'ds-master'),
          )
          .map((r) => r.writer),
      ),
    };
  } finally {
    lock.release();
    await runtime.stop();
    await e.dsAgent.end();
    await e.agent.killAll();
    await e.agent.removeTree(target);
    await e.reset();
  }
}
