// DolphinScheduler's own master failover lock (DESIGN D3) on a real ZooKeeper: our guard takes it without
// waiting, in Curator's InterProcessMutex layout, against simulated DolphinScheduler masters that wait for
// it as Curator does; and the liveness read straight from the registry.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GuardLostError } from '../../lib/failover/ports.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../../lib/local/zookeeper.ts';
import { lockMutex, tryLockMutex } from '../../lib/registry/curator-mutex.ts';
import { DsFailoverLockGuard, dsMasterFailoverLockPath } from '../../lib/registry/ds-failover-lock.ts';
import { createLayout, InvalidLayoutError, type LayoutName } from '../../lib/registry/layout.ts';
import { RegistryView } from '../../lib/registry/listing.ts';
import { registryFromConfig } from '../../lib/registry/registry-config.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { ZkLiveness } from '../../lib/registry/zk-liveness.ts';
import { ZkSessionProvider } from '../../lib/registry/zk-session-provider.ts';
import { eventually, expireSession, sleep, within } from './watcher-harness.ts';

const lockNodeName = /^_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-lock-[0-9]{10}$/;

const ds31Worker =
  '{"startupTime":1703123456790,"reportTime":1703123556790,"cpuUsage":0.12,"memoryUsage":0.61,"loadAverage":1.37,"availablePhysicalMemorySize":5.43,"maxCpuloadAvg":16.0,"reservedMemory":0.3,"diskAvailable":87.21,"processId":2872,"serverStatus":2,"workerHostWeight":100,"workerWaitingTaskCount":0,"workerExecThreadCount":100}';
const ds32Master =
  '{"processId":2871,"startupTime":1721462400123,"reportTime":1721466012345,"jvmCpuUsage":0.0123,"cpuUsage":0.1531,"jvmMemoryUsage":0.1874,"memoryUsage":0.612,"diskUsage":0.0,"serverStatus":"NORMAL","host":"172.18.0.5","port":5678}';

describe('DolphinScheduler failover lock and liveness on a real ZooKeeper', () => {
  let zk: ZooKeeperCluster;
  const sessions: ZkSession[] = [];
  const providers: ZkSessionProvider[] = [];

  /** A session of its own: a simulated DolphinScheduler master, or an observer. */
  const connect = async (): Promise<ZkSession> => {
    const session = await connectZk({
      connectString: zk.connectString,
      sessionTimeoutMs: 4_000,
      connectTimeoutMs: 10_000,
    });
    sessions.push(session);
    return session;
  };

  /** What a function container builds: the provider over the registry settings. */
  const provider = (root: string, layout: LayoutName = 'ds-3'): ZkSessionProvider => {
    const registry = registryFromConfig({
      ZK_CONNECT: zk.connectString,
      ZK_DIGEST: undefined,
      ZK_SESSION_TIMEOUT_MS: 4_000,
      REGISTRY_ROOT: root,
      REGISTRY_LAYOUT: layout,
      REGISTRY_TZ_OFFSET_MINUTES: 0,
    });
    const created = new ZkSessionProvider(registry, { connectTimeoutMs: 10_000 });
    providers.push(created);
    return created;
  };

  const settled = async (promise: Promise<unknown>, ms: number): Promise<boolean> => {
    let done = false;
    void promise.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    await sleep(ms);
    return done;
  };

  beforeAll(async () => {
    zk = await startZooKeeper();
  });

  afterEach(async () => {
    await Promise.all(providers.splice(0).map((p) => p.close()));
    await Promise.all(sessions.splice(0).map((s) => s.close()));
  });

  afterAll(async () => {
    await zk?.stop();
  });

  describe('lock paths', () => {
    it('are exact per release and host', () => {
      expect(dsMasterFailoverLockPath('/dolphinscheduler', '3.1', '10.0.0.1:5678')).toBe(
        '/dolphinscheduler/lock/failover/masters/10.0.0.1:5678',
      );
      expect(dsMasterFailoverLockPath('/dolphinscheduler', '3.2', '10.0.0.1:5678')).toBe(
        '/dolphinscheduler/lock/master-failover/10.0.0.1:5678',
      );
      expect(dsMasterFailoverLockPath('/', '3.2', 'master-1:5678')).toBe(
        '/lock/master-failover/master-1:5678',
      );
      for (const host of ['', '10.0.0.1', '10.0.0.1:5678/x', '*', '10.0.0.1:5678 ']) {
        expect(() => dsMasterFailoverLockPath('/dolphinscheduler', '3.2', host), host).toThrow(
          InvalidLayoutError,
        );
      }
    });
  });

  describe('the Curator mutex', () => {
    it('tryLockMutex wins a free lock with exactly one _c_<uuid>-lock-<sequence> node, gone on release', async () => {
      // Arrange
      const session = await connect();
      const observer = await connect();
      const lockPath = '/it-mutex-free/lock/master-failover/10.0.0.1:5678';

      // Act
      const hold = await tryLockMutex(session, lockPath);
      const children = await observer.children(lockPath);
      await hold?.release();
      await hold?.release();

      // Assert
      expect(hold).not.toBeNull();
      expect(children).toHaveLength(1);
      expect(children[0]).toMatch(lockNodeName);
      expect(hold?.path).toBe(`${lockPath}/${children[0]}`);
      expect(await observer.exists(hold?.path ?? '/')).toBeNull();
      expect(await observer.children(lockPath)).toEqual([]);
      expect(hold?.isHeld()).toBe(false);
    });

    it('a simulated master waiting in lockMutex gets the lock only after our release', async () => {
      // Arrange
      const ours = await connect();
      const master = await connect();
      const observer = await connect();
      const lockPath = '/it-mutex-wait/lock/master-failover/10.0.0.1:5678';
      const hold = await tryLockMutex(ours, lockPath);

      // Act
      const waiting = lockMutex(master, lockPath, { timeoutMs: 30_000 });
      const gotItEarly = await settled(waiting, 1_000);
      const whileWaiting = await observer.children(lockPath);
      await hold?.release();
      const masterHold = await within(waiting, 10_000, 'the master to get the lock');

      // Assert
      expect(hold).not.toBeNull();
      expect(gotItEarly).toBe(false);
      expect(whileWaiting).toHaveLength(2);
      expect(masterHold?.isHeld()).toBe(true);
      expect(await observer.children(lockPath)).toEqual([masterHold?.path.split('/').pop()]);
    });

    it('lockMutex gives up with null at its timeout and leaves no node', async () => {
      const master = await connect();
      const other = await connect();
      const lockPath = '/it-mutex-timeout/lock';
      const held = await lockMutex(master, lockPath, { timeoutMs: 1_000 });

      const late = await lockMutex(other, lockPath, { timeoutMs: 300 });

      expect(held).not.toBeNull();
      expect(late).toBeNull();
      expect(await other.children(lockPath)).toEqual([held?.path.split('/').pop()]);
    });

    it('a queue of waiters is served in sequence order', async () => {
      const lockPath = '/it-mutex-queue/lock';
      const first = await lockMutex(await connect(), lockPath, { timeoutMs: 5_000 });
      const order: string[] = [];
      const take = async (name: string, session: ZkSession) => {
        const hold = await lockMutex(session, lockPath, { timeoutMs: 20_000 });
        order.push(name);
        await sleep(50);
        await hold?.release();
      };
      const second = take('second', await connect());
      await sleep(200);
      const third = take('third', await connect());
      await sleep(200);

      await first?.release();
      await within(Promise.all([second, third]), 10_000, 'both waiters');

      expect(order).toEqual(['second', 'third']);
    });
  });

  describe('DsFailoverLockGuard', () => {
    it('takes a free master lock, and the hold holds until released', async () => {
      // Arrange
      const observer = await connect();
      const guard = new DsFailoverLockGuard(provider('/g-free'), { root: '/g-free', version: '3.2' });
      const lockPath = '/g-free/lock/master-failover/10.0.0.1:5678';

      // Act
      const hold = await guard.tryAcquire('master', '10.0.0.1:5678');
      const children = await observer.children(lockPath);

      // Assert
      expect(hold).not.toBeNull();
      expect(() => hold?.assertHeld()).not.toThrow();
      expect(children).toHaveLength(1);
      expect(children[0]).toMatch(lockNodeName);
      await hold?.release();
      expect(await observer.children(lockPath)).toEqual([]);
      expect(() => hold?.assertHeld()).toThrow(GuardLostError);
    });

    it('returns null when a simulated master holds the lock, and leaves no node behind', async () => {
      // Arrange
      const master = await connect();
      const lockPath = dsMasterFailoverLockPath('/g-held', '3.1', '10.0.0.1:5678');
      const masterHold = await lockMutex(master, lockPath, { timeoutMs: 5_000 });
      const guard = new DsFailoverLockGuard(provider('/g-held'), { root: '/g-held', version: '3.1' });

      // Act
      const hold = await guard.tryAcquire('master', '10.0.0.1:5678');

      // Assert
      expect(masterHold).not.toBeNull();
      expect(hold).toBeNull();
      expect(await master.children(lockPath)).toEqual([masterHold?.path.split('/').pop()]);
    });

    it.each(['3.1', '3.2'] as const)(
      '%s: 10.0.0.1:5678 and 110.0.0.1:5678 are different locks',
      async (version) => {
        // Arrange
        const root = `/g-exact-${version.replace('.', '')}`;
        const master = await connect();
        const masterHold = await lockMutex(master, dsMasterFailoverLockPath(root, version, '10.0.0.1:5678'), {
          timeoutMs: 5_000,
        });
        const guard = new DsFailoverLockGuard(provider(root), { root, version });

        // Act
        const other = await guard.tryAcquire('master', '110.0.0.1:5678');
        const same = await guard.tryAcquire('master', '10.0.0.1:5678');

        // Assert
        expect(masterHold).not.toBeNull();
        expect(other).not.toBeNull();
        expect(same).toBeNull();
        const locks = version === '3.1' ? `${root}/lock/failover/masters` : `${root}/lock/master-failover`;
        expect((await master.children(locks)).sort()).toEqual(['10.0.0.1:5678', '110.0.0.1:5678']);
        await other?.release();
      },
    );

    it('after our session expires: assertHeld throws GuardLostError, our node is gone, a master gets the lock', async () => {
      // Arrange
      const container = provider('/g-expire');
      const guard = new DsFailoverLockGuard(container, { root: '/g-expire', version: '3.2' });
      const lockPath = dsMasterFailoverLockPath('/g-expire', '3.2', '10.0.0.1:5678');
      const hold = await guard.tryAcquire('master', '10.0.0.1:5678');
      const ours = await container.session();
      const master = await connect();
      const waiting = lockMutex(master, lockPath, { timeoutMs: 30_000 });

      // Act
      await expireSession(zk.connectString, ours);
      const loss = await within(ours.lost, 10_000, 'our session loss');
      const masterHold = await within(waiting, 10_000, 'the master to get the lock');

      // Assert
      expect(hold).not.toBeNull();
      expect(['expired', 'disconnected']).toContain(loss.reason);
      expect(() => hold?.assertHeld()).toThrow(GuardLostError);
      await expect(hold?.release()).resolves.toBeUndefined();
      expect(await master.children(lockPath)).toEqual([masterHold?.path.split('/').pop()]);

      // And the container goes on with a new session once the master is done.
      await masterHold?.release();
      const again = await guard.tryAcquire('master', '10.0.0.1:5678');
      expect(again).not.toBeNull();
      expect((await container.session()).sessionId).not.toBe(ours.sessionId);
      await again?.release();
    });

    it('a disconnected session ends the hold at once, though the session might come back', async () => {
      // Arrange
      const container = provider('/g-disconnect');
      const guard = new DsFailoverLockGuard(container, { root: '/g-disconnect', version: '3.2' });
      const hold = await guard.tryAcquire('master', '10.0.0.1:5678');
      const ours = await container.session();
      const server = zk.nodes[0];
      if (server === undefined) throw new Error('no ZooKeeper node');

      // Act: the server goes away for a moment, well within the session timeout.
      await server.stop();
      const loss = await within(ours.lost, 10_000, 'our session loss');
      const heldWhileDown = (() => {
        try {
          hold?.assertHeld();
          return true;
        } catch (error: unknown) {
          return error instanceof GuardLostError ? false : error;
        }
      })();
      await server.start();

      // Assert
      expect(hold).not.toBeNull();
      expect(loss.reason).toBe('disconnected');
      expect(heldWhileDown).toBe(false);
      await expect(hold?.release()).resolves.toBeUndefined();
      // Our old node stays until the server expires the abandoned session; then the lock is free again.
      const again = await eventually(
        'the lock to be free again',
        async () => (await guard.tryAcquire('master', '10.0.0.1:5678')) ?? undefined,
        20_000,
      );
      expect(() => again.assertHeld()).not.toThrow();
      await again.release();
    });

    it('a closed session ends the hold too', async () => {
      const container = provider('/g-closed');
      const guard = new DsFailoverLockGuard(container, { root: '/g-closed', version: '3.2' });
      const hold = await guard.tryAcquire('master', '10.0.0.1:5678');

      await container.close();

      expect(hold).not.toBeNull();
      expect(() => hold?.assertHeld()).toThrow(GuardLostError);
      await expect(hold?.release()).resolves.toBeUndefined();
    });

    it('a worker has no failover lock: the hold guards nothing and writes no node', async () => {
      const observer = await connect();
      const guard = new DsFailoverLockGuard(provider('/g-worker'), { root: '/g-worker', version: '3.2' });

      const hold = await guard.tryAcquire('worker', '10.0.0.2:1234');

      expect(hold).not.toBeNull();
      expect(() => hold?.assertHeld()).not.toThrow();
      await hold?.release();
      expect(await observer.exists('/g-worker')).toBeNull();
      await expect(guard.tryAcquire('worker', '10.0.0.2')).rejects.toThrow(InvalidLayoutError);
    });
  });

  describe('ZkLiveness', () => {
    it('null when absent, the heartbeat startupTime of a 3.2 master, the ctime of an empty node', async () => {
      // Arrange
      const server = await connect();
      const layout = createLayout({ root: '/l-ds3' });
      await server.create(layout.serverPath('master', '10.0.0.1:5678'), ds32Master, { ephemeral: true });
      await server.create(layout.serverPath('worker', '10.0.0.2:1234'), '', { ephemeral: true });
      const emptyCtime = (await server.exists(layout.serverPath('worker', '10.0.0.2:1234')))?.ctime;
      const liveness = new ZkLiveness(provider('/l-ds3'), { layout });

      // Act
      const absent = await liveness.liveIncarnation('master', '10.0.0.9:5678');
      const prefix = await liveness.liveIncarnation('master', '110.0.0.1:5678');
      const master = await liveness.liveIncarnation('master', '10.0.0.1:5678');
      const empty = await liveness.liveIncarnation('worker', '10.0.0.2:1234');

      // Assert
      expect(absent).toBeNull();
      expect(prefix).toBeNull();
      expect(master).toEqual({ startupTime: 1_721_462_400_123 });
      expect(emptyCtime).toBeGreaterThan(0);
      expect(empty).toEqual({ startupTime: emptyCtime });
    });

    it('a ds-1.3 worker registered in two groups is one live server', async () => {
      const server = await connect();
      const layout = createLayout({ name: 'ds-1.3', root: '/l-ds13' });
      const csv = '0.12,0.61,1.37,5.43,16.0,0.3,2021-10-20 09:00:00,2021-10-20 09:15:30,0,12345';
      await server.create(layout.serverPath('worker', '10.0.0.2:1234', 'default'), csv, { ephemeral: true });
      await server.create(layout.serverPath('worker', '10.0.0.2:1234', 'gpu'), '', { ephemeral: true });
      const liveness = new ZkLiveness(provider('/l-ds13', 'ds-1.3'), { layout });

      const worker = await liveness.liveIncarnation('worker', '10.0.0.2:1234');
      const other = await liveness.liveIncarnation('worker', '10.0.0.3:1234');

      expect(worker).toEqual({ startupTime: Date.UTC(2021, 9, 20, 9, 0, 0) });
      expect(other).toBeNull();
    });

    it('follows a server that restarts: the new incarnation, after its session went', async () => {
      const layout = createLayout({ root: '/l-restart' });
      const path = layout.serverPath('master', '10.0.0.1:5678');
      const first = await connect();
      await first.create(path, ds32Master, { ephemeral: true });
      const liveness = new ZkLiveness(provider('/l-restart'), { layout });
      const before = await liveness.liveIncarnation('master', '10.0.0.1:5678');

      await first.close();
      const gone = await eventually('the node to go', async () =>
        (await liveness.liveIncarnation('master', '10.0.0.1:5678')) === null ? true : undefined,
      );
      const second = await connect();
      await second.create(path, ds32Master.replace('1721462400123', '1721462500000'), { ephemeral: true });
      const after = await liveness.liveIncarnation('master', '10.0.0.1:5678');

      expect(before).toEqual({ startupTime: 1_721_462_400_123 });
      expect(gone).toBe(true);
      expect(after).toEqual({ startupTime: 1_721_462_500_000 });
    });
  });

  describe('the registry listing with real heartbeats', () => {
    it('lists a 3.1 worker and a 3.2 master as live servers with their startupTime', async () => {
      const server = await connect();
      const layout = createLayout({ root: '/l-listing' });
      await server.create(layout.serverPath('master', '172.18.0.5:5678'), ds32Master, { ephemeral: true });
      await server.create(layout.serverPath('worker', '172.18.0.6:1234'), ds31Worker, { ephemeral: true });
      const view = new RegistryView(await connect(), { layout });

      await view.listAll();
      const servers = view.servers();

      expect(servers.get('master/172.18.0.5:5678')).toMatchObject({
        startupTime: 1_721_462_400_123,
        startupTimeSource: 'heartbeat',
      });
      expect(servers.get('worker/172.18.0.6:1234')).toMatchObject({
        startupTime: 1_703_123_456_790,
        startupTimeSource: 'heartbeat',
      });
    });
  });
});
