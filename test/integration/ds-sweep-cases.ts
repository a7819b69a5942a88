// The sweep on DolphinScheduler's own database (DESIGN D5), one dialect per test file: the sweep function
// run by the local runtime (direct invocations) against the real database server and ZooKeeper; orphan
// requests read off the failover queue.
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { registerDsMaster, SimulatedDsMaster } from '../../lib/sim/ds-master.ts';
import {
  type Database,
  type Dialect,
  openDatabase,
  parseDatabaseUrl,
} from '../../lib/store/dolphinscheduler/database.ts';
import { repairLedgerId } from '../../lib/store/dynamodb/repair-ledger.ts';
import type { SweepSummary } from '../../lib/sweep/sweep.ts';
import { commandRowsOf, instanceRows, seedDsInstances } from './ds-support.ts';
import { uniqueHost, waitFor } from './failover-support.ts';
import { FailoverQueueReader } from './watcher-harness.ts';

const DS_TIME_ZONE = 'Asia/Shanghai';
const HOUR = 3_600_000;
const GRACE_MS = 3_000;

export function defineDsSweepTests(dialect: Dialect): void {
  let stack: LocalStack;
  let runtime: LocalRuntime;
  let db: Database;
  let zk: ZkSession;
  let reader: FailoverQueueReader;
  const root = '/dolphinscheduler';

  const sweep = async (): Promise<SweepSummary> => (await runtime.invoke('sweep', {})) as SweepSummary;

  beforeAll(async () => {
    stack = await startLocalStack({
      dolphinScheduler: { database: { start: dialect }, timeZone: DS_TIME_ZONE, version: '3.2' },
    });
    db = openDatabase(parseDatabaseUrl(stack.database?.url ?? ''));
    zk = await connectZk({
      connectString: stack.info.zookeeper,
      sessionTimeoutMs: 4_000,
      connectTimeoutMs: 5_000,
    });
    reader = new FailoverQueueReader(stack);
    runtime = startLocalRuntime(stack, {
      functions: ['sweep'],
      eventSources: false,
      env: { sweep: { DS_REPAIR_GRACE_MS: String(GRACE_MS) } },
    });
  });

  afterAll(async () => {
    await reader?.stop();
    await runtime?.stop();
    await zk?.close();
    await db?.close();
    await stack?.stop();
  });

  describe(`the sweep on ${dialect} (D5)`, () => {
    it('requests one failover per executing host that is not registered, by exact name', async () => {
      // Arrange: a dead host, a live one whose name contains it, unowned markers (not hosts).
      const dead = uniqueHost();
      const live = `1${dead}`;
      const registration = await registerDsMaster(zk, {
        root,
        host: live,
        startupTime: Date.now() - HOUR,
        version: '3.2',
      });
      const started = Date.now() - 2 * HOUR;
      await seedDsInstances(db, DS_TIME_ZONE, [
        { host: dead, startTime: started },
        { host: dead, startTime: started, state: 2 },
        { host: live, startTime: Date.now() },
        { host: 'NULL', startTime: started },
        { host: uniqueHost(), startTime: started, state: 7 },
      ]);
      try {
        // Act
        const summary = await sweep();

        // Assert
        expect(summary.registry).toBe('listed');
        expect(summary.orphans.map((o) => o.host)).toContain(dead);
        expect(summary.orphans.map((o) => o.host)).not.toContain(live);
        expect(summary.orphans.map((o) => o.host)).not.toContain('NULL');
        expect(summary.scan?.hosts).toBeGreaterThanOrEqual(2);
        await waitFor(
          'the orphan request',
          () => reader.received.some((r) => r.request.host === dead),
          10_000,
        );
        const requests = reader.received.filter((r) => r.request.host === dead);
        expect(requests).toHaveLength(1);
        expect(requests[0]?.request).toMatchObject({ kind: 'Orphaned', nodeType: 'master', source: 'sweep' });
        expect(reader.received.some((r) => r.request.host === live)).toBe(false);
      } finally {
        await registration.deregister();
      }
    });

    it('gives an executing instance with SQL NULL host the marker and one command, once', async () => {
      // Arrange
      const [orphan, finished] = await seedDsInstances(db, DS_TIME_ZONE, [
        { host: null, startTime: Date.now() - HOUR },
        { host: null, startTime: Date.now() - HOUR, state: 7 },
      ]);
      const ids = [orphan ?? 0, finished ?? 0];

      // Act: two sweeps.
      await sweep();
      await sweep();

      // Assert
      const rows = await instanceRows(db, ids);
      expect(rows.get(orphan ?? 0)?.host).toBe('NULL');
      expect(rows.get(finished ?? 0)?.host).toBeNull();
      const commands = await commandRowsOf(db, ids);
      expect(commands.get(orphan ?? 0)).toHaveLength(1);
      expect(commands.get(finished ?? 0)).toBeUndefined();
      expect(commands.get(orphan ?? 0)?.[0]).toMatchObject({
        command_param: `{"StartParams":"{\\"day\\":\\"2024-01-01\\"}","ProcessInstanceId":${orphan}}`,
      });
    });

    it("leaves a 'NULL' instance with a pending command alone; repairs one without, once, after the grace period", async () => {
      // Arrange: both failed over; one's command vanished (moved to t_ds_error_command by a master, #13355).
      const [pending, lost] = await seedDsInstances(db, DS_TIME_ZONE, [
        { host: 'NULL', startTime: Date.now() - HOUR },
        { host: 'NULL', startTime: Date.now() - HOUR },
      ]);
      const p = dialect === 'postgresql' ? '$1' : '?';
      await db.query(
        `INSERT INTO t_ds_command (command_type, process_definition_code, process_instance_id, command_param, executor_id)
         VALUES (2, 9876543210, ${p}, '{}', 7)`,
        [pending],
      );
      const ids = [pending ?? 0, lost ?? 0];

      // Act / Assert: seen, not yet repaired; the ledger remembers it.
      const first = await sweep();
      expect(first.repairs).toMatchObject({ status: 'done' });
      expect((await commandRowsOf(db, [lost ?? 0])).get(lost ?? 0)).toBeUndefined();
      const ledger = await stack.clients.dynamodb.send(
        new GetItemCommand({
          TableName: stack.info.tables.servers,
          Key: { id: { S: repairLedgerId } },
          ConsistentRead: true,
        }),
      );
      expect(Object.keys(ledger.Item?.firstSeen?.M ?? {})).toContain(String(lost));
      await new Promise((r) => setTimeout(r, GRACE_MS + 200));
      await sweep();
      await sweep();

      const commands = await commandRowsOf(db, ids);
      expect(commands.get(pending ?? 0)).toHaveLength(1);
      expect(commands.get(lost ?? 0)).toHaveLength(1);
      expect(commands.get(lost ?? 0)?.[0]).toMatchObject({ command_type: 2 });
    });

    it('never writes a second command while a DolphinScheduler master consumes commands during the repairs', async () => {
      // Arrange: 40 unowned instances (SQL NULL host) and 40 failed over with their command pending; a 3.2
      // master consumes t_ds_command in a loop while the sweep repairs, taking each instance over as soon as
      // its command appears.
      const unowned = await seedDsInstances(
        db,
        DS_TIME_ZONE,
        Array.from({ length: 40 }, () => ({ host: null, startTime: Date.now() - HOUR })),
      );
      const failedOver = await seedDsInstances(
        db,
        DS_TIME_ZONE,
        Array.from({ length: 40 }, () => ({ host: 'NULL', startTime: Date.now() - HOUR })),
      );
      const mark = dialect === 'postgresql' ? (i: number) => `$${i}` : () => '?';
      await db.query(
        `INSERT INTO t_ds_command (command_type, process_definition_code, process_instance_id, command_param, executor_id)
         VALUES ${failedOver.map((_, i) => `(2, 9876543210, ${mark(i + 1)}, '{}', 7)`).join(', ')}`,
        failedOver,
      );
      const ids = [...unowned, ...failedOver];
      const consumerHost = uniqueHost();
      const registration = await registerDsMaster(zk, {
        root,
        host: consumerHost,
        startupTime: Date.now(),
        version: '3.2',
      });
      const master = new SimulatedDsMaster({
        db,
        session: zk,
        root,
        host: consumerHost,
        timeZone: DS_TIME_ZONE,
      });
      const tookOver = new Map<number, number>();
      let consuming = true;
      const consumer = (async () => {
        while (consuming) {
          const out = await master.consumeCommands({ slot: 0, totalSlot: 1 });
          for (const t of out.tookOver) tookOver.set(t.instanceId, (tookOver.get(t.instanceId) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();

      try {
        // Act: sweeps until every instance was taken over.
        await waitFor(
          'every unowned instance taken over',
          async () => {
            await sweep();
            return ids.every((id) => tookOver.has(id));
          },
          60_000,
          50,
        );
      } finally {
        consuming = false;
        await consumer;
        await registration.deregister();
      }

      // Assert: each was taken over once, owns its master, and no command is left or doubled.
      expect(ids.filter((id) => tookOver.get(id) !== 1)).toEqual([]);
      const rows = await instanceRows(db, ids);
      expect([...rows.values()].filter((r) => r.host !== consumerHost)).toEqual([]);
      expect(await commandRowsOf(db, ids)).toEqual(new Map());
      const errors = await db.query<{ n: number | string }>(
        `SELECT count(*) AS n FROM t_ds_error_command WHERE process_instance_id IN (${ids.join(', ')})`,
      );
      expect(Number(errors[0]?.n)).toBe(0);
    });
  });
}
