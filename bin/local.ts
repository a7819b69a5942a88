// `npm run local`: the local stack (ZooKeeper, DynamoDB Local, SQS emulator, and DolphinScheduler's
// database when asked) and all three functions on the local Lambda runtime. Prints one `READY <json>`
// line on stdout, logs on stderr, and stops everything on SIGINT/SIGTERM.
import { startLocalRuntime } from '../lib/local/runtime.ts';
import { type DolphinSchedulerStoreOptions, type StoreKind, startLocalStack } from '../lib/local/stack.ts';
import { StoreFlagError, StoreFlags, storeFlagsUsage } from '../lib/local/store-flags.ts';

const usage = `Usage: npm run local -- [options]        (or: node --import tsx bin/local.ts [options])

Starts the local stack (ZooKeeper, DynamoDB Local, the SQS emulator) and the three functions on the local
Lambda runtime, prints one line READY {...json...} on stdout (logs go to stderr), and runs until
SIGINT/SIGTERM, which stops every process it started.

Options:
${storeFlagsUsage}
  --quiet                no logs on stderr
  -h, --help             this help

With a database, the READY line also carries "store", "database" (the URL), "dsTimeZone" and "dsVersion"
(what zkf needs to read it as the functions do), and the functions get STORE=dolphinscheduler,
DS_DATABASE_URL, DS_TIME_ZONE and DS_VERSION.`;

class LocalUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalUsageError';
  }
}

interface LocalOptions {
  quiet: boolean;
  store: StoreKind;
  dolphinScheduler?: DolphinSchedulerStoreOptions;
}

/** Parses `argv` (without node and the script); throws LocalUsageError on anything it does not know. */
function parseLocalArgs(argv: readonly string[]): LocalOptions | 'help' {
  const seen = new Set<string>();
  let quiet = false;
  const storeFlags = new StoreFlags();
  try {
    for (let i = 0; i < argv.length; i += 1) {
      const arg = argv[i] ?? '';
      const [flag = '', inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg];
      if (flag === '-h' || flag === '--help') return 'help';
      if (seen.has(flag)) throw new LocalUsageError(`${flag} given twice`);
      seen.add(flag);
      const value = (): string => {
        if (inline !== undefined) {
          if (inline === '') throw new LocalUsageError(`${flag} needs a value`);
          return inline;
        }
        const next = argv[i + 1];
        if (next === undefined || next === '' || next.startsWith('--')) {
          throw new LocalUsageError(`${flag} needs a value`);
        }
        i += 1;
        return next;
      };
      if (flag === '--quiet') {
        if (inline !== undefined) throw new LocalUsageError('--quiet takes no value');
        quiet = true;
      } else if (!storeFlags.take(flag, value)) {
        throw new LocalUsageError(
          arg.startsWith('-') ? `unknown option ${flag}` : `unexpected argument ${JSON.stringify(arg)}`,
        );
      }
    }
    return { quiet, ...storeFlags.choice() };
  } catch (error: unknown) {
    if (error instanceof StoreFlagError) throw new LocalUsageError(error.message);
    throw error;
  }
}

let options: LocalOptions | 'help';
try {
  options = parseLocalArgs(process.argv.slice(2));
} catch (error: unknown) {
  if (!(error instanceof LocalUsageError)) throw error;
  process.stderr.write(`local: ${error.message}\n(npm run local -- --help lists the options)\n`);
  process.exit(2);
}
if (options === 'help') {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}

const { quiet } = options;
const log = (line: string) => {
  if (!quiet) process.stderr.write(`${line}\n`);
};

let stack: Awaited<ReturnType<typeof startLocalStack>>;
try {
  stack = await startLocalStack(
    options.dolphinScheduler ? { dolphinScheduler: options.dolphinScheduler } : {},
  );
} catch (error: unknown) {
  process.stderr.write(`local: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
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

// DolphinScheduler's time zone and release go with its database, as the functions have them: zkf reads
// its times and locks with them.
const functionEnv = stack.functionEnv('failover');
const ready =
  stack.database === undefined
    ? stack.info
    : { ...stack.info, dsTimeZone: functionEnv.DS_TIME_ZONE, dsVersion: functionEnv.DS_VERSION };
process.stdout.write(`READY ${JSON.stringify(ready)}\n`);
