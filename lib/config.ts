import { z } from 'zod';

/** A required setting is missing or malformed: names the variable, fails at cold start. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const nonEmpty = z.string().trim().min(1);
const positiveInt = z.coerce.number().int().positive();

/** Every setting a function may read, by environment variable. Each function picks the ones it needs. */
export const settings = {
  INSTANCES_TABLE: nonEmpty,
  TASKS_TABLE: nonEmpty,
  COMMANDS_TABLE: nonEmpty,
  LOCKS_TABLE: nonEmpty,
  SERVERS_TABLE: nonEmpty,
  FAILOVER_QUEUE_URL: z.url(),
  FAILOVER_DLQ_URL: z.url(),
  COMMANDS_QUEUE_URL: z.url(),
  /** ZooKeeper connect string. Set locally; in AWS it comes from the SSM parameter below. */
  ZK_CONNECT: nonEmpty.optional(),
  /** Name of the SSM parameter holding the connect string (read at cold start when ZK_CONNECT is unset). */
  ZK_CONNECT_PARAMETER: z
    .string()
    .regex(/^\/[\w.\-/]+$/, 'must be an SSM parameter name like /a/b')
    .optional(),
  /** Secrets Manager secret (ARN) holding `user:password` for digest auth; `none` or absent = no auth. */
  ZK_DIGEST_SECRET_ARN: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === '' || v === 'none' ? undefined : v)),
  /** `user:password` for ZooKeeper digest auth; absent = no auth. */
  ZK_DIGEST: z
    .string()
    .regex(/^[^:]+:.+$/, 'must be user:password')
    .optional(),
  ZK_SESSION_TIMEOUT_MS: positiveInt.default(10_000),
  REGISTRY_ROOT: z
    .string()
    .regex(/^\/[^\s]*$/, 'must be an absolute ZooKeeper path')
    .default('/dolphinscheduler'),
  REGISTRY_LAYOUT: z.enum(['ds-3', 'ds-1.3']).default('ds-3'),
  /** Minutes east of UTC of the servers' clock, for ds-1.3 CSV heartbeats (Shanghai = 480). */
  REGISTRY_TZ_OFFSET_MINUTES: z.coerce.number().int().min(-720).max(840).default(0),
  DEAD_SERVER_MARKERS: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /** Lease of the per-host failover lock; renewed between pages. */
  LOCK_LEASE_MS: positiveInt.default(30_000),
  /**
   * Instances per DynamoDB transaction: each is two items (update + command), plus one outbox record per
   * transaction, within DynamoDB's 100 items.
   */
  FAILOVER_BATCH_SIZE: z.coerce.number().int().min(1).max(49).default(49),
  /** Transactions in flight at once. */
  FAILOVER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  /** Stop taking new pages when less than this much time is left; send a continuation instead. */
  DEADLINE_MARGIN_MS: positiveInt.default(10_000),
  /** Watcher: end its watch window this long before the function's deadline. */
  WATCH_MARGIN_MS: positiveInt.default(5_000),
  /** Where the failover works: the DynamoDB tables (DESIGN section 4) or DolphinScheduler's own database (section 10). */
  STORE: z.enum(['dynamodb', 'dolphinscheduler']).default('dynamodb'),
  /** DolphinScheduler's database as a URL (`postgresql://…`, `mysql://…`; `?sslmode=require` for TLS); local runs. */
  DS_DATABASE_URL: z
    .string()
    .regex(/^(postgres|postgresql|mysql|mariadb):\/\/.+/, 'must be a postgresql:// or mysql:// URL')
    .optional(),
  /** Secrets Manager secret (ARN) in the shape RDS writes (engine, host, port, username, password, dbname). */
  DS_DATABASE_SECRET_ARN: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === '' || v === 'none' ? undefined : v)),
  /** The database's dialect; required with the secret, checked against the URL's scheme otherwise. */
  DS_DIALECT: z.enum(['postgresql', 'mysql']).optional(),
  /** DolphinScheduler's release: the failover lock's path in ZooKeeper (3.1 and 3.2 differ). */
  DS_VERSION: z.enum(['3.1', '3.2']).default('3.2'),
  /** The time zone of DolphinScheduler's JVM, in which its database holds times (IANA name, e.g. Asia/Shanghai). */
  DS_TIME_ZONE: z
    .string()
    .refine(isTimeZone, 'must be an IANA time zone name such as UTC or Asia/Shanghai')
    .optional(),
  /** Instance ids covered by one page read (DolphinScheduler has no index on host: pages are id ranges). */
  DS_SCAN_SPAN: positiveInt.default(50_000),
  /**
   * Sweep on DolphinScheduler's database: an executing instance with host 'NULL' and no command for it gets
   * its recovery command once it has been seen so for this long (DESIGN D5, DolphinScheduler #13355).
   */
  DS_REPAIR_GRACE_MS: positiveInt.default(600_000),
  /**
   * Instances per database transaction on DolphinScheduler's database (FAILOVER_BATCH_SIZE's 49 is a
   * DynamoDB limit; a database takes larger batches, and each costs a few statements).
   */
  DS_BATCH_SIZE: z.coerce.number().int().min(1).max(1_000).default(200),
  /** Connections per container to DolphinScheduler's database. */
  DS_POOL_MAX: z.coerce.number().int().min(1).max(32).default(5),
  /**
   * Fault injection for crash tests only (lib/faults.ts), e.g. `after-transaction=3:exit`. Absent in every
   * deployed environment.
   */
  ZKF_FAILPOINTS: z.string().optional(),
} as const;

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** The settings of the DolphinScheduler store (with STORE=dolphinscheduler). */
export const dolphinSchedulerSettings = [
  'DS_DATABASE_URL',
  'DS_DATABASE_SECRET_ARN',
  'DS_DIALECT',
  'DS_VERSION',
  'DS_TIME_ZONE',
  'DS_SCAN_SPAN',
  'DS_POOL_MAX',
  'DS_REPAIR_GRACE_MS',
  'DS_BATCH_SIZE',
] as const;

export interface DolphinSchedulerConfig {
  database:
    | { url: string; dialect: 'postgresql' | 'mysql' }
    | { secretArn: string; dialect: 'postgresql' | 'mysql' };
  version: '3.1' | '3.2';
  timeZone: string;
  scanSpan: number;
  poolMax: number;
  repairGraceMs: number;
  batchSize: number;
}

/** The DolphinScheduler store's settings, with the rules no single variable can state. Throws ConfigError. */
export function loadDolphinSchedulerConfig(env: NodeJS.ProcessEnv = process.env): DolphinSchedulerConfig {
  const c = loadConfig(dolphinSchedulerSettings, env);
  if (c.DS_TIME_ZONE === undefined) {
    throw new ConfigError(
      'invalid configuration: DS_TIME_ZONE: must be set with STORE=dolphinscheduler (the time zone of its masters, e.g. UTC)',
    );
  }
  const common = {
    version: c.DS_VERSION,
    timeZone: c.DS_TIME_ZONE,
    scanSpan: c.DS_SCAN_SPAN,
    poolMax: c.DS_POOL_MAX,
    repairGraceMs: c.DS_REPAIR_GRACE_MS,
    batchSize: c.DS_BATCH_SIZE,
  };
  if (c.DS_DATABASE_URL !== undefined) {
    const scheme = c.DS_DATABASE_URL.slice(0, c.DS_DATABASE_URL.indexOf(':'));
    const dialect = scheme.startsWith('postgres') ? 'postgresql' : 'mysql';
    if (c.DS_DIALECT !== undefined && c.DS_DIALECT !== dialect) {
      throw new ConfigError(
        `invalid configuration: DS_DIALECT: ${c.DS_DIALECT} does not match DS_DATABASE_URL (${dialect})`,
      );
    }
    return { ...common, database: { url: c.DS_DATABASE_URL, dialect } };
  }
  if (c.DS_DATABASE_SECRET_ARN !== undefined) {
    if (c.DS_DIALECT === undefined) {
      throw new ConfigError(
        'invalid configuration: DS_DIALECT: must be set (postgresql or mysql) with DS_DATABASE_SECRET_ARN',
      );
    }
    return { ...common, database: { secretArn: c.DS_DATABASE_SECRET_ARN, dialect: c.DS_DIALECT } };
  }
  throw new ConfigError(
    'invalid configuration: DS_DATABASE_URL or DS_DATABASE_SECRET_ARN must be set with STORE=dolphinscheduler',
  );
}

type Settings = typeof settings;
export type Config<K extends keyof Settings> = { [P in K]: z.output<Settings[P]> };

/** Parses the named settings from the environment once; throws ConfigError naming every bad variable. */
export function loadConfig<K extends keyof Settings>(
  keys: readonly K[],
  env: NodeJS.ProcessEnv = process.env,
): Config<K> {
  const shape = Object.fromEntries(keys.map((k) => [k, settings[k]])) as { [P in K]: Settings[P] };
  const result = z
    .object(shape)
    .safeParse(Object.fromEntries(keys.map((k) => [k, env[k] === '' ? undefined : env[k]])));
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return result.data as Config<K>;
}
