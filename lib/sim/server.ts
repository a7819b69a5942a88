// One simulated DolphinScheduler server, run as its own process by the demo (lib/sim/cluster.ts): it holds
// a real ZooKeeper session with a short timeout and registers the ds-3 ephemeral node
// `<root>/nodes/<master|worker>/<ip:port>` with a JSON heartbeat refreshed periodically. A master also
// consumes the commands queue (lib/sim/command-consumer.ts). SIGKILL it and its node disappears only when
// the session expires, as when a real server process dies; SIGTERM closes the session (a clean shutdown).
//
// Protocol (lib/sim/protocol.ts): the process loads its modules and says `loaded`, then registers when it
// receives `start` with its config (ZooKeeper and the queues of the local stack).
import { createLayout } from '../registry/layout.ts';
import { type SimReport, type SimServerConfig, SimStartSchema } from './protocol.ts';
import { type Registration, register } from './registration.ts';

const send = process.send?.bind(process);
if (send === undefined) {
  process.stderr.write('sim server: must be started with an IPC channel (by the demo)\n');
  process.exit(2);
}
const report = (r: SimReport) => {
  if (process.connected) send(r);
};

// Masters load the consumer (and the AWS SDK) up front; workers start faster without them.
const isMaster = process.argv.includes('--master');
const consumerModules = isMaster
  ? Promise.all([
      import('./command-consumer.ts'),
      import('@aws-sdk/client-sqs'),
      import('@aws-sdk/client-dynamodb'),
    ])
  : undefined;
await consumerModules;

const stop = new AbortController();
let registration: Registration | undefined;
let registrations = 0;

const shutdown = async () => {
  if (stop.signal.aborted) return;
  stop.abort();
  registration?.close();
  process.exit(0);
};
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
// The demo is gone (even SIGKILLed): do not linger.
process.on('disconnect', () => void shutdown());

const config = await new Promise<SimServerConfig>((resolve) => {
  const onMessage = (message: unknown) => {
    const parsed = SimStartSchema.safeParse(message);
    if (!parsed.success) return;
    process.off('message', onMessage);
    resolve(parsed.data.config);
  };
  process.on('message', onMessage);
  send({ type: 'loaded' });
});
const layout = createLayout({ name: 'ds-3', root: config.registryRoot });
const path = layout.serverPath(config.nodeType, config.host);
const [address = '', port = '0'] = config.host.split(/:(?=[0-9]+$)/);

function heartbeat(startupTime: number): string {
  // The fields of a DolphinScheduler 3 heartbeat the controller reads (startupTime) and a few it does not.
  return JSON.stringify({
    startupTime,
    reportTime: Date.now(),
    host: address,
    port: Number(port),
    processId: process.pid,
    serverStatus: 'NORMAL',
    cpuUsage: 0.1,
    memoryUsage: 0.3,
    loadAverage: 0.5,
    ...(config.nodeType === 'worker' ? { workerHostWeight: 100, threadPoolUsage: 0 } : {}),
  });
}

async function registerOnce(): Promise<void> {
  const startupTime = registrations === 0 ? config.startupTime : Date.now();
  const current = await register({
    connectString: config.zookeeper,
    sessionTimeoutMs: config.sessionTimeoutMs,
    path,
    data: heartbeat(startupTime),
  });
  registrations += 1;
  registration = current;
  report({
    type: 'registered',
    czxid: current.czxid,
    sessionId: current.sessionId,
    startupTime,
    negotiatedTimeoutMs: current.negotiatedTimeoutMs,
    at: Date.now(),
  });
  const timer = setInterval(() => {
    current.setData(heartbeat(startupTime)).catch(() => undefined);
  }, config.heartbeatMs);
  void current.ended.then((end) => {
    clearInterval(timer);
    if (stop.signal.aborted) return;
    report({ type: 'session-lost', reason: end.reason, at: Date.now() });
    // Like a DolphinScheduler server that lost its registration: register again, as a new incarnation.
    setTimeout(() => void registerUntilDone(), 200);
  });
}

async function registerUntilDone(): Promise<void> {
  while (!stop.signal.aborted) {
    try {
      await registerOnce();
      return;
    } catch (error: unknown) {
      report({
        type: 'problem',
        what: `registration failed: ${String(error)}`.slice(0, 300),
        at: Date.now(),
      });
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function liveWorkers(): Promise<string[]> {
  return (await registration?.children(layout.parentPath('worker'))) ?? [];
}

await registerUntilDone();
if (config.consume !== undefined && consumerModules !== undefined) {
  const [{ CommandConsumer }, { SQSClient }, { DynamoDBClient }] = await consumerModules;
  const { region, credentials } = config.consume;
  const consumer = new CommandConsumer({
    sqs: new SQSClient({ endpoint: config.consume.sqsEndpoint, region, credentials }),
    dynamodb: new DynamoDBClient({ endpoint: config.consume.dynamodbEndpoint, region, credentials }),
    queueUrl: config.consume.commandsQueueUrl,
    instancesTable: config.consume.instancesTable,
    tasksTable: config.consume.tasksTable,
    self: config.host,
    liveWorkers,
    report,
  });
  void consumer.run(stop.signal);
}
