// Read-only views of the tables, queues and registry for operators (`zkf status`). Every read here is
// side-effect free; the parsing of items reuses the stores' parsers, so `zkf` sees what the functions see.
import {
  type AttributeValue,
  type DynamoDBClient,
  paginateQuery,
  paginateScan,
  ScanCommand,
  type ScanCommandOutput,
} from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { EXECUTING_PROCESS_STATES, NEED_FAULT_TOLERANCE, TASK_FAILOVER_STATES } from '../failover/rules.ts';
import type { NodeType } from '../messages.ts';
import { createLayout } from '../registry/layout.ts';
import { RegistryView } from '../registry/listing.ts';
import type { MirrorRow, ServerObservation } from '../registry/membership.ts';
import { connectZk } from '../registry/zk-client.ts';
import { readNumber, readString, str } from '../store/dynamodb/attributes.ts';
import { parsePendingItem } from '../store/dynamodb/commands.ts';
import { DynamoServerStore } from '../store/dynamodb/servers.ts';

export interface QueueDepth {
  visible: number;
  inFlight: number;
  delayed: number;
}

export async function queueDepth(sqs: SQSClient, queueUrl: string): Promise<QueueDepth> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
  );
  const a = out.Attributes ?? {};
  return {
    visible: Number(a.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0),
    delayed: Number(a.ApproximateNumberOfMessagesDelayed ?? 0),
  };
}

/** The membership mirror (servers table), server rows only. */
export function readMirror(dynamodb: DynamoDBClient, table: string): Promise<MirrorRow[]> {
  return new DynamoServerStore(dynamodb, table).scan();
}

export interface RegistryListing {
  status: 'listed' | 'unavailable' | 'not-configured';
  servers: ServerObservation[];
  error?: string;
}

/** One fresh listing of the registry (no watches), like the sweep's. */
export async function listRegistry(options: {
  zookeeper: string | undefined;
  root: string;
  layout: 'ds-3' | 'ds-1.3';
  digest?: string;
  timeoutMs?: number;
}): Promise<RegistryListing> {
  if (options.zookeeper === undefined) return { status: 'not-configured', servers: [] };
  try {
    const session = await connectZk({
      connectString: options.zookeeper,
      sessionTimeoutMs: 10_000,
      connectTimeoutMs: options.timeoutMs ?? 5_000,
      ...(options.digest === undefined
        ? {}
        : { auth: { scheme: 'digest' as const, credentials: options.digest } }),
    });
    try {
      const view = new RegistryView(session, {
        layout: createLayout({ name: options.layout, root: options.root }),
      });
      await view.listAll();
      return { status: 'listed', servers: [...view.servers().values()] };
    } finally {
      await session.close();
    }
  } catch (error: unknown) {
    return {
      status: 'unavailable',
      servers: [],
      error: error instanceof Error ? error.message : String(error),
    };
  }
}

export interface LockRow {
  name: string;
  nodeType?: string;
  host?: string;
  owner?: string;
  fence?: number;
  leaseExpiresAt?: number;
  acquiredAt?: number;
  state: 'held' | 'expired' | 'free';
  checkpoint: boolean;
}

export async function readLocks(dynamodb: DynamoDBClient, table: string, now: number): Promise<LockRow[]> {
  const rows: LockRow[] = [];
  for await (const page of paginateScan({ client: dynamodb }, { TableName: table, ConsistentRead: true })) {
    for (const item of page.Items ?? []) {
      const name = readString(item, 'name') ?? '';
      const [, nodeType, ...rest] = name.split('/');
      const owner = readString(item, 'owner');
      const leaseExpiresAt = readNumber(item, 'leaseExpiresAt');
      rows.push({
        name,
        nodeType,
        host: rest.join('/') || undefined,
        owner,
        fence: readNumber(item, 'fence'),
        leaseExpiresAt,
        acquiredAt: readNumber(item, 'acquiredAt'),
        state: owner === undefined ? 'free' : (leaseExpiresAt ?? 0) > now ? 'held' : 'expired',
        checkpoint: readString(item, 'checkpointKey') !== undefined,
      });
    }
  }
  return rows.sort((a, b) => a.name.localeCompare(b.name));
}

export interface PendingCommands {
  count: number;
  oldestCreatedAt?: number;
  byHost: Record<string, number>;
  sample: Array<{ id: string; type: string; failedHost: string; createdAt: number }>;
  malformed: number;
}

/** Commands written but not known to be on the queue (the outbox records of the sparse `pending` index). */
export async function readPendingCommands(
  dynamodb: DynamoDBClient,
  table: string,
  sampleSize = 10,
): Promise<PendingCommands> {
  const result: PendingCommands = { count: 0, byHost: {}, sample: [], malformed: 0 };
  for await (const page of paginateQuery(
    { client: dynamodb },
    {
      TableName: table,
      IndexName: 'pending',
      KeyConditionExpression: '#pending = :pending',
      ExpressionAttributeNames: { '#pending': 'pending' },
      ExpressionAttributeValues: { ':pending': str('1') },
    },
  )) {
    for (const item of page.Items ?? []) {
      const entry = parsePendingItem(item);
      if (entry === undefined) {
        result.malformed += 1;
        continue;
      }
      result.count += entry.commandIds.length;
      result.byHost[entry.failedHost] = (result.byHost[entry.failedHost] ?? 0) + entry.commandIds.length;
      if (result.oldestCreatedAt === undefined || entry.createdAt < result.oldestCreatedAt) {
        result.oldestCreatedAt = entry.createdAt;
      }
      for (const id of entry.commandIds.slice(0, sampleSize - result.sample.length)) {
        result.sample.push({
          id,
          type: entry.type,
          failedHost: entry.failedHost,
          createdAt: entry.createdAt,
        });
      }
    }
  }
  return result;
}

export interface WorkByHost {
  /** Executing process instances (F1) per owning host; `''` = unowned (failed over, not yet taken over). */
  instances: Map<string, number>;
  /** Executing task instances (F5) per worker. */
  tasks: Map<string, number>;
  /** Tasks marked NEED_FAULT_TOLERANCE per worker (failed over, waiting for their workflow). */
  needFaultTolerance: Map<string, number>;
  itemsRead: number;
}

/**
 * Executing work per host: a parallel Scan of both tables projecting only host and state, filtered
 * server-side. Reads each table once (cost: the table's size); `onProgress` gets the items read so far.
 */
export async function scanWork(
  dynamodb: DynamoDBClient,
  tables: { instances: string; tasks: string },
  onProgress: (itemsRead: number) => void,
  segments = 4,
): Promise<WorkByHost> {
  const work: WorkByHost = {
    instances: new Map(),
    tasks: new Map(),
    needFaultTolerance: new Map(),
    itemsRead: 0,
  };
  const add = (map: Map<string, number>, host: string) => map.set(host, (map.get(host) ?? 0) + 1);
  const scanTable = async (
    table: string,
    states: readonly string[],
    onItem: (host: string, state: string) => void,
  ) => {
    const values: Record<string, AttributeValue> = {};
    states.forEach((s, i) => {
      values[`:s${i}`] = str(s);
    });
    await Promise.all(
      Array.from({ length: segments }, async (_, segment) => {
        let start: Record<string, AttributeValue> | undefined;
        do {
          const out: ScanCommandOutput = await dynamodb.send(
            new ScanCommand({
              TableName: table,
              Segment: segment,
              TotalSegments: segments,
              ProjectionExpression: '#host, #state',
              FilterExpression: `#state IN (${states.map((_, i) => `:s${i}`).join(', ')})`,
              ExpressionAttributeNames: { '#host': 'host', '#state': 'state' },
              ExpressionAttributeValues: values,
              ExclusiveStartKey: start,
            }),
          );
          work.itemsRead += out.ScannedCount ?? 0;
          onProgress(work.itemsRead);
          for (const item of out.Items ?? [])
            onItem(readString(item, 'host') ?? '', readString(item, 'state') ?? '');
          start = out.LastEvaluatedKey;
        } while (start !== undefined);
      }),
    );
  };
  await Promise.all([
    scanTable(tables.instances, EXECUTING_PROCESS_STATES, (host) => add(work.instances, host)),
    scanTable(tables.tasks, [...TASK_FAILOVER_STATES, NEED_FAULT_TOLERANCE], (host, state) =>
      add(state === NEED_FAULT_TOLERANCE ? work.needFaultTolerance : work.tasks, host),
    ),
  ]);
  return work;
}

/** Executing items of one host through `byHost` (F1 or F5 states), and all its items. */
export async function countHostItems(
  dynamodb: DynamoDBClient,
  table: string,
  nodeType: NodeType,
  host: string,
): Promise<{ executing: number; total: number }> {
  const states = nodeType === 'master' ? EXECUTING_PROCESS_STATES : TASK_FAILOVER_STATES;
  const executing = new Set<string>(states);
  let total = 0;
  let active = 0;
  for await (const page of paginateQuery(
    { client: dynamodb },
    {
      TableName: table,
      IndexName: 'byHost',
      KeyConditionExpression: '#host = :host',
      ExpressionAttributeNames: { '#host': 'host', '#state': 'state' },
      ExpressionAttributeValues: { ':host': str(host) },
      ProjectionExpression: '#state',
    },
  )) {
    for (const item of page.Items ?? []) {
      total += 1;
      if (executing.has(readString(item, 'state') ?? '')) active += 1;
    }
  }
  return { executing: active, total };
}
