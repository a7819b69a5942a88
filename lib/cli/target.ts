// Where `zkf` works: the local stack (the READY line of `npm run local` or `npm start -- --keep`) or a
// deployed stage in AWS (standard AWS configuration; names derived as serverless.yml declares them), and
// on which store: the DynamoDB tables, or DolphinScheduler's own database (lib/cli/store-target.ts).
import { existsSync, readFileSync } from 'node:fs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { z } from 'zod';
import { UsageError } from './args.ts';
import { resolveStoreTarget, type StoreTarget } from './store-target.ts';

/** The READY line's JSON (lib/local/stack.ts `ReadyInfo`), validated. */
export const ReadyInfoSchema = z.object({
  zookeeper: z.string().min(1),
  dynamodb: z.url(),
  sqs: z.url(),
  region: z.string().min(1),
  registryRoot: z.string().startsWith('/'),
  tables: z.object({
    instances: z.string().min(1),
    tasks: z.string().min(1),
    commands: z.string().min(1),
    locks: z.string().min(1),
    servers: z.string().min(1),
  }),
  queues: z.object({
    failover: z.url(),
    failoverDlq: z.url(),
    commands: z.url(),
    commandsDlq: z.url(),
  }),
  /** Which store the functions run on (absent in READY lines of older versions: dynamodb). */
  store: z.enum(['dynamodb', 'postgresql', 'mysql']).optional(),
  /** DolphinScheduler's database URL, with the store postgresql|mysql. */
  database: z.string().min(1).optional(),
  /** DolphinScheduler's time zone and release (`npm start -- --keep` writes them; `npm run local` not yet). */
  dsTimeZone: z.string().min(1).optional(),
  dsVersion: z.enum(['3.1', '3.2']).optional(),
});
export type ReadyInfo = z.output<typeof ReadyInfoSchema>;

export type TableName = keyof ReadyInfo['tables'];
export type QueueName = keyof ReadyInfo['queues'];
export type { StoreTarget } from './store-target.ts';

export interface Target {
  readonly mode: 'local' | 'aws';
  /** `local (READY)` or `AWS stage prod, eu-west-1` */
  readonly description: string;
  readonly region: string | undefined;
  readonly tables: ReadyInfo['tables'];
  readonly queues: ReadyInfo['queues'];
  /** Connect string, when known (READY, or --zookeeper). */
  readonly zookeeper: string | undefined;
  readonly registryRoot: string;
  readonly layout: 'ds-3' | 'ds-1.3';
  readonly stage: string | undefined;
  readonly service: string;
  readonly dynamodb: DynamoDBClient;
  readonly sqs: SQSClient;
  /** Where the functions keep the work: the DynamoDB tables, or DolphinScheduler's database. */
  readonly store: StoreTarget;
  close(): Promise<void>;
}

const localCredentials = { accessKeyId: 'local', secretAccessKey: 'local' };

/** The queue names serverless/queues.yml declares for a stage. */
export function queueNames(service: string, stage: string): ReadyInfo['queues'] {
  return {
    failover: `${service}-${stage}-failover.fifo`,
    failoverDlq: `${service}-${stage}-failover-dlq.fifo`,
    commands: `${service}-${stage}-commands.fifo`,
    commandsDlq: `${service}-${stage}-commands-dlq.fifo`,
  };
}

/** The table names serverless/tables.yml declares for a stage. */
export function tableNames(service: string, stage: string): ReadyInfo['tables'] {
  const name = (table: TableName) => `${service}-${stage}-${table}`;
  return {
    instances: name('instances'),
    tasks: name('tasks'),
    commands: name('commands'),
    locks: name('locks'),
    servers: name('servers'),
  };
}

/** `--ready` accepts the JSON, the whole `READY {...}` line, or a file holding either. */
export function parseReady(value: string): ReadyInfo {
  let text = value.trim();
  if (!text.startsWith('{') && !text.startsWith('READY ')) {
    if (!existsSync(text))
      throw new UsageError(`--ready: no such file ${JSON.stringify(text)} (and not JSON)`);
    text = readFileSync(text, 'utf8').trim();
    // A log file may hold other lines: take the last READY line, else the whole text.
    const line = text
      .split('\n')
      .reverse()
      .find((l) => l.startsWith('READY '));
    if (line !== undefined) text = line;
  }
  if (text.startsWith('READY ')) text = text.slice('READY '.length);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError('--ready: not JSON (give the READY line, its JSON, or a file holding it)');
  }
  const parsed = ReadyInfoSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`--ready: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

export function layoutOption(value: string | undefined): 'ds-3' | 'ds-1.3' {
  if (value === undefined || value === 'ds-3' || value === 'ds-1.3') return value ?? 'ds-3';
  throw new UsageError(`--layout must be ds-3 or ds-1.3, got ${JSON.stringify(value)}`);
}

const STAGE = /^[A-Za-z0-9-]{1,64}$/;

/** Builds the target from the global options; AWS queue URLs are looked up by name (GetQueueUrl). */
export async function resolveTarget(options: ReadonlyMap<string, string>): Promise<Target> {
  const ready = options.get('ready');
  const stage = options.get('stage');
  const layout = layoutOption(options.get('layout'));
  const service = options.get('service') ?? 'zk-failover';
  if (ready !== undefined && stage !== undefined) {
    throw new UsageError('give either --ready (local stack) or --stage (AWS), not both');
  }
  if (ready !== undefined) {
    const info = parseReady(ready);
    const store = await resolveStoreTarget(options, { mode: 'local', ready: info });
    const region = options.get('region') ?? info.region;
    const dynamodb = new DynamoDBClient({ endpoint: info.dynamodb, region, credentials: localCredentials });
    const sqs = new SQSClient({ endpoint: info.sqs, region, credentials: localCredentials });
    return {
      mode: 'local',
      description: `local stack (DynamoDB ${info.dynamodb}, SQS ${info.sqs})`,
      region,
      tables: info.tables,
      queues: info.queues,
      zookeeper: options.get('zookeeper') ?? info.zookeeper,
      registryRoot: options.get('root') ?? info.registryRoot,
      layout,
      stage: undefined,
      service,
      dynamodb,
      sqs,
      store,
      close: async () => {
        dynamodb.destroy();
        sqs.destroy();
        await store.close();
      },
    };
  }
  if (stage === undefined) {
    throw new UsageError(
      'say where to work: --ready <READY json|file> for the local stack, or --stage <stage> [--region <region>] for AWS',
    );
  }
  if (!STAGE.test(stage)) throw new UsageError(`--stage: not a stage name: ${JSON.stringify(stage)}`);
  const region = options.get('region');
  const clientConfig = region === undefined ? {} : { region };
  const dynamodb = new DynamoDBClient(clientConfig);
  const sqs = new SQSClient(clientConfig);
  const destroyClients = () => {
    dynamodb.destroy();
    sqs.destroy();
  };
  // The store first: its flags are checked before anything is asked of AWS.
  const store = await resolveStoreTarget(options, {
    mode: 'aws',
    service,
    stage,
    region: async () => region ?? (await dynamodb.config.region()),
  }).catch((error: unknown) => {
    destroyClients();
    throw error;
  });
  let urls: string[];
  let resolvedRegion: string;
  try {
    const names = queueNames(service, stage);
    urls = await Promise.all(
      Object.values(names).map(async (QueueName) => {
        const out = await sqs.send(new GetQueueUrlCommand({ QueueName }));
        if (out.QueueUrl === undefined) throw new Error(`no URL for queue ${QueueName}`);
        return out.QueueUrl;
      }),
    );
    resolvedRegion = region ?? (await dynamodb.config.region());
  } catch (error: unknown) {
    destroyClients();
    await store.close();
    throw error;
  }
  const [failover = '', failoverDlq = '', commands = '', commandsDlq = ''] = urls;
  return {
    mode: 'aws',
    description: `AWS stage ${stage} (${resolvedRegion})`,
    region: resolvedRegion,
    tables: tableNames(service, stage),
    queues: { failover, failoverDlq, commands, commandsDlq },
    zookeeper: options.get('zookeeper'),
    // With the DolphinScheduler store, the stage's own registry settings unless --root / --layout say otherwise.
    registryRoot: options.get('root') ?? store.registry?.root ?? '/dolphinscheduler',
    layout: options.get('layout') === undefined ? (store.registry?.layout ?? layout) : layout,
    stage,
    service,
    dynamodb,
    sqs,
    store,
    close: async () => {
      destroyClients();
      await store.close();
    },
  };
}
