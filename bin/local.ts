// `npm run local`: the local stack (ZooKeeper, DynamoDB Local, SQS emulator, and DolphinScheduler's
// database when asked) and all three functions on the local Lambda runtime. Prints one `READY <json>`
// line on stdout, logs on stderr, and stops everything on SIGINT/SIGTERM.
import { type Dialect, dialectOfUrl, dialects, redactUrl } from '../lib/local/database.ts';
import { startLocalRuntime } from '../lib/local/runtime.ts';
import { type DolphinSchedulerStoreOptions, type StoreKind, startLocalStack } from '../lib/local/stack.ts';

const usage = `Usage: npm run local -- [options]        (or: node --import tsx bin/local.ts [options])

Starts the local stack (ZooKeeper, DynamoDB Local, the SQS emulator) and the three functions on the local
Lambda runtime, prints one line READY {...json...} on stdout (logs go to stderr), and runs until
SIGINT/SIGTERM, which stops every process it started.

Options:
  --store STORE          where the functions keep the work they fail over:
                           dynamodb     the DynamoDB tables of serverless.yml (default)
                           postgresql   DolphinScheduler's tables in a local PostgreSQL started here
                           mysql        DolphinScheduler's tables in a local MariaDB started here
  --db-url URL           use an existing DolphinScheduler database instead of starting one
                         (postgresql://user:pass@host:port/db or mysql://...; its t_ds_* tables must exist)
  --ds-time-zone ZONE    time zone of DolphinScheduler's JVM, in which its times are stored (default UTC)
  --ds-version 3.1|3.2   DolphinScheduler release of the cluster (default 3.2)
  --quiet                no logs on stderr
  -h, --help             this help

With a database, the READY line also carries "store" and "database" (the URL), and the functions get
STORE=dolphinscheduler, DS_DATABASE_URL, DS_TIME_ZONE and DS_VERSION.`;

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

const storeKinds: readonly StoreKind[] = ['dynamodb', ...dialects];
const dsVersions = ['3.1', '3.2'] as const;

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Parses `argv` (without node and the script); throws LocalUsageError on anything it does not know. */
function parseLocalArgs(argv: readonly string[]): LocalOptions | 'help' {
  const seen = new Set<string>();
  let quiet = false;
  let store: StoreKind | undefined;
  let dbUrl: string | undefined;
  let timeZone: string | undefined;
  let version: DolphinSchedulerStoreOptions['version'];
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
    switch (flag) {
      case '--quiet':
        if (inline !== undefined) throw new LocalUsageError('--quiet takes no value');
        quiet = true;
        break;
      case '--store': {
        const raw = value();
        if (!storeKinds.includes(raw as StoreKind)) {
          throw new LocalUsageError(
            `--store must be one of ${storeKinds.join(', ')}, got ${JSON.stringify(raw)}`,
          );
        }
        store = raw as StoreKind;
        break;
      }
      case '--db-url': {
        const raw = value();
        try {
          dialectOfUrl(raw);
        } catch (error: unknown) {
          throw new LocalUsageError(`--db-url: ${error instanceof Error ? error.message : String(error)}`);
        }
        dbUrl = raw;
        break;
      }
      case '--ds-time-zone': {
        const raw = value();
        if (!isTimeZone(raw)) {
          throw new LocalUsageError(
            `--ds-time-zone: unknown time zone ${JSON.stringify(raw)} (e.g. UTC, Asia/Shanghai)`,
          );
        }
        timeZone = raw;
        break;
      }
      case '--ds-version': {
        const raw = value();
        const known = dsVersions.find((v) => v === raw);
        if (!known) {
          throw new LocalUsageError(
            `--ds-version must be ${dsVersions.join(' or ')}, got ${JSON.stringify(raw)}`,
          );
        }
        version = known;
        break;
      }
      default:
        throw new LocalUsageError(
          arg.startsWith('-') ? `unknown option ${flag}` : `unexpected argument ${JSON.stringify(arg)}`,
        );
    }
  }
  if (dbUrl !== undefined) {
    const dialect: Dialect = dialectOfUrl(dbUrl);
    if (store !== undefined && store !== dialect) {
      throw new LocalUsageError(
        `--db-url is a ${dialect} database (${redactUrl(dbUrl)}), but --store is ${store}`,
      );
    }
    store = dialect;
  }
  const chosen = store ?? 'dynamodb';
  if (chosen === 'dynamodb') {
    for (const flag of ['--ds-time-zone', '--ds-version']) {
      if (seen.has(flag))
        throw new LocalUsageError(
          `${flag} needs a DolphinScheduler database (--store postgresql|mysql or --db-url)`,
        );
    }
    return { quiet, store: chosen };
  }
  return {
    quiet,
    store: chosen,
    dolphinScheduler: {
      database: dbUrl !== undefined ? { url: dbUrl } : { start: chosen },
      ...(timeZone !== undefined ? { timeZone } : {}),
      ...(version !== undefined ? { version } : {}),
    },
  };
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

process.stdout.write(`READY ${JSON.stringify(stack.info)}\n`);
