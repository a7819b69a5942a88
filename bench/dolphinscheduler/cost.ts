// What a failover costs DolphinScheduler's database, per 1,000 instances: statements and round trips, rows
// read, updated and inserted, from the database's own statistics (PostgreSQL pg_stat_statements and
// pg_stat_user_tables, MariaDB's global status counters) and a counting TCP proxy (no delay) in front of
// it; for the function (one invocation of a fresh container: its connections are made during the run, a
// few round trips each, and its database backends report their statistics when they exit) and for
// DolphinScheduler's own routine (one connection of its own, made during the run).
import type { SQSBatchResponse } from 'aws-lambda';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import type { LocalStack } from '../../lib/local/stack.ts';
import { startTcpProxy, type TcpProxy } from '../../lib/local/tcp-proxy.ts';
import type { ZkSession } from '../../lib/registry/zk-client.ts';
import { SimulatedDsMaster } from '../../lib/sim/ds-master.ts';
import { openDatabase, parseDatabaseUrl } from '../../lib/store/dolphinscheduler/database.ts';
import { uniqueHost } from '../seed.ts';
import { failoverRequest, round, sqsEventOf } from '../support.ts';
import {
  type BenchDatabase,
  checkFailover,
  countersBetween,
  type DatabaseCounters,
  DS_TIME_ZONE,
  freshTable,
  readCounters,
  waitForNoClients,
} from './database.ts';
import { FINISHED_PER_INSTANCE } from './throughput.ts';

export interface DsCostFigures {
  /** Executing instances failed over in the measured run (among 10 x as many finished). */
  instances: number;
  tableRows: number;
  statementsPer1000: number;
  /** Client-to-server exchanges through the proxy (about one per statement or pipelined batch). */
  roundTripsPer1000: number;
  rowsReadPer1000: number;
  rowsUpdatedPer1000: number;
  rowsInsertedPer1000: number;
  /** The raw deltas behind the figures. */
  basis: DatabaseCounters & { roundTrips: number; connections: number };
}

export interface DsCostResult {
  dialect: BenchDatabase['dialect'];
  function: DsCostFigures;
  dsRoutine: DsCostFigures;
}

const HOUR = 3_600_000;

function figures(instances: number, counters: DatabaseCounters, proxy: TcpProxy): DsCostFigures {
  const per1000 = (v: number) => round((v / instances) * 1_000, 1);
  const { clientChunks, connections } = proxy.counts();
  return {
    instances,
    tableRows: instances * (1 + FINISHED_PER_INSTANCE),
    statementsPer1000: per1000(counters.statements),
    roundTripsPer1000: per1000(clientChunks),
    rowsReadPer1000: per1000(counters.rowsRead),
    rowsUpdatedPer1000: per1000(counters.rowsUpdated),
    rowsInsertedPer1000: per1000(counters.rowsInserted),
    basis: { ...counters, roundTrips: clientChunks, connections },
  };
}

/**
 * Counts `work` on a freshly seeded table: the bench's own connections closed first, the work's own
 * connections closed by `finish` (a PostgreSQL backend reports its table statistics when it exits), the
 * proxy's counts reset at the start. Throws unless the run failed everything over exactly once.
 */
async function counted(
  db: BenchDatabase,
  proxy: TcpProxy,
  host: string,
  work: () => Promise<void>,
  finish: () => Promise<void>,
): Promise<DatabaseCounters> {
  await db.quiesce();
  const before = await readCounters(db);
  proxy.resetCounts();
  await work();
  await finish();
  if (db.dialect === 'postgresql') await waitForNoClients(db.url);
  const after = await readCounters(db);
  const check = await checkFailover(db.admin, host);
  if (check.duplicates + check.missing + check.leftovers > 0) {
    throw new Error(`cost run on ${host}: ${JSON.stringify(check)}`);
  }
  return countersBetween(db.dialect, before, after);
}

export async function measureDsCost(
  stack: LocalStack,
  db: BenchDatabase,
  zk: ZkSession,
  options: {
    functionInstances: number;
    routineInstances: number;
    registryRoot: string;
    functionEnv: Record<string, string>;
  },
): Promise<DsCostResult> {
  const target = new URL(db.url);
  const proxy = await startTcpProxy({ target: { host: target.hostname, port: Number(target.port) } });
  const url = proxy.proxiedUrl(db.url);
  let runtime: LocalRuntime | undefined;
  try {
    runtime = startLocalRuntime(stack, {
      functions: ['failover'],
      eventSources: false,
      maxContainers: 1,
      timeoutMs: { failover: 600_000 },
      env: { failover: { ...options.functionEnv, DS_DATABASE_URL: url } },
    });
    const fnRuntime = runtime;
    const invoke = async (host: string) => {
      const out = (await fnRuntime.invoke('failover', sqsEventOf(failoverRequest(host)))) as SQSBatchResponse;
      if (out.batchItemFailures.length > 0) throw new Error(`failover of ${host} failed`);
    };
    const fnHost = uniqueHost();
    const n = options.functionInstances;
    await freshTable(db.admin, {
      host: fnHost,
      executing: n,
      finished: n * FINISHED_PER_INSTANCE,
      startTime: Date.now() - HOUR,
    });
    const fnCounters = await counted(
      db,
      proxy,
      fnHost,
      () => invoke(fnHost),
      async () => {
        await fnRuntime.stop();
      },
    );
    const fn = figures(n, fnCounters, proxy);

    const m = options.routineInstances;
    const routineHost = uniqueHost();
    await freshTable(db.admin, {
      host: routineHost,
      executing: m,
      finished: m * FINISHED_PER_INSTANCE,
      startTime: Date.now() - HOUR,
    });
    const routineDb = openDatabase(parseDatabaseUrl(url), {
      max: 1,
      lockTimeoutMs: 10_000,
      statementTimeoutMs: 600_000,
    });
    const master = new SimulatedDsMaster({
      db: routineDb,
      session: zk,
      root: options.registryRoot,
      host: '192.0.2.2:5678',
      timeZone: DS_TIME_ZONE,
    });
    const routineCounters = await counted(
      db,
      proxy,
      routineHost,
      async () => {
        const result = await master.failOverMaster(routineHost);
        if (result.error !== undefined) throw result.error;
      },
      () => routineDb.close(),
    ).finally(() => routineDb.close().catch(() => undefined));
    return { dialect: db.dialect, function: fn, dsRoutine: figures(m, routineCounters, proxy) };
  } finally {
    await runtime?.stop();
    await proxy.stop();
  }
}
