import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import {
  applyDolphinSchedulerSchema,
  assertDolphinSchedulerTables,
  type Dialect,
  dialectOfUrl,
  type LocalDatabase,
  startLocalDatabase,
} from './database.ts';
import { type LocalDynamoDb, startDynamoDb } from './dynamodb.ts';
import { killLeftovers } from './processes.ts';
import {
  createResources,
  type QueueOverrides,
  type ResolvedResource,
  resolveIntrinsic,
} from './resources.ts';
import { loadService, type ServiceDefinition } from './service.ts';
import { type LocalSqs, startSqs } from './sqs.ts';
import { startZooKeeper, type ZooKeeperCluster } from './zookeeper.ts';

export interface StackOptions {
  stage?: string;
  /** 1 = standalone ZooKeeper, 3 = a loopback ensemble (fault tests). */
  zookeeperSize?: 1 | 3;
  queueOverrides?: QueueOverrides;
  /**
   * Run the functions on DolphinScheduler's own metadata database (DESIGN section 10) instead of the
   * DynamoDB tables: a local server started with the stack (schema applied), or an existing database
   * whose DolphinScheduler tables must exist (checked before anything starts).
   */
  dolphinScheduler?: DolphinSchedulerStoreOptions;
  /** Extra environment for every function, applied last (local settings, test knobs). */
  functionEnvironment?: Record<string, string>;
}

export interface DolphinSchedulerStoreOptions {
  database: { start: Dialect } | { url: string };
  /** The time zone of DolphinScheduler's JVM, in which its times are written (default `UTC`). */
  timeZone?: string;
  /** The DolphinScheduler release whose layout and lock paths apply (default `3.2`). */
  version?: '3.1' | '3.2';
}

/** Which store the functions run on: the READY line's `store`. */
export type StoreKind = 'dynamodb' | Dialect;

/** The one line `npm run local` prints after `READY `. */
export interface ReadyInfo {
  zookeeper: string;
  dynamodb: string;
  sqs: string;
  region: string;
  registryRoot: string;
  tables: { instances: string; tasks: string; commands: string; locks: string; servers: string };
  queues: { failover: string; failoverDlq: string; commands: string; commandsDlq: string };
  store: StoreKind;
  /** DolphinScheduler's database URL (with its credentials: a local stack's), absent for dynamodb. */
  database?: string;
}

export interface LocalStack {
  readonly zookeeper: ZooKeeperCluster;
  readonly dynamodb: LocalDynamoDb;
  readonly sqs: LocalSqs;
  readonly service: ServiceDefinition;
  readonly resources: ReadonlyMap<string, ResolvedResource>;
  readonly info: ReadyInfo;
  readonly clients: { dynamodb: DynamoDBClient; sqs: SQSClient };
  /** DolphinScheduler's database the functions run on, when `dolphinScheduler` was given. */
  readonly database?: { readonly dialect: Dialect; readonly url: string };
  /** AWS SDK settings pointing at the local endpoints (dummy credentials, no network beyond loopback). */
  awsEnv(): Record<string, string>;
  /** A function's environment as Lambda would set it: provider + function variables, resolved locally. */
  functionEnv(functionName: string): Record<string, string>;
  stop(): Promise<void>;
}

/** The local services accept any credentials; these are the ones every local client uses. */
export const localCredentials = { accessKeyId: 'local', secretAccessKey: 'local' };

/** Starts ZooKeeper, DynamoDB Local and the SQS emulator in parallel, then creates serverless.yml's resources. */
export async function startLocalStack(options: StackOptions = {}): Promise<LocalStack> {
  const databaseOption = options.dolphinScheduler?.database;
  // An existing database is checked before anything starts: a wrong URL fails fast and leaves nothing behind.
  if (databaseOption && 'url' in databaseOption) await assertDolphinSchedulerTables(databaseOption.url);
  killLeftovers();
  const stage = options.stage ?? 'local';
  const started = await Promise.allSettled([
    startZooKeeper({ size: options.zookeeperSize ?? 1 }),
    startDynamoDb(),
    loadService(stage),
    databaseOption && 'start' in databaseOption ? startDatabaseWithSchema(databaseOption.start) : undefined,
  ] as const);
  const [zkResult, ddbResult, serviceResult, dbResult] = started;
  const sqsStart =
    serviceResult.status === 'fulfilled' ? startSqs({ region: serviceResult.value.provider.region }) : null;
  const sqsResult = sqsStart
    ? await sqsStart.then(
        (v) => ({ ok: true as const, v }),
        (e: unknown) => ({ ok: false as const, e }),
      )
    : null;
  if (
    zkResult.status !== 'fulfilled' ||
    ddbResult.status !== 'fulfilled' ||
    serviceResult.status !== 'fulfilled' ||
    dbResult.status !== 'fulfilled' ||
    !sqsResult?.ok
  ) {
    await Promise.allSettled([
      zkResult.status === 'fulfilled' ? zkResult.value.stop() : undefined,
      ddbResult.status === 'fulfilled' ? ddbResult.value.stop() : undefined,
      sqsResult?.ok ? sqsResult.v.stop() : undefined,
      dbResult.status === 'fulfilled' ? dbResult.value?.stop() : undefined,
    ]);
    const reasons = [zkResult, ddbResult, serviceResult, dbResult]
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r) => (r.reason instanceof Error ? r.reason.message : String(r.reason)));
    if (sqsResult && !sqsResult.ok) reasons.push(String(sqsResult.e));
    throw new Error(`local stack failed to start:\n- ${reasons.join('\n- ')}`);
  }
  const zookeeper = zkResult.value;
  const dynamodb = ddbResult.value;
  const service = serviceResult.value;
  const sqs = sqsResult.v;
  const localDatabase = dbResult.value;
  const database = localDatabase
    ? { dialect: localDatabase.dialect, url: localDatabase.url }
    : databaseOption && 'url' in databaseOption
      ? { dialect: dialectOfUrl(databaseOption.url), url: databaseOption.url }
      : undefined;
  const region = service.provider.region;
  const clients = {
    dynamodb: new DynamoDBClient({ endpoint: dynamodb.endpoint, region, credentials: localCredentials }),
    sqs: new SQSClient({ endpoint: sqs.endpoint, region, credentials: localCredentials }),
  };
  const stopAll = async () => {
    clients.dynamodb.destroy();
    clients.sqs.destroy();
    await Promise.allSettled([zookeeper.stop(), dynamodb.stop(), sqs.stop(), localDatabase?.stop()]);
  };
  let resources: Map<string, ResolvedResource>;
  try {
    resources = await createResources(service, clients, options.queueOverrides);
  } catch (error: unknown) {
    await stopAll();
    throw error;
  }
  const refOf = (id: string) => {
    const r = resources.get(id);
    if (!r) throw new Error(`serverless.yml declares no resource ${id}`);
    return r.ref;
  };
  const awsEnv = (): Record<string, string> => ({
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    AWS_ACCESS_KEY_ID: localCredentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: localCredentials.secretAccessKey,
    AWS_ENDPOINT_URL_DYNAMODB: dynamodb.endpoint,
    AWS_ENDPOINT_URL_SQS: sqs.endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  const info: ReadyInfo = {
    zookeeper: zookeeper.connectString,
    dynamodb: dynamodb.endpoint,
    sqs: sqs.endpoint,
    region,
    registryRoot: '/dolphinscheduler',
    tables: {
      instances: refOf('InstancesTable'),
      tasks: refOf('TasksTable'),
      commands: refOf('CommandsTable'),
      locks: refOf('LocksTable'),
      servers: refOf('ServersTable'),
    },
    queues: {
      failover: refOf('FailoverQueue'),
      failoverDlq: refOf('FailoverDeadLetterQueue'),
      commands: refOf('CommandsQueue'),
      commandsDlq: refOf('CommandsDeadLetterQueue'),
    },
    store: database?.dialect ?? 'dynamodb',
    ...(database ? { database: database.url } : {}),
  };
  // What a function needs to run on DolphinScheduler's database (lib/config.ts reads these).
  const storeEnv: Record<string, string> = database
    ? {
        STORE: 'dolphinscheduler',
        DS_DATABASE_URL: database.url,
        DS_TIME_ZONE: options.dolphinScheduler?.timeZone ?? 'UTC',
        DS_VERSION: options.dolphinScheduler?.version ?? '3.2',
      }
    : {};
  const functionEnv = (functionName: string): Record<string, string> => {
    const fn = service.functions[functionName];
    if (!fn) throw new Error(`serverless.yml declares no function ${functionName}`);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...service.provider.environment, ...fn.environment })) {
      env[k] = resolveIntrinsic(v, resources);
    }
    // In AWS the connect string comes from SSM at cold start; locally the registry is this ZooKeeper
    // (ZK_CONNECT takes precedence over ZK_CONNECT_PARAMETER, see lib/config.ts).
    if ('ZK_CONNECT_PARAMETER' in env) env.ZK_CONNECT = zookeeper.connectString;
    if (env.REGISTRY_ROOT) info.registryRoot = env.REGISTRY_ROOT;
    return {
      ...env,
      ...awsEnv(),
      ...storeEnv,
      ...options.functionEnvironment,
      AWS_LAMBDA_FUNCTION_NAME: `${service.service}-${stage}-${functionName}`,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memorySize ?? service.provider.memorySize ?? 1024),
    };
  };
  for (const name of Object.keys(service.functions)) functionEnv(name);
  return {
    zookeeper,
    dynamodb,
    sqs,
    service,
    resources,
    info,
    clients,
    awsEnv,
    functionEnv,
    ...(database ? { database } : {}),
    stop: stopAll,
  };
}

/** A local DolphinScheduler database: the server of the dialect with the project's schema applied. */
async function startDatabaseWithSchema(dialect: Dialect): Promise<LocalDatabase> {
  const database = await startLocalDatabase(dialect);
  try {
    await applyDolphinSchedulerSchema(database.url);
  } catch (error: unknown) {
    await database.stop();
    throw error;
  }
  return database;
}
