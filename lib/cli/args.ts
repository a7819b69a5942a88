// A small, strict argument parser for `zkf`: global options anywhere on the line, a command (and for
// `dlq` a subcommand), each command's own options. Anything unexpected is a UsageError (exit code 2).

export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose usage to point at, if known. */
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  /** Long name without dashes. */
  readonly name: string;
  /** Takes a value (`--host H` or `--host=H`); otherwise a flag. */
  readonly value?: string;
  readonly description: string;
}

export const globalOptions: readonly OptionSpec[] = [
  {
    name: 'ready',
    value: 'JSON|FILE',
    description:
      'local stack: the READY line of `npm run local` / `npm start -- --keep` (JSON, or a file holding it)',
  },
  {
    name: 'stage',
    value: 'STAGE',
    description: 'AWS: the deployed stage (tables zk-failover-<stage>-<name>, queues by name)',
  },
  { name: 'region', value: 'REGION', description: 'AWS region (default: the standard AWS configuration)' },
  { name: 'service', value: 'NAME', description: 'service name in resource names (default zk-failover)' },
  {
    name: 'zookeeper',
    value: 'CONNECT',
    description: 'ZooKeeper connect string, for live registry listings (READY gives it locally)',
  },
  { name: 'root', value: 'PATH', description: "registry root (default /dolphinscheduler, or READY's)" },
  {
    name: 'store',
    value: 'STORE',
    description:
      "dynamodb | postgresql | mysql: where the work is (default: READY's; in AWS dynamodb, or with postgresql|mysql the stage's settings)",
  },
  {
    name: 'db-url',
    value: 'URL',
    description:
      "DolphinScheduler's database (postgresql://… or mysql://…) instead of READY's or the stage's",
  },
  {
    name: 'ds-time-zone',
    value: 'ZONE',
    description: "DolphinScheduler's time zone (default: READY's or the stage's DS_TIME_ZONE, else UTC)",
  },
  {
    name: 'ds-version',
    value: '3.1|3.2',
    description: "DolphinScheduler's release (default: READY's or the stage's DS_VERSION, else 3.2)",
  },
  { name: 'layout', value: 'ds-3|ds-1.3', description: 'registry layout (default ds-3)' },
  { name: 'json', description: 'machine-readable output on stdout' },
  { name: 'help', description: 'help for zkf or for one command' },
];

export interface ParsedArgs {
  /** The words: command, subcommand, ... */
  readonly words: string[];
  /** Option values by name; flags are 'true'. */
  readonly options: Map<string, string>;
}

/**
 * Parses `argv`: global options and command options may come anywhere. `known` lists every option of every
 * command (a name always has the same arity), so values are told from words in one pass; `allowed(words)`
 * then says which of them the given command accepts. `-h` is `--help`.
 */
export function parseArgs(
  argv: readonly string[],
  known: readonly OptionSpec[],
  allowed: (words: readonly string[]) => readonly OptionSpec[],
): ParsedArgs {
  const specs = new Map([...globalOptions, ...known].map((s) => [s.name, s]));
  const words: string[] = [];
  const given: Array<{ spec: OptionSpec; value: string }> = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      words.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h') {
      given.push({ spec: { name: 'help', description: '' }, value: 'true' });
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      words.push(arg);
      continue;
    }
    if (!arg.startsWith('--')) throw new UsageError(`unknown option ${JSON.stringify(arg)}`, words[0]);
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const spec = specs.get(name);
    if (spec === undefined) {
      throw new UsageError(`unknown option --${name}${words[0] ? ` for \`zkf ${words[0]}\`` : ''}`, words[0]);
    }
    if (spec.value === undefined) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`, words[0]);
      given.push({ spec, value: 'true' });
      continue;
    }
    let value = eq === -1 ? undefined : arg.slice(eq + 1);
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        throw new UsageError(`--${name} needs a value (${spec.value})`, words[0]);
      }
      value = next;
      i += 1;
    }
    given.push({ spec, value });
  }
  const accepted = new Set([...globalOptions, ...allowed(words)].map((s) => s.name));
  accepted.add('help');
  const options = new Map<string, string>();
  for (const { spec, value } of given) {
    if (!accepted.has(spec.name)) {
      throw new UsageError(`\`zkf ${words.join(' ')}\` takes no option --${spec.name}`, words[0]);
    }
    if (options.has(spec.name) && spec.name !== 'help') {
      throw new UsageError(`--${spec.name} given twice`, words[0]);
    }
    options.set(spec.name, value);
  }
  return { words, options };
}

/** A whole, non-negative number option, or `fallback` when absent. */
export function intOption(
  options: ReadonlyMap<string, string>,
  name: string,
  fallback: number,
  limits: { min: number; max: number },
  command?: string,
): number {
  const raw = options.get(name);
  if (raw === undefined) return fallback;
  if (!/^[0-9]+$/.test(raw))
    throw new UsageError(`--${name} needs a whole number, got ${JSON.stringify(raw)}`, command);
  const value = Number(raw);
  if (value < limits.min || value > limits.max) {
    throw new UsageError(`--${name} must be between ${limits.min} and ${limits.max}`, command);
  }
  return value;
}
