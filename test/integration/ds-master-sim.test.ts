// The simulated DolphinScheduler 3.2 master (lib/sim/ds-master.ts) against real PostgreSQL, MariaDB and
// ZooKeeper: it must write what the real one writes (shared/dolphinscheduler.md sections 1, 3, 4), bugs
// included, because the failover tests prove exactly-once next to it.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  applyDolphinSchedulerSchema,
  type Dialect,
  dialects,
  type LocalDatabase,
  startLocalDatabase,
} from '../../lib/local/database.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../../lib/local/zookeeper.ts';
import { lockMutex, tryLockMutex } from '../../lib/registry/curator-mutex.ts';
import { dsMasterFailoverLockPath } from '../../lib/registry/ds-failover-lock.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import {
  dsMasterHeartbeat,
  PeriodicCheckNullHostError,
  registerDsMaster,
  registerDsWorker,
  SimulatedDsMaster,
} from '../../lib/sim/ds-master.ts';
import { type Database, openDatabase, parseDatabaseUrl } from '../../lib/store/dolphinscheduler/database.ts';

type Row = Record<string, unknown>;

const zone = 'Asia/Shanghai';
/** The simulated JVM's clock: 2024-07-20 20:00:00.456 in Shanghai. */
const now = Date.UTC(2024, 6, 20, 12, 0, 0, 456);
const later = Date.UTC(2024, 6, 20, 12, 5, 0, 789);
/** What the database keeps of `now` written as wall-clock time: MariaDB's datetime drops the fraction. */
const stored = (dialect: Dialect, wall: string) => (dialect === 'postgresql' ? wall : wall.slice(0, 19));
const dead = '10.0.0.1:5678';
/**
 * 07:00 Shanghai, before every instance's start: were 110.0.0.1:5678's registration taken for 10.0.0.1:5678's,
 * their instances would be skipped as started after it.
 */
const earlyStartup = Date.UTC(2024, 6, 19, 23, 0, 0);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function q(db: Database, text: string, params: unknown[] = []): Promise<Row[]> {
  let n = 0;
  return db.query<Row>(db.dialect === 'postgresql' ? text.replace(/\?/g, () => `$${++n}`) : text, params);
}

const instanceDefaults: Row = {
  name: 'wf-1-20240720',
  process_definition_code: 9001,
  process_definition_version: 3,
  project_code: 77,
  state: 1,
  recovery: 0,
  start_time: '2024-07-20 08:00:00',
  run_times: 1,
  command_type: 0,
  task_depend_type: 2,
  max_try_times: 0,
  failure_strategy: 1,
  warning_type: 0,
  flag: 1,
  is_sub_process: 0,
  executor_id: 5,
  executor_name: 'alice',
  history_cmd: 'START_PROCESS',
  process_instance_priority: 2,
  worker_group: 'default',
  environment_code: -1,
  timeout: 0,
  tenant_code: 'default',
  dry_run: 0,
  next_process_instance_id: 0,
  test_flag: 0,
};

async function insertInstance(db: Database, values: Row): Promise<void> {
  const row = { ...instanceDefaults, ...values };
  const columns = Object.keys(row);
  await q(
    db,
    `insert into t_ds_process_instance (${columns.join(', ')}) values (${columns.map(() => '?').join(', ')})`,
    Object.values(row),
  );
}

async function insertSchedule(db: Database, code: number, timezoneId: string): Promise<void> {
  await q(
    db,
    'insert into t_ds_schedules (process_definition_code, start_time, end_time, timezone_id, crontab, ' +
      'failure_strategy, user_id, release_state, warning_type, create_time, update_time) ' +
      "values (?, '2024-01-01 00:00:00', '2100-01-01 00:00:00', ?, '0 0 * * * ? *', 1, 1, 1, 0, " +
      "'2024-01-01 00:00:00', '2024-01-01 00:00:00')",
    [code, timezoneId],
  );
}

const instances = async (db: Database): Promise<Map<number, Row>> =>
  new Map((await q(db, 'select * from t_ds_process_instance order by id')).map((r) => [Number(r.id), r]));
const commands = (db: Database) => q(db, 'select * from t_ds_command order by id');

let zk: ZooKeeperCluster;
const servers = new Map<Dialect, LocalDatabase>();

beforeAll(async () => {
  const [cluster, ...started] = await Promise.all([
    startZooKeeper(),
    ...dialects.map(async (dialect) => {
      const server = await startLocalDatabase(dialect);
      await applyDolphinSchedulerSchema(server.url);
      return server;
    }),
  ]);
  zk = cluster;
  for (const server of started) servers.set(server.dialect, server);
});

afterAll(async () => {
  await Promise.all([zk?.stop(), ...[...servers.values()].map((server) => server.stop())]);
});

const sessions: ZkSession[] = [];
const connect = async (): Promise<ZkSession> => {
  const session = await connectZk({
    connectString: zk.connectString,
    sessionTimeoutMs: 6_000,
    connectTimeoutMs: 10_000,
  });
  sessions.push(session);
  return session;
};

afterEach(async () => {
  await Promise.all(sessions.splice(0).map((session) => session.close()));
});

describe('registration', () => {
  it('writes the exact 3.2 and 3.1 heartbeats into ephemeral nodes that deregister deletes', async () => {
    // Arrange
    const session = await connect();
    const observer = await connect();
    const options = { root: '/reg', startupTime: 1_721_462_400_123, reportTime: 1_721_466_012_345 };

    // Act
    const master = await registerDsMaster(session, { ...options, host: '172.18.0.5:5678', version: '3.2' });
    const worker = await registerDsWorker(session, { ...options, host: '172.18.0.6:1234', version: '3.2' });
    const old = await registerDsMaster(session, {
      ...options,
      root: '/reg31',
      host: '172.18.0.5:5678',
      startupTime: 1_703_123_456_789,
      reportTime: 1_703_123_556_789,
      version: '3.1',
    });
    const masterNode = await observer.data('/reg/nodes/master/172.18.0.5:5678');
    const workerNode = await observer.data('/reg/nodes/worker/172.18.0.6:1234');
    const oldNode = await observer.data('/reg31/nodes/master/172.18.0.5:5678');
    await master.deregister();

    // Assert
    expect(masterNode?.data?.toString()).toBe(
      '{"processId":2871,"startupTime":1721462400123,"reportTime":1721466012345,"jvmCpuUsage":0.0123,"cpuUsage":0.1531,"jvmMemoryUsage":0.1874,"memoryUsage":0.612,"diskUsage":0.0,"serverStatus":"NORMAL","host":"172.18.0.5","port":5678}',
    );
    expect(masterNode?.stat.ephemeralOwner).toBe(session.sessionId);
    expect(workerNode?.data?.toString()).toBe(
      '{"processId":2872,"startupTime":1721462400123,"reportTime":1721466012345,"jvmCpuUsage":0.0123,"cpuUsage":0.1531,"jvmMemoryUsage":0.1874,"memoryUsage":0.612,"diskUsage":0.0,"serverStatus":"NORMAL","host":"172.18.0.6","port":1234,"workerHostWeight":100,"threadPoolUsage":2}',
    );
    expect(oldNode?.data?.toString()).toBe(
      '{"startupTime":1703123456789,"reportTime":1703123556789,"cpuUsage":0.12,"memoryUsage":0.61,"loadAverage":1.37,"availablePhysicalMemorySize":5.43,"maxCpuloadAvg":16.0,"reservedMemory":0.3,"diskAvailable":87.21,"processId":2871}',
    );
    expect(await observer.exists(master.path)).toBeNull();
    expect(await observer.exists(worker.path)).not.toBeNull();
    await old.deregister();
  });
});

describe.each(dialects)('a simulated DolphinScheduler 3.2 master on %s', (dialect) => {
  let db: Database;
  let sideDb: Database;

  const simulated = (session: ZkSession, root: string, host = '10.0.0.9:5678', clock = now) =>
    new SimulatedDsMaster({
      db,
      session,
      root,
      host,
      timeZone: zone,
      clock: () => clock,
      lockTimeoutMs: 20_000,
    });

  beforeAll(() => {
    const server = servers.get(dialect);
    if (server === undefined) throw new Error(`no ${dialect} server`);
    db = openDatabase(parseDatabaseUrl(server.url));
    sideDb = openDatabase(parseDatabaseUrl(server.url));
  });

  afterAll(async () => {
    await Promise.all([db?.close(), sideDb?.close()]);
  });

  beforeEach(async () => {
    for (const table of ['t_ds_process_instance', 't_ds_command', 't_ds_error_command', 't_ds_schedules']) {
      await q(db, `delete from ${table}`);
    }
  });

  it('fails over exactly the executing instances of the host: full-row update, 3.2 command rows', async () => {
    // Arrange: 110.0.0.1:5678 is registered, 10.0.0.1:5678 is not (and is no prefix match here).
    const root = `/sim-${dialect}-exact`;
    const session = await connect();
    await registerDsMaster(await connect(), {
      root,
      host: '110.0.0.1:5678',
      startupTime: earlyStartup,
      version: '3.2',
    });
    await insertInstance(db, {
      id: 101,
      host: dead,
      state: 0,
      process_instance_priority: null,
      test_flag: null,
      start_time: '2024-07-20 08:00:00.123456',
    });
    await insertInstance(db, { id: 102, host: dead, state: 1, executor_id: 7, process_instance_priority: 0 });
    await insertInstance(db, { id: 103, host: dead, state: 12, process_definition_code: 9003, test_flag: 1 });
    await insertInstance(db, { id: 104, host: dead, state: 2, process_definition_version: 8 });
    await insertInstance(db, { id: 105, host: dead, state: 4, run_times: null });
    await insertInstance(db, { id: 106, host: dead, state: 7 });
    await insertInstance(db, { id: 107, host: '10.0.0.2:5678', state: 1 });
    await insertInstance(db, { id: 108, host: '110.0.0.1:5678', state: 1 });
    const before = await instances(db);
    // 3.2.2 looks at its own memory only for a master that is registered again: 103 goes anyway.
    const sim = simulated(session, root);
    sim.running.add(103);

    // Act
    const result = await sim.failOverMaster(dead);

    // Assert
    expect(result.error).toBeUndefined();
    expect(result.registeredStartupTime).toBeNull();
    expect(result.failedOver).toEqual([101, 102, 103, 104, 105]);
    expect(result.skipped).toEqual([]);
    const after = await instances(db);
    for (const id of [101, 102, 103, 104, 105]) {
      const expected: Row = { ...before.get(id), host: 'NULL' };
      if (dialect === 'mysql') expected.update_time = after.get(id)?.update_time; // ON UPDATE CURRENT_TIMESTAMP
      if (id === 101) {
        expected.test_flag = 0; // a Java int: the NULL read comes back as 0
        if (dialect === 'postgresql') expected.start_time = '2024-07-20 08:00:00.123'; // through a java.util.Date
      }
      if (id === 105) expected.run_times = 0;
      expect(after.get(id), `instance ${id}`).toEqual(expected);
    }
    for (const id of [106, 107, 108]) expect(after.get(id)).toEqual(before.get(id));
    const wall = stored(dialect, '2024-07-20 20:00:00.456');
    const command = (instanceId: number, over: Row): Row => ({
      command_type: 2,
      process_definition_code: '9001',
      command_param: `{"ProcessInstanceId":${instanceId}}`,
      task_depend_type: 2,
      failure_strategy: 1,
      warning_type: 0,
      warning_group_id: null,
      schedule_time: null,
      start_time: wall,
      executor_id: 5,
      update_time: wall,
      process_instance_priority: 2,
      worker_group: null,
      tenant_code: 'default',
      environment_code: '-1',
      dry_run: 0,
      process_instance_id: instanceId,
      process_definition_version: 3,
      test_flag: 0,
      ...over,
    });
    expect(await commands(db)).toEqual([
      command(101, { id: result.commandIds[0] }),
      command(102, { id: result.commandIds[1], executor_id: 7, process_instance_priority: 0 }),
      command(103, { id: result.commandIds[2], process_definition_code: '9003', test_flag: 1 }),
      command(104, { id: result.commandIds[3], process_definition_version: 8 }),
      command(105, { id: result.commandIds[4] }),
    ]);
    expect(await session.children(dsMasterFailoverLockPath(root, '3.2', dead))).toEqual([]);
  });

  it('copies StartParams and adds a schedule time zone as 3.2 writes them', async () => {
    // Arrange
    const session = await connect();
    const startParams = JSON.stringify({ StartParams: '{"k":"v"}', other: 'x' });
    await insertInstance(db, { id: 201, host: dead, command_param: startParams });
    await insertInstance(db, {
      id: 202,
      host: dead,
      command_param: startParams,
      process_definition_code: 9202,
    });
    await insertInstance(db, { id: 203, host: dead, process_definition_code: 9203 });
    await insertInstance(db, { id: 204, host: dead, command_param: '{"StartParams":null}' });
    await insertInstance(db, { id: 205, host: dead, command_param: 'not json' });
    await insertSchedule(db, 9202, 'Asia/Shanghai');
    await insertSchedule(db, 9203, 'America/New_York');

    // Act
    const result = await simulated(session, `/sim-${dialect}-params`).failOverMaster(dead);

    // Assert
    expect(result.error).toBeUndefined();
    expect(result.failedOver).toEqual([201, 202, 203, 204, 205]);
    expect((await commands(db)).map((row) => [row.process_instance_id, row.command_param])).toEqual([
      [201, '{"StartParams":"{\\"k\\":\\"v\\"}","ProcessInstanceId":201}'],
      [
        202,
        '{"StartParams":"{\\"k\\":\\"v\\"}","ProcessInstanceId":"202","schedule_timezone":"Asia/Shanghai"}',
      ],
      [203, '{"ProcessInstanceId":"203","schedule_timezone":"America/New_York"}'],
      [204, '{"ProcessInstanceId":204}'],
      [205, '{"ProcessInstanceId":205}'],
    ]);
  });

  it('skips instances started or restarted after the re-registration, read in its time zone', async () => {
    // Arrange: the dead master is back since 2024-07-20 10:00:00 Shanghai time (02:00 UTC).
    const root = `/sim-${dialect}-back`;
    const session = await connect();
    const startupTime = Date.UTC(2024, 6, 20, 2, 0, 0);
    await registerDsMaster(await connect(), { root, host: dead, startupTime, version: '3.2' });
    await insertInstance(db, { id: 301, host: dead, start_time: '2024-07-20 09:00:00' });
    await insertInstance(db, { id: 302, host: dead, start_time: '2024-07-20 10:00:01' });
    await insertInstance(db, { id: 303, host: dead, restart_time: '2024-07-20 10:30:00' });
    await insertInstance(db, { id: 304, host: dead });
    await insertInstance(db, { id: 305, host: dead, start_time: '2024-07-20 10:00:00' });
    const sim = simulated(session, root);
    sim.running.add(304);

    // Act
    const result = await sim.failOverMaster(dead);

    // Assert
    expect(result.error).toBeUndefined();
    expect(result.registeredStartupTime).toBe(startupTime);
    expect(result.failedOver).toEqual([301, 305]);
    expect(result.skipped).toEqual([
      { id: 302, reason: 'started-after-registration' },
      { id: 303, reason: 'restarted-after-registration' },
      { id: 304, reason: 'running-in-this-master' },
    ]);
    const after = await instances(db);
    expect([301, 302, 303, 304, 305].map((id) => after.get(id)?.host)).toEqual([
      'NULL',
      dead,
      dead,
      dead,
      'NULL',
    ]);
  });

  it('periodic check: a host contained in a live master name counts as alive (the substring bug)', async () => {
    // Arrange
    const root = `/sim-${dialect}-periodic`;
    const session = await connect();
    await registerDsMaster(await connect(), {
      root,
      host: '110.0.0.1:5678',
      startupTime: earlyStartup,
      version: '3.2',
    });
    await insertInstance(db, { id: 401, host: dead });
    await insertInstance(db, { id: 402, host: '10.0.0.2:5678' });
    await insertInstance(db, { id: 403, host: '110.0.0.1:5678' });
    await insertInstance(db, { id: 404, host: 'NULL' });
    const sim = simulated(session, root);

    // Act
    const check = await sim.periodicCheck();
    const direct = await sim.failOverMaster(dead);

    // Assert
    expect([...check.hosts].sort()).toEqual(['10.0.0.2:5678', 'NULL']);
    const byHost = new Map(check.results.map((r) => [r.deadHost, r]));
    expect(byHost.get('10.0.0.2:5678')?.failedOver).toEqual([402]);
    expect(byHost.get('NULL')?.failedOver).toEqual([]);
    // The 'NULL' host is "failed over" too: its instances (402 as well, when it came first) are all skipped.
    expect(byHost.get('NULL')?.skipped).toContainEqual({ id: 404, reason: 'host-is-NULL' });
    expect(byHost.get('NULL')?.skipped.every((s) => s.reason === 'host-is-NULL')).toBe(true);
    // Asked directly (its node was removed), 10.0.0.1:5678 is failed over: the heartbeat match is exact.
    expect(direct.failedOver).toEqual([401]);
    expect((await commands(db)).map((row) => row.process_instance_id)).toEqual([402, 401]);
    expect((await instances(db)).get(403)?.host).toBe('110.0.0.1:5678');
  });

  it('periodic check throws on a SQL NULL host and fails nothing over', async () => {
    // Arrange
    const session = await connect();
    await insertInstance(db, { id: 501, host: null });
    await insertInstance(db, { id: 502, host: '10.0.0.2:5678' });
    const sim = simulated(session, `/sim-${dialect}-nullhost`);

    // Act
    const check = sim.periodicCheck();

    // Assert
    await expect(check).rejects.toThrow(PeriodicCheckNullHostError);
    expect((await instances(db)).get(502)?.host).toBe('10.0.0.2:5678');
    expect(await commands(db)).toEqual([]);
  });

  it('waits for the failover lock, and holds it while it writes', async () => {
    // Arrange: another contender (our function, or another master) holds the lock first.
    const root = `/sim-${dialect}-mutex`;
    const lockPath = dsMasterFailoverLockPath(root, '3.2', dead);
    const session = await connect();
    const contender = await connect();
    await insertInstance(db, { id: 601, host: dead });
    await insertInstance(db, { id: 602, host: dead });
    await insertInstance(db, { id: 603, host: dead });
    const first = await lockMutex(contender, lockPath, { timeoutMs: 5_000 });
    const sim = simulated(session, root);

    // Act 1: the simulation waits behind it, writing nothing.
    const running = sim.failOverMaster(dead);
    await eventually('the simulation to queue', async () =>
      (await contender.children(lockPath)).length === 2 ? true : undefined,
    );
    await sleep(300);
    const hostsWhileWaiting = [...(await instances(db)).values()].map((row) => row.host);

    // Act 2: the lock is released; a row lock stops the simulation in the middle of its writes.
    let unblock!: () => void;
    let locked!: () => void;
    const rowLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const rowLock = sideDb.transaction(async (tx) => {
      await tx.query(
        dialect === 'postgresql'
          ? 'select id from t_ds_process_instance where id = $1 for update'
          : 'select id from t_ds_process_instance where id = ? for update',
        [602],
      );
      locked();
      await new Promise<void>((resolve) => {
        unblock = resolve;
      });
    });
    await rowLocked;
    await first?.release();
    await eventually('instance 601 to be failed over', async () =>
      (await instances(db)).get(601)?.host === 'NULL' ? true : undefined,
    );
    const secondContender = await tryLockMutex(contender, lockPath);
    unblock();
    await rowLock;
    const result = await running;
    const afterwards = await tryLockMutex(contender, lockPath);

    // Assert
    expect(first).not.toBeNull();
    expect(hostsWhileWaiting).toEqual([dead, dead, dead]);
    expect(secondContender).toBeNull();
    expect(result.error).toBeUndefined();
    expect(result.failedOver).toEqual([601, 602, 603]);
    expect(afterwards).not.toBeNull();
    await afterwards?.release();
  });

  it('consumes the commands: takes the instances over, deletes the commands, moves an orphan aside', async () => {
    // Arrange
    const session = await connect();
    await insertInstance(db, { id: 701, host: dead, state: 1, run_times: 1 });
    await insertInstance(db, { id: 702, host: dead, state: 2, run_times: null, history_cmd: null });
    await insertInstance(db, {
      id: 703,
      host: dead,
      state: 4,
      run_times: 3,
      state_history: '[{"time":"2024-07-20 08:00:00","state":"RUNNING_EXECUTION","desc":"start"}]',
    });
    const failover = await simulated(session, `/sim-${dialect}-consume`).failOverMaster(dead);
    await q(
      db,
      'insert into t_ds_command (command_type, process_definition_code, command_param, process_instance_id, executor_id) ' +
        'values (2, 9001, ?, 99999, 5)',
      ['{"ProcessInstanceId":99999}'],
    );
    const orphanId = Number((await commands(db)).at(-1)?.id);
    const before = await instances(db);
    const consumer = simulated(session, `/sim-${dialect}-consume`, '10.0.0.3:5678', later);

    // Act
    const result = await consumer.consumeCommands({ slot: 0, totalSlot: 1 });

    // Assert
    expect(failover.failedOver).toEqual([701, 702, 703]);
    expect(result.tookOver).toEqual([
      { instanceId: 701, commandId: failover.commandIds[0] },
      { instanceId: 702, commandId: failover.commandIds[1] },
      { instanceId: 703, commandId: failover.commandIds[2] },
    ]);
    expect(result.movedToErrorCommand).toEqual([
      { commandId: orphanId, message: 'process instance is null' },
    ]);
    expect(await commands(db)).toEqual([]);
    expect([...consumer.running].sort()).toEqual([701, 702, 703]);
    const after = await instances(db);
    const restart = stored(dialect, '2024-07-20 20:05:00.789');
    const entry =
      '{"time":"2024-07-20 20:05:00","state":"RUNNING_EXECUTION","desc":"recover tolerance fault process"}';
    const taken = (id: number, over: Row): Row => ({
      ...before.get(id),
      host: '10.0.0.3:5678',
      restart_time: restart,
      recovery: 1,
      state: 1,
      command_type: 2,
      history_cmd: 'START_PROCESS,RECOVER_TOLERANCE_FAULT_PROCESS',
      state_history: `[${entry}]`,
      ...(dialect === 'mysql' ? { update_time: after.get(id)?.update_time } : {}),
      ...over,
    });
    expect(after.get(701)).toEqual(taken(701, { run_times: 2 }));
    expect(after.get(702)).toEqual(
      taken(702, { run_times: 1, history_cmd: 'RECOVER_TOLERANCE_FAULT_PROCESS' }),
    );
    expect(after.get(703)).toEqual(
      taken(703, {
        run_times: 4,
        state_history: `[{"time":"2024-07-20 08:00:00","state":"RUNNING_EXECUTION","desc":"start"},${entry}]`,
      }),
    );
    const errors = await q(db, 'select * from t_ds_error_command');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      id: orphanId,
      command_type: 2,
      process_definition_code: '9001',
      command_param: '{"ProcessInstanceId":99999}',
      process_instance_id: 99999,
      executor_id: 5,
      task_depend_type: 2,
      failure_strategy: 0,
      message: 'process instance is null',
    });
  });

  it('takes only the commands of its slot', async () => {
    // Arrange
    const session = await connect();
    for (const id of [801, 802, 803, 804]) await insertInstance(db, { id, host: dead });
    const failover = await simulated(session, `/sim-${dialect}-slots`).failOverMaster(dead);
    const consumer = simulated(session, `/sim-${dialect}-slots`, '10.0.0.3:5678', later);

    // Act
    const even = await consumer.consumeCommands({ slot: 0, totalSlot: 2 });
    const odd = await consumer.consumeCommands({ slot: 1, totalSlot: 2 });

    // Assert
    const ids = failover.commandIds;
    expect(ids).toHaveLength(4);
    expect(even.tookOver.map((t) => t.commandId)).toEqual(ids.filter((id) => id % 2 === 0));
    expect(odd.tookOver.map((t) => t.commandId)).toEqual(ids.filter((id) => id % 2 === 1));
    expect(await commands(db)).toEqual([]);
  });

  it('two masters on the same command: one takes it over, the other fails its delete and files an error command', async () => {
    // Arrange: a row lock holds both masters after they fetched the command.
    const session = await connect();
    await insertInstance(db, { id: 901, host: dead });
    const failover = await simulated(session, `/sim-${dialect}-race`).failOverMaster(dead);
    const a = simulated(session, `/sim-${dialect}-race`, '10.0.0.3:5678', later);
    const b = simulated(session, `/sim-${dialect}-race`, '10.0.0.4:5678', later);
    let unblock!: () => void;
    let locked!: () => void;
    const rowLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const rowLock = sideDb.transaction(async (tx) => {
      await tx.query(
        dialect === 'postgresql'
          ? 'select id from t_ds_process_instance where id = $1 for update'
          : 'select id from t_ds_process_instance where id = ? for update',
        [901],
      );
      locked();
      await new Promise<void>((resolve) => {
        unblock = resolve;
      });
    });
    await rowLocked;

    // Act
    const both = Promise.all([
      a.consumeCommands({ slot: 0, totalSlot: 1 }),
      b.consumeCommands({ slot: 0, totalSlot: 1 }),
    ]);
    await sleep(500);
    unblock();
    await rowLock;
    const [ra, rb] = await both;

    // Assert
    const winners = [ra, rb].filter((r) => r.tookOver.length === 1);
    const losers = [ra, rb].filter((r) => r.movedToErrorCommand.length === 1);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    expect(losers[0]?.movedToErrorCommand[0]?.message).toBe(
      'org.apache.dolphinscheduler.server.master.exception.WorkflowCreateException: Create WorkflowExecuteRunnable failed',
    );
    expect(losers[0]?.movedToErrorCommand[0]?.cause?.message).toContain('delete command fail');
    const winnerHost = winners[0] === ra ? '10.0.0.3:5678' : '10.0.0.4:5678';
    expect((await instances(db)).get(901)?.host).toBe(winnerHost);
    expect(await commands(db)).toEqual([]);
    expect((await q(db, 'select id, message from t_ds_error_command')).map((r) => Number(r.id))).toEqual(
      failover.commandIds,
    );
  });
});

describe('heartbeat payloads', () => {
  it('3.2 master JSON has host and port split from the node name', () => {
    const payload = dsMasterHeartbeat({ root: '/x', host: 'master-1:5678', startupTime: 5, version: '3.2' });
    expect(payload).toContain('"host":"master-1","port":5678}');
    expect(payload).toContain('"startupTime":5,"reportTime":5');
  });
});
