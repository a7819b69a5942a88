// Regression test for a bug the chaos suite pointed at: the sweep stamped its orphan requests with the time
// they were sent instead of the time its registry listing was taken. A server that registers again while the
// sweep is probing (after its listing, before its requests) and starts new work was then failed over with
// that new work whenever the membership mirror did not show the new incarnation yet (no watcher running):
// F3's observation bound did not cover work started between the listing and the send.
import { randomUUID } from 'node:crypto';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instanceItem, putInstances as writeInstances } from '../../bench/seed.ts';
import {
  type FailoverDeps,
  failOverHost,
  invocationBudget,
  systemClock,
} from '../../lib/failover/fail-over-host.ts';
import type { FailoverRequestQueue } from '../../lib/failover/ports.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { type FailoverRequestInput, FailoverRequestSchema } from '../../lib/messages.ts';
import { silentLog } from '../../lib/observability.ts';
import { SqsFailoverRequestQueue } from '../../lib/queue/failover-requests.ts';
import { createLayout } from '../../lib/registry/layout.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { unmarshalFlat } from '../../lib/store/dynamodb/attributes.ts';
import { DynamoExecutingWork } from '../../lib/store/dynamodb/executing-work.ts';
import { DynamoLockStore } from '../../lib/store/dynamodb/locks.ts';
import { DynamoServerStore } from '../../lib/store/dynamodb/servers.ts';
import { dynamoFailoverPorts } from '../../lib/stores.ts';
import type { ExecutingWork } from '../../lib/sweep/executing-work.ts';
import { runSweep, type SweepDeps } from '../../lib/sweep/sweep.ts';

const root = '/sweep-observation';
const layout = createLayout({ name: 'ds-3', root });
const host = '10.77.0.1:5678';

let stack: LocalStack;
const sessions: ZkSession[] = [];

const connect = async (): Promise<ZkSession> => {
  const session = await connectZk({
    connectString: stack.zookeeper.connectString,
    sessionTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
  });
  sessions.push(session);
  return session;
};

const heartbeat = (startupTime: number) =>
  JSON.stringify({ startupTime, reportTime: startupTime, host: 'x', port: 1 });

async function putInstances(ids: readonly string[], startTime: number): Promise<void> {
  await writeInstances(
    stack,
    ids.map((id) => instanceItem({ id, host, startTime })),
  );
}

async function instance(id: string): Promise<Record<string, string | number>> {
  const out = await stack.clients.dynamodb.send(
    new GetItemCommand({
      TableName: stack.info.tables.instances,
      Key: { id: { S: id } },
      ConsistentRead: true,
    }),
  );
  return unmarshalFlat(out.Item ?? {});
}

function failoverDeps(): FailoverDeps {
  const { dynamodb, sqs } = stack.clients;
  const { tables, queues } = stack.info;
  return {
    ...dynamoFailoverPorts(
      { dynamodb, sqs },
      {
        instancesTable: tables.instances,
        tasksTable: tables.tasks,
        commandsTable: tables.commands,
        serversTable: tables.servers,
        commandsQueueUrl: queues.commands,
      },
    ),
    locks: new DynamoLockStore(dynamodb, tables.locks),
    requestQueue: new SqsFailoverRequestQueue(sqs, queues.failover),
    clock: systemClock,
    log: silentLog,
    settings: { leaseMs: 10_000, batchSize: 10, concurrency: 2 },
  };
}

function sweepDeps(work: ExecutingWork, queue: FailoverRequestQueue): SweepDeps {
  return {
    connect: (timeoutMs) =>
      connectZk({
        connectString: stack.zookeeper.connectString,
        sessionTimeoutMs: 10_000,
        connectTimeoutMs: timeoutMs,
      }),
    layout,
    store: new DynamoServerStore(stack.clients.dynamodb, stack.info.tables.servers),
    queue,
    work,
  };
}

beforeAll(async () => {
  stack = await startLocalStack();
});

afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await stack?.stop();
});

describe('sweep orphan requests and F3', () => {
  it('never fail over work that a server started after the sweep listed the registry', async () => {
    // Arrange: a master that has been running for an hour, with its work; the sweep has seen it (mirror).
    const dynamo = new DynamoExecutingWork(stack.clients.dynamodb, {
      instancesTable: stack.info.tables.instances,
      tasksTable: stack.info.tables.tasks,
    });
    const sent: FailoverRequestInput[] = [];
    const recording: FailoverRequestQueue = { send: async (requests) => void sent.push(...requests) };
    const started = Date.now() - 3_600_000;
    const first = await connect();
    await first.create(layout.serverPath('master', host), heartbeat(started), { ephemeral: true });
    const prefix = randomUUID().slice(0, 8);
    const oldWork = Array.from({ length: 5 }, (_, i) => `${prefix}-old-${i}`);
    await putInstances(oldWork, started + 60_000);
    await runSweep(sweepDeps(dynamo, recording), { endAt: Date.now() + 20_000, discover: true });
    // It dies, and no watcher runs (an outage): the mirror still shows it alive.
    await first.close();
    // While the next sweep probes (after its listing), the server registers again and starts new work.
    const newWork = Array.from({ length: 5 }, (_, i) => `${prefix}-new-${i}`);
    let restarted = false;
    const restartDuringProbe = async () => {
      if (restarted) return;
      restarted = true;
      const second = await connect();
      await second.create(layout.serverPath('master', host), heartbeat(Date.now()), { ephemeral: true });
      await new Promise((r) => setTimeout(r, 5));
      await putInstances(newWork, Date.now());
      await new Promise((r) => setTimeout(r, 5));
    };
    const slowWork: ExecutingWork = {
      probeHost: async (...args) => {
        await restartDuringProbe();
        return dynamo.probeHost(...args);
      },
      discover: async (...args) => {
        await restartDuringProbe();
        return dynamo.discover(...args);
      },
    };

    // Act: the sweep (its grace period at 0: the server counts as removed long ago), then the failover of
    // every request it sent, while the mirror has not seen the new incarnation yet.
    sent.length = 0;
    await runSweep(sweepDeps(slowWork, recording), {
      endAt: Date.now() + 20_000,
      discover: true,
      removalGraceMs: 0,
    });
    for (const request of sent) {
      await failOverHost(
        FailoverRequestSchema.parse(request),
        failoverDeps(),
        invocationBudget(() => 60_000, 1_000),
      );
    }

    // Assert: the dead incarnation's work was failed over, the new incarnation's work was not touched.
    expect(restarted).toBe(true);
    expect(sent.filter((r) => r.host === host).length).toBeGreaterThan(0);
    for (const id of oldWork) expect((await instance(id)).failoverCount, id).toBe(1);
    for (const id of newWork) {
      const item = await instance(id);
      expect(item.host, id).toBe(host);
      expect(item.failoverCount, id).toBeUndefined();
    }
  });
});
