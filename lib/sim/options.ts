// Flags of `npm start` (bin/demo.ts) and the simulated cluster's topology: which servers exist, their
// registered names, and which of them the scenario kills. The store flags are `npm run local`'s
// (lib/local/store-flags.ts).
import type { Dialect } from '../local/database.ts';
import { type DsVersion, StoreFlagError, StoreFlags, storeFlagsUsage } from '../local/store-flags.ts';
import type { NodeType } from '../messages.ts';

export interface SimServer {
  /** `master-1`, `worker-3`: what the operator types in `--kill`. */
  readonly name: string;
  readonly nodeType: NodeType;
  /** Exact registered `ip:port` (simulated addresses: nothing listens there). */
  readonly host: string;
  readonly index: number;
}

export interface DemoOptions {
  readonly masters: number;
  readonly workers: number;
  readonly instances: number;
  /** Names of the servers to SIGKILL, in order. Empty = no kill. */
  readonly kill: readonly string[];
  readonly keep: boolean;
  /** Requested ZooKeeper session timeout of the simulated servers. */
  readonly sessionTimeoutMs: number;
  /** Give up waiting for the failovers this long after the first kill. */
  readonly settleTimeoutMs: number;
  /** Redrawn terminal view (default: when stdout is a TTY). */
  readonly live: boolean;
  readonly color: boolean;
  /** The functions' and servers' own logs on stderr. */
  readonly verbose: boolean;
  /**
   * On DolphinScheduler's own database (`--store postgresql|mysql`), started by the demo; absent: the
   * DynamoDB store.
   */
  readonly dolphinScheduler?: { dialect: Dialect; timeZone: string; version: DsVersion };
  /** DolphinScheduler store: finished instances of former servers seeded before the live work. */
  readonly history: number;
}

export class DemoUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DemoUsageError';
  }
}

export const demoUsage = `Usage: npm start -- [options]        (or: node --import tsx bin/demo.ts [options])

Runs the whole failover pipeline locally on real parts: ZooKeeper, DynamoDB Local, an SQS emulator and the
three functions on the local Lambda runtime, plus a simulated DolphinScheduler cluster (each server a process
holding a real ZooKeeper session). Kills servers with SIGKILL and shows the failover live, then checks the
invariants and exits 0 only if they all hold.

Options:
  --masters N          masters to start (default 3, 1-9)
  --workers N          workers to start (default 4, 1-20)
  --instances N        running process instances to seed, spread over the masters (default 300, 0-5000)
  --kill LIST          servers to kill, comma-separated: master-2,worker-1 (default); "none" kills nothing
  --keep               after the summary, keep everything running and print the READY endpoints
                       (for \`zkf --ready .local/demo-ready.json status\`) until Ctrl-C
  --session-timeout MS ZooKeeper session timeout of the simulated servers (default 2000)
  --plain              progressive lines even on a terminal (default when stdout is not a TTY)
  --no-color           no ANSI colours (also when NO_COLOR is set)
  --verbose            the functions' and the servers' own logs on stderr
  -h, --help           this help

On DolphinScheduler's own database (DESIGN section 10) instead of the DynamoDB tables:
${storeFlagsUsage.replace(/^ {2}--db-url URL(?:.*\n){2}/m, '')}
  --history N            finished workflow instances of former servers seeded before the live ones
                         (default 5000, 0-100000)

With --store postgresql|mysql the demo starts that database with DolphinScheduler 3.2's tables, seeds the
instances as a 3.2 master writes them, the servers write DolphinScheduler heartbeats, the masters consume
t_ds_command as 3.2 does, and the verdict reads the tables themselves. It never runs on an existing
database (--db-url is \`npm run local\`'s): it seeds executing work there and kills its owners.

Ctrl-C stops everything it started (functions, servers, ZooKeeper, DynamoDB Local, SQS emulator, database).`;

function intFlag(name: string, raw: string | undefined, min: number, max: number): number {
  if (raw === undefined || !/^[0-9]+$/.test(raw)) {
    throw new DemoUsageError(
      `${name} needs a whole number (${min}-${max}), got ${JSON.stringify(raw ?? '')}`,
    );
  }
  const value = Number(raw);
  if (value < min || value > max) throw new DemoUsageError(`${name} must be ${min}-${max}, got ${value}`);
  return value;
}

/** Parses `argv` (without node and the script); throws DemoUsageError on anything unexpected. */
export function parseDemoArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  isTty: boolean,
): DemoOptions | 'help' {
  let masters = 3;
  let workers = 4;
  let instances = 300;
  let kill: string[] | undefined;
  let keep = false;
  let sessionTimeoutMs = 2_000;
  let plain = false;
  let verbose = false;
  let color = isTty && env.NO_COLOR === undefined;
  let history: number | undefined;
  const storeFlags = new StoreFlags();
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg];
    const value = () => {
      if (inline !== undefined) return inline;
      i += 1;
      return argv[i];
    };
    switch (flag) {
      case '-h':
      case '--help':
        return 'help';
      case '--masters':
        masters = intFlag('--masters', value(), 1, 9);
        break;
      case '--workers':
        workers = intFlag('--workers', value(), 1, 20);
        break;
      case '--instances':
        instances = intFlag('--instances', value(), 0, 5_000);
        break;
      case '--session-timeout':
        sessionTimeoutMs = intFlag('--session-timeout', value(), 400, 30_000);
        break;
      case '--kill': {
        const list = value();
        if (list === undefined || list.trim() === '')
          throw new DemoUsageError('--kill needs a list, or none');
        kill =
          list.trim() === 'none'
            ? []
            : list
                .split(',')
                .map((s) => s.trim())
                .filter((s) => s !== '');
        break;
      }
      case '--keep':
        keep = true;
        break;
      case '--plain':
        plain = true;
        break;
      case '--no-color':
        color = false;
        break;
      case '--verbose':
        verbose = true;
        break;
      case '--history':
        history = intFlag('--history', value(), 0, 100_000);
        break;
      case '--db-url':
        throw new DemoUsageError(
          '--db-url: npm start seeds executing work and kills its servers, so it runs only on a database it starts itself (--store postgresql|mysql); `npm run local -- --db-url` runs on an existing one',
        );
      default: {
        const taken = (() => {
          try {
            return storeFlags.take(flag ?? '', () => {
              const raw = value();
              if (raw === undefined || raw === '') throw new DemoUsageError(`${flag} needs a value`);
              return raw;
            });
          } catch (error: unknown) {
            if (error instanceof StoreFlagError) throw new DemoUsageError(error.message);
            throw error;
          }
        })();
        if (!taken) throw new DemoUsageError(`unknown option ${JSON.stringify(arg)}`);
      }
    }
  }
  let choice: ReturnType<StoreFlags['choice']>;
  try {
    choice = storeFlags.choice();
  } catch (error: unknown) {
    // The demo takes no --db-url: the only way to a database here is --store.
    if (error instanceof StoreFlagError) throw new DemoUsageError(error.message.replace(' or --db-url', ''));
    throw error;
  }
  if (choice.store === 'dynamodb' && history !== undefined) {
    throw new DemoUsageError('--history needs a DolphinScheduler database (--store postgresql|mysql)');
  }
  // By default a master and a worker, when one of each survives to take the work over.
  const killList = kill ?? [...(masters >= 2 ? ['master-2'] : []), ...(workers >= 2 ? ['worker-1'] : [])];
  const servers = topology(masters, workers);
  const seen = new Set<string>();
  for (const name of killList) {
    if (!servers.some((s) => s.name === name)) {
      throw new DemoUsageError(
        `--kill: no server ${JSON.stringify(name)} (have ${servers.map((s) => s.name).join(', ')})`,
      );
    }
    if (seen.has(name)) throw new DemoUsageError(`--kill names ${name} twice`);
    seen.add(name);
  }
  // Someone must be left to take the work over.
  if (masters - killList.filter((n) => n.startsWith('master-')).length < 1) {
    throw new DemoUsageError('--kill must leave at least one master alive to take the instances over');
  }
  if (workers - killList.filter((n) => n.startsWith('worker-')).length < 1) {
    throw new DemoUsageError('--kill must leave at least one worker alive to re-dispatch the tasks to');
  }
  return {
    masters,
    workers,
    instances,
    kill: killList,
    keep,
    sessionTimeoutMs,
    settleTimeoutMs: 40_000,
    live: isTty && !plain,
    color,
    verbose,
    history: history ?? 5_000,
    ...(choice.store === 'dynamodb'
      ? {}
      : {
          dolphinScheduler: {
            dialect: choice.store,
            timeZone: choice.dolphinScheduler?.timeZone ?? 'UTC',
            version: choice.dolphinScheduler?.version ?? '3.2',
          },
        }),
  };
}

/** Masters `10.0.0.11:5678`, `10.0.0.12:5678`, ...; workers `10.0.0.21:1234`, ... (DolphinScheduler ports). */
export function topology(masters: number, workers: number): SimServer[] {
  const servers: SimServer[] = [];
  for (let i = 1; i <= masters; i += 1) {
    servers.push({ name: `master-${i}`, nodeType: 'master', host: `10.0.1.${i}:5678`, index: i });
  }
  for (let i = 1; i <= workers; i += 1) {
    servers.push({ name: `worker-${i}`, nodeType: 'worker', host: `10.0.2.${i}:1234`, index: i });
  }
  return servers;
}
