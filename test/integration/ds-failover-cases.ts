// The failover function on DolphinScheduler's own database (DESIGN section 10), one dialect per test file:
// the real PostgreSQL or MariaDB server the local stack starts, the real ZooKeeper, the function run by the
// local Lambda runtime from the SQS failover queue (or invoked directly where a test needs the record).
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FailoverDeps, failOverHost, systemClock } from '../../lib/failover/fail-over-host.ts';
import { failoverLockName } from '../../lib/failover/ports.ts';
import { FunctionCrashedError, type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import type { FailoverRequest } from '../../lib/messages.ts';
import { silentLog } from '../../lib/observability.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { createLayout } from '../../lib/registry/layout.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { ZkSessionProvider } from '../../lib/registry/zk-session-provider.ts';
import { registerDsMaster, SimulatedDsMaster } from '../../lib/sim/ds-master.ts';
import {
  type Database,
  type Dialect,
  openDatabase,
  parseDatabaseUrl,
} from '../../lib/store/dolphinscheduler/database.ts';
import { DynamoLockStore } from '../../lib/store/dynamodb/locks.ts';
import { DynamoRunJournal } from '../../lib/store/dynamodb/run-journal.ts';
import { dolphinSchedulerFailoverPorts } from '../../lib/stores.ts';
import { commandRowsOf, instanceRows, seedDsInstances, seedFinished } from './ds-support.ts';
import { request, sqsEvent, uniqueHost, waitFor } from './failover-support.ts';

/** DolphinScheduler's masters run in Shanghai: stored times are UTC+8 wall times (F3 must convert). */
export const DS_TIME_ZONE = 'Asia/Shanghai';
const HOUR = 3_600_000;

export function defineDsFailoverTests(dialect: Dialect): void {
  let stack: LocalStack;
  let runtime: LocalRuntime;
  let db: Database;
  let zk: ZkSession;
  let requests: SqsFailoverRequestQueue;
  let journal: DynamoRunJournal;
  const logs: Array<Record<string, unknown>> = [];
  const root = '/dolphinscheduler';

  const doneLogs = (host: string) =>
    logs.filter(
      (l) =>
        (l.message === 'failover done' ||
          l.message === 'worker removal acknowledged; the scheduler fails its tasks over') &&
        l.host === host,
    );

  async function failOverThroughQueue(req: FailoverRequest): Promise<void> {
    const before = doneLogs(req.host).length;
    await requests.send([req]);
    await waitFor(`failover of ${req.host}`, () => doneLogs(req.host).length > before, 60_000, 100);
  }

  /** The use case in this process, wired like the function (a separate ZooKeeper session and pool). */
  function inProcessDeps(settings: Partial<FailoverDeps['settings']> = {}): {
    deps: FailoverDeps;
    close(): Promise<void>;
  } {
    const database = openDatabase(parseDatabaseUrl(stack.database?.url ?? ''), {
      max: 4,
      lockTimeoutMs: 5_000,
      statementTimeoutMs: 30_000,
    });
    const zookeeper = new ZkSessionProvider(
      {
        connect: (timeoutMs) =>
          connectZk({
            connectString: stack.info.zookeeper,
            sessionTimeoutMs: 4_000,
            connectTimeoutMs: timeoutMs,
          }),
      },
      { connectTimeoutMs: 5_000 },
    );
    const deps: FailoverDeps = {
      ...dolphinSchedulerFailoverPorts({
        database,
        timeZone: DS_TIME_ZONE,
        zookeeper,
        layout: createLayout({ name: 'ds-3', root }),
        version: '3.2',
        journal,
      }),
      locks: new DynamoLockStore(stack.clients.dynamodb, stack.info.tables.locks),
      requestQueue: requests,
      clock: systemClock,
      log: silentLog,
      settings: { leaseMs: 10_000, batchSize: 25, concurrency: 4, ...settings },
    };
    return {
      deps,
      close: async () => Promise.all([database.close(), zookeeper.close()]).then(() => undefined),
    };
  }

  /** Per instance: how many recovery commands it has. */
  async function commandCounts(ids: readonly number[]): Promise<Map<number, number>> {
    const rows = await commandRowsOf(db, ids);
    return new Map([...rows.entries()].map(([id, list]) => [id, list.length]));
  }

  async function expectExactlyOnce(ids: readonly number[], host: string): Promise<void> {
    const counts = await commandCounts(ids);
    expect(
      [...counts.entries()].filter(([, n]) => n !== 1),
      'instances with more than one command',
    ).toEqual([]);
    expect(
      ids.filter((id) => !counts.has(id)),
      'instances without a command',
    ).toEqual([]);
    const rows = await instanceRows(db, ids);
    expect(
      [...rows.values()].filter((r) => r.host !== 'NULL').map((r) => r.id),
      `left on ${host}`,
    ).toEqual([]);
  }

  beforeAll(async () => {
    stack = await startLocalStack({
      dolphinScheduler: { database: { start: dialect }, timeZone: DS_TIME_ZONE, version: '3.2' },
      queueOverrides: { FailoverQueue: { VisibilityTimeout: '5' } },
    });
    db = openDatabase(parseDatabaseUrl(stack.database?.url ?? ''));
    zk = await connectZk({
      connectString: stack.info.zookeeper,
      sessionTimeoutMs: 4_000,
      connectTimeoutMs: 5_000,
    });
    requests = new SqsFailoverRequestQueue(stack.clients.sqs, stack.info.queues.failover);
    journal = new DynamoRunJournal(stack.clients.dynamodb, stack.info.tables.commands);
    runtime = startLocalRuntime(stack, {
      functions: ['failover'],
      env: { failover: { LOCK_LEASE_MS: '3000', ZK_SESSION_TIMEOUT_MS: '2000', DS_BATCH_SIZE: '10' } },
      sqsConcurrency: 2,
      onLog: (_fn, line) => {
        try {
          const parsed: unknown = JSON.parse(line);
          if (parsed && typeof parsed === 'object') logs.push(parsed as Record<string, unknown>);
        } catch {
          // not a structured line
        }
      },
    });
  });

  afterAll(async () => {
    await runtime?.stop();
    await zk?.close();
    await db?.close();
    await stack?.stop();
  });

  describe(`master failover on ${dialect} (D1, D2, D6)`, () => {
    it('moves exactly the executing instances of the exact host to host NULL, one command row each', async () => {
      // Arrange: the dead host's instances in every state; a live superstring host; an instance already
      // failed over ('NULL'); each with its StartParams.
      const host = uniqueHost();
      const superstring = `1${host}`; // 10.x.y.z:5678 -> 110.x.y.z:5678, a different, live server
      const live = await registerDsMaster(zk, {
        root,
        host: superstring,
        startupTime: Date.now() - HOUR,
        version: '3.2',
      });
      const started = Date.now() - 2 * HOUR;
      const executing = await seedDsInstances(
        db,
        DS_TIME_ZONE,
        [0, 1, 2, 4, 12].map((state) => ({ host, state, startTime: started })),
      );
      const finished = await seedDsInstances(
        db,
        DS_TIME_ZONE,
        [3, 5, 6, 7, 14, 15, 16, 17].map((state) => ({ host, state, startTime: started })),
      );
      const others = await seedDsInstances(db, DS_TIME_ZONE, [
        { host: superstring, startTime: started },
        { host: 'NULL', startTime: started },
      ]);
      const before = await instanceRows(db, [...executing, ...finished, ...others]);

      try {
        // Act
        await failOverThroughQueue(request(host, { observedAt: Date.now() }));

        // Assert: host is the only column written, and only on the executing rows of the exact host.
        const after = await instanceRows(db, [...executing, ...finished, ...others]);
        for (const id of executing) {
          expect(after.get(id)).toEqual({ ...before.get(id), host: 'NULL' });
        }
        for (const id of [...finished, ...others]) expect(after.get(id)).toEqual(before.get(id));
        await expectExactlyOnce(executing, host);
        expect(await commandCounts([...finished, ...others])).toEqual(new Map());
        const runs = await journal.runsOf(failoverLockName('master', host));
        expect(runs.flatMap((r) => r.receipts.map((x) => Number(x.itemId))).sort((a, b) => a - b)).toEqual(
          executing,
        );
        const commands = await commandRowsOf(db, executing);
        const commandIds = [...commands.values()].map((list) => String(list[0]?.id));
        expect(runs.flatMap((r) => r.receipts.map((x) => x.commandId)).sort()).toEqual(commandIds.sort());
      } finally {
        await live.deregister();
      }
    });

    it('writes each command row as DolphinScheduler 3.2 does: StartParams, schedule time zone, defaults', async () => {
      // Arrange: one instance with StartParams, one without, one of a scheduled workflow (with both). That
      // workflow has two schedules: DolphinScheduler keeps one per workflow, and its own createCommand fails
      // on two (selectOne); the function takes the older one rather than fail.
      const host = uniqueHost();
      const started = Date.now() - HOUR;
      const scheduledCode = 5_550_000_000 + Math.floor(Math.random() * 1_000_000);
      const p = db.dialect === 'postgresql' ? ['$1', '$2'] : ['?', '?'];
      for (const timeZone of ['Asia/Shanghai', 'Europe/Paris']) {
        await db.query(
          `INSERT INTO t_ds_schedules (process_definition_code, timezone_id, crontab, start_time, end_time,
             failure_strategy, user_id, release_state, warning_type, create_time, update_time)
           VALUES (${p[0]}, ${p[1]}, '0 0 * * * ? *', '2024-01-01 00:00:00', '2099-01-01 00:00:00',
             1, 1, 1, 0, '2024-01-01 00:00:00', '2024-01-01 00:00:00')`,
          [scheduledCode, timeZone],
        );
      }
      const [withParams, without, scheduled, lowPriority] = await seedDsInstances(db, DS_TIME_ZONE, [
        {
          host,
          startTime: started,
          commandParam: '{"StartParams":"{\\"day\\":\\"2024-01-01\\"}","other":1}',
        },
        { host, startTime: started, commandParam: null, priority: 0, testFlag: 1 },
        { host, startTime: started, processDefinitionCode: scheduledCode },
        { host, startTime: started, commandParam: '{"StartParams":null}', priority: null },
      ]);

      // Act
      const t0 = Date.now();
      await failOverThroughQueue(request(host, { observedAt: Date.now() }));
      const t1 = Date.now();

      // Assert
      const rows = await commandRowsOf(db, [withParams ?? 0, without ?? 0, scheduled ?? 0, lowPriority ?? 0]);
      const only = (id: number | undefined) => {
        const list = rows.get(id ?? 0) ?? [];
        expect(list).toHaveLength(1);
        return list[0] as Record<string, unknown>;
      };
      const common = {
        command_type: 2,
        task_depend_type: 2,
        failure_strategy: 1,
        warning_type: 0,
        warning_group_id: null,
        schedule_time: null,
        worker_group: null,
        tenant_code: 'default',
        environment_code: -1,
        dry_run: 0,
        process_definition_version: 3,
        executor_id: 7,
      };
      const normalize = (row: Record<string, unknown>) =>
        Object.fromEntries(
          Object.entries(row).map(([k, v]) => [
            k,
            typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v,
          ]),
        );
      expect(normalize(only(withParams))).toMatchObject({
        ...common,
        process_definition_code: 9_876_543_210,
        process_instance_id: withParams,
        command_param: `{"StartParams":"{\\"day\\":\\"2024-01-01\\"}","ProcessInstanceId":${withParams}}`,
        process_instance_priority: 2,
        test_flag: 0,
      });
      expect(normalize(only(without))).toMatchObject({
        ...common,
        command_param: `{"ProcessInstanceId":${without}}`,
        process_instance_priority: 0,
        test_flag: 1,
      });
      expect(normalize(only(scheduled))).toMatchObject({
        ...common,
        process_definition_code: scheduledCode,
        command_param: `{"StartParams":"{\\"day\\":\\"2024-01-01\\"}","ProcessInstanceId":"${scheduled}","schedule_timezone":"Asia/Shanghai"}`,
      });
      expect(normalize(only(lowPriority))).toMatchObject({
        ...common,
        command_param: `{"ProcessInstanceId":${lowPriority}}`,
        process_instance_priority: 2,
      });
      // start_time and update_time: the write time, as DolphinScheduler's Shanghai wall clock.
      const clock = (await import('../../lib/store/dolphinscheduler/wall-time.ts')).WallClock;
      const shanghai = new clock(DS_TIME_ZONE);
      const written = only(withParams);
      expect(written.start_time).toEqual(written.update_time);
      const at = shanghai.parse(String(written.start_time));
      expect(at).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000);
      expect(at).toBeLessThanOrEqual(t1);
    });
  });

  describe(`F3 on ${dialect}: a restarted master keeps its new incarnation's work (DS_TIME_ZONE ${DS_TIME_ZONE})`, () => {
    it('skips instances started or restarted at or after the new startupTime, fails over the older ones', async () => {
      // Arrange: the master came back 30 minutes ago. Times within 8 hours of it: read as UTC they would be
      // 8 hours off and the outcome would flip.
      const host = uniqueHost();
      const startup = Date.now() - 30 * 60_000;
      const registration = await registerDsMaster(zk, { root, host, startupTime: startup, version: '3.2' });
      const [older, newer, restarted, olderRestart] = await seedDsInstances(db, DS_TIME_ZONE, [
        { host, startTime: startup - 2 * HOUR },
        { host, startTime: startup + 5 * 60_000 },
        { host, startTime: startup - 3 * HOUR, restartTime: startup + 60_000 },
        { host, startTime: startup - 4 * HOUR, restartTime: startup - HOUR },
      ]);

      try {
        // Act
        await failOverThroughQueue(request(host, { observedAt: Date.now() }));

        // Assert
        const rows = await instanceRows(db, [older ?? 0, newer ?? 0, restarted ?? 0, olderRestart ?? 0]);
        expect(rows.get(older ?? 0)?.host).toBe('NULL');
        expect(rows.get(olderRestart ?? 0)?.host).toBe('NULL');
        expect(rows.get(newer ?? 0)?.host).toBe(host);
        expect(rows.get(restarted ?? 0)?.host).toBe(host);
        expect(await commandCounts([older ?? 0, newer ?? 0, restarted ?? 0, olderRestart ?? 0])).toEqual(
          new Map([
            [older, 1],
            [olderRestart, 1],
          ]),
        );
      } finally {
        await registration.deregister();
      }
    });
  });

  describe(`worker removals on ${dialect} (D4)`, () => {
    it('are acknowledged without writing any task row', async () => {
      // Arrange
      const worker = uniqueHost();
      const p = db.dialect === 'postgresql' ? ['$1', '$2'] : ['?', '?'];
      await db.query(
        `INSERT INTO t_ds_task_instance (name, task_type, task_code, process_instance_id, state, submit_time, host)
         VALUES ('t', 'SHELL', 1, 1, 1, '2024-01-01 00:00:00', ${p[0]})`,
        [worker],
      );
      const before = await db.query(`SELECT * FROM t_ds_task_instance WHERE host = ${p[0]}`, [worker]);

      // Act
      const out = (await runtime.invoke(
        'failover',
        sqsEvent([request(worker, { nodeType: 'worker' })]),
      )) as SQSBatchResponse;

      // Assert
      expect(out.batchItemFailures).toEqual([]);
      expect(await db.query(`SELECT * FROM t_ds_task_instance WHERE host = ${p[0]}`, [worker])).toEqual(
        before,
      );
      expect(
        logs.some((l) => l.host === worker && String(l.message).startsWith('worker removal acknowledged')),
      ).toBe(true);
    });
  });

  describe(`beside DolphinScheduler's own masters on ${dialect} (D3)`, () => {
    it('writes the same command row as DolphinScheduler 3.2 does, column by column', async () => {
      // Arrange: twin instances on two dead hosts (with and without StartParams, of a scheduled workflow
      // and not); the simulated 3.2 master fails one host over, the function the other.
      const [theirs, ours] = [uniqueHost(), uniqueHost()];
      const started = Date.now() - HOUR;
      const scheduledCode = 6_660_000_000 + Math.floor(Math.random() * 1_000_000);
      const p = db.dialect === 'postgresql' ? ['$1', '$2'] : ['?', '?'];
      await db.query(
        `INSERT INTO t_ds_schedules (process_definition_code, timezone_id, crontab, start_time, end_time,
           failure_strategy, user_id, release_state, warning_type, create_time, update_time)
         VALUES (${p[0]}, ${p[1]}, '0 0 * * * ? *', '2024-01-01 00:00:00', '2099-01-01 00:00:00',
           1, 1, 1, 0, '2024-01-01 00:00:00', '2024-01-01 00:00:00')`,
        [scheduledCode, 'Europe/Berlin'],
      );
      const shapes = [
        {},
        { commandParam: null, priority: 0, testFlag: 1 },
        { processDefinitionCode: scheduledCode },
        { processDefinitionCode: scheduledCode, commandParam: '{"other":true}', priority: 4 },
      ];
      const theirIds = await seedDsInstances(
        db,
        DS_TIME_ZONE,
        shapes.map((x) => ({ host: theirs, startTime: started, ...x })),
      );
      const ourIds = await seedDsInstances(
        db,
        DS_TIME_ZONE,
        shapes.map((x) => ({ host: ours, startTime: started, ...x })),
      );
      const master = new SimulatedDsMaster({
        db,
        session: zk,
        root,
        host: uniqueHost(),
        timeZone: DS_TIME_ZONE,
      });

      // Act
      const result = await master.failOverMaster(theirs);
      await failOverThroughQueue(request(ours, { observedAt: Date.now() }));

      // Assert: every column equal but the ids (and the id inside command_param) and the write times.
      expect(result.error).toBeUndefined();
      const theirRows = await commandRowsOf(db, theirIds);
      const ourRows = await commandRowsOf(db, ourIds);
      const comparable = (row: Record<string, unknown> | undefined, instanceId: number) => {
        const {
          id: _id,
          start_time: _s,
          update_time: _u,
          process_instance_id,
          command_param,
          ...rest
        } = row ?? {};
        expect(Number(process_instance_id)).toBe(instanceId);
        const param = String(command_param).replace(
          new RegExp(`("ProcessInstanceId":"?)${instanceId}("?)`),
          '$1<id>$2',
        );
        return { ...rest, command_param: param };
      };
      shapes.forEach((_, i) => {
        const theirId = theirIds[i] ?? 0;
        const ourId = ourIds[i] ?? 0;
        expect(theirRows.get(theirId)).toHaveLength(1);
        expect(ourRows.get(ourId)).toHaveLength(1);
        expect(comparable(ourRows.get(ourId)?.[0], ourId), `shape ${i}`).toEqual(
          comparable(theirRows.get(theirId)?.[0], theirId),
        );
      });
    });

    it.each([0, 1, 2])(
      'a DolphinScheduler 3.2 master failing the same host over at the same moment (round %i): one command per instance',
      async (round) => {
        // Arrange: 150 instances; the simulated master starts its own routine (same ZooKeeper mutex, its
        // unconditional writes) a little before, at, or after the function.
        const host = uniqueHost();
        const ids = await seedDsInstances(
          db,
          DS_TIME_ZONE,
          Array.from({ length: 150 }, () => ({ host, startTime: Date.now() - HOUR })),
        );
        const master = new SimulatedDsMaster({
          db,
          session: zk,
          root,
          host: uniqueHost(),
          timeZone: DS_TIME_ZONE,
        });
        const { deps, close } = inProcessDeps({ batchSize: 10, concurrency: 3 });
        const req = request(host, { observedAt: Date.now() });
        const ours = async () => {
          await new Promise((r) => setTimeout(r, round * 15));
          for (;;) {
            const outcome = await failOverHost(req, deps, { shouldStop: () => false });
            if (outcome.status === 'done') return outcome;
            await new Promise((r) => setTimeout(r, 100));
          }
        };

        try {
          // Act
          const [theirs] = await Promise.all([master.failOverMaster(host), ours()]);

          // Assert: whoever took the mutex first did all of it; the other found nothing left.
          expect(theirs.error).toBeUndefined();
          await expectExactlyOnce(ids, host);
        } finally {
          await close();
        }
      },
    );
  });

  describe(`exactly once on ${dialect} (D2)`, () => {
    it('the same request delivered ten times and two functions at once: one command per instance', async () => {
      // Arrange
      const host = uniqueHost();
      const ids = await seedDsInstances(
        db,
        DS_TIME_ZONE,
        Array.from({ length: 120 }, () => ({ host, startTime: Date.now() - HOUR })),
      );
      const first = inProcessDeps({ batchSize: 7, concurrency: 3 });
      const second = inProcessDeps({ batchSize: 11, concurrency: 2 });
      const req = request(host, { observedAt: Date.now() });
      const budget = { shouldStop: () => false };

      try {
        // Act: two functions at once in this process, and the same request delivered ten times to the
        // function (each delivery retried, like a redelivered record, until it is not refused for the lock).
        const runUntilDone = async (deps: FailoverDeps) => {
          for (;;) {
            const outcome = await failOverHost(req, deps, budget);
            if (outcome.status === 'done') return outcome;
            await new Promise((r) => setTimeout(r, 100));
          }
        };
        const deliverUntilDone = async () => {
          for (;;) {
            const out = (await runtime.invoke('failover', sqsEvent([req]))) as SQSBatchResponse;
            if (out.batchItemFailures.length === 0) return;
            await new Promise((r) => setTimeout(r, 100));
          }
        };
        await Promise.all([
          runUntilDone(first.deps),
          runUntilDone(second.deps),
          ...Array.from({ length: 10 }, deliverUntilDone),
        ]);

        // Assert
        await expectExactlyOnce(ids, host);
      } finally {
        await first.close();
        await second.close();
      }
    });

    it.each([1, 3, 6])(
      'a function killed after %i batches: the retry completes, no duplicate, none missing',
      async (k) => {
        // Arrange: 95 instances, batches of 10.
        const host = uniqueHost();
        const ids = await seedDsInstances(
          db,
          DS_TIME_ZONE,
          Array.from({ length: 95 }, () => ({ host, startTime: Date.now() - HOUR })),
        );
        const req = request(host, { observedAt: Date.now() });
        const faulty = startLocalRuntime(stack, {
          functions: ['failover'],
          eventSources: false,
          maxContainers: 1,
          env: {
            failover: {
              ZKF_FAILPOINTS: `after-transaction=${k}:exit`,
              LOCK_LEASE_MS: '1000',
              ZK_SESSION_TIMEOUT_MS: '2000',
              DS_BATCH_SIZE: '10',
              FAILOVER_CONCURRENCY: '2',
            },
          },
        });

        // Act
        try {
          await expect(faulty.invoke('failover', sqsEvent([req]))).rejects.toBeInstanceOf(
            FunctionCrashedError,
          );
        } finally {
          await faulty.stop();
        }
        const afterCrash = await commandCounts(ids);
        await waitFor(
          'a successful retry',
          async () => {
            const out = (await runtime.invoke('failover', sqsEvent([req]))) as SQSBatchResponse;
            return out.batchItemFailures.length === 0;
          },
          60_000,
          500,
        );

        // Assert: the crash left part of the work done, and the retry finished it exactly once.
        expect(afterCrash.size).toBeGreaterThanOrEqual(k * 10);
        expect(afterCrash.size).toBeLessThan(ids.length);
        await expectExactlyOnce(ids, host);
      },
    );
  });

  describe(`a large host on ${dialect} (D7)`, () => {
    it('2,000 instances among 20,000 finished ones complete across several short invocations, none missing', async () => {
      // Arrange: finished rows before, between and after the host's rows; 4 s invocations that stop taking
      // pages 3.9 s before their end (each does a page or a few); id ranges of 1,500 per page read.
      const host = uniqueHost();
      const started = Date.now() - HOUR;
      await seedFinished(db, DS_TIME_ZONE, 10_000, started);
      const ids = await seedDsInstances(
        db,
        DS_TIME_ZONE,
        Array.from({ length: 2_000 }, () => ({ host, startTime: started })),
      );
      await seedFinished(db, DS_TIME_ZONE, 10_000, started);
      // The shared runtime's long invocations step aside: this test's short ones poll the queue.
      await runtime.stop();
      runtime = startLocalRuntime(stack, {
        functions: ['failover'],
        timeoutMs: { failover: 4_000 },
        env: {
          failover: {
            // An invocation killed at its timeout (a loaded machine) leaves its lease: a short one.
            LOCK_LEASE_MS: '2000',
            DEADLINE_MARGIN_MS: '3900',
            DS_BATCH_SIZE: '20',
            FAILOVER_CONCURRENCY: '4',
            DS_SCAN_SPAN: '1500',
            ZK_SESSION_TIMEOUT_MS: '2000',
          },
        },
        sqsConcurrency: 1,
      });

      // Act
      await requests.send([request(host, { observedAt: Date.now() })]);
      await waitFor(
        'every instance failed over',
        async () => (await commandCounts(ids)).size === ids.length,
        180_000,
        500,
      );

      // Assert
      const invocations = runtime.invocations().filter((r) => r.trigger === 'sqs');
      expect(invocations.length).toBeGreaterThanOrEqual(3);
      await expectExactlyOnce(ids, host);
      console.log(`${dialect}: 2,000 instances among 20,000 finished in ${invocations.length} invocations`);
    }, 240_000);
  });
}
