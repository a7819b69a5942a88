// `npm run local`: the local stack (ZooKeeper, DynamoDB Local, SQS emulator) and all three
// functions on the local Lambda runtime. Prints one `READY <json>` line on stdout, logs on stderr,
// and stops everything on SIGINT/SIGTERM.
import { startLocalRuntime } from '../lib/local/runtime.ts';
import { startLocalStack } from '../lib/local/stack.ts';

const quiet = process.argv.includes('--quiet');
const log = (line: string) => {
  if (!quiet) process.stderr.write(`${line}\n`);
};

const stack = await startLocalStack();
const runtime = startLocalRuntime(stack, {
  onLog: (fn, line) => log(`[${fn}] ${line}`),
  onInvocation: (r) => {
    if (r.outcome !== 'ok') log(`[${r.functionName}] ${r.trigger} invocation ${r.outcome}: ${r.error ?? ''}`);
  },
});

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log(`local: ${signal}, stopping`);
  const force = setTimeout(() => process.exit(1), 20_000);
  force.unref();
  await runtime.stop();
  await stack.stop();
  process.exit(0);
};
process.on('SIGINT', () => void shutdown('SIGINT'));
// If whatever started us dies without signalling (for example a SIGKILLed npm), do not linger.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void shutdown('parent exited');
}, 1_000).unref();
process.on('SIGTERM', () => void shutdown('SIGTERM'));

process.stdout.write(`READY ${JSON.stringify(stack.info)}\n`);
