// `zkf` (bin/zkf.mjs) as an operator runs it, against the local stack with the real failover function on
// the local Lambda runtime: every command, `plan` agreeing with what the failover then does, bad arguments.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AttributeValue, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueDepth, scanWork } from '../../lib/cli/inspect.ts';
import { localStateDir } from '../../lib/local/processes.ts';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { scanAll } from '../../lib/sim/readers.ts';
import { marshalFlat } from '../../lib/store/dynamodb/attributes.ts';
import { OUTBOX_PREFIX } from '../../lib/store/dynamodb/commands.ts';

const root = join(import.meta.dirname, '..', '..');
let stack: LocalStack;
let runtime: LocalRuntime;
let session: ZkSession;
let scratch: string;
let readyFile: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `zkf` through its npm bin launcher, as an operator would. */
function zkf(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'bin', 'zkf.mjs'), ...args], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`zkf ${args.join(' ')} did not finish in 90 s\n${stderr}`));
    }, 90_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `zkf --ready <file> ...`; fails the test on a non-zero exit unless asked otherwise. */
async function local(args: readonly string[], expectCode = 0): Promise<Run> {
  const run = await zkf(['--ready', readyFile, ...args]);
  expect(run.code, `zkf ${args.join(' ')}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`).toBe(expectCode);
  return run;
}

async function localJson<T>(args: readonly string[]): Promise<T> {
  const run = await local([...args, '--json']);
  return JSON.parse(run.stdout) as T;
}

async function put(
  table: string,
  record: Record<string, string | number | undefined>,
  extra: Record<string, AttributeValue> = {},
) {
  await stack.clients.dynamodb.send(
    new PutItemCommand({ TableName: table, Item: { ...marshalFlat(record), ...extra } }),
  );
}

const minutesAgo = (m: number) => Date.now() - m * 60_000;

async function putInstance(
  id: string,
  host: string | undefined,
  state: string,
  extra: Record<string, number> = {},
) {
  await put(stack.info.tables.instances, {
    id,
    host,
    state,
    processDefinitionCode: 42,
    processDefinitionVersion: 1,
    executorId: 1,
    priority: 'MEDIUM',
    startTime: minutesAgo(30),
    ...extra,
  });
}

async function putTask(id: string, host: string, state: string, submitTime = minutesAgo(20)) {
  await put(stack.info.tables.tasks, {
    id,
    processInstanceId: `p-${id}`,
    host,
    state,
    submitTime,
    startTime: submitTime + 1,
  });
}

async function putMirrorRow(
  type: 'master' | 'worker',
  host: string,
  alive: boolean,
  startupTime: number,
  czxid = '77',
) {
  await put(
    stack.info.tables.servers,
    {
      id: `${type}/${host}`,
      type,
      host,
      czxid,
      startupTime,
      startupTimeSource: 'heartbeat',
      seenAt: Date.now(),
    },
    { alive: { BOOL: alive }, ...(alive ? {} : { removedAt: { N: String(Date.now() - 5_000) } }) },
  );
}

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const byId = async (table: string) =>
  new Map((await scanAll(stack.clients.dynamodb, table)).map((r) => [String(r.id), r]));

beforeAll(async () => {
  stack = await startLocalStack();
  runtime = startLocalRuntime(stack, { functions: ['failover'], sqsConcurrency: 2 });
  scratch = mkdtempSync(join(tmpdir(), 'zkf-cli-'));
  readyFile = join(scratch, 'ready.txt');
  // A log file holding the READY line among others, as `npm run local > file` gives.
  writeFileSync(readyFile, `some log line\nREADY ${JSON.stringify(stack.info)}\n`);
  session = await connectZk({
    connectString: stack.info.zookeeper,
    sessionTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
  });
});

afterAll(async () => {
  await session?.close();
  await runtime?.stop();
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  // Every process the stack started for this file is gone.
  const ours = readdirSync(join(localStateDir, 'pids')).filter((f) => {
    try {
      return (
        (JSON.parse(readFileSync(join(localStateDir, 'pids', f), 'utf8')) as { ownerPid?: number })
          .ownerPid === process.pid
      );
    } catch {
      return false;
    }
  });
  expect(ours).toEqual([]);
});

describe('zkf help and bad arguments', () => {
  it('prints help for zkf and for every command, exit 0', async () => {
    const main = await zkf(['--help']);
    expect(main.code).toBe(0);
    for (const word of ['status', 'plan', 'failover', 'dlq list', 'dlq redrive', 'sweep']) {
      expect(main.stdout).toContain(`  ${word}`);
      const help = await zkf([...word.split(' '), '--help']);
      expect(help.code, help.stderr).toBe(0);
      expect(help.stdout).toContain(`Usage: zkf ${word}`);
      expect(help.stdout).toContain('Global options:');
    }
  });

  it.each([
    [[], /which command/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['status'], /say where to work: --ready .* or --stage/],
    [['--ready', '{not json', 'status'], /--ready: not JSON/],
    [['--ready', '/nonexistent/ready.json', 'status'], /no such file/],
    [['--stage', 'a b', 'status'], /not a stage name/],
    [['--ready', '{}', '--stage', 'prod', 'status'], /either --ready .* or --stage/],
    [['status', '--bogus'], /unknown option --bogus/],
    [['status', '--limit', 'many'], /--limit needs a whole number/],
    [['plan'], /needs --host <ip:port>/],
    [['plan', '--host', 'not-a-host'], /--host must be "ip:port"/],
    [['plan', '--host', '10.0.0.1:99999'], /--host must be/],
    [['failover', '--host', '10.0.0.1:5678', '--type', 'boss'], /--type must be master or worker/],
    [['failover', '--host'], /--host needs a value/],
    [['dlq'], /needs list or redrive/],
    [['dlq', 'purge'], /needs list or redrive, not "purge"/],
    [['dlq', 'list', '--queue', 'other'], /--queue must be failover or commands/],
    [['sweep', 'now'], /unexpected argument "now"/],
    [['status', '-x'], /unknown option "-x"/],
  ])('zkf %j: a clear message and exit code 2', async (args, message) => {
    const run = await zkf(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toMatch(/see `zkf .*--help`/);
    expect(run.stdout).toBe('');
  });

  it('asks for --type when the servers mirror does not know the host (exit 2)', async () => {
    const run = await zkf(['--ready', readyFile, 'plan', '--host', '10.99.0.1:5678']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/does not know 10\.99\.0\.1:5678: say --type master or --type worker/);
  });
});

describe('zkf status', () => {
  it('shows registry members, dead servers, work per host, locks, pending commands and queue depths', async () => {
    const live = '10.1.0.1:5678';
    const dead = '10.1.0.2:5678';
    const deadWorker = '10.1.0.9:1234';
    const startup = minutesAgo(120);
    await session.create(
      `${stack.info.registryRoot}/nodes/master/${live}`,
      JSON.stringify({ startupTime: startup, reportTime: Date.now(), host: '10.1.0.1', port: 5678 }),
      { ephemeral: true },
    );
    await putMirrorRow('master', live, true, startup, '11');
    await putMirrorRow('master', dead, false, startup, '12');
    await putMirrorRow('worker', deadWorker, false, startup, '13');
    await Promise.all([
      putInstance('s-1', live, 'RUNNING_EXECUTION'),
      putInstance('s-2', live, 'READY_PAUSE'),
      putInstance('s-3', live, 'SUCCESS'),
      putInstance('s-4', dead, 'RUNNING_EXECUTION'),
      putInstance('s-5', dead, 'DELAY_EXECUTION'),
      putInstance('s-6', undefined, 'RUNNING_EXECUTION'),
      putTask('st-1', deadWorker, 'DISPATCH'),
      putTask('st-2', deadWorker, 'NEED_FAULT_TOLERANCE'),
      put(stack.info.tables.locks, {
        name: `failover/master/${dead}`,
        owner: 'someone',
        fence: 4,
        leaseExpiresAt: Date.now() + 60_000,
      }),
      put(stack.info.tables.commands, {
        id: 'recover/s-x/1',
        type: 'RecoveryCommand',
        commandType: 'RECOVER_TOLERANCE_FAULT_PROCESS',
        processInstanceId: 's-x',
        processDefinitionCode: 42,
        processDefinitionVersion: 1,
        executorId: 1,
        priority: 'MEDIUM',
        commandParam: '{"ProcessInstanceId":"s-x"}',
        failedHost: dead,
        generation: 1,
        fence: 3,
        createdAt: minutesAgo(5),
        pending: '1',
      }),
      stack.clients.sqs.send(
        new SendMessageCommand({
          QueueUrl: stack.info.queues.commandsDlq,
          MessageBody: '{"broken":true}',
          MessageGroupId: 'g',
          MessageDeduplicationId: 'status-test',
        }),
      ),
    ]);

    interface Status {
      target: { mode: string };
      registry: { status: string; members: Array<{ nodeType: string; host: string; startupTime: number }> };
      dead: Array<{ nodeType: string; host: string; why: string }>;
      work: {
        instances: Array<{ host: string; executing: number; live: boolean | null }>;
        unownedInstances: number;
        tasks: Array<{ host: string; executing: number; live: boolean | null }>;
        needFaultTolerance: Record<string, number>;
      };
      locks: Array<{ name: string; state: string; owner?: string; fence?: number }>;
      pendingCommands: { count: number; byHost: Record<string, number> };
      queues: Record<string, { visible: number }>;
    }
    const status = await localJson<Status>(['status']);
    expect(status.target.mode).toBe('local');
    expect(status.registry.status).toBe('listed');
    expect(status.registry.members).toContainEqual(
      expect.objectContaining({ nodeType: 'master', host: live, startupTime: startup }),
    );
    expect(status.dead.map((d) => d.host)).toEqual(expect.arrayContaining([dead, deadWorker]));
    expect(status.dead.map((d) => d.host)).not.toContain(live);
    expect(status.work.instances).toContainEqual({ host: live, executing: 2, live: true });
    expect(status.work.instances).toContainEqual({ host: dead, executing: 2, live: false });
    expect(status.work.unownedInstances).toBeGreaterThanOrEqual(1);
    expect(status.work.tasks).toContainEqual({ host: deadWorker, executing: 1, live: false });
    expect(status.work.needFaultTolerance[deadWorker]).toBe(1);
    expect(status.locks).toContainEqual(
      expect.objectContaining({ name: `failover/master/${dead}`, state: 'held', owner: 'someone', fence: 4 }),
    );
    expect(status.pendingCommands.byHost[dead]).toBe(1);
    expect(status.queues.commandsDlq?.visible).toBe(1);

    const human = await local(['status']);
    expect(human.stdout).toMatch(/REGISTRY \(ZooKeeper .*\): \d+ registered/);
    expect(human.stdout).toMatch(
      new RegExp(`master\\s+${dead.replaceAll('.', '\\.')}\\s+0xc\\s+\\S+ ago\\s+removed`),
    );
    expect(human.stdout).toMatch(new RegExp(`${dead.replaceAll('.', '\\.')}\\s+2\\s+NOT LIVE \\(orphan\\)`));
    expect(human.stdout).toMatch(/failover\/master\/10\.1\.0\.2:5678\s+held\s+someone\s+4\s+in \d+s/);
    expect(human.stdout).toMatch(/PENDING COMMANDS \(written, not yet on the queue\): 1/);
    expect(human.stdout).toMatch(/commands DLQ\s+1/);
  });
});

interface PlanJson {
  nodeType: string;
  liveness: { registered: boolean };
  eligible: Array<{ id: string; commandId: string; generation: number }>;
  skipped: Array<{ id: string; reason: string }>;
  notExecuting: number;
}

describe('zkf plan and zkf failover', () => {
  it('plan lists exactly what the failover function then changes, by rule (master, restarted)', async () => {
    const host = '10.2.0.1:5678';
    const startup = minutesAgo(10); // registered again 10 minutes ago (F3)
    await putMirrorRow('master', host, true, startup);
    await Promise.all([
      putInstance('p-old', host, 'RUNNING_EXECUTION', { startTime: minutesAgo(60) }),
      putInstance('p-old-paused', host, 'READY_PAUSE', { startTime: minutesAgo(50) }),
      putInstance('p-again', host, 'DELAY_EXECUTION', { startTime: minutesAgo(50), failoverCount: 1 }),
      putInstance('p-new', host, 'RUNNING_EXECUTION', { startTime: minutesAgo(5) }),
      putInstance('p-restarted', host, 'RUNNING_EXECUTION', {
        startTime: minutesAgo(50),
        restartTime: minutesAgo(3),
      }),
      putInstance('p-done', host, 'SUCCESS', { startTime: minutesAgo(60) }),
    ]);
    const plan = await localJson<PlanJson>(['plan', '--host', host]);
    expect(plan.nodeType).toBe('master');
    expect(plan.liveness.registered).toBe(true);
    expect(plan.eligible.map((e) => e.id).sort()).toEqual(['p-again', 'p-old', 'p-old-paused']);
    expect(plan.eligible.find((e) => e.id === 'p-again')?.commandId).toBe('recover/p-again/2');
    expect(plan.skipped.map((s) => [s.id, s.reason]).sort()).toEqual([
      ['p-new', 'new-incarnation'],
      ['p-restarted', 'new-incarnation'],
    ]);
    expect(plan.notExecuting).toBe(1);
    const human = await local(['plan', '--host', host, '--all']);
    expect(human.stdout).toMatch(/would fail over\s+3 process instances/);
    expect(human.stdout).toMatch(/new-incarnation\s+2\s+F3/);
    expect(human.stdout).toMatch(/p-old\s+RUNNING_EXECUTION\s+\S+\s+-\s+fail over\s+recover\/p-old\/1/);

    const before = await byId(stack.info.tables.instances);
    const failover = await local(['failover', '--host', host, '--wait', '--timeout', '60']);
    expect(failover.stdout).toMatch(/done: lock failover\/master\/10\.2\.0\.1:5678 released at fence 1/);
    expect(failover.stderr).toMatch(/is registered .* only work older than that is failed over \(F3\)/);

    const after = await byId(stack.info.tables.instances);
    const changed = [...after.values()]
      .filter(
        (i) => String(i.id).startsWith('p-') && i.failoverCount !== before.get(String(i.id))?.failoverCount,
      )
      .map((i) => String(i.id))
      .sort();
    expect(changed).toEqual(plan.eligible.map((e) => e.id).sort());
    for (const id of changed) expect(after.get(id)?.host).toBeUndefined();
    for (const s of plan.skipped) expect(after.get(s.id)).toEqual(before.get(s.id));
    const commands = await byId(stack.info.tables.commands);
    for (const e of plan.eligible) expect(commands.get(e.commandId)?.processInstanceId).toBe(e.id);
    expect(
      [...commands.values()]
        .filter((c) => c.failedHost === host && !String(c.id).startsWith(OUTBOX_PREFIX))
        .map((c) => String(c.id))
        .sort(),
    ).toEqual(plan.eligible.map((e) => e.commandId).sort());
  });

  it('plan agrees with the failover of a dead worker and of a never-registered master (observation bound)', async () => {
    const worker = '10.2.0.9:1234';
    await putMirrorRow('worker', worker, false, minutesAgo(120));
    await Promise.all([
      putTask('w-dispatch', worker, 'DISPATCH'),
      putTask('w-running', worker, 'RUNNING_EXECUTION'),
      putTask('w-success', worker, 'SUCCESS'),
      putTask('w-future', worker, 'RUNNING_EXECUTION', Date.now() + 3_600_000),
    ]);
    const plan = await localJson<PlanJson>(['plan', '--host', worker]);
    expect(plan.nodeType).toBe('worker');
    expect(plan.eligible.map((e) => e.id).sort()).toEqual(['w-dispatch', 'w-running']);
    expect(plan.skipped).toEqual([expect.objectContaining({ id: 'w-future', reason: 'after-observation' })]);
    await local(['failover', '--host', worker, '--wait']);
    const tasks = await byId(stack.info.tables.tasks);
    const marked = [...tasks.values()]
      .filter((t) => t.state === 'NEED_FAULT_TOLERANCE' && t.lastHost === worker)
      .map((t) => String(t.id))
      .sort();
    expect(marked).toEqual(['w-dispatch', 'w-running']);
    expect(tasks.get('w-future')?.state).toBe('RUNNING_EXECUTION');

    // A master the watcher never saw: --type is required, czxid and startupTime are null.
    const master = '10.2.0.7:5678';
    await putInstance('m-1', master, 'RUNNING_EXECUTION');
    const sent = await localJson<{ sent: { request: Record<string, unknown>; groupId: string } }>([
      'failover',
      '--host',
      master,
      '--type',
      'master',
    ]);
    expect(sent.sent.request).toMatchObject({
      kind: 'NodeRemoved',
      nodeType: 'master',
      host: master,
      czxid: null,
      startupTime: null,
      source: 'operator',
    });
    expect(sent.sent.groupId).toBe(`master/${master}`);
    await eventually('m-1 failed over', async () => {
      const i = (await byId(stack.info.tables.instances)).get('m-1');
      return i?.failoverCount === 1 ? i : undefined;
    });
  });
});

describe('zkf dlq', () => {
  it('lists poison with its reason without consuming it, and re-drives the valid messages only', async () => {
    const host = '10.3.0.1:5678';
    await putInstance('d-1', host, 'RUNNING_EXECUTION');
    // Poison through the real path: the failover function dead-letters it with a RejectReason. Several
    // of them, from several groups: each must be listed (none hidden behind another in its FIFO group).
    const junk = ['this is not json', '{"kind":"NodeRemoved"}', '[]'];
    for (const [i, body] of junk.entries()) {
      await stack.clients.sqs.send(
        new SendMessageCommand({
          QueueUrl: stack.info.queues.failover,
          MessageBody: body,
          MessageGroupId: `junk-${i % 2}`,
          MessageDeduplicationId: `junk-${i}`,
        }),
      );
    }
    // A valid request that (say) failed five times and was moved by SQS.
    const request = {
      kind: 'NodeRemoved',
      nodeType: 'master',
      host,
      czxid: null,
      startupTime: null,
      observedAt: Date.now(),
      source: 'watcher',
    };
    await stack.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: stack.info.queues.failoverDlq,
        MessageBody: JSON.stringify(request),
        MessageGroupId: `master/${host}`,
        MessageDeduplicationId: 'moved-1',
      }),
    );
    await eventually('the poison in the DLQ', async () => {
      const d = await queueDepth(stack.clients.sqs, stack.info.queues.failoverDlq);
      return d.visible >= junk.length + 1 ? d : undefined;
    });

    interface DlqJson {
      listed: number;
      messages: Array<{
        rejectReason: string | null;
        parsed: unknown;
        body: string;
        receiveCount: number | null;
      }>;
    }
    const listed = await localJson<DlqJson>(['dlq', 'list']);
    expect(listed.listed).toBe(junk.length + 1);
    const poison = listed.messages.find((m) => m.body === 'this is not json');
    expect(poison?.rejectReason).toMatch(/not valid JSON/);
    expect(poison?.parsed).toBeNull();
    expect(listed.messages.filter((m) => m.parsed === null).map((m) => m.body)).toEqual(
      expect.arrayContaining(junk),
    );
    for (const m of listed.messages.filter((x) => x.parsed === null)) expect(m.rejectReason).toBeTruthy();
    const valid = listed.messages.find((m) => m.parsed !== null);
    expect(valid?.parsed).toMatchObject({ host, source: 'watcher' });
    expect(valid?.rejectReason).toBeNull();
    // Not consumed: visible again at once.
    expect((await queueDepth(stack.clients.sqs, stack.info.queues.failoverDlq)).visible).toBe(
      junk.length + 1,
    );
    const human = await local(['dlq', 'list']);
    expect(human.stdout).toMatch(
      /reason: +body is not valid JSON .*\(RejectReason, set by the failover function: poison\)/,
    );
    expect(human.stdout).toMatch(/request: NodeRemoved master 10\.3\.0\.1:5678 from watcher/);

    const redrive = await localJson<{ moved: Array<{ groupId: string }>; skippedPoison: number }>([
      'dlq',
      'redrive',
    ]);
    expect(redrive.moved).toEqual([expect.objectContaining({ groupId: `master/${host}` })]);
    expect(redrive.skippedPoison).toBe(junk.length);
    const left = await queueDepth(stack.clients.sqs, stack.info.queues.failoverDlq);
    expect(left.visible + left.inFlight).toBe(junk.length);
    // The re-driven request is processed by the failover function.
    await eventually('d-1 failed over', async () => {
      const i = (await byId(stack.info.tables.instances)).get('d-1');
      return i?.failoverCount === 1 ? i : undefined;
    });
  });
});

describe('zkf in AWS mode and zkf sweep', () => {
  it('derives table and queue names from --stage (queue URLs by GetQueueUrl), with the standard AWS configuration', async () => {
    const env = { ...process.env, ...stack.awsEnv() };
    const run = await zkf(
      ['--stage', 'local', '--region', stack.info.region, 'status', '--no-work', '--json'],
      env,
    );
    expect(run.code, run.stderr).toBe(0);
    const status = JSON.parse(run.stdout) as {
      target: { mode: string; tables: Record<string, string>; queues: Record<string, string> };
      work: null;
    };
    expect(status.target.mode).toBe('aws');
    expect(status.target.tables).toEqual(stack.info.tables);
    expect(status.target.queues).toEqual(stack.info.queues);
    expect(status.work).toBeNull();
  });

  it('prints the exact `aws lambda invoke` command in AWS mode without ZooKeeper, and runs nothing', async () => {
    const run = await zkf(['--stage', 'prod', '--region', 'eu-west-1', 'sweep', '--discover']);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(
      `aws lambda invoke --function-name zk-failover-prod-sweep --region eu-west-1 --cli-binary-format raw-in-base64-out --payload '{"discover":true}' /dev/stdout`,
    );
    expect(run.stderr).toMatch(/does not invoke Lambda/);
  });

  it('sweep --discover finds an orphan host nobody ever registered, and its failover follows', async () => {
    const host = '10.4.0.1:5678';
    await putInstance('o-1', host, 'RUNNING_EXECUTION');
    const run = await localJson<{
      ran: boolean;
      summary: { registry: string; discovery: string; orphans: Array<{ host: string; via: string }> };
    }>(['sweep', '--discover']);
    expect(run.ran).toBe(true);
    expect(run.summary.registry).toBe('listed');
    expect(run.summary.discovery).toBe('complete');
    expect(run.summary.orphans).toContainEqual({ nodeType: 'master', host, via: 'discovery' });
    await eventually('o-1 failed over', async () => {
      const i = (await byId(stack.info.tables.instances)).get('o-1');
      return i?.failoverCount === 1 ? i : undefined;
    });
    const work = await scanWork(stack.clients.dynamodb, stack.info.tables, () => undefined);
    expect(work.instances.get(host)).toBeUndefined();
  });
});
