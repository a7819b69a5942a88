// `npm start`: the whole pipeline on real parts, in under a minute (docs/demo.md). Starts the local stack
// and the three functions, a simulated DolphinScheduler cluster of real ZooKeeper sessions, kills a master
// and a worker, shows the failover live, checks the invariants and exits 0 only if they all hold.
import { DemoUsageError, demoUsage, parseDemoArgs } from '../lib/sim/options.ts';
import { runDemo } from '../lib/sim/scenario.ts';

let options: ReturnType<typeof parseDemoArgs>;
try {
  options = parseDemoArgs(process.argv.slice(2), process.env, process.stdout.isTTY === true);
} catch (error: unknown) {
  if (!(error instanceof DemoUsageError)) throw error;
  process.stderr.write(`demo: ${error.message}\n\n${demoUsage}\n`);
  process.exit(2);
}
if (options === 'help') {
  process.stdout.write(`${demoUsage}\n`);
  process.exit(0);
}

const controller = new AbortController();
let interrupted = false;
const stop = (why: string) => {
  if (interrupted) return;
  interrupted = true;
  process.stderr.write(`\ndemo: ${why}, stopping everything ...\n`);
  controller.abort();
  // Whatever hangs, do not linger: every child is recorded and killed by the next start anyway.
  setTimeout(() => process.exit(130), 25_000).unref();
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
// If whatever started us dies without signalling (a SIGKILLed npm), do not linger.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop('parent exited');
}, 1_000).unref();

try {
  const code = await runDemo(options, {
    out: process.stdout,
    err: process.stderr,
    columns: () => process.stdout.columns ?? 100,
    signal: controller.signal,
  });
  // After Ctrl-C during the scenario: 130; with --keep, Ctrl-C ends a finished run with its verdict.
  process.exit(code);
} catch (error: unknown) {
  process.stderr.write(
    `demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
}
