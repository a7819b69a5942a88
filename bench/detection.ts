// Detection: registered servers' ephemeral nodes are deleted one by one while a watcher invocation (the
// watcher function in a local Lambda container) is live. A raw ZooKeeper watch on the same parent, in a
// session of its own, records when it sees each removal; the failover queue's SentTimestamp says when the
// watcher's request landed. detection delay = landed - raw watch saw it; raw delay = raw saw it - delete call.
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { startLocalRuntime } from '../lib/local/runtime.ts';
import type { LocalStack } from '../lib/local/stack.ts';
import { parseFailoverRequest } from '../lib/messages.ts';
import { createLayout } from '../lib/registry/layout.ts';
import { connectZk, type ZkSession } from '../lib/registry/zk-client.ts';
import { DynamoServerStore } from '../lib/store/dynamodb/servers.ts';
import { watchRemovals } from './raw-watch.ts';
import { note, quantile, round, sleep } from './support.ts';

export interface DetectionResult {
  removals: number;
  /** Removals whose request was on the queue (all of them, unless something is broken). */
  relayed: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  rawP50Ms: number;
  rawP99Ms: number;
  /** p99 of the delay from the delete call to the request on the queue. */
  endToEndP99Ms: number;
  samples: Array<{ rawMs: number; detectionMs: number }>;
}

const connect = (stack: LocalStack) =>
  connectZk({
    connectString: stack.zookeeper.connectString,
    sessionTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
  });

/** Hosts of this phase (10.251.x.y: no other phase uses them). */
const hostOf = (i: number) => `10.251.${Math.floor(i / 250)}.${(i % 250) + 1}:5678`;

export async function measureDetection(stack: LocalStack, removals: number): Promise<DetectionResult> {
  const layout = createLayout({ name: 'ds-3', root: stack.info.registryRoot });
  // The first removals warm the path up (JIT of the watcher, DynamoDB Local, the emulator): not measured.
  const warmUps = 3;
  const hosts = Array.from({ length: removals + warmUps }, (_, i) => hostOf(i));
  const paths = hosts.map((h) => layout.serverPath('master', h));
  const parent = paths[0]?.slice(0, paths[0].lastIndexOf('/')) ?? '/';
  const sessions: ZkSession[] = [];
  const registrar = await connect(stack);
  sessions.push(registrar);
  const startupTime = Date.now() - 60_000;
  for (const path of paths) {
    await registrar.create(
      path,
      JSON.stringify({
        startupTime,
        reportTime: startupTime + 1_000,
        host: 'bench',
        port: 5678,
        processId: 7,
      }),
      { ephemeral: true },
    );
  }

  // The raw watch: a child watch on the parent, re-armed each time it fires; a removal is seen when it fires.
  const raw = await connect(stack);
  sessions.push(raw);
  const rawSeen = await watchRemovals(raw, parent);

  // The failover queue's reader: when each request landed (SentTimestamp), by host.
  const landed = new Map<string, number>();
  let reading = true;
  const reader = (async () => {
    const { sqs } = stack.clients;
    const url = stack.info.queues.failover;
    while (reading) {
      const out = await sqs
        .send(
          new ReceiveMessageCommand({
            QueueUrl: url,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ['SentTimestamp'],
          }),
        )
        .catch(() => undefined);
      const messages = out?.Messages ?? [];
      for (const m of messages) {
        const parsed = parseFailoverRequest(m.Body ?? '');
        if (parsed.ok && !landed.has(parsed.value.host)) {
          landed.set(parsed.value.host, Number(m.Attributes?.SentTimestamp ?? Number.NaN));
        }
      }
      if (messages.length > 0) {
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: url,
            Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
          }),
        );
      }
    }
  })();

  // One watcher invocation, long enough for the whole phase (it ends its window WATCH_MARGIN_MS early).
  const windowMs = 20_000 + removals * 400;
  const runtime = startLocalRuntime(stack, {
    functions: ['watcher'],
    eventSources: false,
    timeoutMs: { watcher: windowMs },
    env: { watcher: { WATCH_MARGIN_MS: '1000', POWERTOOLS_METRICS_DISABLED: 'true' } },
  });
  const samples: DetectionResult['samples'] = [];
  const endToEnd: number[] = [];
  try {
    const invocation = runtime.invoke('watcher', { source: 'aws.events', 'detail-type': 'Scheduled Event' });
    invocation.catch(() => undefined);
    const mirror = new DynamoServerStore(stack.clients.dynamodb, stack.info.tables.servers);
    await waitUntil('the watcher to list every server', 30_000, async () => {
      const rows = await Promise.all(hosts.map((h) => mirror.get(`master/${h}`)));
      return rows.every((r) => r?.alive === true);
    });
    note(`detection: watcher live, removing ${removals} nodes (after ${warmUps} not measured)`);
    for (const [i, path] of paths.entries()) {
      const host = hosts[i] ?? '';
      const child = path.slice(parent.length + 1);
      // Irregular spacing, so removals never line up with any periodic activity.
      await sleep(40 + Math.floor(Math.random() * 80));
      const deletedAt = Date.now();
      await registrar.remove(path);
      const ok = await waitUntil(`the removal of ${host}`, 10_000, () =>
        rawSeen.has(child) && landed.has(host) ? true : undefined,
      ).then(
        () => true,
        () => false,
      );
      if (!ok || i < warmUps) continue;
      const seen = rawSeen.get(child) ?? Number.NaN;
      const at = landed.get(host) ?? Number.NaN;
      samples.push({ rawMs: seen - deletedAt, detectionMs: at - seen });
      endToEnd.push(at - deletedAt);
    }
  } finally {
    // The watch window would last until its deadline: end the invocation now (its container is stopped).
    reading = false;
    await runtime.stop();
    await reader;
    await Promise.all(sessions.map((s) => s.close()));
  }
  const detection = samples.map((s) => s.detectionMs);
  const rawDelays = samples.map((s) => s.rawMs);
  return {
    removals,
    relayed: samples.length,
    p50Ms: round(quantile(detection, 0.5), 1),
    p99Ms: round(quantile(detection, 0.99), 1),
    maxMs: round(Math.max(...detection), 1),
    rawP50Ms: round(quantile(rawDelays, 0.5), 1),
    rawP99Ms: round(quantile(rawDelays, 0.99), 1),
    endToEndP99Ms: round(quantile(endToEnd, 0.99), 1),
    samples,
  };
}

async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean | undefined> | boolean | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
