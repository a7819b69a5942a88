// The commands table as an outbox (DESIGN section 5): a command is written in the failover transaction
// with `pending` set (so the sparse `pending` GSI lists it), sent to the queue, then marked enqueued
// (`enqueuedAt` set, `pending` removed).
import {
  BatchWriteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
} from '@aws-sdk/client-dynamodb';
import { backoffMs, chunk, mapConcurrently, sleep } from '../failover/concurrency.ts';
import { type CommandMessage, CommandMessageSchema } from '../messages.ts';
import {
  decodeCursor,
  encodeCursor,
  type Item,
  marshalFlat,
  num,
  readNumber,
  readString,
  str,
  unmarshalFlat,
} from './attributes.ts';

export interface PendingFilter {
  /** Only commands of this failed host. */
  failedHost?: string;
  /** Only this kind of command. */
  type?: CommandMessage['type'];
  /** Only commands created before this time (epoch ms). */
  createdBefore?: number;
}

export interface PendingPage {
  commands: CommandMessage[];
  /** Ids of pending items that are not valid commands (logged, never sent). */
  malformed: string[];
  cursor?: string;
}

export interface CommandStore {
  /** Commands written but not marked enqueued, one page at a time. */
  pendingPage(filter: PendingFilter, limit: number, cursor?: string): Promise<PendingPage>;
  /** Marks these (written, now sent) commands as on the queue: `enqueuedAt` set, `pending` removed. */
  markEnqueued(commands: readonly CommandMessage[], now: number): Promise<void>;
  /** One command with its outbox state (operators, tests). */
  get(id: string): Promise<{ command: CommandMessage; enqueuedAt?: number; pending: boolean } | undefined>;
}

/** Parses a command item back into the message that was written. */
export function parseCommandItem(item: Item): CommandMessage | undefined {
  const { pending: _pending, enqueuedAt: _enqueuedAt, ...fields } = unmarshalFlat(item);
  const parsed = CommandMessageSchema.safeParse(fields);
  return parsed.success ? parsed.data : undefined;
}

const MARK_CONCURRENCY = 8;

export class DynamoCommandStore implements CommandStore {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async pendingPage(filter: PendingFilter, limit: number, cursor?: string): Promise<PendingPage> {
    const conditions: string[] = [];
    const names: Record<string, string> = { '#pending': 'pending' };
    const values: Item = { ':pending': str('1') };
    if (filter.failedHost !== undefined) {
      conditions.push('#failedHost = :failedHost');
      names['#failedHost'] = 'failedHost';
      values[':failedHost'] = str(filter.failedHost);
    }
    if (filter.type !== undefined) {
      conditions.push('#type = :type');
      names['#type'] = 'type';
      values[':type'] = str(filter.type);
    }
    if (filter.createdBefore !== undefined) {
      conditions.push('#createdAt < :createdBefore');
      names['#createdAt'] = 'createdAt';
      values[':createdBefore'] = num(filter.createdBefore);
    }
    const out = await this.dynamodb.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: 'pending',
        KeyConditionExpression: '#pending = :pending',
        FilterExpression: conditions.length > 0 ? conditions.join(' AND ') : undefined,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        Limit: limit,
        ExclusiveStartKey: decodeCursor(cursor),
      }),
    );
    const page: PendingPage = { commands: [], malformed: [], cursor: encodeCursor(out.LastEvaluatedKey) };
    for (const item of out.Items ?? []) {
      const command = parseCommandItem(item);
      if (command) page.commands.push(command);
      else page.malformed.push(readString(item, 'id') ?? '(no id)');
    }
    return page;
  }

  /**
   * Rewrites each command item whole, without `pending`. Commands are immutable once written, so a put of
   * the same fields equals a conditional update, and BatchWriteItem (25 items per call) costs a fraction of
   * one UpdateItem per command: on DynamoDB Local the per-item updates took as long as the failover
   * transactions themselves.
   */
  async markEnqueued(commands: readonly CommandMessage[], now: number): Promise<void> {
    const unique = [...new Map(commands.map((c) => [c.id, c])).values()];
    await mapConcurrently(chunk(unique, 25), MARK_CONCURRENCY, async (batch) => {
      let requests = batch.map((c) => ({
        PutRequest: { Item: { ...marshalFlat(c), enqueuedAt: num(now) } },
      }));
      for (let attempt = 1; requests.length > 0; attempt += 1) {
        if (attempt > 1) await sleep(backoffMs(attempt, 50, 2_000));
        const out = await this.dynamodb.send(
          new BatchWriteItemCommand({ RequestItems: { [this.tableName]: requests } }),
        );
        requests = (out.UnprocessedItems?.[this.tableName] ?? []) as typeof requests;
        if (attempt >= 10 && requests.length > 0) {
          throw new Error(`${requests.length} command(s) could not be marked enqueued (throttled)`);
        }
      }
    });
  }

  async get(
    id: string,
  ): Promise<{ command: CommandMessage; enqueuedAt?: number; pending: boolean } | undefined> {
    const out = await this.dynamodb.send(
      new GetItemCommand({ TableName: this.tableName, Key: { id: str(id) }, ConsistentRead: true }),
    );
    if (out.Item === undefined) return undefined;
    const command = parseCommandItem(out.Item);
    if (command === undefined) return undefined;
    const enqueuedAt = readNumber(out.Item, 'enqueuedAt');
    return {
      command,
      pending: readString(out.Item, 'pending') !== undefined,
      ...(enqueuedAt === undefined ? {} : { enqueuedAt }),
    };
  }
}
