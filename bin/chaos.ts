// The chaos suite (docs/chaos.md): `npm run chaos -- --runs N --seed S [--verbose]`.
// Each run is drawn from its seed (seed S, S+1, ...): a random cluster and workload, a random mix of
// crashes, duplicates, races, lease expiries, ZooKeeper and AWS faults against the real pipeline on the
// local stack; then the invariants are checked. Exit code 1 when any run violates one.
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { projectRoot } from '../lib/local/service.ts';
import { inFlightWrite } from '../test/chaos/ds-chaos-cases.ts';
import { DsChaosEnvironment } from '../test/chaos/ds-environment.ts';
import { formatDsPlan, formatDsRunLine, formatDsViolationReport } from '../test/chaos/ds-report.ts';
import { executeDsRun } from '../test/chaos/ds-run.ts';
import { dsFaultKindsOf, planDsRun } from '../test/chaos/ds-scenario.ts';
import { ChaosEnvironment } from '../test/chaos/environment.ts';
import { findMutations, mutations, prepareMutant, removeMutant } from '../test/chaos/mutations.ts';
import { formatPlan, formatRunLine, formatViolationReport } from '../test/chaos/report.ts';
import { executeRun } from '../test/chaos/run.ts';
import { faultKindsOf, planRun } from '../test/chaos/scenario.ts';

const stores = ['dynamodb', 'postgresql', 'mysql'] as const;
type Store = (typeof stores)[number];

const usage = `usage: node --import tsx bin/chaos.ts [--store S] [--runs N] [--seed S] [--verbose] [--stop-on-violation]
  --store S             dynamodb (default: the DynamoDB store), postgresql or mysql (the DolphinScheduler
                        store on a real PostgreSQL or MariaDB, beside simulated DolphinScheduler masters)
  --runs N              number of runs (default 10)
  --seed S              seed of the first run; run i uses S+i (default: derived from the clock, printed)
  --seeds A,B,...       exactly these seeds (instead of --runs/--seed)
  --verbose             print every run's plan and events, and log lines on a violation
  --stop-on-violation   stop after the first run with a violation
  --settle-ms MS        longest wait for quiescence after the faults stop (default 75000)
  --plan                only print the plans of the seeds, run nothing
  --safety-only         do not count the F4 id-format check (DolphinScheduler store: the command's fields as
                        DolphinScheduler writes them), only safety (duplicate, lost, touched work):
                        what the deterministic-id mutant is judged by
  --in-flight WHAT      DolphinScheduler store only: instead of randomized runs, --runs times the directed
                        case of a write in flight (waiting for a row lock) when the function loses its hold:
                        WHAT = database (its connection is cut) or zookeeper (its session is lost); then a
                        DolphinScheduler master fails the host over itself. Exit 1 on a duplicate command
  --skip-kind K[,K]     DolphinScheduler store only: leave out the seeds whose plans include these fault kinds
                        (--runs N then takes the first N seeds from --seed on that do not)
  --mutant NAME[+NAME]  run the suite against a copy of the code with safety measures reverted; stops at
                        the first violation. DynamoDB store: ${mutations
                          .filter((m) => m.store === 'dynamodb')
                          .map((m) => m.name)
                          .join(', ')};
                        DolphinScheduler store: ${mutations
                          .filter((m) => m.store === 'dolphinscheduler')
                          .map((m) => m.name)
                          .join(', ')}`;

function parse() {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '10' },
      seed: { type: 'string' },
      seeds: { type: 'string' },
      verbose: { type: 'boolean', default: false },
      'stop-on-violation': { type: 'boolean', default: false },
      'settle-ms': { type: 'string', default: '75000' },
      plan: { type: 'boolean', default: false },
      mutant: { type: 'string' },
      store: { type: 'string', default: 'dynamodb' },
      'in-flight': { type: 'string' },
      'skip-kind': { type: 'string' },
      'safety-only': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const runs = Number(values.runs);
  const seed = values.seed === undefined ? Date.now() % 1_000_000_000 : Number(values.seed);
  const settleMs = Number(values['settle-ms']);
  if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    console.error(usage);
    process.exit(2);
  }
  if (!Number.isInteger(settleMs) || settleMs < 1_000) {
    console.error(usage);
    process.exit(2);
  }
  const store = values.store as Store;
  const inFlight = values['in-flight'];
  if (
    !stores.includes(store) ||
    (inFlight !== undefined && (store === 'dynamodb' || !['database', 'zookeeper'].includes(inFlight)))
  ) {
    console.error(usage);
    process.exit(2);
  }
  const list = values.seeds?.split(',').map((v) => Number(v.trim()));
  if (
    list !== undefined &&
    (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 0 || n > 0xffffffff))
  ) {
    console.error(usage);
    process.exit(2);
  }
  return {
    store,
    inFlight: inFlight as 'database' | 'zookeeper' | undefined,
    skipKinds: values['skip-kind']?.split(',').map((k) => k.trim()) ?? [],
    runs,
    seed,
    list,
    settleMs,
    verbose: values.verbose,
    stopOnViolation: values['stop-on-violation'],
    planOnly: values.plan,
    mutant: values.mutant,
    safetyOnly: values['safety-only'],
  };
}

/** Runs this command, without --mutant, in a mutated copy of the tree; a violation kills the mutant. */
async function runMutant(name: string, store: Store): Promise<number> {
  let reverts: string;
  try {
    const chosen = findMutations(name);
    const suite = store === 'dynamodb' ? 'dynamodb' : 'dolphinscheduler';
    const elsewhere = chosen.filter((m) => m.store !== suite);
    if (elsewhere.length > 0) {
      console.error(
        `${elsewhere.map((m) => m.name).join(', ')} revert(s) a measure of the ${elsewhere[0]?.store} store: ` +
          `run with ${elsewhere[0]?.store === 'dynamodb' ? '--store dynamodb' : '--store postgresql or --store mysql'}`,
      );
      return 2;
    }
    reverts = chosen.map((m) => m.reverts).join('; and ');
  } catch (error: unknown) {
    console.error(error instanceof Error ? error.message : String(error));
    return 2;
  }
  const argv = process.argv.slice(2);
  const at = argv.findIndex((a) => a === '--mutant' || a.startsWith('--mutant='));
  argv.splice(at, argv[at]?.includes('=') ? 1 : 2);
  if (!argv.includes('--stop-on-violation')) argv.push('--stop-on-violation');
  const dir = prepareMutant(projectRoot, name);
  console.log(`mutant ${name}: reverts ${reverts}`);
  console.log(`mutant ${name}: mutated copy in ${dir}`);
  try {
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'bin/chaos.ts', ...argv], {
        cwd: dir,
        stdio: 'inherit',
      });
      const forward = () => child.kill('SIGINT');
      process.once('SIGINT', forward);
      child.once('exit', (c) => {
        process.removeListener('SIGINT', forward);
        resolve(c ?? 2);
      });
    });
    if (code === 1) console.log(`\nmutant ${name}: KILLED (the chaos suite reported a violation)`);
    else if (code === 0) console.log(`\nmutant ${name}: SURVIVED (no violation in these runs)`);
    else console.log(`\nmutant ${name}: the run failed (exit ${code})`);
    return code === 1 ? 0 : 1;
  } finally {
    removeMutant(dir);
  }
}

async function main(): Promise<number> {
  const args = parse();
  if (args.mutant !== undefined) return runMutant(args.mutant, args.store);
  if (args.store !== 'dynamodb') return mainDolphinScheduler(args);
  const seeds = args.list ?? Array.from({ length: args.runs }, (_, i) => (args.seed + i) >>> 0);
  if (args.planOnly) {
    for (const seed of seeds) {
      const plan = planRun(seed);
      console.log(`seed ${seed}: ${faultKindsOf(plan).join(', ')}`);
      console.log(formatPlan(plan, {}));
    }
    return 0;
  }
  console.log(
    `chaos: ${args.runs} run(s), seeds ${args.seed}..${args.seed + args.runs - 1}; starting the local stack`,
  );
  const started = Date.now();
  const env = await ChaosEnvironment.start();
  const stop = stopOnce(env);
  const failed: number[] = [];
  const coverage = new Map<string, number>();
  let duplicateDeliveries = 0;
  let eligible = 0;
  try {
    console.log(`local stack ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const [index, seed] of seeds.entries()) {
      const plan = planRun(seed);
      for (const kind of faultKindsOf(plan)) coverage.set(kind, (coverage.get(kind) ?? 0) + 1);
      if (args.verbose) {
        console.log(`--- seed ${seed}: ${faultKindsOf(plan).join(', ')}`);
      }
      const full = await executeRun(env, plan, {
        slot: index,
        settleMs: args.settleMs,
        ...(args.verbose ? { trace: (line: string) => console.log(line) } : {}),
      });
      const ignored = args.safetyOnly ? full.violations.filter((v) => v.invariant.includes('(F4)')) : [];
      const report = { ...full, violations: full.violations.filter((v) => !ignored.includes(v)) };
      if (ignored.length > 0) console.log(`  (${ignored.length} command id format deviation(s) not counted)`);
      duplicateDeliveries += report.summary?.duplicateDeliveries ?? 0;
      eligible += report.summary?.eligible ?? 0;
      console.log(formatRunLine(report, index, seeds.length));
      if (args.verbose && report.violations.length === 0) {
        for (const [host, lines] of Object.entries(report.diagnostics)) {
          console.log(`  ${host}:`);
          for (const line of lines) console.log(`    ${line}`);
        }
      }
      if (report.violations.length > 0) {
        failed.push(seed);
        console.log(formatViolationReport(report, args.verbose));
        if (args.stopOnViolation) break;
      }
    }
  } finally {
    await stop();
  }
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  console.log(`\nchaos done in ${minutes} min: ${seeds.length} run(s), ${failed.length} with violations`);
  console.log(
    `items failed over: ${eligible}; duplicate deliveries on the commands queue: ${duplicateDeliveries}`,
  );
  console.log(
    `fault kinds exercised (runs): ${[...coverage.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
  );
  if (failed.length > 0) {
    console.log(`failing seeds: ${failed.join(' ')}`);
    console.log(`reproduce one: node --import tsx bin/chaos.ts --runs 1 --seed ${failed[0]} --verbose`);
    return 1;
  }
  return 0;
}

/** The DolphinScheduler store's suite (test/chaos/ds-*.ts) on one dialect. */
async function mainDolphinScheduler(args: ReturnType<typeof parse>): Promise<number> {
  const dialect = args.store === 'mysql' ? 'mysql' : 'postgresql';
  if (args.inFlight !== undefined) return inFlightCases(dialect, args.inFlight, args.runs);
  const wanted = (seed: number) => !dsFaultKindsOf(planDsRun(seed)).some((k) => args.skipKinds.includes(k));
  const seeds = args.list?.filter(wanted) ?? [];
  for (let seed = args.seed; args.list === undefined && seeds.length < args.runs; seed = (seed + 1) >>> 0) {
    if (wanted(seed)) seeds.push(seed);
  }
  if (args.skipKinds.length > 0)
    console.log(`leaving out the seeds whose plans include ${args.skipKinds.join(', ')}`);
  if (args.planOnly) {
    for (const seed of seeds) {
      const plan = planDsRun(seed);
      console.log(`seed ${seed}: ${dsFaultKindsOf(plan).join(', ')}`);
      console.log(formatDsPlan(plan, {}));
    }
    return 0;
  }
  console.log(
    `chaos on DolphinScheduler's database (${dialect}): ${seeds.length} run(s), seeds ${seeds[0]}..${seeds[seeds.length - 1]}; starting the local stack`,
  );
  const started = Date.now();
  const env = await DsChaosEnvironment.start(dialect);
  const stop = stopOnce(env);
  const failed: number[] = [];
  const findings: number[] = [];
  const coverage = new Map<string, number>();
  const totals = { eligible: 0, byFunction: 0, byDolphinScheduler: 0, consumed: 0, pending: 0 };
  try {
    console.log(`local stack ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const [index, seed] of seeds.entries()) {
      const plan = planDsRun(seed);
      for (const kind of dsFaultKindsOf(plan)) coverage.set(kind, (coverage.get(kind) ?? 0) + 1);
      if (args.verbose) console.log(`--- seed ${seed}: ${dsFaultKindsOf(plan).join(', ')}`);
      const report = await executeDsRun(env, plan, {
        slot: index,
        settleMs: args.settleMs,
        ...(args.verbose ? { trace: (line: string) => console.log(line) } : {}),
      });
      // --safety-only: the command's format (its fields as DolphinScheduler writes them) is not counted.
      if (args.safetyOnly) {
        const format = report.violations.filter((v) =>
          v.invariant.startsWith('the recovery command is the one'),
        );
        if (format.length > 0) console.log(`  (${format.length} command format deviation(s) not counted)`);
        report.violations.splice(
          0,
          report.violations.length,
          ...report.violations.filter((v) => !format.includes(v)),
        );
      }
      for (const key of Object.keys(totals) as Array<keyof typeof totals>)
        totals[key] += report.summary?.[key] ?? 0;
      console.log(formatDsRunLine(report, index, seeds.length));
      if (args.verbose && report.violations.length === 0) {
        for (const [subject, lines] of Object.entries(report.diagnostics)) {
          console.log(`  ${subject}:`);
          for (const line of lines) console.log(`    ${line}`);
        }
      }
      if (report.dolphinScheduler.length > 0) {
        findings.push(seed);
        console.log(formatDsViolationReport(report, false, report.dolphinScheduler));
      }
      if (report.violations.length > 0) {
        failed.push(seed);
        console.log(formatDsViolationReport(report, args.verbose));
        if (args.stopOnViolation) break;
      }
    }
  } finally {
    await stop();
  }
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  console.log(
    `\nchaos (${dialect}) done in ${minutes} min: ${seeds.length} run(s), ${failed.length} with violations`,
  );
  console.log(
    `eligible instances: ${totals.eligible} (failed over by the function ${totals.byFunction}, by DolphinScheduler's masters ${totals.byDolphinScheduler}; commands consumed ${totals.consumed}, pending ${totals.pending})`,
  );
  if (findings.length > 0)
    console.log(`runs with findings of DolphinScheduler's own routine: ${findings.join(' ')}`);
  console.log(
    `fault kinds exercised (runs): ${[...coverage.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
  );
  if (failed.length > 0) {
    console.log(`failing seeds: ${failed.join(' ')}`);
    console.log(
      `reproduce one: node --import tsx bin/chaos.ts --store ${dialect} --runs 1 --seed ${failed[0]} --verbose`,
    );
    return 1;
  }
  return 0;
}

/** The directed case of a write in flight when the function loses its hold (docs/chaos.md, "Bugs found"). */
async function inFlightCases(
  dialect: 'postgresql' | 'mysql',
  what: 'database' | 'zookeeper',
  runs: number,
): Promise<number> {
  const env = await DsChaosEnvironment.start(dialect);
  let duplicates = 0;
  try {
    for (let i = 0; i < runs; i += 1) {
      const out = await inFlightWrite(env, dialect, what, async () => {
        if (what === 'database') env.dbProxy.dropConnections();
        else env.zkProxy.dropConnections();
      });
      const wrong = out.writers.filter((w) => w.length !== 1);
      duplicates += wrong.length;
      console.log(
        `in-flight ${what} ${dialect} ${i + 1}/${runs}: ${wrong.length === 0 ? 'ok' : 'VIOLATION'} ` +
          `(record ${out.outcome}; commands per instance by writer: ` +
          `${out.writers.map((w) => `[${w.join(', ')}]`).join(' ')})`,
      );
    }
  } finally {
    await env.stop();
  }
  return duplicates > 0 ? 1 : 0;
}

/** Stops the chaos stack once: when the runs end, or on Ctrl-C / SIGTERM (then exits 130). */
function stopOnce(env: { stop(): Promise<void> }): () => Promise<void> {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await env.stop();
  };
  const onSignal = () => {
    console.log('\ninterrupted: stopping the local stack');
    void stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return stop;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(2);
  },
);
