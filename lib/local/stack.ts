import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
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
}

/** The one line `npm run local` prints after `READY `. */
export interface ReadyInfo {
  zookeeper: string;
  dynamodb: string;
  sqs: string;
  region: string;
  registryRoot: string;
  tables: { instances: string; tasks: string; commands: string; locks: string; servers: string };
  queues: { failover: string; failoverDlq: string; commands: string; commandsDlq: string };
}

export interface LocalStack {
  readonly zookeeper: ZooKeeperCluster;
  readonly dynamodb: LocalDynamoDb;
  readonly sqs: LocalSqs;
  readonly service: ServiceDefinition;
  readonly resources: ReadonlyMap<string, ResolvedResource>;
  readonly info: ReadyInfo;
  readonly clients: { dynamodb: DynamoDBClient; sqs: SQSClient };
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
  killLeftovers();
  const stage = options.stage ?? 'local';
  const started = await Promise.allSettled([
    startZooKeeper({ size: options.zookeeperSize ?? 1 }),
    startDynamoDb(),
    loadService(stage),
  ] as const);
  const [zkResult, ddbResult, serviceResult] = started;
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
    !sqsResult?.ok
  ) {
    await Promise.allSettled([
      zkResult.status === 'fulfilled' ? zkResult.value.stop() : undefined,
      ddbResult.status === 'fulfilled' ? ddbResult.value.stop() : undefined,
      sqsResult?.ok ? sqsResult.v.stop() : undefined,
    ]);
    const reasons = [zkResult, ddbResult, serviceResult]
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r) => (r.reason instanceof Error ? r.reason.message : String(r.reason)));
    if (sqsResult && !sqsResult.ok) reasons.push(String(sqsResult.e));
    throw new Error(`local stack failed to start:\n- ${reasons.join('\n- ')}`);
  }
  const zookeeper = zkResult.value;
  const dynamodb = ddbResult.value;
  const service = serviceResult.value;
  const sqs = sqsResult.v;
  const region = service.provider.region;
  const clients = {
    dynamodb: new DynamoDBClient({ endpoint: dynamodb.endpoint, region, credentials: localCredentials }),
    sqs: new SQSClient({ endpoint: sqs.endpoint, region, credentials: localCredentials }),
  };
  const stopAll = async () => {
    clients.dynamodb.destroy();
    clients.sqs.destroy();
    await Promise.allSettled([zookeeper.stop(), dynamodb.stop(), sqs.stop()]);
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
  };
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
    stop: stopAll,
  };
}
