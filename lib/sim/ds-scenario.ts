// The demo on DolphinScheduler's own database (`npm start -- --store postgresql|mysql`, DESIGN section
// 10): the work is seeded into its tables as a 3.2 master writes it, polled there for the live view, and
// judged there at the end (lib/sim/ds-invariants.ts), with the run journal the failover function keeps in
// the commands table (D6). The simulated masters consume `t_ds_command` in their own processes.
import { queueDepth } from '../cli/inspect.ts';
import { failoverLockName } from '../failover/ports.ts';
import { redactUrl } from '../local/database.ts';
import type { LocalStack } from '../local/stack.ts';
import type { DsVersion } from '../local/store-flags.ts';
import { type Database, openDatabase, parseDatabaseUrl } from '../store/dolphinscheduler/database.ts';
import { DynamoRunJournal } from '../store/dynamodb/run-journal.ts';
import type { StoreDriver } from './driver.ts';
import { checkDsInvariants } from './ds-invariants.ts';
import { allRows, type DsRow, executingInstancesByHost, executingTasksByHost } from './ds-readers.ts';
import { seedDsWork } from './ds-seed.ts';

export interface DolphinSchedulerDemo {
  timeZone: string;
  version: DsVersion;
  /** The demo masters' instances to seed. */
  instances: number;
  /** Finished instances of former servers seeded before them. */
  history: number;
}

export async function dolphinSchedulerDriver(
  stack: LocalStack,
  demo: DolphinSchedulerDemo,
): Promise<StoreDriver> {
  const database = stack.database;
  if (database === undefined) throw new Error('the local stack runs without DolphinScheduler database');
  const db: Database = openDatabase(parseDatabaseUrl(database.url), {
    max: 3,
    lockTimeoutMs: 10_000,
    statementTimeoutMs: 60_000,
  });
  const product = database.dialect === 'postgresql' ? 'PostgreSQL' : 'MariaDB';
  let before: { instances: DsRow[]; tasks: DsRow[] } | undefined;
  return {
    store: 'dolphinscheduler',
    stackLine: () =>
      `stack ready: ZooKeeper ${stack.info.zookeeper}, ${product} ${redactUrl(database.url)} (DolphinScheduler ${demo.version} tables, times in ${demo.timeZone}), DynamoDB ${stack.info.dynamodb} (locks, mirror, journal), SQS ${stack.info.sqs}`,
    serversLine: `DolphinScheduler ${demo.version} heartbeats every 1 s; the masters consume t_ds_command as 3.2 does`,
    register: {
      dolphinScheduler: { version: demo.version, timeZone: demo.timeZone, databaseUrl: database.url },
      // 3.2 orders its masters' command slots by startup time: one second apart, a stable order.
      startupStaggerMs: 1_000,
    },
    async seed(servers, now) {
      const seeded = await seedDsWork(db, demo.timeZone, servers, {
        instances: demo.instances,
        history: demo.history,
        now,
      });
      const [instances, tasks] = await Promise.all([
        allRows(db, 't_ds_process_instance'),
        allRows(db, 't_ds_task_instance'),
      ]);
      before = { instances, tasks };
      const executing = new Map<string, number>();
      const add = (host: string) => executing.set(host, (executing.get(host) ?? 0) + 1);
      const executingInstances = seeded.instances.filter((i) => [0, 1, 12, 2, 4].includes(i.state));
      const executingTasks = seeded.tasks.filter((t) => [0, 17, 1, 12].includes(t.state));
      for (const i of executingInstances) add(i.host);
      for (const t of executingTasks) add(t.host);
      return {
        executing,
        instanceHosts: new Map(seeded.instances.map((i) => [String(i.id), i.host])),
        taskHosts: new Map(seeded.tasks.map((t) => [String(t.id), t.host])),
        text: `seeded into t_ds_process_instance: ${seeded.history} finished instances of former servers, then ${seeded.instances.length} of the masters (${executingInstances.length} executing; workflows ${seeded.scheduledDefinitions.join(', ')} on a schedule); ${seeded.tasks.length} task instances (${executingTasks.length} executing), as a 3.2 master writes them`,
      };
    },
    async poll(monitor, which) {
      const at = Date.now();
      const [instances, tasks] = await Promise.all([executingInstancesByHost(db), executingTasksByHost(db)]);
      for (const s of which) {
        monitor.executing(s.host, (s.nodeType === 'master' ? instances : tasks).get(s.host) ?? 0, at);
      }
      monitor.unowned = instances.get('NULL') ?? 0;
    },
    async verdict({ servers, killed, disturbed, monitor }) {
      const journal = new DynamoRunJournal(stack.clients.dynamodb, stack.info.tables.commands);
      const masters = killed.filter((s) => s.nodeType === 'master');
      const [instances, tasks, commands, errorCommands, runs, failover, failoverDlq] = await Promise.all([
        allRows(db, 't_ds_process_instance'),
        allRows(db, 't_ds_task_instance'),
        allRows(db, 't_ds_command'),
        allRows(db, 't_ds_error_command'),
        Promise.all(masters.map((m) => journal.runsOf(failoverLockName('master', m.host)))),
        queueDepth(stack.clients.sqs, stack.info.queues.failover),
        queueDepth(stack.clients.sqs, stack.info.queues.failoverDlq),
      ]);
      const depth = (d: { visible: number; inFlight: number; delayed: number }) =>
        d.visible + d.inFlight + d.delayed;
      return checkDsInvariants({
        servers,
        killed,
        killedAt: new Map([...monitor.failovers.values()].map((f) => [f.server.host, f.killedAt])),
        disturbed,
        timeZone: demo.timeZone,
        before: before ?? { instances: [], tasks: [] },
        final: {
          instances,
          tasks,
          commands,
          errorCommands,
          queues: { failover: depth(failover), failoverDlq: depth(failoverDlq) },
        },
        journal: new Map(masters.map((m, i) => [m.host, runs[i] ?? []])),
        takeovers: monitor.takeoverCommands,
        acknowledged: new Set(
          [...monitor.failovers.values()]
            .filter((f) => f.acknowledgedAt !== undefined)
            .map((f) => f.server.host),
        ),
      });
    },
    // zkf reads DolphinScheduler's time zone and release from here (the READY line of `npm run local`
    // does not carry them; zkf then takes --ds-time-zone / --ds-version, or UTC and 3.2).
    ready: () => ({ ...stack.info, dsTimeZone: demo.timeZone, dsVersion: demo.version }),
    close: () => db.close(),
  };
}
