import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { connectZk } from '../../lib/registry/zk-client.ts';
import {
  ds3Heartbeat,
  eventually,
  expireSession,
  FailoverQueueReader,
  layoutOf,
  mirrored,
  type ServerProcess,
  sleep,
  startServerProcess,
  startWindow,
} from './watcher-harness.ts';

// A lost watcher session must never turn into a removal: the window ends, and only a fresh, complete
// listing is reconciled (DESIGN.md section 6).
describe('watcher when ZooKeeper or its own session fails', () => {
  let stack: LocalStack;
  let reader: FailoverQueueReader;
  const servers: ServerProcess[] = [];

  beforeAll(async () => {
    stack = await startLocalStack();
    reader = new FailoverQueueReader(stack);
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.process.kill()));
    await reader?.stop();
    await stack?.stop();
  });

  const createParents = async (path: string) => {
    const setup = await connectZk({
      connectString: stack.zookeeper.connectString,
      sessionTimeoutMs: 4_000,
      connectTimeoutMs: 10_000,
    });
    await setup.mkdirp(path);
    await setup.close();
  };

  /** A server in its own process (its client reconnects and keeps its session, as a real server's does). */
  const register = async (path: string, startupTime: number) => {
    const server = await startServerProcess(
      stack.zookeeper.connectString,
      path,
      ds3Heartbeat(startupTime),
      15_000,
    );
    servers.push(server);
    return server;
  };

  it('ZooKeeper stopped and started again mid-window: no request for a server that stayed registered', async () => {
    const root = '/f-restart';
    const layout = layoutOf({ root });
    const stays = '10.2.0.1:5678';
    const later = '10.2.0.2:5678';
    await createParents(layout.parentPath('master'));
    await register(layout.serverPath('master', stays), 1_000);
    const leaving = await register(layout.serverPath('master', later), 2_000);
    const window = startWindow(stack, { root, durationMs: 60_000 });
    await mirrored(stack, `master/${stays}`);
    await mirrored(stack, `master/${later}`);

    const node = stack.zookeeper.nodes[0];
    await node?.stop();
    await sleep(1_500);
    await node?.start();
    // The window reconnects with a new session and lists afresh.
    await eventually(
      'a second watcher session',
      () => (window.sessions.length >= 2 ? true : undefined),
      20_000,
    );
    await sleep(1_500);
    const requestsAfterRestart = reader.forHost(stays).length;
    // The window still works: a real removal after the restart is relayed.
    await leaving.unregister();
    const request = await reader.waitForHost(later, 20_000);
    const summary = await window.stop();

    const check = await connectZk({
      connectString: stack.zookeeper.connectString,
      sessionTimeoutMs: 4_000,
      connectTimeoutMs: 10_000,
    });
    const stillRegistered = await check.exists(layout.serverPath('master', stays));
    await check.close();

    expect(stillRegistered).not.toBeNull();
    expect(requestsAfterRestart).toBe(0);
    expect(reader.forHost(stays)).toEqual([]);
    expect(request).toMatchObject({ host: later, startupTime: 2_000 });
    expect(summary.sessionLosses).toBeGreaterThanOrEqual(1);
    expect(summary.removalsRelayed).toBe(1);
  });

  it("the watcher's own session expired: no request for a server that stayed registered", async () => {
    const root = '/f-expired';
    const layout = layoutOf({ root });
    const stays = '10.2.0.3:5678';
    const later = '10.2.0.4:5678';
    await createParents(layout.parentPath('master'));
    await register(layout.serverPath('master', stays), 3_000);
    const leaving = await register(layout.serverPath('master', later), 4_000);
    const window = startWindow(stack, { root, durationMs: 60_000 });
    await mirrored(stack, `master/${stays}`);
    const first = await eventually('the watcher session', () => window.sessions[0]);

    await expireSession(stack.zookeeper.connectString, first);
    const loss = await first.lost;
    await eventually(
      'a second watcher session',
      () => (window.sessions.length >= 2 ? true : undefined),
      20_000,
    );
    await sleep(1_000);
    const requestsAfterExpiry = reader.forHost(stays).length;
    await leaving.unregister();
    const request = await reader.waitForHost(later, 20_000);
    const summary = await window.stop();

    expect(['expired', 'disconnected']).toContain(loss.reason);
    expect(requestsAfterExpiry).toBe(0);
    expect(reader.forHost(stays)).toEqual([]);
    expect(request).toMatchObject({ host: later, startupTime: 4_000 });
    expect(summary.sessionLosses).toBe(1);
  });
});
