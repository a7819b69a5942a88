import { BatchWriteItemCommand, QueryCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { parseCommandMessage } from '../../lib/messages.ts';
import type { WatchWindowSummary } from '../../lib/registry/watch-window.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';
import {
  ds3Heartbeat,
  eventually,
  FailoverQueueReader,
  layoutOf,
  mirrored,
  sleep,
} from './watcher-harness.ts';

// The watcher function itself, run by the local Lambda runtime: scheduled invocations that overlap like
// AWS's, each in its own container process, with the deployed handler and environment.
describe('watcher function in the local Lambda runtime', () => {
  let stack: LocalStack;
  let reader: FailoverQueueReader;
  let runtime: LocalRuntime | undefined;
  const sessions: ZkSession[] = [];
  const layout = layoutOf({ root: '/dolphinscheduler' });

  const connect = async (): Promise<ZkSession> => {
    const session = await connectZk({
      connectString: stack.zookeeper.connectString,
      sessionTimeoutMs: 10_000,
      connectTimeoutMs: 10_000,
    });
    sessions.push(session);
    return session;
  };

  const summaries = () =>
    (runtime?.invocations() ?? [])
      .filter((i) => i.functionName === 'watcher')
      .map((i) => ({
        outcome: i.outcome,
        endedAt: i.endedAt,
        summary: i.result as WatchWindowSummary | undefined,
        error: i.error,
      }));

  beforeAll(async () => {
    stack = await startLocalStack();
    reader = new FailoverQueueReader(stack);
  });

  afterAll(async () => {
    await runtime?.stop();
    await Promise.all(sessions.map((s) => s.close()));
    await reader?.stop();
    await stack?.stop();
  });

  it('overlapping invocations relay each removal exactly once', async () => {
    const hosts = Array.from({ length: 10 }, (_, i) => `10.4.0.${i + 1}:5678`);
    const registrar = await connect();
    for (const host of hosts) {
      await registrar.create(
        layout.serverPath('master', host),
        ds3Heartbeat(1_000 + Number(host.split('.')[3]?.split(':')[0])),
        {
          ephemeral: true,
        },
      );
    }
    // Every 4 s a new invocation, each watching 8 s minus its 2 s margin: two are live at once for 2 s.
    runtime = startLocalRuntime(stack, {
      functions: ['watcher'],
      scheduleMs: { watcher: 4_000 },
      timeoutMs: { watcher: 8_000 },
      env: { watcher: { WATCH_MARGIN_MS: '2000', POWERTOOLS_METRICS_DISABLED: 'true' } },
    });
    for (const host of hosts) await mirrored(stack, `master/${host}`, 30_000);
    await eventually(
      'two completed invocations',
      () => (summaries().filter((s) => s.outcome === 'ok').length >= 2 ? true : undefined),
      20_000,
    );

    for (const host of hosts) {
      await registrar.remove(layout.serverPath('master', host));
      await sleep(400);
    }
    for (const host of hosts) await reader.waitForHost(host, 10_000);
    // Let every invocation that saw a removal finish and report.
    await sleep(5_000);
    const stoppedAt = Date.now();
    await runtime.stop();
    // Invocations still running are killed by the stop: not a failure of theirs.
    const all = summaries().filter((s) => s.outcome !== 'crash' || s.endedAt < stoppedAt);
    runtime = undefined;

    for (const host of hosts) expect(reader.forHost(host), host).toHaveLength(1);
    expect(all.filter((s) => s.outcome === 'error')).toEqual([]);
    // On a loaded machine an invocation may overrun and be killed (outcome 'timeout'): exactly-once must
    // hold all the same (above); the per-invocation tally is only complete when none was killed.
    if (all.every((s) => s.outcome === 'ok')) {
      expect(all.reduce((sum, s) => sum + (s.summary?.removalsRelayed ?? 0), 0)).toBe(hosts.length);
    }
    // The invocations did overlap: more than one window held a session while removals happened.
    expect(all.length).toBeGreaterThanOrEqual(4);
  });

  it('relays a removal within a few hundred ms of a raw ZooKeeper watch seeing it (20 removals)', async () => {
    const hosts = Array.from({ length: 20 }, (_, i) => `10.4.1.${i + 1}:1234`);
    const registrar = await connect();
    for (const host of hosts) {
      await registrar.create(layout.serverPath('worker', host), ds3Heartbeat(5_000), { ephemeral: true });
    }
    // Steady state: one long window at a time (like the deployed 60 s schedule with a 75 s timeout).
    runtime = startLocalRuntime(stack, {
      functions: ['watcher'],
      scheduleMs: { watcher: 40_000 },
      timeoutMs: { watcher: 45_000 },
      env: { watcher: { WATCH_MARGIN_MS: '1000', POWERTOOLS_METRICS_DISABLED: 'true' } },
    });
    for (const host of hosts) await mirrored(stack, `worker/${host}`, 30_000);

    // A separate session watching the same directory, as a scheduler server would.
    const observer = await connect();
    const seenAt = new Map<string, number>();
    const parent = layout.parentPath('worker');
    let known = new Set<string>();
    const onChange = () => {
      const at = Date.now();
      void observer.children(parent, onChange).then((names) => {
        const now = new Set(names);
        for (const name of known) if (!now.has(name) && !seenAt.has(name)) seenAt.set(name, at);
        known = now;
      });
    };
    known = new Set(await observer.children(parent, onChange));

    for (const host of hosts) {
      await registrar.remove(layout.serverPath('worker', host));
      await sleep(250);
    }
    for (const host of hosts) await reader.waitForHost(host, 10_000);
    await eventually('the raw watch to see every removal', () =>
      seenAt.size === hosts.length ? true : undefined,
    );
    await runtime.stop();
    runtime = undefined;

    const delays = hosts
      .map((host) => {
        const landed = reader.received.find((r) => r.request.host === host)?.sentAt ?? Number.NaN;
        return landed - (seenAt.get(host) ?? Number.NaN);
      })
      .sort((a, b) => a - b);
    const percentile = (p: number) =>
      delays[Math.min(delays.length - 1, Math.ceil((p / 100) * delays.length) - 1)];
    console.log(
      `detection delay (raw watch -> request on the queue), ${delays.length} removals: ` +
        `p50 ${percentile(50)} ms, p99 ${percentile(99)} ms, max ${delays.at(-1)} ms`,
    );

    // Timing targets are checked by the benchmark (bench/), not here: every removal arrived, once.
    expect(delays.every(Number.isFinite)).toBe(true);
  });

  it('end to end: a master with 200 running instances loses its session; a restarted master keeps its new work', {
    timeout: 240_000,
  }, async () => {
    // The failover function consumes the failover queue here: the test's own reader must not compete.
    await reader.stop();
    const logs: string[] = [];
    const dead = '10.4.2.1:5678';
    const restarting = '10.4.2.2:5678';
    const firstStart = Date.now() - 3_600_000;
    const deadSession = await connect();
    await deadSession.create(layout.serverPath('master', dead), ds3Heartbeat(firstStart), {
      ephemeral: true,
    });
    const oldSession = await connect();
    await oldSession.create(layout.serverPath('master', restarting), ds3Heartbeat(firstStart), {
      ephemeral: true,
    });
    const instance = (id: string, host: string, startTime: number) => ({
      PutRequest: {
        Item: {
          id: { S: id },
          host: { S: host },
          state: { S: 'RUNNING_EXECUTION' },
          startTime: { N: String(startTime) },
          processDefinitionCode: { N: '42' },
          processDefinitionVersion: { N: '1' },
          executorId: { N: '1' },
          priority: { S: 'MEDIUM' },
        },
      },
    });
    const items = [
      ...Array.from({ length: 200 }, (_, i) => instance(`e2e-dead-${i}`, dead, firstStart + 1_000 + i)),
      ...Array.from({ length: 3 }, (_, i) => instance(`e2e-old-${i}`, restarting, firstStart + 1_000 + i)),
    ];
    for (let i = 0; i < items.length; i += 25) {
      await stack.clients.dynamodb.send(
        new BatchWriteItemCommand({
          RequestItems: { [stack.info.tables.instances]: items.slice(i, i + 25) },
        }),
      );
    }
    runtime = startLocalRuntime(stack, {
      functions: ['watcher', 'failover'],
      scheduleMs: { watcher: 20_000 },
      timeoutMs: { watcher: 25_000 },
      env: { watcher: { WATCH_MARGIN_MS: '1000', POWERTOOLS_METRICS_DISABLED: 'true' } },
      onLog: (name, line) => {
        logs.push(`${name}: ${line}`);
        if (logs.length > 200) logs.shift();
      },
    });
    await mirrored(stack, `master/${dead}`, 30_000);
    await mirrored(stack, `master/${restarting}`, 30_000);

    // The restart: the new process replaces the node and starts new work right away.
    const restartedAt = Date.now();
    const newSession = await connect();
    await newSession.remove(layout.serverPath('master', restarting));
    await newSession.create(layout.serverPath('master', restarting), ds3Heartbeat(restartedAt), {
      ephemeral: true,
    });
    await stack.clients.dynamodb.send(
      new BatchWriteItemCommand({
        RequestItems: {
          [stack.info.tables.instances]: Array.from({ length: 3 }, (_, i) =>
            instance(`e2e-new-${i}`, restarting, restartedAt + 10 + i),
          ),
        },
      }),
    );
    await oldSession.close();
    await deadSession.close();

    const owned = async (host: string) => {
      const out = await stack.clients.dynamodb.send(
        new QueryCommand({
          TableName: stack.info.tables.instances,
          IndexName: 'byHost',
          KeyConditionExpression: '#host = :host',
          ExpressionAttributeNames: { '#host': 'host' },
          ExpressionAttributeValues: { ':host': { S: host } },
        }),
      );
      return (out.Items ?? []).map((item) => item.id?.S ?? '').sort();
    };
    await eventually(
      'every instance of the dead master unowned',
      async () => ((await owned(dead)).length === 0 ? true : undefined),
      120_000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\nlast function logs:\n${logs.slice(-40).join('\n')}`);
    });
    const commands: string[] = [];
    await eventually(
      '200 + 3 recovery commands on the commands queue',
      async () => {
        const out = await stack.clients.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: stack.info.queues.commands,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
          }),
        );
        for (const m of out.Messages ?? []) {
          const parsed = parseCommandMessage(m.Body ?? '');
          if (parsed.ok && parsed.value.type === 'RecoveryCommand')
            commands.push(parsed.value.processInstanceId);
        }
        if ((out.Messages ?? []).length > 0) {
          await stack.clients.sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: stack.info.queues.commands,
              Entries: (out.Messages ?? []).map((m, i) => ({
                Id: String(i),
                ReceiptHandle: m.ReceiptHandle ?? '',
              })),
            }),
          );
        }
        return commands.length >= 203 ? true : undefined;
      },
      120_000,
    );
    await sleep(2_000);
    const stoppedAt = Date.now();
    await runtime.stop();
    const failures = runtime
      .invocations()
      .filter((i) => i.outcome !== 'ok' && !(i.outcome === 'crash' && i.endedAt >= stoppedAt));
    runtime = undefined;
    const records = await stack.clients.dynamodb.send(
      new ScanCommand({
        TableName: stack.info.tables.commands,
        FilterExpression: 'begins_with(processInstanceId, :prefix)',
        ExpressionAttributeValues: { ':prefix': { S: 'e2e-' } },
      }),
    );

    expect(new Set(commands.filter((id) => id.startsWith('e2e-dead-'))).size).toBe(200);
    expect(commands.filter((id) => id.startsWith('e2e-dead-'))).toHaveLength(200);
    expect(commands.filter((id) => id.startsWith('e2e-old-')).sort()).toEqual([
      'e2e-old-0',
      'e2e-old-1',
      'e2e-old-2',
    ]);
    expect(commands.filter((id) => id.startsWith('e2e-new-'))).toEqual([]);
    expect(records.Items ?? []).toHaveLength(203);
    expect(await owned(restarting)).toEqual(['e2e-new-0', 'e2e-new-1', 'e2e-new-2']);
    // (The failover function consumed the requests; the mirror shows what the watcher recorded.)
    const store = new DynamoServerStore(stack.clients.dynamodb, stack.info.tables.servers);
    expect(await store.get(`master/${dead}`)).toMatchObject({ alive: false });
    expect(await store.get(`master/${restarting}`)).toMatchObject({
      alive: true,
      startupTime: restartedAt,
      previousStartupTime: firstStart,
    });
    expect(failures).toEqual([]);
  });
});
