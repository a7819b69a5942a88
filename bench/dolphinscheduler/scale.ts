// Scale on DolphinScheduler's database: 100,000 executing instances of one dead master among 1,000,000
// finished ones, failed over through the local runtime's SQS event source with short invocations chained
// by continuations; once without an index on host (as DolphinScheduler ships its schema) and once with
// the index the docs recommend. Checked independently from the tables afterwards: command rows per
// instance (t_ds_command), instances left with the dead host (t_ds_process_instance). Around each run, the
// sweep's two reads (the store's own statements) alone on the large table: before the failover, and after
// it, when the host's instances wait at 'NULL' with their commands for the masters to take them over.
import { startLocalRuntime } from '../../lib/local/runtime.ts';
import type { LocalStack } from '../../lib/local/stack.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { FAILED_OVER_HOST, NEED_FAILOVER_STATES } from '../../lib/store/dolphinscheduler/codes.ts';
import type { Dialect } from '../../lib/store/dolphinscheduler/database.ts';
import {
  commandInstanceIdsSql,
  executingHostsSql,
  unownedCandidatesSql,
} from '../../lib/store/dolphinscheduler/sql.ts';
import { uniqueHost } from '../seed.ts';
import { failoverRequest, note, queueDepth, round, sleep } from '../support.ts';
import {
  analyzeTables,
  type BenchDatabase,
  checkFailover,
  createHostIndex,
  type DatabaseCounters,
  dropHostIndex,
  measureAlone,
  resetTables,
  seedInstances,
} from './database.ts';

export interface DsScaleOptions {
  instances: number;
  finished: number;
  /** Function timeout of each invocation, ms. */
  timeoutMs: number;
  /** DEADLINE_MARGIN_MS of the function. */
  deadlineMarginMs: number;
  /** Give up after this long (the phase then reports what it found). */
  limitMs: number;
  /** The function's environment on this database (store, URL, time zone, settings). */
  env: Record<string, string>;
}

export interface DsScaleResult {
  dialect: Dialect;
  instances: number;
  /** Finished instances of other hosts in the table. */
  finishedRows: number;
  /** With the index the docs recommend (bench/dolphinscheduler/database.ts hostIndexDdl). */
  indexed: boolean;
  duplicates: number;
  missing: number;
  /** Executing instances still on the dead host at the end. */
  leftovers: number;
  seconds: number;
  perSecond: number;
  invocations: number;
  timedOut: number;
  functionTimeoutMs: number;
  peakRssMb: number;
  rssByInvocationMb: number[];
  rssAfterInvocationMb: number[];
  liveHeapAfterInvocationMb: number[];
  /** Command rows read back. */
  commandRows: number;
}

/**
 * One sweep's reads on the large table (DESIGN D5, the store's own statements): the hosts of executing
 * instances, and the executing instances left unowned (SQL NULL host, or 'NULL' without a command).
 */
export interface DsSweepCost {
  dialect: Dialect;
  indexed: boolean;
  tableRows: number;
  /** When: before the failover (the host's instances executing) or after it (at 'NULL', a command each). */
  moment: 'before failover' | 'after failover';
  /** Rows of t_ds_command at that moment. */
  commandRows: number;
  listing: SweepStatementCost;
  unowned: SweepStatementCost;
}

export interface SweepStatementCost {
  statement: string;
  ms: number;
  /** Rows the statement returned. */
  rows: number;
  counters: DatabaseCounters;
}

const executingStates = NEED_FAILOVER_STATES.join(', ');

/**
 * Seeds the large table once, then runs the failover without and with the index (the second on the same
 * table, its instances handed back to a new dead host), and one sweep listing before each run.
 */
export async function measureDsScale(
  stack: LocalStack,
  db: BenchDatabase,
  options: DsScaleOptions,
): Promise<{ runs: DsScaleResult[]; sweeps: DsSweepCost[] }> {
  const runs: DsScaleResult[] = [];
  const sweeps: DsSweepCost[] = [];
  const seedStarted = performance.now();
  let host = uniqueHost();
  await resetTables(db.admin);
  await seedInstances(db.admin, {
    host,
    executing: options.instances,
    finished: options.finished,
    startTime: Date.now() - 3_600_000,
  });
  await analyzeTables(db.admin);
  note(
    `  ${db.dialect} scale: seeded ${options.instances} executing among ${options.finished} finished in ${round((performance.now() - seedStarted) / 1_000, 1)} s`,
  );
  try {
    for (const indexed of [false, true]) {
      if (indexed) {
        // The same table, its instances handed back to a new dead host, their commands removed.
        const previous = host;
        host = uniqueHost();
        const p = db.dialect === 'postgresql' ? ['$1', '$2'] : ['?', '?'];
        await db.admin.query(
          `UPDATE t_ds_process_instance SET host = ${p[0]} WHERE host IN (${p[1]}, '${FAILED_OVER_HOST}') AND state IN (${executingStates})`,
          [host, previous],
        );
        await db.admin.query(
          db.dialect === 'postgresql' ? 'TRUNCATE t_ds_command' : 'TRUNCATE TABLE t_ds_command',
        );
        await createHostIndex(db.admin);
      }
      const tableRows = options.instances + options.finished;
      sweeps.push(await measureSweep(db, indexed, tableRows, 'before failover', 0));
      const run = await scaleRun(stack, db, host, indexed, options);
      runs.push(run);
      sweeps.push(await measureSweep(db, indexed, tableRows, 'after failover', run.commandRows));
    }
  } finally {
    await dropHostIndex(db.admin).catch(() => undefined);
  }
  return { runs, sweeps };
}

function addCounters(a: DatabaseCounters, b: DatabaseCounters): DatabaseCounters {
  const detail: Record<string, number> = { ...a.detail };
  for (const [k, v] of Object.entries(b.detail)) detail[k] = (detail[k] ?? 0) + v;
  return {
    statements: a.statements + b.statements,
    rowsRead: a.rowsRead + b.rowsRead,
    rowsUpdated: a.rowsUpdated + b.rowsUpdated,
    rowsInserted: a.rowsInserted + b.rowsInserted,
    detail,
  };
}

/** The sweep's reads, each alone on the table with the database's counters around it. */
async function measureSweep(
  db: BenchDatabase,
  indexed: boolean,
  tableRows: number,
  moment: DsSweepCost['moment'],
  commandRows: number,
): Promise<DsSweepCost> {
  const one = async (statement: { sql: string }): Promise<SweepStatementCost> => {
    const { ms, rows, counters } = await measureAlone(db, statement.sql);
    return { statement: statement.sql.replace(/\s+/g, ' '), ms: round(ms, 1), rows: rows.length, counters };
  };
  const listing = await one(executingHostsSql());
  // The unowned listing is two reads (DsUnownedWork.listUnowned): the candidates, then the instances that
  // commands name; their costs add up.
  const candidates = await one(unownedCandidatesSql());
  const named = await one(commandInstanceIdsSql());
  const unowned: SweepStatementCost = {
    statement: `${candidates.statement}; ${named.statement}`,
    ms: round(candidates.ms + named.ms, 1),
    rows: candidates.rows,
    counters: addCounters(candidates.counters, named.counters),
  };
  note(
    `  ${db.dialect} sweep ${moment}${indexed ? ', indexed' : ''} (${tableRows} rows, ${commandRows} commands): hosts ${listing.ms} ms / ${listing.counters.rowsRead} rows read, unowned ${unowned.ms} ms / ${unowned.counters.rowsRead} rows read`,
  );
  return { dialect: db.dialect, indexed, tableRows, moment, commandRows, listing, unowned };
}

async function scaleRun(
  stack: LocalStack,
  db: BenchDatabase,
  host: string,
  indexed: boolean,
  options: DsScaleOptions,
): Promise<DsScaleResult> {
  const { sqs } = stack.clients;
  const n = options.instances;
  let done = false;
  const runtime = startLocalRuntime(stack, {
    functions: ['failover'],
    timeoutMs: { failover: options.timeoutMs },
    env: { failover: { ...options.env, DEADLINE_MARGIN_MS: String(options.deadlineMarginMs) } },
    sqsConcurrency: 1,
    maxContainers: 1,
    measureLiveHeap: true,
    onLog: (_fn, line) => {
      // The end of the chain: the invocation that wrote the host's last page.
      if (!line.includes('failover done')) return;
      try {
        const entry = JSON.parse(line) as { message?: unknown; host?: unknown };
        if (entry.message === 'failover done' && entry.host === host) done = true;
      } catch {
        // not a structured line
      }
    },
  });
  const started = performance.now();
  let seconds: number;
  try {
    await new SqsFailoverRequestQueue(sqs, stack.info.queues.failover).send([failoverRequest(host)]);
    const deadline = Date.now() + options.limitMs;
    let lastReport = Date.now();
    for (;;) {
      if (done && (await queueDepth(sqs, stack.info.queues.failover)) === 0) break;
      if (Date.now() > deadline) {
        note(`  ${db.dialect} scale: gave up after ${options.limitMs} ms`);
        break;
      }
      if (Date.now() - lastReport > 15_000) {
        lastReport = Date.now();
        note(`  ${db.dialect} scale: ${runtime.invocations().length} invocations so far`);
      }
      await sleep(100);
    }
    seconds = (performance.now() - started) / 1_000;
  } finally {
    await runtime.stop();
  }
  const check = await checkFailover(db.admin, host);
  const invocations = runtime.invocations().filter((r) => r.trigger === 'sqs');
  const mb = (bytes: number | undefined) => round((bytes ?? 0) / 1024 / 1024, 1);
  const rssByInvocationMb = invocations.map((r) => mb(r.maxRssBytes ?? r.rssBytes));
  const result: DsScaleResult = {
    dialect: db.dialect,
    instances: n,
    finishedRows: options.finished,
    indexed,
    duplicates: check.duplicates,
    missing: check.missing,
    leftovers: check.leftovers,
    seconds: round(seconds, 1),
    perSecond: round(n / seconds),
    invocations: invocations.length,
    timedOut: invocations.filter((r) => r.outcome === 'timeout').length,
    functionTimeoutMs: options.timeoutMs,
    peakRssMb: Math.max(0, ...rssByInvocationMb),
    rssByInvocationMb,
    rssAfterInvocationMb: invocations.map((r) => mb(r.rssBytes)),
    liveHeapAfterInvocationMb: invocations.flatMap((r) =>
      r.liveHeapBytes === undefined ? [] : [mb(r.liveHeapBytes)],
    ),
    commandRows: check.commands,
  };
  note(
    `  ${db.dialect} scale${indexed ? ' (indexed)' : ''}: ${result.seconds} s, ${result.invocations} invocations, duplicates ${result.duplicates}, missing ${result.missing}, left ${result.leftovers}, peak RSS ${result.peakRssMb} MB`,
  );
  return result;
}
