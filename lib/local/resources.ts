import {
  type AttributeDefinition,
  CreateTableCommand,
  type DynamoDBClient,
  type GlobalSecondaryIndex,
  type KeySchemaElement,
} from '@aws-sdk/client-dynamodb';
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { ResourceDefinition, ServiceDefinition } from './service.ts';

/** What a logical resource id resolves to: `!Ref` and `!GetAtt` values, as CloudFormation would give them. */
export interface ResolvedResource {
  readonly type: string;
  readonly ref: string;
  readonly attributes: Readonly<Record<string, string>>;
}
export type ResolvedResources = ReadonlyMap<string, ResolvedResource>;

export class UnresolvableValueError extends Error {
  constructor(what: string) {
    super(`cannot resolve ${what} locally`);
    this.name = 'UnresolvableValueError';
  }
}

/** Resolves `Ref`, `Fn::GetAtt`, `Fn::Sub`/`Fn::Join` of strings against the created resources. */
export function resolveIntrinsic(value: unknown, resources: ResolvedResources): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value && typeof value === 'object') {
    const entries = Object.entries(value);
    const [key, arg] = entries[0] ?? [];
    if (entries.length === 1 && key === 'Ref' && typeof arg === 'string') {
      const r = resources.get(arg);
      if (!r) throw new UnresolvableValueError(`!Ref ${arg}`);
      return r.ref;
    }
    if (entries.length === 1 && key === 'Fn::GetAtt') {
      const [id, attr] = Array.isArray(arg) ? arg : typeof arg === 'string' ? arg.split('.') : [];
      const r = typeof id === 'string' ? resources.get(id) : undefined;
      const v = r && typeof attr === 'string' ? r.attributes[attr] : undefined;
      if (v === undefined) throw new UnresolvableValueError(`!GetAtt ${String(id)}.${String(attr)}`);
      return v;
    }
    if (entries.length === 1 && key === 'Fn::Join' && Array.isArray(arg) && typeof arg[0] === 'string') {
      const parts: unknown[] = Array.isArray(arg[1]) ? arg[1] : [];
      return parts.map((p) => resolveIntrinsic(p, resources)).join(arg[0]);
    }
  }
  throw new UnresolvableValueError(JSON.stringify(value));
}

const str = (v: unknown, what: string): string => {
  if (typeof v !== 'string') throw new Error(`${what} must be a string`);
  return v;
};

async function createTable(
  logicalId: string,
  props: Record<string, unknown>,
  dynamodb: DynamoDBClient,
  region: string,
): Promise<ResolvedResource> {
  const tableName = str(props.TableName, `${logicalId}.TableName`);
  const gsis = (props.GlobalSecondaryIndexes as GlobalSecondaryIndex[] | undefined)?.map((g) => ({
    IndexName: g.IndexName,
    KeySchema: g.KeySchema,
    Projection: g.Projection,
  }));
  await dynamodb.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: props.AttributeDefinitions as AttributeDefinition[],
      KeySchema: props.KeySchema as KeySchemaElement[],
      GlobalSecondaryIndexes: gsis,
    }),
  );
  const arn = `arn:aws:dynamodb:${region}:000000000000:table/${tableName}`;
  return { type: 'AWS::DynamoDB::Table', ref: tableName, attributes: { Arn: arn } };
}

const queueAttributeNames: Record<string, string> = {
  FifoQueue: 'FifoQueue',
  ContentBasedDeduplication: 'ContentBasedDeduplication',
  DeduplicationScope: 'DeduplicationScope',
  FifoThroughputLimit: 'FifoThroughputLimit',
  VisibilityTimeout: 'VisibilityTimeout',
  MessageRetentionPeriod: 'MessageRetentionPeriod',
  DelaySeconds: 'DelaySeconds',
  MaximumMessageSize: 'MaximumMessageSize',
  ReceiveMessageWaitTimeSeconds: 'ReceiveMessageWaitTimeSeconds',
};

async function createQueue(
  logicalId: string,
  props: Record<string, unknown>,
  sqs: SQSClient,
  resolved: ResolvedResources,
  overrides: Record<string, string>,
): Promise<ResolvedResource> {
  const queueName = str(props.QueueName, `${logicalId}.QueueName`);
  const attributes: Record<string, string> = {};
  for (const [cfn, api] of Object.entries(queueAttributeNames)) {
    if (props[cfn] !== undefined) attributes[api] = String(props[cfn]);
  }
  const redrive = props.RedrivePolicy as
    | { deadLetterTargetArn?: unknown; maxReceiveCount?: unknown }
    | undefined;
  if (redrive) {
    attributes.RedrivePolicy = JSON.stringify({
      deadLetterTargetArn: resolveIntrinsic(redrive.deadLetterTargetArn, resolved),
      maxReceiveCount: Number(redrive.maxReceiveCount),
    });
  }
  Object.assign(attributes, overrides);
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({ QueueName: queueName, Attributes: attributes }),
  );
  if (!QueueUrl) throw new Error(`CreateQueue ${queueName} returned no URL`);
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }),
  );
  const arn = Attributes?.QueueArn ?? '';
  return { type: 'AWS::SQS::Queue', ref: QueueUrl, attributes: { Arn: arn, QueueUrl, QueueName: queueName } };
}

/** Local-only changes to queue attributes (for example a short visibility timeout in tests), by logical id. */
export type QueueOverrides = Record<string, Record<string, string>>;

/**
 * Creates every DynamoDB table and SQS queue declared in serverless.yml's resources. Queues are
 * created after the queues they reference (dead-letter queues first). Other resource types are
 * not needed locally and are skipped.
 */
export async function createResources(
  service: ServiceDefinition,
  clients: { dynamodb: DynamoDBClient; sqs: SQSClient },
  queueOverrides: QueueOverrides = {},
): Promise<Map<string, ResolvedResource>> {
  const resolved = new Map<string, ResolvedResource>();
  const all = Object.entries(service.resources.Resources);
  const tables = all.filter(([, r]) => r.Type === 'AWS::DynamoDB::Table');
  await Promise.all(
    tables.map(async ([id, r]) => {
      resolved.set(id, await createTable(id, r.Properties, clients.dynamodb, service.provider.region));
    }),
  );
  let pending: Array<[string, ResourceDefinition]> = all.filter(([, r]) => r.Type === 'AWS::SQS::Queue');
  while (pending.length > 0) {
    const ready = pending.filter(([, r]) => {
      const dlq = (r.Properties.RedrivePolicy as { deadLetterTargetArn?: unknown } | undefined)
        ?.deadLetterTargetArn;
      const target = dlq && typeof dlq === 'object' ? (Object.values(dlq)[0] as unknown) : undefined;
      const targetId = Array.isArray(target)
        ? target[0]
        : typeof target === 'string'
          ? target.split('.')[0]
          : undefined;
      return targetId === undefined || resolved.has(String(targetId));
    });
    if (ready.length === 0)
      throw new Error(`queues with unresolvable dead-letter targets: ${pending.map(([id]) => id)}`);
    await Promise.all(
      ready.map(async ([id, r]) => {
        resolved.set(
          id,
          await createQueue(id, r.Properties, clients.sqs, resolved, queueOverrides[id] ?? {}),
        );
      }),
    );
    pending = pending.filter(([id]) => !resolved.has(id));
  }
  return resolved;
}
