// One simulated DolphinScheduler server, run as its own process by the demo (lib/sim/cluster.ts): it holds
// a real ZooKeeper session with a short timeout and registers the ds-3 ephemeral node
// `<root>/nodes/<master|worker>/<ip:port>` with a JSON heartbeat refreshed periodically. A master also
// consumes the commands queue (lib/sim/command-consumer.ts). SIGKILL it and its node disappears only when
// the session expires, as when a real server process dies; SIGTERM closes the session (a clean shutdown).
//
// Protocol (lib/sim/protocol.ts): the process loads its modules and says `loaded`, then registers when it
// receives `start` with its config (ZooKeeper and the queues of the local stack).
//
// On DolphinScheduler's database (`--ds`, config `dolphinScheduler`) the heartbeat is the release's own
// (lib/sim/ds-master.ts) and a master consumes `t_ds_command` as 3.2 does (lib/sim/ds-command-consumer.ts).
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

// Masters load the consumer (and the AWS SDK, or the database drivers) up front; workers start faster
// without them.
const isMaster = process.argv.includes('--master');
const onDolphinScheduler = process.argv.includes('--ds');
const consumerModules =
  isMaster && !onDolphinScheduler
    ? Promise.all([
        import('./command-consumer.ts'),
        import('@aws-sdk/client-sqs'),
        import('@aws-sdk/client-dynamodb'),
      ])
    : undefined;
const dsModules = onDolphinScheduler
  ? Promise.all([
      import('./ds-master.ts'),
      isMaster ? import('./ds-command-consumer.ts') : undefined,
      isMaster ? import('../store/dolphinscheduler/database.ts') : undefined,
      isMaster ? import('../registry/zk-client.ts') : undefined,
    ])
  : undefined;
await Promise.all([consumerModules, dsModules]);

const stop = new AbortController();
let registration: Registration | undefined;
let registrations = 0;
/** Closed on shutdown (the DolphinScheduler consumer's database and ZooKeeper session). */
const closers: Array<() => Promise<void>> = [];

const shutdown = async () => {
  if (stop.signal.aborted) return;
  stop.abort();
  registration?.close();
  await Promise.race([
    Promise.allSettled(closers.map((close) => close())),
    new Promise((r) => setTimeout(r, 1_000)),
  ]);
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

const dsHeartbeats = dsModules === undefined ? undefined : (await dsModules)[0];

function heartbeat(startupTime: number): string {
  const ds = config.dolphinScheduler;
  if (ds !== undefined && dsHeartbeats !== undefined) {
    // The release's own heartbeat, as DolphinScheduler's heartbeat task writes it.
    const write =
      config.nodeType === 'master' ? dsHeartbeats.dsMasterHeartbeat : dsHeartbeats.dsWorkerHeartbeat;
    return write({
      root: config.registryRoot,
      host: config.host,
      startupTime,
      reportTime: Date.now(),
      processId: process.pid,
      version: ds.version,
    });
  }
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
const dsConsume = config.dolphinScheduler;
if (dsConsume?.databaseUrl !== undefined && dsModules !== undefined) {
  const [{ SimulatedDsMaster }, loop, database, zk] = await dsModules;
  if (loop === undefined || database === undefined || zk === undefined) throw new Error('modules not loaded');
  const db = database.openDatabase(database.parseDatabaseUrl(dsConsume.databaseUrl), {
    max: 2,
    lockTimeoutMs: 10_000,
    statementTimeoutMs: 60_000,
  });
  closers.push(() => db.close());
  // The simulated master wants a ZooKeeper session of its own (for DolphinScheduler's own failover, which
  // the demo does not run); its command loop reads the registry through the registration's session.
  const session = await zk.connectZk({
    connectString: config.zookeeper,
    sessionTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
  });
  closers.push(() => session.close());
  const master = new SimulatedDsMaster({
    db,
    session,
    root: config.registryRoot,
    host: config.host,
    timeZone: dsConsume.timeZone,
  });
  const masters = layout.parentPath('master');
  void loop.runDsCommandLoop(
    {
      consume: (slots) => master.consumeCommands(slots),
      self: config.host,
      listMasters: async () => {
        const current = registration;
        if (current === undefined) return [];
        const names = await current.children(masters);
        return Promise.all(
          names.map(async (host) => ({ host, data: await current.data(`${masters}/${host}`) })),
        );
      },
      report,
    },
    stop.signal,
  );
} else if (config.consume !== undefined && consumerModules !== undefined) {
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
