// Which store `zkf` reads and steers: the DynamoDB tables (DESIGN section 4) or DolphinScheduler's own
// database (section 10). Locally the READY line says which (`store`, `database`); in AWS the DynamoDB store
// is assumed unless `--store postgresql|mysql`, whose settings come from the stage's failover function
// configuration (its environment, as serverless.yml sets it: STORE, DS_DIALECT, DS_DATABASE_SECRET_ARN,
// DS_TIME_ZONE, DS_VERSION, REGISTRY_ROOT, REGISTRY_LAYOUT) and whose credentials from the secret it
// names. `--db-url`, `--ds-time-zone` and `--ds-version` override what those say.
import {
  ConfigError,
  type DolphinSchedulerConfig,
  loadConfig,
  loadDolphinSchedulerConfig,
} from '../config.ts';
import { type Dialect, redactUrl } from '../local/database.ts';
import type { StoreKind } from '../local/stack.ts';
import {
  type DsVersion,
  parseDbUrl,
  parseDsTimeZone,
  parseDsVersion,
  parseStoreKind,
  StoreFlagError,
} from '../local/store-flags.ts';
import { awsSecretSources } from '../secrets.ts';
import {
  type Database,
  defaultPoolSettings,
  openDatabase,
  parseDatabaseUrl,
} from '../store/dolphinscheduler/database.ts';
import { dolphinSchedulerDatabase } from '../stores.ts';
import { UsageError } from './args.ts';
import { readFunctionEnvironment } from './stage-settings.ts';

/** The functions' defaults (lib/config.ts) where the target does not say. */
const defaults = loadConfig(['DS_REPAIR_GRACE_MS', 'DS_SCAN_SPAN'], {});

interface StoreTargetBase {
  /** The registry as the stage's functions see it (AWS, DolphinScheduler store), when known. */
  readonly registry?: { root: string; layout: 'ds-3' | 'ds-1.3' };
  close(): Promise<void>;
}

export interface DynamoStoreTarget extends StoreTargetBase {
  readonly kind: 'dynamodb';
}

export interface DsStoreTarget extends StoreTargetBase {
  readonly kind: 'dolphinscheduler';
  readonly dialect: Dialect;
  readonly database: Database;
  /** DolphinScheduler's time zone (DS_TIME_ZONE): how its stored times read as instants. */
  readonly timeZone: string;
  readonly version: DsVersion;
  /** The sweep's grace before a 'NULL' host without a command gets one (DS_REPAIR_GRACE_MS). */
  readonly repairGraceMs: number;
  /** Ids per page read, as the failover function reads them (DS_SCAN_SPAN). */
  readonly scanSpan: number;
  /** Where the settings came from: `READY`, `--db-url`, `stage prod (function zk-failover-prod-failover)`. */
  readonly source: string;
  /** The database, for display: its URL without the password, or the secret's ARN. */
  readonly location: string;
}

export type StoreTarget = DynamoStoreTarget | DsStoreTarget;

export type StoreContext =
  | {
      mode: 'local';
      ready: { store?: StoreKind; database?: string; dsTimeZone?: string; dsVersion?: DsVersion };
    }
  | {
      mode: 'aws';
      service: string;
      stage: string;
      /** The region (asked only when the stage's settings are read). */
      region: () => Promise<string | undefined>;
      /** The stage's failover function environment (default: Lambda GetFunctionConfiguration). */
      readEnvironment?: (functionName: string) => Promise<Record<string, string>>;
    };

const dynamo: DynamoStoreTarget = { kind: 'dynamodb', close: async () => undefined };

/** A flag's value checked by the shared store-flag checks; their error becomes a usage error. */
function flag<T>(
  options: ReadonlyMap<string, string>,
  name: string,
  parse: (raw: string) => T,
): T | undefined {
  const raw = options.get(name);
  if (raw === undefined) return undefined;
  try {
    return parse(raw);
  } catch (error: unknown) {
    if (error instanceof StoreFlagError) throw new UsageError(error.message);
    throw error;
  }
}

function openUrl(url: string): Database {
  return openDatabase(parseDatabaseUrl(url), { ...defaultPoolSettings, max: 3 });
}

/** The store of the target, from the flags and the READY line or the stage's settings. */
export async function resolveStoreTarget(
  options: ReadonlyMap<string, string>,
  context: StoreContext,
): Promise<StoreTarget> {
  const store = flag(options, 'store', parseStoreKind);
  const dbUrl = options.get('db-url');
  const urlDialect = flag(options, 'db-url', parseDbUrl);
  const timeZone = flag(options, 'ds-time-zone', parseDsTimeZone);
  const version = flag(options, 'ds-version', parseDsVersion);
  if (urlDialect !== undefined && store !== undefined && store !== urlDialect) {
    throw new UsageError(
      `--db-url is a ${urlDialect} database (${redactUrl(dbUrl ?? '')}), but --store is ${store}`,
    );
  }
  const dsFlags = [
    ...(timeZone === undefined ? [] : ['--ds-time-zone']),
    ...(version === undefined ? [] : ['--ds-version']),
  ];
  const refuseDsFlags = (why: string): DynamoStoreTarget => {
    if (dsFlags.length > 0) throw new UsageError(`${dsFlags.join(' and ')}: ${why}`);
    return dynamo;
  };
  const overrides = { dbUrl, urlDialect, timeZone, version };

  if (context.mode === 'local') {
    const ready = context.ready;
    const readyStore = ready.store ?? 'dynamodb';
    if (store === 'dynamodb') return refuseDsFlags('the store is dynamodb (--store dynamodb)');
    if (dbUrl !== undefined && urlDialect !== undefined) {
      return dsTarget({
        dialect: urlDialect,
        database: openUrl(dbUrl),
        timeZone: timeZone ?? ready.dsTimeZone ?? 'UTC',
        version: version ?? ready.dsVersion ?? '3.2',
        source: '--db-url',
        location: redactUrl(dbUrl),
      });
    }
    const wanted = store ?? readyStore;
    if (wanted === 'dynamodb') {
      return refuseDsFlags(
        'the READY line is of the dynamodb store (give --store postgresql|mysql with --db-url for a DolphinScheduler database)',
      );
    }
    if (readyStore !== wanted || ready.database === undefined) {
      throw new UsageError(
        `--store ${wanted}: the READY line is of the ${readyStore} store; give the database with --db-url`,
      );
    }
    return dsTarget({
      dialect: wanted,
      database: openUrl(ready.database),
      timeZone: timeZone ?? ready.dsTimeZone ?? 'UTC',
      version: version ?? ready.dsVersion ?? '3.2',
      source: 'READY',
      location: redactUrl(ready.database),
    });
  }

  if (store === undefined && dbUrl === undefined) {
    return refuseDsFlags('in AWS the DolphinScheduler store is chosen with --store postgresql|mysql');
  }
  if (store === 'dynamodb') return refuseDsFlags('the store is dynamodb (--store dynamodb)');
  // With the URL and the time zone given, nothing needs to be read from the stage.
  if (dbUrl !== undefined && urlDialect !== undefined && timeZone !== undefined) {
    return dsTarget({
      dialect: urlDialect,
      database: openUrl(dbUrl),
      timeZone,
      version: version ?? '3.2',
      source: '--db-url',
      location: redactUrl(dbUrl),
    });
  }
  return stageTarget(context, store ?? urlDialect, overrides);
}

/** The DolphinScheduler store as the stage's failover function is configured. */
async function stageTarget(
  context: Extract<StoreContext, { mode: 'aws' }>,
  wanted: Dialect | undefined,
  overrides: {
    dbUrl: string | undefined;
    urlDialect: Dialect | undefined;
    timeZone: string | undefined;
    version: DsVersion | undefined;
  },
): Promise<DsStoreTarget> {
  const functionName = `${context.service}-${context.stage}-failover`;
  const read =
    context.readEnvironment ??
    (async (name: string) => readFunctionEnvironment(name, await context.region()));
  const env = await read(functionName);
  const where = `stage ${context.stage} (function ${functionName})`;
  if (env.STORE !== 'dolphinscheduler') {
    throw new UsageError(
      `${where} runs on the ${env.STORE ?? 'dynamodb'} store (STORE), not on DolphinScheduler's database: leave out --store`,
    );
  }
  let config: DolphinSchedulerConfig;
  try {
    // The stage's own settings, read by the functions' own parser; the flags override single values.
    config = loadDolphinSchedulerConfig({
      ...env,
      ...(overrides.timeZone === undefined ? {} : { DS_TIME_ZONE: overrides.timeZone }),
      ...(overrides.version === undefined ? {} : { DS_VERSION: overrides.version }),
    });
  } catch (error: unknown) {
    if (error instanceof ConfigError) throw new Error(`${where}: ${error.message}`, { cause: error });
    throw error;
  }
  const dialect = config.database.dialect;
  if (wanted !== undefined && wanted !== dialect) {
    throw new UsageError(`${where} runs on a ${dialect} database (DS_DIALECT), not ${wanted}`);
  }
  const secrets = awsSecretSources();
  const database =
    overrides.dbUrl !== undefined
      ? openUrl(overrides.dbUrl)
      : dolphinSchedulerDatabase({ ...config, poolMax: 3 }, (arn) => secrets.secret(arn));
  const layout = env.REGISTRY_LAYOUT === 'ds-1.3' ? 'ds-1.3' : 'ds-3';
  return dsTarget({
    dialect,
    database,
    timeZone: config.timeZone,
    version: config.version,
    repairGraceMs: config.repairGraceMs,
    scanSpan: config.scanSpan,
    source: overrides.dbUrl === undefined ? where : `${where}, database --db-url`,
    location:
      overrides.dbUrl !== undefined
        ? redactUrl(overrides.dbUrl)
        : 'secretArn' in config.database
          ? `secret ${config.database.secretArn}`
          : redactUrl(config.database.url),
    registry: { root: env.REGISTRY_ROOT || '/dolphinscheduler', layout },
  });
}

function dsTarget(parts: {
  dialect: Dialect;
  database: Database;
  timeZone: string;
  version: DsVersion;
  repairGraceMs?: number;
  scanSpan?: number;
  source: string;
  location: string;
  registry?: { root: string; layout: 'ds-3' | 'ds-1.3' };
}): DsStoreTarget {
  const { database } = parts;
  return {
    kind: 'dolphinscheduler',
    dialect: parts.dialect,
    database,
    timeZone: parts.timeZone,
    version: parts.version,
    repairGraceMs: parts.repairGraceMs ?? defaults.DS_REPAIR_GRACE_MS,
    scanSpan: parts.scanSpan ?? defaults.DS_SCAN_SPAN,
    source: parts.source,
    location: parts.location,
    ...(parts.registry === undefined ? {} : { registry: parts.registry }),
    close: () => database.close().catch(() => undefined),
  };
}
