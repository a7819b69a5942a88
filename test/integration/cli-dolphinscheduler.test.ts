// `zkf` (bin/zkf.mjs) on DolphinScheduler's own database (DESIGN section 10), as an operator runs it against
// `npm run local -- --store postgresql` with the real failover function on the local Lambda runtime:
// status (executing per host, 'NULL' hosts with and without a command, SQL NULL), plan agreeing row for row
// and column for column with what the failover then writes, failover, sweep (orphans and repairs), the
// stage's settings, and bad flags.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../lib/cli/args.ts';
import { resolveStoreTarget } from '../../lib/cli/store-target.ts';
import { localStateDir } from '../../lib/local/processes.ts';
import { type LocalRuntime, startLocalRuntime } from '../../lib/local/runtime.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { connectZk, type ZkSession } from '../../lib/registry/zk-client.ts';
import { registerDsMaster } from '../../lib/sim/ds-master.ts';
import { type Database, openDatabase, parseDatabaseUrl } from '../../lib/store/dolphinscheduler/database.ts';
import { commandRowsOf, instanceRows, seedDsInstances } from './ds-support.ts';

/** DolphinScheduler's masters run in Shanghai: every time zkf shows or compares must be converted. */
const zone = 'Asia/Shanghai';
const MINUTE = 60_000;
const root = join(import.meta.dirname, '..', '..');
let stack: LocalStack;
let runtime: LocalRuntime;
let session: ZkSession;
let db: Database;
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

/** `zkf --ready <file> --ds-time-zone Asia/Shanghai ...` (the READY line of `npm run local` has no zone). */
async function local(args: readonly string[], expectCode = 0): Promise<Run> {
  const run = await zkf(['--ready', readyFile, '--ds-time-zone', zone, ...args]);
  expect(run.code, `zkf ${args.join(' ')}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`).toBe(expectCode);
  return run;
}

async function localJson<T>(args: readonly string[]): Promise<T> {
  return JSON.parse((await local([...args, '--json'])).stdout) as T;
}

let hostCounter = 0;
/** A fresh master address per case (10.60.<n>.1:5678). */
const newHost = () => `10.60.${++hostCounter}.1:5678`;

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 45_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const sql = (text: string) => {
  let n = 0;
  return db.dialect === 'postgresql' ? text.replace(/\?/g, () => `$${++n}`) : text;
};

beforeAll(async () => {
  stack = await startLocalStack({
    dolphinScheduler: { database: { start: 'postgresql' }, timeZone: zone, version: '3.2' },
  });
  runtime = startLocalRuntime(stack, { functions: ['failover'], sqsConcurrency: 2 });
  scratch = mkdtempSync(join(tmpdir(), 'zkf-ds-'));
  readyFile = join(scratch, 'ready.log');
  // `npm run local -- --store postgresql > file`: a log holding the READY line among others.
  writeFileSync(readyFile, `local: starting\nREADY ${JSON.stringify(stack.info)}\n`);
  db = openDatabase(parseDatabaseUrl(stack.database?.url ?? ''));
  session = await connectZk({
    connectString: stack.info.zookeeper,
    sessionTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
  });
});

afterAll(async () => {
  await session?.close();
  await db?.close();
  await runtime?.stop();
  await stack?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
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

describe('zkf status on DolphinScheduler database', () => {
  it("shows executing instances per host, and the unowned ones: 'NULL' with and without a command, SQL NULL", async () => {
    const live = newHost();
    const dead = newHost();
    await registerDsMaster(session, {
      root: stack.info.registryRoot,
      host: live,
      startupTime: Date.now() - 120 * MINUTE,
      version: '3.2',
    });
    const startTime = Date.now() - 30 * MINUTE;
    const [, , , , , nullWithCommand, nullWithout, sqlNull] = await seedDsInstances(db, zone, [
      { host: live, startTime },
      { host: live, state: 2, startTime },
      { host: live, state: 7, startTime },
      { host: dead, startTime },
      { host: dead, state: 12, startTime },
      { host: 'NULL', startTime },
      { host: 'NULL', startTime },
      { host: null, startTime },
    ]);
    await db.query(
      sql(`INSERT INTO t_ds_command (command_type, process_definition_code, process_instance_id, command_param, executor_id)
           VALUES (2, 9876543210, ?, '{}', 7)`),
      [nullWithCommand],
    );

    interface Status {
      target: { store: { kind: string; dialect: string; timeZone: string; source: string } };
      work: {
        instances: Array<{ host: string; executing: number; live: boolean | null }>;
        unownedInstances: number;
        unowned: {
          withCommand: number;
          withoutCommand: number;
          sqlNull: number;
          instances: Array<{ id: number; host: string | null; commandId: number | null }>;
        };
      };
      commands: { recovery: number; errors: number };
      dolphinSchedulerLocks: { status: string; path: string };
    }
    const status = await localJson<Status>(['status']);
    expect(status.target.store).toMatchObject({
      kind: 'dolphinscheduler',
      dialect: 'postgresql',
      timeZone: zone,
      source: 'READY',
    });
    expect(status.work.instances).toContainEqual({ host: live, executing: 2, live: true });
    expect(status.work.instances).toContainEqual({ host: dead, executing: 2, live: false });
    expect(status.work.instances.map((h) => h.host)).not.toContain('NULL');
    expect(status.work.unowned).toMatchObject({ withCommand: 1, withoutCommand: 1, sqlNull: 1 });
    expect(status.work.unowned.instances).toEqual([
      expect.objectContaining({ id: nullWithCommand, host: 'NULL', commandId: expect.any(Number) }),
      expect.objectContaining({ id: nullWithout, host: 'NULL', commandId: null }),
      expect.objectContaining({ id: sqlNull, host: null, commandId: null }),
    ]);
    expect(status.commands.recovery).toBe(1);
    expect(status.dolphinSchedulerLocks).toMatchObject({
      status: 'listed',
      path: '/dolphinscheduler/lock/master-failover',
    });

    const human = await local(['status']);
    expect(human.stdout).toMatch(
      /store: DolphinScheduler 3\.2 database \(postgresql\) .*, times in Asia\/Shanghai/,
    );
    expect(human.stdout).toMatch(new RegExp(`${dead.replaceAll('.', '\\.')}\\s+2\\s+NOT LIVE \\(orphan\\)`));
    expect(human.stdout).toMatch(/host 'NULL', command pending in t_ds_command\s+1/);
    expect(human.stdout).toMatch(/host 'NULL', no command\s+1/);
    expect(human.stdout).toMatch(/host SQL NULL\s+1/);
    expect(human.stdout).toMatch(
      new RegExp(`${sqlNull}\\s+SQL NULL\\s+RUNNING_EXECUTION.*none\\s+next sweep`),
    );
    expect(human.stdout).toMatch(/COMMANDS \(t_ds_command\): 1 recovery commands waiting for a master/);
    // Tidy up for the cases below: the unowned instances finish.
    await db.query(sql('UPDATE t_ds_process_instance SET state = 7 WHERE id IN (?, ?, ?)'), [
      nullWithCommand,
      nullWithout,
      sqlNull,
    ]);
    await db.query(sql('DELETE FROM t_ds_command WHERE process_instance_id = ?'), [nullWithCommand]);
  });
});

interface DsPlanJson {
  store: string;
  liveness: { registered: boolean; source: string };
  condition: { startedBefore: string | null };
  eligible: Array<{ id: string; update: { set: { host: string } }; command: Record<string, unknown> }>;
  skipped: Array<{ id: string; reason: string }>;
}

describe('zkf plan and zkf failover on DolphinScheduler database', () => {
  it('plan lists the exact rows and the exact t_ds_command rows the failover then writes (master registered again)', async () => {
    const host = newHost();
    const startup = Date.now() - 10 * MINUTE; // registered again 10 minutes ago (F3)
    const scheduledCode = 5_550_000_000 + hostCounter;
    await db.query(
      sql(`INSERT INTO t_ds_schedules (process_definition_code, timezone_id, crontab, start_time, end_time,
             failure_strategy, user_id, release_state, warning_type, create_time, update_time)
           VALUES (?, 'Europe/Berlin', '0 0 * * * ? *', '2024-01-01 00:00:00', '2099-01-01 00:00:00',
             1, 1, 1, 0, '2024-01-01 00:00:00', '2024-01-01 00:00:00')`),
      [scheduledCode],
    );
    const old = Date.now() - 50 * MINUTE;
    const ids = await seedDsInstances(db, zone, [
      { host, startTime: old },
      { host, state: 4, startTime: old, commandParam: null, priority: 0, testFlag: 1 },
      { host, state: 0, startTime: old, processDefinitionCode: scheduledCode, priority: null },
      { host, startTime: Date.now() - 5 * MINUTE },
      { host, startTime: old, restartTime: Date.now() - 3 * MINUTE },
      { host, state: 7, startTime: old },
      // A superstring of the host: never its work (exact match).
      { host: `1${host}`, startTime: old },
    ]);
    const [oldRunning, oldStop, scheduled, fresh, restarted, finished, superstring] = ids as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const registration = await registerDsMaster(session, {
      root: stack.info.registryRoot,
      host,
      startupTime: startup,
      version: '3.2',
    });
    try {
      const plan = await localJson<DsPlanJson>(['plan', '--host', host, '--type', 'master']);
      expect(plan.store).toBe('dolphinscheduler');
      expect(plan.liveness).toEqual({ registered: true, startupTime: startup, source: 'ZooKeeper' });
      expect(plan.eligible.map((e) => Number(e.id))).toEqual([oldRunning, oldStop, scheduled]);
      expect(plan.skipped.map((s) => [Number(s.id), s.reason])).toEqual([
        [fresh, 'new-incarnation'],
        [restarted, 'new-incarnation'],
      ]);
      for (const e of plan.eligible) expect(e.update.set).toEqual({ host: 'NULL' });
      expect(plan.eligible[2]?.command.command_param).toBe(
        `{"StartParams":"{\\"day\\":\\"2024-01-01\\"}","ProcessInstanceId":"${scheduled}","schedule_timezone":"Europe/Berlin"}`,
      );
      const human = await local(['plan', '--host', host, '--type', 'master', '--all']);
      expect(human.stdout).toMatch(/liveness \(ZooKeeper, as the failover reads it\): REGISTERED/);
      expect(human.stdout).toMatch(/would fail over\s+3 workflow instances/);
      expect(human.stdout).toMatch(/new-incarnation\s+2\s+F3/);
      expect(human.stdout).toMatch(
        new RegExp(`${oldRunning}\\s+RUNNING_EXECUTION\\s+\\S+ \\S+\\s+-\\s+host -> 'NULL'`),
      );
      expect(human.stdout).toMatch(/COMMAND ROWS inserted into t_ds_command/);
      expect(human.stdout).toMatch(
        new RegExp(
          `${oldStop}\\s+2\\s+9876543210\\s+3\\s+7\\s+0\\s+1\\s+2\\s+1\\s+\\{"ProcessInstanceId":${oldStop}\\}`,
        ),
      );

      const before = await instanceRows(db, ids);
      const failover = await local([
        'failover',
        '--host',
        host,
        '--type',
        'master',
        '--wait',
        '--timeout',
        '90',
      ]);
      expect(failover.stdout).toMatch(
        new RegExp(`done: lock failover/master/${host.replaceAll('.', '\\.')} released at fence 1`),
      );
      expect(failover.stdout).toMatch(/3 instances set to host 'NULL' with one t_ds_command row each/);

      // The rows: exactly the planned ones changed, and only their host.
      const after = await instanceRows(db, ids);
      for (const id of ids) {
        const planned = plan.eligible.some((e) => Number(e.id) === id);
        const expected = planned ? { ...before.get(id), host: 'NULL' } : before.get(id);
        expect(after.get(id), `instance ${id}`).toEqual(expected);
      }
      // The command rows: exactly the planned ones, column for column.
      const commands = await commandRowsOf(db, ids);
      expect([...commands.keys()].sort((a, b) => a - b)).toEqual([oldRunning, oldStop, scheduled]);
      for (const e of plan.eligible) {
        const rows = commands.get(Number(e.id)) ?? [];
        expect(rows).toHaveLength(1);
        const { id: _id, start_time, update_time, ...written } = rows[0] ?? {};
        expect(start_time).toEqual(update_time);
        expect(typeof start_time).toBe('string');
        const { start_time: _s, update_time: _u, ...planned } = e.command;
        expect(Object.keys(written).sort()).toEqual(Object.keys(planned).sort());
        for (const [column, value] of Object.entries(planned)) {
          expect(written[column] === null ? null : String(written[column]), `${e.id}.${column}`).toBe(
            value === null ? null : String(value),
          );
        }
      }
      expect(after.get(finished)?.host).toBe(host);
      expect(after.get(superstring)?.host).toBe(`1${host}`);
    } finally {
      await registration.deregister();
    }
  });

  it("sends a dead master's failover (type given, never mirrored); a worker's is only acknowledged (D4)", async () => {
    const master = newHost();
    const [id] = await seedDsInstances(db, zone, [{ host: master, startTime: Date.now() - 20 * MINUTE }]);
    const sent = await localJson<{ sent: { request: Record<string, unknown> } }>([
      'failover',
      '--host',
      master,
      '--type',
      'master',
    ]);
    expect(sent.sent.request).toMatchObject({ nodeType: 'master', host: master, source: 'operator' });
    await eventually('the instance failed over', async () => {
      const row = (await instanceRows(db, [id ?? 0])).get(id ?? 0);
      return row?.host === 'NULL' ? row : undefined;
    });
    expect((await commandRowsOf(db, [id ?? 0])).get(id ?? 0)).toHaveLength(1);

    const worker = await local(['failover', '--host', '10.60.99.9:1234', '--type', 'worker', '--wait']);
    expect(worker.stderr).toMatch(
      /a worker's removal is only acknowledged.*no row is written, nothing to wait for/,
    );
    expect(worker.stdout).toMatch(/sent a failover request for worker 10\.60\.99\.9:1234/);
  });
});

describe('zkf sweep on DolphinScheduler database', () => {
  it("requests an orphan host's failover and repairs SQL NULL at once and 'NULL' without a command after the grace", async () => {
    const orphan = newHost();
    const startTime = Date.now() - 20 * MINUTE;
    const [orphaned, sqlNull, noCommand] = (await seedDsInstances(db, zone, [
      { host: orphan, startTime },
      { host: null, startTime },
      { host: 'NULL', startTime },
    ])) as [number, number, number];
    interface SweepJson {
      ran: boolean;
      summary: {
        registry: string;
        orphans: Array<{ nodeType: string; host: string }>;
        repairs: {
          sqlNullHosts: number;
          withoutCommand: number;
          waiting: number;
          repaired: Array<{ itemId: string }>;
        };
      };
    }
    const first = await localJson<SweepJson>(['sweep', '--repair-grace', '2']);
    expect(first.summary.registry).toBe('listed');
    expect(first.summary.orphans).toContainEqual(
      expect.objectContaining({ nodeType: 'master', host: orphan }),
    );
    expect(first.summary.repairs.repaired.map((r) => Number(r.itemId))).toEqual([sqlNull]);
    expect(first.summary.repairs.waiting).toBe(1);
    await new Promise((r) => setTimeout(r, 2_100));
    const second = await local(['sweep', '--repair-grace', '2']);
    expect(second.stdout).toMatch(/executing hosts: one pass over t_ds_process_instance/);
    expect(second.stdout).toMatch(new RegExp(`instance ${noCommand} -> command \\d+`));

    await eventually('the orphan failed over', async () => {
      const row = (await instanceRows(db, [orphaned])).get(orphaned);
      return row?.host === 'NULL' ? row : undefined;
    });
    const rows = await instanceRows(db, [sqlNull, noCommand]);
    expect(rows.get(sqlNull)?.host).toBe('NULL');
    const commands = await commandRowsOf(db, [orphaned, sqlNull, noCommand]);
    for (const id of [orphaned, sqlNull, noCommand])
      expect(commands.get(id), `instance ${id}`).toHaveLength(1);
    // A third sweep writes nothing more.
    const third = await localJson<SweepJson>(['sweep', '--repair-grace', '2']);
    expect(third.summary.repairs.repaired).toEqual([]);
  });
});

describe('zkf store flags', () => {
  it('on AWS: --store with --db-url and --ds-time-zone needs nothing from the stage', async () => {
    const env = { ...process.env, ...stack.awsEnv() };
    const run = await zkf(
      [
        '--stage',
        'local',
        '--region',
        stack.info.region,
        '--store',
        'postgresql',
        '--db-url',
        stack.database?.url ?? '',
        '--ds-time-zone',
        zone,
        'status',
        '--json',
      ],
      env,
    );
    expect(run.code, run.stderr).toBe(0);
    const status = JSON.parse(run.stdout) as {
      target: { mode: string; store: { kind: string; source: string; database: string } };
      work: { instances: unknown[] };
    };
    expect(status.target.mode).toBe('aws');
    expect(status.target.store).toMatchObject({ kind: 'dolphinscheduler', source: '--db-url' });
    expect(status.target.store.database).not.toContain(new URL(stack.database?.url ?? '').password);
    expect(status.work.instances.length).toBeGreaterThan(0);
  });

  it("reads the stage's settings from its failover function's configuration", async () => {
    const environment = {
      STORE: 'dolphinscheduler',
      DS_DIALECT: 'postgresql',
      DS_DATABASE_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ds-AbCdEf',
      DS_TIME_ZONE: zone,
      DS_VERSION: '3.1',
      REGISTRY_ROOT: '/ds',
      REGISTRY_LAYOUT: 'ds-3',
    };
    const asked: string[] = [];
    const context = (env: Record<string, string>) => ({
      mode: 'aws' as const,
      service: 'zk-failover',
      stage: 'prod',
      region: async () => 'eu-west-1',
      readEnvironment: async (name: string) => {
        asked.push(name);
        return env;
      },
    });
    const target = await resolveStoreTarget(new Map([['store', 'postgresql']]), context(environment));
    try {
      expect(asked).toEqual(['zk-failover-prod-failover']);
      expect(target).toMatchObject({
        kind: 'dolphinscheduler',
        dialect: 'postgresql',
        timeZone: zone,
        version: '3.1',
        location: `secret ${environment.DS_DATABASE_SECRET_ARN}`,
        registry: { root: '/ds', layout: 'ds-3' },
      });
    } finally {
      await target.close();
    }
    // Flags override single settings; a stage on another store or dialect is refused.
    const overridden = await resolveStoreTarget(
      new Map([
        ['store', 'postgresql'],
        ['ds-version', '3.2'],
      ]),
      context(environment),
    );
    expect(overridden).toMatchObject({ version: '3.2', timeZone: zone });
    await overridden.close();
    await expect(resolveStoreTarget(new Map([['store', 'mysql']]), context(environment))).rejects.toThrow(
      UsageError,
    );
    await expect(
      resolveStoreTarget(new Map([['store', 'postgresql']]), context({ STORE: 'dynamodb' })),
    ).rejects.toThrow(/runs on the dynamodb store/);
    // Without --store, AWS stays on the DynamoDB store and reads nothing from the stage.
    const plain = await resolveStoreTarget(new Map(), context(environment));
    expect(plain.kind).toBe('dynamodb');
    expect(asked).toHaveLength(4);
  });

  it.each([
    [['--store', 'oracle'], /--store must be one of dynamodb, postgresql, mysql, got "oracle"/],
    [['--db-url', 'http://127.0.0.1/ds'], /unsupported scheme "http:"/],
    [['--ds-time-zone', 'Mars/Olympus'], /--ds-time-zone: unknown time zone "Mars\/Olympus"/],
    [['--ds-version', '4.0'], /--ds-version must be 3\.1 or 3\.2/],
    [
      ['--store', 'mysql'],
      /--store mysql: the READY line is of the postgresql store; give the database with --db-url/,
    ],
    [
      ['--store', 'mysql', '--db-url', 'postgresql://ds:s3cret@127.0.0.1:1/ds'],
      /--db-url is a postgresql database .*but --store is mysql/,
    ],
    [['--store', 'dynamodb', '--ds-version', '3.1'], /--ds-version: the store is dynamodb/],
  ])('zkf --ready R %j status: a clear message and exit code 2', async (flags, message) => {
    const run = await zkf(['--ready', readyFile, ...flags, 'status', '--no-work']);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toContain('s3cret');
    expect(run.stdout).toBe('');
  });

  it('refuses --repair-grace on the DynamoDB store and DolphinScheduler flags in AWS without --store (exit 2)', async () => {
    const dynamoReady = JSON.stringify({ ...stack.info, store: 'dynamodb', database: undefined });
    const [grace, aws] = await Promise.all([
      zkf(['--ready', dynamoReady, 'sweep', '--repair-grace', '5']),
      zkf(['--stage', 'prod', '--ds-time-zone', zone, 'status']),
    ]);
    expect(grace.code).toBe(2);
    expect(grace.stderr).toMatch(/--repair-grace is for DolphinScheduler's database/);
    expect(aws.code).toBe(2);
    expect(aws.stderr).toMatch(
      /--ds-time-zone: in AWS the DolphinScheduler store is chosen with --store postgresql\|mysql/,
    );
  });
});
