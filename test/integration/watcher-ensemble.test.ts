import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { fourLetterWord } from '../../lib/local/zookeeper.ts';
import type { WatchWindowSummary } from '../../lib/registry/watch-window.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import {
  ds3Heartbeat,
  eventually,
  FailoverQueueReader,
  layoutOf,
  mirrored,
  type ServerProcess,
  sleep,
  startServerProcess,
} from './watcher-harness.ts';

const WATCHER_TIMEOUT_MS = 12_000;

// Every process here holds its own ZooKeeper client, as in production: the watcher in its local Lambda
// container, each registered server in its own process.
describe('watcher on a 3-node ZooKeeper ensemble', () => {
  let stack: LocalStack;
  let reader: FailoverQueueReader;
  let runtime: LocalRuntime | undefined;
  const servers: ServerProcess[] = [];

  beforeAll(async () => {
    stack = await startLocalStack({ zookeeperSize: 3 });
    reader = new FailoverQueueReader(stack);
  });

  afterAll(async () => {
    await runtime?.stop();
    await Promise.all(servers.map((s) => s.process.kill()));
    await reader?.stop();
    await stack?.stop();
  });

  /** A fresh session (retried: connecting during an election can fail). */
  const admin = (): Promise<ZkSession> =>
    eventually(
      'an admin session',
      () =>
        connectZk({
          connectString: stack.zookeeper.connectString,
          sessionTimeoutMs: 10_000,
          connectTimeoutMs: 2_000,
        }).catch(() => undefined),
      30_000,
    );

  /** Every member up and synced with the leader (losing another one before that would stop the ensemble). */
  const allSynced = async (): Promise<true | undefined> => {
    const reports = await Promise.all(stack.zookeeper.nodes.map((n) => fourLetterWord(n.clientPort, 'mntr')));
    return reports.some((r) => /zk_server_state\s+leader/.test(r) && /zk_synced_followers\s+2\b/.test(r))
      ? true
      : undefined;
  };

  it('keeps relaying removals, and only real ones, while each member in turn goes down', {
    timeout: 240_000,
  }, async () => {
    const root = '/e-members';
    const layout = layoutOf({ root });
    const setup = await admin();
    await setup.mkdirp(layout.parentPath('worker'));
    await setup.close();
    const stays = ['10.3.0.1:1234', '10.3.0.5:1234'];
    const leaving = ['10.3.0.2:1234', '10.3.0.3:1234', '10.3.0.4:1234'];
    const leavers = new Map<string, ServerProcess>();
    for (const host of [...stays, ...leaving]) {
      const server = await startServerProcess(
        stack.zookeeper.connectString,
        layout.serverPath('worker', host),
        ds3Heartbeat(1_000),
        20_000,
      );
      servers.push(server);
      leavers.set(host, server);
    }
    runtime = startLocalRuntime(stack, {
      functions: ['watcher'],
      scheduleMs: { watcher: 10_000 },
      timeoutMs: { watcher: WATCHER_TIMEOUT_MS },
      env: { watcher: { REGISTRY_ROOT: root, WATCH_MARGIN_MS: '500', POWERTOOLS_METRICS_DISABLED: 'true' } },
    });
    for (const host of [...stays, ...leaving]) await mirrored(stack, `worker/${host}`, 30_000);
    await eventually('all three members synced', allSynced, 60_000);

    // One member down at a time, the leader included: wherever the watcher was connected, it connects to a
    // live member, lists afresh, and still relays the next removal.
    let lastKillAt = 0;
    for (const [index, node] of stack.zookeeper.nodes.entries()) {
      lastKillAt = Date.now();
      await node.kill();
      await sleep(500);
      const host = leaving[index] ?? '';
      await leavers.get(host)?.unregister();
      await reader.waitForHost(host, 30_000);
      await node.start();
      await eventually('all three members synced', allSynced, 60_000);
    }
    // Let every watch window that was open at a kill end on its own: stopping the runtime ends open ones
    // without a summary, and the loss such a window saw would not be counted below.
    await sleep(Math.max(1_500, lastKillAt + WATCHER_TIMEOUT_MS + 500 - Date.now()));
    const stoppedAt = Date.now();
    await runtime.stop();
    const summaries = runtime
      .invocations()
      .filter((i) => i.outcome !== 'crash' || i.endedAt < stoppedAt)
      .map((i) => ({ outcome: i.outcome, summary: i.result as WatchWindowSummary | undefined }));
    runtime = undefined;
    // The registry's final state judges every request: none may name an incarnation still registered.
    const check = await admin();
    const registered = new Map<string, string | undefined>();
    for (const name of await check.children(layout.parentPath('worker'))) {
      registered.set(name, (await check.data(`${layout.parentPath('worker')}/${name}`))?.stat.czxid);
    }
    await check.close();

    for (const host of leaving) expect(reader.forHost(host), host).toHaveLength(1);
    expect([...registered.keys()].sort()).toEqual(stays);
    for (const host of stays) expect(reader.forHost(host), host).toEqual([]);
    for (const { request } of reader.received) expect(registered.get(request.host)).not.toBe(request.czxid);
    expect(summaries.filter((s) => s.outcome !== 'ok')).toEqual([]);
    expect(summaries.reduce((n, s) => n + (s.summary?.sessionLosses ?? 0), 0)).toBeGreaterThanOrEqual(1);
  });
});
