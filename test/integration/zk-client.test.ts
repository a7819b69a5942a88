import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../lib/local/processes.ts';
import { fourLetterWord, startZooKeeper, type ZooKeeperCluster } from '../../lib/local/zookeeper.ts';
import {
  connectZk,
  digestAclId,
  type RegistryLogger,
  ZkConnectError,
  type ZkConnectOptions,
  ZkError,
  ZkNoAuthError,
  ZkNodeExistsError,
  ZkPerms,
  type ZkSession,
  ZkSessionLostError,
  type ZkWatchEvent,
} from '../../lib/registry/zk-client.ts';

interface LogLine {
  level: 'info' | 'warn' | 'error';
  message: string;
  data?: Record<string, unknown>;
}

function recordingLogger(lines: LogLine[]): RegistryLogger {
  return {
    info: (message, data) => lines.push({ level: 'info', message, data }),
    warn: (message, data) => lines.push({ level: 'warn', message, data }),
    error: (message, data) => lines.push({ level: 'error', message, data }),
  };
}

/** A promise of the next watch event, and the listener that resolves it (counting deliveries). */
function nextEvent(): {
  listener: (event: ZkWatchEvent) => void;
  event: Promise<ZkWatchEvent>;
  calls: () => number;
} {
  let calls = 0;
  let resolveEvent!: (event: ZkWatchEvent) => void;
  const event = new Promise<ZkWatchEvent>((resolve) => {
    resolveEvent = resolve;
  });
  return {
    listener: (e) => {
      calls += 1;
      resolveEvent(e);
    },
    event,
    calls: () => calls,
  };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms),
    ),
  ]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('ZkSession against a real ZooKeeper', () => {
  let zk: ZooKeeperCluster;
  const sessions: ZkSession[] = [];

  const connect = async (overrides: Partial<ZkConnectOptions> = {}): Promise<ZkSession> => {
    const session = await connectZk({
      connectString: zk.connectString,
      sessionTimeoutMs: 4_000,
      connectTimeoutMs: 10_000,
      ...overrides,
    });
    sessions.push(session);
    return session;
  };

  beforeAll(async () => {
    zk = await startZooKeeper();
  });

  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((s) => s.close()));
  });

  afterAll(async () => {
    await zk?.stop();
  });

  it('loads the native addon under Node 22 and connects', async () => {
    expect(process.versions.node.startsWith('22.')).toBe(true);

    const session = await connect();

    expect(session.sessionId).toMatch(/^[0-9a-f]+$/);
    expect(session.negotiatedSessionTimeoutMs).toBeGreaterThanOrEqual(400);
    expect(session.negotiatedSessionTimeoutMs).toBeLessThanOrEqual(4_000);
    expect(session.isLost).toBe(false);
    expect(await session.children('/')).toContain('zookeeper');
  });

  it('creates ephemeral nodes with their parents and a children watch fires on delete', async () => {
    const session = await connect();
    const parent = '/it-children/nodes/master';
    await session.create(`${parent}/10.0.0.1:5678`, '', { ephemeral: true });
    await session.create(`${parent}/10.0.0.2:5678`, '', { ephemeral: true });
    const watch = nextEvent();

    const before = await session.children(parent, watch.listener);
    await session.remove(`${parent}/10.0.0.1:5678`);
    const event = await within(watch.event, 5_000, 'child watch');

    expect(before.sort()).toEqual(['10.0.0.1:5678', '10.0.0.2:5678']);
    expect(event).toEqual({ type: 'child', path: parent });
    expect(await session.children(parent)).toEqual(['10.0.0.2:5678']);
    expect((await session.exists('/it-children'))?.ephemeralOwner).toBe('0');
  });

  it('lists children with the parent stat atomically: pzxid and cversion track child changes', async () => {
    const session = await connect();
    const parent = '/it-children2/nodes/master';
    await session.mkdirp(parent);
    const watch = nextEvent();

    const empty = await session.childrenWithStat(parent);
    await session.create(`${parent}/10.0.0.1:5678`, '', { ephemeral: true });
    const created = await session.data(`${parent}/10.0.0.1:5678`);
    const one = await session.childrenWithStat(parent, watch.listener);
    await session.remove(`${parent}/10.0.0.1:5678`);
    const event = await within(watch.event, 5_000, 'child watch');
    const after = await session.childrenWithStat(parent);
    const absentWatch = nextEvent();
    const absent = await session.childrenWithStat('/it-children2/missing', absentWatch.listener);
    await session.mkdirp('/it-children2/missing');

    expect(empty?.children).toEqual([]);
    expect(one?.children).toEqual(['10.0.0.1:5678']);
    // The creation moved the parent's pzxid to the node's czxid; the deletion moved it past.
    expect(one?.stat.pzxid).toBe(created?.stat.czxid);
    expect(BigInt(after?.stat.pzxid ?? '0')).toBeGreaterThan(BigInt(one?.stat.pzxid ?? '0'));
    expect((after?.stat.cversion ?? 0) - (empty?.stat.cversion ?? 0)).toBe(2);
    expect(event).toEqual({ type: 'child', path: parent });
    expect(absent).toBeNull();
    expect(await within(absentWatch.event, 5_000, 'creation watch')).toEqual({
      type: 'created',
      path: '/it-children2/missing',
    });
  });

  it('lists an absent parent as [] and its watch notices the creation', async () => {
    const session = await connect();
    const watch = nextEvent();

    const listed = await session.children('/it-absent/nodes/worker', watch.listener);
    await session.mkdirp('/it-absent/nodes/worker');
    const event = await within(watch.event, 5_000, 'creation watch');

    await session.mkdirp('/');
    expect(listed).toEqual([]);
    expect(event).toEqual({ type: 'created', path: '/it-absent/nodes/worker' });
    expect(await session.children('/it-absent/nodes/worker')).toEqual([]);
  });

  it('returns data and stat, czxid as the exact decimal zxid, increasing per creation', async () => {
    const session = await connect();
    const heartbeat = JSON.stringify({ startupTime: 1_714_560_000_000, host: '10.0.0.9', port: 5678 });
    const before = Date.now();

    await session.create('/it-data/a', heartbeat, { ephemeral: true });
    // Standalone server, nothing else writing: its last zxid is the one this creation got.
    const serverZxid = /Zxid: 0x([0-9a-f]+)/.exec(
      await fourLetterWord(zk.nodes[0]?.clientPort ?? 0, 'srvr'),
    )?.[1];
    const a = await session.data('/it-data/a');
    await session.create('/it-data/b', Buffer.from([0, 1, 2, 255]));
    const b = await session.data('/it-data/b');

    expect(a?.data?.toString('utf8')).toBe(heartbeat);
    expect(a?.stat.czxid).toMatch(/^[1-9][0-9]*$/);
    expect(serverZxid).toBeDefined();
    expect(BigInt(a?.stat.czxid ?? '0')).toBe(BigInt(`0x${serverZxid}`));
    expect(BigInt(b?.stat.czxid ?? '0')).toBeGreaterThan(BigInt(a?.stat.czxid ?? '0'));
    expect(a?.stat.ctime).toBeGreaterThanOrEqual(before - 1_000);
    expect(a?.stat.ctime).toBeLessThanOrEqual(Date.now() + 1_000);
    expect(a?.stat.ephemeralOwner).toBe(session.sessionId);
    expect(b?.stat.ephemeralOwner).toBe('0');
    expect(b?.data).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(a?.stat.dataLength).toBe(Buffer.byteLength(heartbeat));
  });

  it('reads empty data as an empty Buffer and absent nodes as null', async () => {
    const session = await connect();
    await session.create('/it-empty/node', '');

    expect((await session.data('/it-empty/node'))?.data).toEqual(Buffer.alloc(0));
    expect(await session.data('/it-empty/missing')).toBeNull();
    expect(await session.exists('/it-empty/missing')).toBeNull();
    expect(await session.remove('/it-empty/missing')).toBe(false);
  });

  it('fires a data watch on change and an exists watch on creation, once each', async () => {
    const session = await connect();
    await session.create('/it-watch/x', 'v1');
    const changed = nextEvent();
    const created = nextEvent();

    await session.data('/it-watch/x', changed.listener);
    await session.exists('/it-watch/y', created.listener);
    await session.setData('/it-watch/x', 'v2');
    await session.setData('/it-watch/x', 'v3');
    await session.create('/it-watch/y', '');

    expect(await within(changed.event, 5_000, 'data watch')).toEqual({
      type: 'changed',
      path: '/it-watch/x',
    });
    expect(await within(created.event, 5_000, 'exists watch')).toEqual({
      type: 'created',
      path: '/it-watch/y',
    });
    await sleep(200);
    expect(changed.calls()).toBe(1);
    expect(created.calls()).toBe(1);
  });

  it('maps failures to typed errors', async () => {
    const session = await connect();
    await session.create('/it-errors/node', '', { ephemeral: true });

    await expect(session.create('/it-errors/node', '')).rejects.toBeInstanceOf(ZkNodeExistsError);
    await expect(session.create('/it-errors/node/child', '')).rejects.toMatchObject({
      name: 'ZkError',
      codeName: 'ZNOCHILDRENFOREPHEMERALS',
    });
    await expect(session.create('/it-errors/orphan/x', '', { parents: false })).rejects.toMatchObject({
      codeName: 'ZNONODE',
    });
    await expect(
      session.create('/it-errors/both', '', { ephemeral: true, persistent: true }),
    ).rejects.toThrow(TypeError);
    await expect(session.data('relative')).rejects.toThrow(TypeError);
    await expect(session.remove('/it-errors')).rejects.toMatchObject({ codeName: 'ZNOTEMPTY' });
  });

  it("sees another session's ephemeral node vanish when that session closes", async () => {
    const observer = await connect();
    const server = await connect();
    const parent = '/it-close/nodes/worker';
    await server.create(`${parent}/10.0.0.3:1234`, '', { ephemeral: true });
    const watch = nextEvent();

    const before = await observer.children(parent, watch.listener);
    await server.close();
    const event = await within(watch.event, 5_000, 'removal after close');

    expect(before).toEqual(['10.0.0.3:1234']);
    expect(event).toEqual({ type: 'child', path: parent });
    expect(await observer.children(parent)).toEqual([]);
    expect(await server.lost).toMatchObject({ reason: 'closed' });
    await expect(server.children(parent)).rejects.toBeInstanceOf(ZkSessionLostError);
  });

  it('exposes the session password, with which a second handle can end the session', async () => {
    const session = await connect({ sessionTimeoutMs: 2_000 });
    await session.create('/it-expire/node', '', { ephemeral: true });
    const observer = await connect();
    const { expireSession } = await import('./watcher-harness.ts');

    await expireSession(zk.connectString, session);
    const loss = await within(session.lost, 10_000, 'session loss');

    expect(session.sessionPassword).toMatch(/^[0-9A-Fa-f]{32}$/);
    expect(['expired', 'disconnected']).toContain(loss.reason);
    // The second handle's close ends the session on the server: its ephemeral node goes.
    for (let i = 0; i < 50 && (await observer.exists('/it-expire/node')) !== null; i += 1) await sleep(100);
    expect(await observer.exists('/it-expire/node')).toBeNull();
  });

  it('authenticates with digest credentials to read an ACL-protected node', async () => {
    const admin = await connect({ auth: { scheme: 'digest', credentials: 'failover:s3cret' } });
    await admin.create('/it-secure/registry', 'secret-data');
    await admin.setAcl('/it-secure/registry', [
      { perms: ZkPerms.all, scheme: 'digest', id: digestAclId('failover:s3cret') },
    ]);
    const anonymous = await connect();
    const wrongPassword = await connect({ auth: { scheme: 'digest', credentials: 'failover:wrong' } });
    const reader = await connect({ auth: { scheme: 'digest', credentials: 'failover:s3cret' } });

    await expect(anonymous.data('/it-secure/registry')).rejects.toBeInstanceOf(ZkNoAuthError);
    await expect(wrongPassword.children('/it-secure/registry')).rejects.toBeInstanceOf(ZkNoAuthError);
    expect((await reader.data('/it-secure/registry'))?.data?.toString()).toBe('secret-data');
    expect(await reader.getAcl('/it-secure/registry')).toEqual([
      { perms: ZkPerms.all, scheme: 'digest', id: digestAclId('failover:s3cret') },
    ]);
  });

  it('rejects with ZkConnectError when nothing answers in time', async () => {
    const port = await freePort();
    const started = Date.now();

    const attempt = connectZk({
      connectString: `127.0.0.1:${port}`,
      sessionTimeoutMs: 2_000,
      connectTimeoutMs: 600,
    });

    await expect(attempt).rejects.toBeInstanceOf(ZkConnectError);
    await expect(attempt).rejects.toThrow(/within 600 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(
      connectZk({ connectString: ' ', sessionTimeoutMs: 1, connectTimeoutMs: 1 }),
    ).rejects.toBeInstanceOf(ZkConnectError);
  });

  it('exports errors with the native return code', () => {
    const error = new ZkNodeExistsError('x', -110, 'ZNODEEXISTS', '/p');

    expect(error).toBeInstanceOf(ZkError);
    expect(error).toMatchObject({
      code: -110,
      codeName: 'ZNODEEXISTS',
      path: '/p',
      name: 'ZkNodeExistsError',
    });
  });
});

describe('ZkSession when the server goes away', () => {
  let zk: ZooKeeperCluster;

  beforeAll(async () => {
    zk = await startZooKeeper();
  });

  afterAll(async () => {
    await zk?.stop();
  });

  it('reports the loss, silences watches and refuses further operations', async () => {
    const lines: LogLine[] = [];
    const session = await connectZk({
      connectString: zk.connectString,
      sessionTimeoutMs: 2_000,
      connectTimeoutMs: 10_000,
      logger: recordingLogger(lines),
    });
    try {
      await session.create('/it-loss/nodes/master/10.0.0.1:5678', '', { ephemeral: true });
      const watch = nextEvent();
      await session.children('/it-loss/nodes/master', watch.listener);
      const stoppedAt = Date.now();

      await zk.nodes[0]?.stop();
      const loss = await within(session.lost, 10_000, 'session loss');

      expect(loss.reason).toBe('disconnected');
      expect(loss.at).toBeGreaterThanOrEqual(stoppedAt);
      expect(session.isLost).toBe(true);
      await expect(session.children('/it-loss/nodes/master')).rejects.toBeInstanceOf(ZkSessionLostError);
      await zk.nodes[0]?.start();
      await sleep(1_000);
      expect(watch.calls()).toBe(0);
      expect(lines).toContainEqual(
        expect.objectContaining({ level: 'warn', message: 'zookeeper session lost' }),
      );
    } finally {
      await session.close();
    }
  });

  it('settles every in-flight operation when the server crashes: a result or ZkSessionLostError', async () => {
    if (zk.nodes[0]?.running() !== true) await zk.nodes[0]?.start();
    const session = await connectZk({
      connectString: zk.connectString,
      sessionTimeoutMs: 2_000,
      connectTimeoutMs: 10_000,
    });
    try {
      await session.mkdirp('/it-crash');
      const inFlight = Promise.allSettled(
        Array.from({ length: 300 }, (_, i) => session.exists(`/it-crash/${i}`)),
      );

      await zk.nodes[0]?.kill();
      const outcomes = await within(inFlight, 10_000, 'in-flight operations');
      const loss = await within(session.lost, 10_000, 'session loss');

      expect(loss.reason).toBe('disconnected');
      for (const outcome of outcomes) {
        if (outcome.status === 'fulfilled') expect(outcome.value).toBeNull();
        else expect(outcome.reason).toBeInstanceOf(ZkSessionLostError);
      }
    } finally {
      await session.close();
    }
  });
});
