import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import {
  ds3Heartbeat,
  ds13Heartbeat,
  eventually,
  FailoverQueueReader,
  layoutOf,
  mirrored,
  serverStore,
  sleep,
  startServerProcess,
  startWindow,
} from './watcher-harness.ts';

describe('watcher against real ZooKeeper, DynamoDB Local and the SQS emulator', () => {
  let stack: LocalStack;
  let reader: FailoverQueueReader;
  const sessions: ZkSession[] = [];

  const connect = async (sessionTimeoutMs = 4_000): Promise<ZkSession> => {
    const session = await connectZk({
      connectString: stack.zookeeper.connectString,
      sessionTimeoutMs,
      connectTimeoutMs: 10_000,
    });
    sessions.push(session);
    return session;
  };

  beforeAll(async () => {
    stack = await startLocalStack();
    reader = new FailoverQueueReader(stack);
  });

  afterAll(async () => {
    await Promise.all(sessions.map((s) => s.close()));
    await reader?.stop();
    await stack?.stop();
  });

  it('relays a master whose session closed: one request with its host, czxid and startupTime', async () => {
    const root = '/w-closed';
    const layout = layoutOf({ root });
    const host = '10.1.0.1:5678';
    const startupTime = Date.UTC(2024, 4, 1, 8, 0, 0);
    const server = await connect();
    await server.create(layout.serverPath('master', host), ds3Heartbeat(startupTime), { ephemeral: true });
    const czxid = (await server.data(layout.serverPath('master', host)))?.stat.czxid;
    const window = startWindow(stack, { root });
    await mirrored(stack, `master/${host}`);

    await server.close();
    const request = await reader.waitForHost(host);
    await sleep(500);
    const summary = await window.stop();

    expect(request).toEqual({
      kind: 'NodeRemoved',
      nodeType: 'master',
      host,
      czxid,
      startupTime,
      observedAt: expect.any(Number),
      source: 'watcher',
      attempt: 0,
    });
    expect(reader.forHost(host)).toHaveLength(1);
    expect(summary.removalsRelayed).toBe(1);
    const row = await serverStore(stack).get(`master/${host}`);
    expect(row).toMatchObject({ alive: false, czxid, startupTime, removedAt: expect.any(Number) });
    expect(row?.pending?.size).toBe(0);
    // Dead-server markers are off by default.
    const admin = await connect();
    expect(await admin.exists(layout.deadServerPath('master', host))).toBeNull();
  });

  it('relays a worker whose process was killed, once its session expired', async () => {
    const root = '/w-killed';
    const layout = layoutOf({ root });
    const host = '10.1.0.2:1234';
    const startupTime = Date.UTC(2024, 4, 1, 9, 0, 0);
    const admin = await connect();
    await admin.mkdirp(layout.parentPath('worker'));
    const proc = await startServerProcess(
      stack.zookeeper.connectString,
      layout.serverPath('worker', host),
      ds3Heartbeat(startupTime),
      1_000,
    );
    const czxid = (await admin.data(layout.serverPath('worker', host)))?.stat.czxid;
    const window = startWindow(stack, { root });
    await mirrored(stack, `worker/${host}`);

    const killedAt = Date.now();
    await proc.process.kill();
    const request = await reader.waitForHost(host, 15_000);
    const summary = await window.stop();

    expect(request).toMatchObject({ kind: 'NodeRemoved', nodeType: 'worker', host, czxid, startupTime });
    // The node outlives the process until its session expires: the removal is observed after the kill.
    expect(request.observedAt).toBeGreaterThan(killedAt);
    expect(summary.removalsRelayed).toBe(1);
    expect(reader.forHost(host)).toHaveLength(1);
  });

  it('relays a removal that happened while no invocation ran, at the next one', async () => {
    const root = '/w-gap';
    const layout = layoutOf({ root });
    const gone = '10.1.0.3:5678';
    const stays = '10.1.0.4:5678';
    const server = await connect();
    const other = await connect();
    await server.create(layout.serverPath('master', gone), ds3Heartbeat(1_000_000), { ephemeral: true });
    await other.create(layout.serverPath('master', stays), ds3Heartbeat(2_000_000), { ephemeral: true });
    const first = startWindow(stack, { root });
    await mirrored(stack, `master/${gone}`);
    await mirrored(stack, `master/${stays}`);
    await first.stop();

    await server.close();
    await sleep(300);
    expect(reader.forHost(gone)).toEqual([]);
    const second = startWindow(stack, { root });
    const request = await reader.waitForHost(gone);
    await sleep(300);
    const summary = await second.stop();

    expect(request).toMatchObject({ kind: 'NodeRemoved', host: gone, startupTime: 1_000_000 });
    expect(summary.removalsRelayed).toBe(1);
    expect(reader.forHost(stays)).toEqual([]);
  });

  it('records a restart as the new incarnation and relays the old one once', async () => {
    const root = '/w-restart';
    const layout = layoutOf({ root });
    const host = '10.1.0.5:5678';
    const path = layout.serverPath('master', host);
    const first = await connect();
    await first.create(path, ds3Heartbeat(1_000), { ephemeral: true });
    const oldCzxid = (await first.data(path))?.stat.czxid;
    const window = startWindow(stack, { root });
    await mirrored(stack, `master/${host}`);

    // A fast restart: the new process deletes the old node and registers again (DolphinScheduler does).
    const second = await connect();
    await second.remove(path);
    await second.create(path, ds3Heartbeat(5_000), { ephemeral: true });
    const newCzxid = (await second.data(path))?.stat.czxid;
    const request = await reader.waitForHost(host);
    const row = await eventually('the new incarnation in the mirror', async () => {
      const r = await serverStore(stack).get(`master/${host}`);
      return r?.czxid === newCzxid ? r : undefined;
    });
    await first.close();
    await sleep(500);
    const summary = await window.stop();

    expect(request).toMatchObject({ kind: 'NodeRemoved', host, czxid: oldCzxid, startupTime: 1_000 });
    expect(reader.forHost(host)).toHaveLength(1);
    expect(summary.removalsRelayed).toBe(1);
    expect(row).toMatchObject({
      alive: true,
      startupTime: 5_000,
      previousCzxid: oldCzxid,
      previousStartupTime: 1_000,
    });
  });

  it('records a restart that happened while no invocation ran, with one request for the old incarnation', async () => {
    const root = '/w-restart-gap';
    const layout = layoutOf({ root });
    const host = '10.1.0.6:5678';
    const path = layout.serverPath('worker', host);
    const first = await connect();
    await first.create(path, ds3Heartbeat(1_000), { ephemeral: true });
    const oldCzxid = (await first.data(path))?.stat.czxid;
    await await startWindow(stack, { root }).stop();
    await mirrored(stack, `worker/${host}`);

    await first.close();
    const second = await connect();
    await second.create(path, ds3Heartbeat(9_000), { ephemeral: true });
    const window = startWindow(stack, { root });
    const request = await reader.waitForHost(host);
    await sleep(300);
    await window.stop();

    expect(request).toMatchObject({ nodeType: 'worker', czxid: oldCzxid, startupTime: 1_000 });
    expect(reader.forHost(host)).toHaveLength(1);
    expect(await serverStore(stack).get(`worker/${host}`)).toMatchObject({ alive: true, startupTime: 9_000 });
  });

  it('ds-1.3: a worker in two groups is one server, alive while any group node is registered', async () => {
    const root = '/w-ds13';
    const layout = layoutOf({ root, layout: 'ds-1.3' });
    const worker = '10.1.0.7:1234';
    const master = '10.1.0.8:5678';
    const startupTime = Date.UTC(2024, 4, 1, 10, 0, 0);
    const workerSession = await connect();
    const masterSession = await connect();
    await workerSession.create(layout.serverPath('worker', worker, 'default'), ds13Heartbeat(startupTime), {
      ephemeral: true,
    });
    await workerSession.create(layout.serverPath('worker', worker, 'gpu'), '', { ephemeral: true });
    await masterSession.create(layout.serverPath('master', master), ds13Heartbeat(startupTime + 60_000), {
      ephemeral: true,
    });
    const window = startWindow(stack, { root, layout: 'ds-1.3' });
    const workerRow = await mirrored(stack, `worker/${worker}`);
    const masterRow = await mirrored(stack, `master/${master}`);

    await workerSession.remove(layout.serverPath('worker', worker, 'default'));
    await sleep(700);
    const afterOneGroup = await serverStore(stack).get(`worker/${worker}`);
    await workerSession.close();
    const request = await reader.waitForHost(worker);
    await sleep(300);
    const summary = await window.stop();

    expect(workerRow).toMatchObject({
      groups: ['default', 'gpu'],
      startupTime,
      startupTimeSource: 'heartbeat',
    });
    expect(masterRow).toMatchObject({ startupTime: startupTime + 60_000 });
    expect(afterOneGroup?.alive).toBe(true);
    expect(request).toMatchObject({ nodeType: 'worker', host: worker, czxid: workerRow.czxid, startupTime });
    expect(reader.forHost(worker)).toHaveLength(1);
    expect(summary.removalsRelayed).toBe(1);
    expect(reader.forHost(master)).toEqual([]);
  });

  it('ds-1.3: a group added while watching is watched too', async () => {
    const root = '/w-ds13-groups';
    const layout = layoutOf({ root, layout: 'ds-1.3' });
    const worker = '10.1.0.9:1234';
    const admin = await connect();
    await admin.mkdirp(layout.workerGroupPath('default'));
    const window = startWindow(stack, { root, layout: 'ds-1.3' });
    await sleep(500);

    const session = await connect();
    await session.create(layout.serverPath('worker', worker, 'etl'), '', { ephemeral: true });
    const row = await mirrored(stack, `worker/${worker}`);
    await session.close();
    const request = await reader.waitForHost(worker);
    await window.stop();

    expect(row).toMatchObject({ groups: ['etl'], startupTimeSource: 'ctime' });
    expect(request).toMatchObject({ host: worker, startupTime: row.startupTime });
  });

  it('survives garbage heartbeats and odd node names', async () => {
    const root = '/w-garbage';
    const layout = layoutOf({ root });
    const parent = layout.parentPath('master');
    const session = await connect();
    const garbage = '10.1.0.10:5678';
    await session.create(`${parent}/${garbage}`, Buffer.from([0xff, 0x00, 0x7b, 0x22]), { ephemeral: true });
    await session.create(`${parent}/10.1.0.11:5678`, '{"startupTime":"soon"}', { ephemeral: true });
    await session.create(`${parent}/10.1.0.12:5678`, 'x'.repeat(100_000), { ephemeral: true });
    for (const odd of [
      'not-a-server',
      '10.1.0.13',
      '10.1.0.14:99999',
      'a b:1',
      '[::1:5678',
      '010.1.0.16:5678',
    ]) {
      await session.create(`${parent}/${odd}`, 'junk', { ephemeral: true });
    }
    // Unusual but valid names: a bracketed IPv6 address and a Compose-style hostname are servers.
    for (const unusual of ['[::1]:5678', 'compose_x:1']) {
      await session.create(`${parent}/${unusual}`, ds3Heartbeat(Date.now()), { ephemeral: true });
    }
    await session.create(`${parent}/10.1.0.15:5678/child`, '').catch(() => undefined);
    const window = startWindow(stack, { root });
    const row = await mirrored(stack, `master/${garbage}`);
    await mirrored(stack, 'master/10.1.0.11:5678');
    await mirrored(stack, 'master/10.1.0.12:5678');
    await mirrored(stack, 'master/[::1]:5678');
    await mirrored(stack, 'master/compose_x:1');
    const rows = await serverStore(stack).scan();

    await session.remove(`${parent}/${garbage}`);
    await session.remove(`${parent}/not-a-server`);
    await session.remove(`${parent}/[::1]:5678`);
    const request = await reader.waitForHost(garbage);
    const ipv6 = await reader.waitForHost('[::1]:5678');
    await sleep(300);
    const summary = await window.stop();

    expect(row).toMatchObject({ startupTimeSource: 'ctime', startupTime: expect.any(Number) });
    expect(
      rows
        .filter((r) => r.host.startsWith('10.1.0.1') && r.id.startsWith('master/10.1.0.1'))
        .map((r) => r.host)
        .sort(),
    ).toEqual(expect.arrayContaining(['10.1.0.10:5678', '10.1.0.11:5678', '10.1.0.12:5678']));
    expect(rows.some((r) => ['not-a-server', '[::1:5678', '010.1.0.16:5678'].includes(r.host))).toBe(false);
    expect(rows.filter((r) => ['[::1]:5678', 'compose_x:1'].includes(r.host))).toHaveLength(2);
    expect(request).toMatchObject({ host: garbage, startupTime: row.startupTime });
    expect(ipv6).toMatchObject({ kind: 'NodeRemoved', nodeType: 'master', host: '[::1]:5678' });
    expect(summary.removalsRelayed).toBe(2);
  });

  it('writes a dead-server marker (F9) when enabled', async () => {
    const root = '/w-dead';
    const layout = layoutOf({ root });
    const gone = '10.1.0.16:5678';
    const session = await connect();
    await session.create(layout.serverPath('master', gone), ds3Heartbeat(1), { ephemeral: true });
    const window = startWindow(stack, { root, deadServerMarkers: true });
    await mirrored(stack, `master/${gone}`);

    await session.close();
    await reader.waitForHost(gone);
    const admin = await connect();
    const marker = await eventually(
      'the dead-server marker',
      async () => (await admin.exists(layout.deadServerPath('master', gone))) ?? undefined,
    );
    await window.stop();

    expect(marker.ephemeralOwner).toBe('0');
  });
});
