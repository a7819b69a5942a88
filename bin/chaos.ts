// The chaos suite (docs/chaos.md): `npm run chaos -- --runs N --seed S [--verbose]`.
// Each run is drawn from its seed (seed S, S+1, ...): a random cluster and workload, a random mix of
// crashes, duplicates, races, lease expiries, ZooKeeper and AWS faults against the real pipeline on the
// local stack; then the invariants are checked. Exit code 1 when any run violates one.
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { projectRoot } from '../lib/local/service.ts';
import { ChaosEnvironment } from '../test/chaos/environment.ts';
import { findMutations, mutations, prepareMutant, removeMutant } from '../test/chaos/mutations.ts';
import { formatPlan, formatRunLine, formatViolationReport } from '../test/chaos/report.ts';
import { executeRun } from '../test/chaos/run.ts';
import { faultKindsOf, planRun } from '../test/chaos/scenario.ts';

const usage = `usage: node --import tsx bin/chaos.ts [--runs N] [--seed S] [--verbose] [--stop-on-violation]
  --runs N              number of runs (default 10)
  --seed S              seed of the first run; run i uses S+i (default: derived from the clock, printed)
  --seeds A,B,...       exactly these seeds (instead of --runs/--seed)
  --verbose             print every run's plan and events, and log lines on a violation
  --stop-on-violation   stop after the first run with a violation
  --settle-ms MS        longest wait for quiescence after the faults stop (default 75000)
  --plan                only print the plans of the seeds, run nothing
  --safety-only         do not count the F4 id-format check, only safety (duplicate, lost, touched work):
                        what the deterministic-id mutant is judged by
  --mutant NAME[+NAME]  run the suite against a copy of the code with safety measures reverted
                        (${mutations.map((m) => m.name).join(', ')}); stops at the first violation`;

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
  const list = values.seeds?.split(',').map((v) => Number(v.trim()));
  if (
    list !== undefined &&
    (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 0 || n > 0xffffffff))
  ) {
    console.error(usage);
    process.exit(2);
  }
  return {
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
async function runMutant(name: string): Promise<number> {
  let reverts: string;
  try {
    reverts = findMutations(name)
      .map((m) => m.reverts)
      .join('; and ');
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
  if (args.mutant !== undefined) return runMutant(args.mutant);
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

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(2);
  },
);
