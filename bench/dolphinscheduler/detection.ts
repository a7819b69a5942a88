// Detection to command on DolphinScheduler's database: masters registered as 3.2 registers them (ephemeral
// node, 3.2 heartbeat), each with a few executing instances in the database; their nodes are deleted one at
// a time while a watcher invocation (the real handler in a local container) is live and the failover
// function consumes the failover queue (SQS event source), both on this store. A raw ZooKeeper child watch
// on the same parent, in a session of its own, records when it sees each removal; a poller of t_ds_command
// (every 5 ms, new rows by id) records when the last of the master's command rows is there.
// delay = command rows seen - raw watch saw the removal; raw delay = raw watch saw it - delete call.
import { startLocalRuntime } from '../../lib/local/runtime.ts';
import type { LocalStack } from '../../lib/local/stack.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { type DsServerRegistration, registerDsMaster } from '../../lib/sim/ds-master.ts';
import { NEED_FAILOVER_STATES } from '../../lib/store/dolphinscheduler/codes.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';
import { watchRemovals } from '../raw-watch.ts';
import { note, quantile, round, sleep } from '../support.ts';
import { analyzeTables, type BenchDatabase, resetTables, seedInstances } from './database.ts';

export interface DsDetectionResult {
  dialect: BenchDatabase['dialect'];
  removals: number;
  /** Removals whose instances all got their command row (all of them, unless something is broken). */
  relayed: number;
  /** Executing instances per master. */
  instancesPerMaster: number;
  /** Command rows committed (seen by the poller), after the raw watch saw the removal. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The raw watch's own delay, from the delete call to its notification. */
  rawP50Ms: number;
  rawP99Ms: number;
  /** Delete call to command rows seen. */
  endToEndP99Ms: number;
  /** How often the command table is polled: the delays are late by up to this much. */
  pollMs: number;
  samples: Array<{ rawMs: number; commandMs: number }>;
}

const POLL_MS = 5;
const connect = (stack: LocalStack) =>
  connectZk({
    connectString: stack.zookeeper.connectString,
    sessionTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
  });

/** Hosts of this phase (10.252.x.y: no other phase uses them). */
const hostOf = (i: number) => `10.252.${Math.floor(i / 250)}.${(i % 250) + 1}:5678`;

export async function measureDsDetection(
  stack: LocalStack,
  db: BenchDatabase,
  options: {
    removals: number;
    instancesPerMaster: number;
    registryRoot: string;
    functionEnv: Record<string, string>;
  },
): Promise<DsDetectionResult> {
  const root = options.registryRoot;
  // The first removals warm the path up (JIT, connections, the emulator): not measured.
  const warmUps = 3;
  const hosts = Array.from({ length: options.removals + warmUps }, (_, i) => hostOf(i));
  await resetTables(db.admin);
  for (const host of hosts) {
    await seedInstances(db.admin, {
      host,
      executing: options.instancesPerMaster,
      finished: options.instancesPerMaster * 10,
      startTime: Date.now() - 3_600_000,
    });
  }
  await analyzeTables(db.admin);
  const marks = hosts.map((_, i) => (db.dialect === 'postgresql' ? `$${i + 1}` : '?')).join(', ');
  const owned = await db.admin.query<{ id: number | string; host: string }>(
    `SELECT id, host FROM t_ds_process_instance WHERE host IN (${marks}) AND state IN (${NEED_FAILOVER_STATES.join(', ')})`,
    hosts,
  );
  const hostOfInstance = new Map(owned.map((r) => [Number(r.id), r.host]));

  const sessions: ZkSession[] = [];
  const registrar = await connect(stack);
  sessions.push(registrar);
  const startupTime = Date.now() - 60_000;
  const registrations: DsServerRegistration[] = [];
  for (const host of hosts) {
    registrations.push(await registerDsMaster(registrar, { root, host, startupTime, version: '3.2' }));
  }
  const parent = `${root}/nodes/master`;

  // The raw watch: a child watch on the parent, re-armed each time it fires.
  const raw = await connect(stack);
  sessions.push(raw);
  const rawSeen = await watchRemovals(raw, parent);

  // The command poller: new rows of t_ds_command by id; a master is done when all its instances have one.
  const commanded = new Map<string, number>();
  const doneAt = new Map<string, number>();
  let polling = true;
  const poller = (async () => {
    let last = 0;
    const sql =
      db.dialect === 'postgresql'
        ? 'SELECT id, process_instance_id FROM t_ds_command WHERE id > $1 ORDER BY id'
        : 'SELECT id, process_instance_id FROM t_ds_command WHERE id > ? ORDER BY id';
    while (polling) {
      const rows = await db.admin
        .query<{ id: number | string; process_instance_id: number | string }>(sql, [last])
        .catch(() => []);
      const seenAt = Date.now();
      for (const row of rows) {
        last = Math.max(last, Number(row.id));
        const host = hostOfInstance.get(Number(row.process_instance_id));
        if (host === undefined) continue;
        const count = (commanded.get(host) ?? 0) + 1;
        commanded.set(host, count);
        if (count === options.instancesPerMaster) doneAt.set(host, seenAt);
      }
      await sleep(POLL_MS);
    }
  })();

  const windowMs = 20_000 + hosts.length * 600;
  const watcher = startLocalRuntime(stack, {
    functions: ['watcher'],
    eventSources: false,
    timeoutMs: { watcher: windowMs },
    env: { watcher: { WATCH_MARGIN_MS: '1000', POWERTOOLS_METRICS_DISABLED: 'true' } },
  });
  const failover = startLocalRuntime(stack, {
    functions: ['failover'],
    env: { failover: options.functionEnv },
  });
  const samples: DsDetectionResult['samples'] = [];
  const endToEnd: number[] = [];
  try {
    // Containers started and connections made before the watcher watches (the first removals warm up too).
    await failover.invoke('failover', { Records: [] });
    const invocation = watcher.invoke('watcher', { source: 'aws.events', 'detail-type': 'Scheduled Event' });
    invocation.catch(() => undefined);
    const mirror = new DynamoServerStore(stack.clients.dynamodb, stack.info.tables.servers);
    const listed = await waitFor(30_000, undefined, async () => {
      const rows = await Promise.all(hosts.map((h) => mirror.get(`master/${h}`)));
      return rows.every((r) => r?.alive === true);
    });
    if (!listed) throw new Error('the watcher did not list every master within 30 s');
    note(`  ${db.dialect} detection: removing ${options.removals} masters (after ${warmUps} not measured)`);
    for (const [i, registration] of registrations.entries()) {
      const host = hosts[i] ?? '';
      // Irregular spacing, so removals never line up with any periodic activity; long enough for one
      // failover to end before the next removal, so the delays are the path's and not a queue's.
      await sleep(150 + Math.floor(Math.random() * 150));
      const deletedAt = Date.now();
      await registration.deregister();
      const ok = await waitFor(15_000, () => rawSeen.has(host) && doneAt.has(host));
      if (!ok || i < warmUps) continue;
      const seen = rawSeen.get(host) ?? Number.NaN;
      const at = doneAt.get(host) ?? Number.NaN;
      samples.push({ rawMs: seen - deletedAt, commandMs: at - seen });
      endToEnd.push(at - deletedAt);
    }
  } finally {
    polling = false;
    await poller;
    await watcher.stop();
    await failover.stop();
    await Promise.all(sessions.map((s) => s.close()));
  }
  const delays = samples.map((s) => s.commandMs);
  const rawDelays = samples.map((s) => s.rawMs);
  return {
    dialect: db.dialect,
    removals: options.removals,
    relayed: samples.length,
    instancesPerMaster: options.instancesPerMaster,
    p50Ms: round(quantile(delays, 0.5), 1),
    p99Ms: round(quantile(delays, 0.99), 1),
    maxMs: round(Math.max(...delays), 1),
    rawP50Ms: round(quantile(rawDelays, 0.5), 1),
    rawP99Ms: round(quantile(rawDelays, 0.99), 1),
    endToEndP99Ms: round(quantile(endToEnd, 0.99), 1),
    pollMs: POLL_MS,
    samples,
  };
}

/** Polls `check` (or the slower `checkAsync`) until it holds; false after `timeoutMs`. */
async function waitFor(
  timeoutMs: number,
  check: (() => boolean) | undefined,
  checkAsync?: () => Promise<boolean>,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(check ? check() : await (checkAsync as () => Promise<boolean>)())) {
    if (Date.now() > deadline) return false;
    await sleep(check ? 2 : 50);
  }
  return true;
}
