import {
  BatchWriteItemCommand,
  DynamoDBClient,
  PutItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRecoveryCommand } from '../../lib/failover/rules.ts';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { commandItem, outboxId, outboxItem } from '../../lib/store/dynamodb/commands.ts';
import { DynamoExecutingWork } from '../../lib/store/dynamodb/executing-work.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';
import { runSweep, type SweepDeps, type SweepSummary } from '../../lib/sweep/sweep.ts';
import { ds3Heartbeat, FailoverQueueReader, layoutOf, sleep } from './watcher-harness.ts';

describe('sweep (F6) against real ZooKeeper, DynamoDB Local and the SQS emulator', () => {
  let stack: LocalStack;
  let reader: FailoverQueueReader;
  let runtime: LocalRuntime;
  const sessions: ZkSession[] = [];
  // The sweep function's own configuration: the default root.
  const layout = layoutOf({ root: '/dolphinscheduler' });
  let sequence = 0;

  const connect = async (): Promise<ZkSession> => {
    const session = await connectZk({
      connectString: stack.zookeeper.connectString,
      sessionTimeoutMs: 10_000,
      connectTimeoutMs: 10_000,
    });
    sessions.push(session);
    return session;
  };

  const register = async (nodeType: 'master' | 'worker', host: string, startupTime: number) => {
    const session = await connect();
    await session.create(layout.serverPath(nodeType, host), ds3Heartbeat(startupTime), { ephemeral: true });
    return session;
  };

  const putAll = async (table: string, items: Array<Record<string, string | number>>) => {
    for (let i = 0; i < items.length; i += 25) {
      const requests: WriteRequest[] = items.slice(i, i + 25).map((item) => ({
        PutRequest: {
          Item: Object.fromEntries(
            Object.entries(item).map(([k, v]) => [k, typeof v === 'number' ? { N: String(v) } : { S: v }]),
          ),
        },
      }));
      await stack.clients.dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [table]: requests } }));
    }
  };

  const instances = (host: string, state: string, count: number, startTime: number) =>
    putAll(
      stack.info.tables.instances,
      Array.from({ length: count }, () => ({
        id: `pi-${++sequence}`,
        host,
        state,
        startTime,
        processDefinitionCode: 1,
        processDefinitionVersion: 1,
        executorId: 1,
        priority: 'MEDIUM',
      })),
    );

  const tasks = (host: string, state: string, count: number, submitTime: number) =>
    putAll(
      stack.info.tables.tasks,
      Array.from({ length: count }, () => ({
        id: `ti-${++sequence}`,
        processInstanceId: 'pi-0',
        host,
        state,
        submitTime,
      })),
    );

  /** Sweep deps in this process; `dynamodb` lets a test count the requests a sweep makes. */
  const sweepDeps = (dynamodb = stack.clients.dynamodb): SweepDeps => ({
    connect: (timeoutMs) =>
      connectZk({
        connectString: stack.zookeeper.connectString,
        sessionTimeoutMs: 10_000,
        connectTimeoutMs: timeoutMs,
      }),
    layout,
    store: new DynamoServerStore(dynamodb, stack.info.tables.servers),
    queue: new SqsFailoverRequestQueue(stack.clients.sqs, stack.info.queues.failover),
    work: new DynamoExecutingWork(dynamodb, {
      instancesTable: stack.info.tables.instances,
      tasksTable: stack.info.tables.tasks,
      pageSize: 50,
    }),
  });

  const orphanRequests = (host: string) => reader.forHost(host).filter((r) => r.kind === 'Orphaned');

  beforeAll(async () => {
    stack = await startLocalStack();
    reader = new FailoverQueueReader(stack);
    runtime = startLocalRuntime(stack, { functions: ['sweep'], eventSources: false });
  });

  afterAll(async () => {
    await runtime?.stop();
    await Promise.all(sessions.map((s) => s.close()));
    await reader?.stop();
    await stack?.stop();
  });

  it('requests one failover per host whose executing instances or tasks have no live registration', async () => {
    const now = Date.now();
    const liveMaster = '10.5.0.1:5678';
    const liveWorker = '10.5.0.4:1234';
    const deadMaster = '10.5.0.2:5678';
    const deadWorker = '10.5.0.3:1234';
    const lookalike = '110.5.0.1:5678'; // not live because 10.5.0.1:5678 is (no substring matching)
    const otherPort = '10.5.0.1:5679';
    const finishedOnly = '10.5.0.5:5678';
    await register('master', liveMaster, now - 3_600_000);
    await register('worker', liveWorker, now - 3_600_000);
    await instances(liveMaster, 'RUNNING_EXECUTION', 3, now - 60_000);
    await instances(deadMaster, 'RUNNING_EXECUTION', 2, now - 60_000);
    await instances(deadMaster, 'READY_STOP', 1, now - 60_000);
    await instances(deadMaster, 'SUCCESS', 5, now - 60_000);
    await instances(lookalike, 'SUBMITTED_SUCCESS', 1, now - 60_000);
    await instances(otherPort, 'DELAY_EXECUTION', 1, now - 60_000);
    await instances(finishedOnly, 'SUCCESS', 4, now - 60_000);
    await instances(finishedOnly, 'FAILURE', 1, now - 60_000);
    await tasks(deadWorker, 'RUNNING_EXECUTION', 2, now - 60_000);
    await tasks(deadWorker, 'DISPATCH', 1, now - 60_000);
    await tasks(liveWorker, 'RUNNING_EXECUTION', 2, now - 60_000);
    // A recovery command a failover run wrote two minutes ago but never put on the queue (it crashed).
    const stranded = buildRecoveryCommand(
      {
        id: 'pi-stranded',
        host: deadMaster,
        state: 'RUNNING_EXECUTION',
        processDefinitionCode: 7,
        processDefinitionVersion: 1,
        executorId: 1,
        priority: 'MEDIUM',
        startTime: now - 600_000,
      },
      { deadHost: deadMaster, fence: 1, now: now - 120_000 },
    );
    const record = outboxId([stranded]);
    const stamp = {
      host: deadMaster,
      fence: 1,
      lockName: `failover/master/${deadMaster}`,
      now: now - 120_000,
    };
    for (const Item of [commandItem(stranded, record), outboxItem(record, [stranded], stamp)]) {
      await stack.clients.dynamodb.send(new PutItemCommand({ TableName: stack.info.tables.commands, Item }));
    }

    // The deployed handler, through the local runtime.
    const summary = (await runtime.invoke('sweep', {})) as SweepSummary;
    await sleep(1_500);
    const commands = await stack.clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: stack.info.queues.commands,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
      }),
    );

    expect(summary.registry).toBe('listed');
    expect(summary.discovery).toBe('complete');
    for (const [nodeType, host] of [
      ['master', deadMaster],
      ['master', lookalike],
      ['master', otherPort],
      ['worker', deadWorker],
    ] as const) {
      expect(orphanRequests(host), host).toEqual([
        {
          kind: 'Orphaned',
          nodeType,
          host,
          czxid: null,
          startupTime: null,
          observedAt: expect.any(Number),
          source: 'sweep',
          attempt: 0,
        },
      ]);
    }
    for (const host of [liveMaster, liveWorker, finishedOnly]) expect(reader.forHost(host), host).toEqual([]);
    // The outbox repair: the stranded command is on the commands queue now.
    expect(summary.commands).toMatchObject({ resent: 1 });
    expect((commands.Messages ?? []).map((m) => JSON.parse(m.Body ?? '{}').id)).toEqual([stranded.id]);
  });

  it('leaves a restarted host its new work (#11445) and requests failover only for work older than its restart', async () => {
    const onlyNew = '10.5.1.1:5678';
    const withOld = '10.5.1.2:5678';
    const firstStart = Date.now() - 3_600_000;
    const sessionsBefore = [
      await register('master', onlyNew, firstStart),
      await register('master', withOld, firstStart),
    ];
    await runSweep(sweepDeps(), { endAt: Date.now() + 20_000 });
    const before = await new DynamoServerStore(stack.clients.dynamodb, stack.info.tables.servers).get(
      `master/${withOld}`,
    );

    // Both restart: delete and register again with a new startup time.
    const restartedAt = Date.now() - 60_000;
    for (const session of sessionsBefore) await session.close();
    await register('master', onlyNew, restartedAt);
    await register('master', withOld, restartedAt);
    await instances(onlyNew, 'RUNNING_EXECUTION', 3, restartedAt + 1_000);
    await instances(withOld, 'RUNNING_EXECUTION', 2, restartedAt + 1_000);
    await instances(withOld, 'RUNNING_EXECUTION', 1, restartedAt - 1_000);
    const summary = await runSweep(sweepDeps(), { endAt: Date.now() + 20_000 });
    await sleep(1_500);
    const again = await runSweep(sweepDeps(), { endAt: Date.now() + 20_000 });

    expect(summary.orphans).toEqual([{ nodeType: 'master', host: withOld, via: 'probe' }]);
    expect(orphanRequests(onlyNew)).toEqual([]);
    expect(orphanRequests(withOld)).toEqual([
      expect.objectContaining({ czxid: before?.czxid, startupTime: firstStart }),
    ]);
    // The sweep also repaired the mirror (no watcher ran): one removal each for the old incarnations.
    expect(reader.forHost(onlyNew)).toEqual([
      expect.objectContaining({ kind: 'NodeRemoved', source: 'sweep', startupTime: firstStart }),
    ]);
    // Found clean once, a restarted host is not probed again.
    expect(again.orphans.map((o) => o.host)).not.toContain(onlyNew);
    expect(again.probes).toBeLessThan(summary.probes);
  });

  it('costs per host and orphan, not per instance: a quiet sweep reads no instance at all', async () => {
    const now = Date.now();
    const busyLive = '10.5.2.1:5678';
    const quietDead = '10.5.2.2:5678';
    const session = await register('master', busyLive, now - 3_600_000);
    await register('master', quietDead, now - 3_600_000).then(async (s) => {
      await runSweep(sweepDeps(), { endAt: Date.now() + 20_000 });
      await s.close();
    });
    await instances(busyLive, 'RUNNING_EXECUTION', 300, now - 60_000);
    await instances(quietDead, 'SUCCESS', 300, now - 3_600_000);
    const counted = new DynamoDBClient({
      endpoint: stack.info.dynamodb,
      region: stack.info.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const reads: string[] = [];
    counted.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as {
          TableName?: string;
          ExpressionAttributeValues?: Record<string, { S?: string }>;
        };
        const host = input.ExpressionAttributeValues?.[':host']?.S;
        reads.push(`${context.commandName} ${input.TableName}${host === undefined ? '' : ` ${host}`}`);
        return next(args);
      },
      { step: 'initialize' },
    );

    // First: the dead host's history is probed once (it was removed long enough ago), and found clean.
    const first = await runSweep(sweepDeps(counted), { endAt: Date.now() + 20_000, removalGraceMs: 0 });
    const firstReads = reads.splice(0);
    const quiet = await runSweep(sweepDeps(counted), { endAt: Date.now() + 20_000, removalGraceMs: 0 });
    const quietReads = reads.splice(0);
    const discovery = await runSweep(sweepDeps(counted), {
      endAt: Date.now() + 20_000,
      removalGraceMs: 0,
      discover: true,
    });
    const discoveryReads = reads.splice(0);
    counted.destroy();
    await session.close();

    expect(first.orphans.map((o) => o.host)).not.toContain(quietDead);
    expect(firstReads.filter((r) => r.startsWith('QueryCommand')).length).toBeGreaterThan(0);
    expect(quiet.discovery).toBe('skipped');
    // Nothing for this test's hosts (a live one with 300 executing instances, a dead one found clean), and
    // no scan of the instance tables: only the probes of earlier tests' unresolved orphans remain.
    expect(quietReads.filter((r) => r.endsWith(busyLive) || r.endsWith(quietDead))).toEqual([]);
    expect(
      quietReads.filter((r) => r.startsWith('ScanCommand') && !r.includes(stack.info.tables.servers)),
    ).toEqual([]);
    // Asked for, a discovery pass reads the indexes again and is checkpointed as complete.
    expect(discovery.discovery).toBe('complete');
    expect(
      discoveryReads.filter((r) => r === `ScanCommand ${stack.info.tables.instances}`).length,
    ).toBeGreaterThan(0);
    expect(orphanRequests(busyLive)).toEqual([]);
  });
});
