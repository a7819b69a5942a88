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
  /**
   * Fault injection for crash tests only (lib/faults.ts), e.g. `after-transaction=3:exit`. Absent in every
   * deployed environment.
   */
  ZKF_FAILPOINTS: z.string().optional(),
} as const;

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
