// The commands table as an outbox (DESIGN section 5). Each failover transaction writes its commands and
// one outbox record (`outbox/<first command id>`) that lists them, with `pending` set so the sparse
// `pending` GSI finds it. Once the commands are on the queue the record alone is marked enqueued
// (`enqueuedAt` set, `pending` removed): one write per transaction instead of one per command.
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { FenceStamp, OutboxBatch, PendingFilter } from '../../failover/ports.ts';
import { type CommandMessage, CommandMessageSchema } from '../../messages.ts';
import {
  batchGetConsistent,
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

/** How long commands and enqueued outbox records are kept (their `expiresAt`, the table's TTL). */
export const COMMAND_RETENTION_MS = 30 * 86_400_000;

/** The id prefix of outbox records, which share the commands table with the commands they list. */
export const OUTBOX_PREFIX = 'outbox/';

export interface PendingPage {
  batches: OutboxBatch[];
  /** Ids of pending records, and of commands they list, that cannot be sent (logged, never sent). */
  malformed: string[];
  cursor?: string;
}

export interface CommandState {
  command: CommandMessage;
  /** When its outbox record was marked enqueued. */
  enqueuedAt?: number;
  /** Written and not yet known to be on the queue. */
  pending: boolean;
}

export interface CommandStore {
  /** Pending outbox records (commands written but not marked enqueued), `limit` records per page. */
  pendingPage(filter: PendingFilter, limit: number, cursor?: string): Promise<PendingPage>;
  /** The pending outbox records that list any of these commands (read consistently, not from the index). */
  pendingRecordsOf(commandIds: readonly string[]): Promise<OutboxBatch[]>;
  /** Every command of this outbox record is on the queue: `enqueuedAt` set, `pending` removed. */
  markEnqueued(outboxId: string, now: number): Promise<void>;
  /** Some of the record's commands are on the queue: it stays pending with only `remaining` listed. */
  keepPending(outboxId: string, remaining: readonly string[]): Promise<void>;
  /** One command with its outbox state (operators, tests). */
  get(id: string): Promise<CommandState | undefined>;
}

/** The outbox record id of a transaction's commands: unique, since the first command is written only once. */
export function outboxId(messages: readonly CommandMessage[]): string {
  const first = messages[0];
  if (first === undefined) throw new RangeError('an outbox record lists at least one command');
  return `${OUTBOX_PREFIX}${first.id}`;
}

function expiresAt(from: number): number {
  return Math.ceil((from + COMMAND_RETENTION_MS) / 1_000);
}

/** The command item: the message's fields, the outbox record that lists it, and its expiry (TTL). */
export function commandItem(message: CommandMessage, outbox: string): Item {
  return { ...marshalFlat(message), outbox: str(outbox), expiresAt: num(expiresAt(message.createdAt)) };
}

/** The pending outbox record of one transaction's commands (what the sweep's filters need, and their ids). */
export function outboxItem(id: string, messages: readonly CommandMessage[], stamp: FenceStamp): Item {
  return {
    id: str(id),
    pending: str('1'),
    type: str(messages[0]?.type ?? ''),
    failedHost: str(stamp.host),
    createdAt: num(stamp.now),
    fence: num(stamp.fence),
    commands: { L: messages.map((m) => str(m.id)) },
  };
}

/** Parses a command item back into the message that was written. */
export function parseCommandItem(item: Item): CommandMessage | undefined {
  const {
    pending: _pending,
    enqueuedAt: _enqueuedAt,
    outbox: _outbox,
    expiresAt: _expiresAt,
    ...fields
  } = unmarshalFlat(item);
  const parsed = CommandMessageSchema.safeParse(fields);
  return parsed.success ? parsed.data : undefined;
}

/** An item of the `pending` index: an outbox record, or a pending command of an earlier build. */
export interface PendingEntry {
  /** The item to mark: the record, or the earlier build's command itself. */
  id: string;
  commandIds: string[];
  type: string;
  failedHost: string;
  createdAt: number;
  /** The earlier build's command, already read. */
  command?: CommandMessage;
}

/** What a `pending` index item lists, or undefined when it is neither a record nor a command. */
export function parsePendingItem(item: Item): PendingEntry | undefined {
  const id = readString(item, 'id');
  if (id === undefined) return undefined;
  if (id.startsWith(OUTBOX_PREFIX)) {
    const commandIds = outboxCommandIds(item);
    const type = readString(item, 'type');
    const failedHost = readString(item, 'failedHost');
    const createdAt = readNumber(item, 'createdAt');
    if (
      commandIds === undefined ||
      type === undefined ||
      failedHost === undefined ||
      createdAt === undefined
    ) {
      return undefined;
    }
    return { id, commandIds, type, failedHost, createdAt };
  }
  const command = parseCommandItem(item);
  if (command === undefined || command.id !== id) return undefined;
  const { type, failedHost, createdAt } = command;
  return { id, commandIds: [id], type, failedHost, createdAt, command };
}

/**
 * The commands among items of the commands table, as flat records, each with the outbox state its record
 * gives it: `enqueuedAt` once the record is marked, `pending` while the record is pending and lists it
 * (an earlier build's command keeps its own). The view audits and invariant checks want; the records
 * themselves are left out.
 */
export function commandsWithOutboxState(items: readonly Item[]): Array<Record<string, string | number>> {
  const records = new Map<string, Item>();
  for (const item of items) {
    const id = readString(item, 'id');
    if (id?.startsWith(OUTBOX_PREFIX)) records.set(id, item);
  }
  const commands: Array<Record<string, string | number>> = [];
  for (const item of items) {
    const flat = unmarshalFlat(item);
    if (String(flat.id).startsWith(OUTBOX_PREFIX)) continue;
    const outbox = typeof flat.outbox === 'string' ? records.get(flat.outbox) : undefined;
    if (typeof flat.outbox === 'string') {
      delete flat.pending;
      delete flat.enqueuedAt;
    }
    if (outbox !== undefined) {
      const listed = (outboxCommandIds(outbox) ?? []).includes(String(flat.id));
      if (readString(outbox, 'pending') !== undefined && listed) flat.pending = '1';
      const enqueuedAt = readNumber(outbox, 'enqueuedAt');
      if (enqueuedAt !== undefined) flat.enqueuedAt = enqueuedAt;
    }
    commands.push(flat);
  }
  return commands;
}

/** The command ids an outbox record lists, or undefined when it is not a well-formed record. */
export function outboxCommandIds(item: Item): string[] | undefined {
  const list = item.commands;
  if (list === undefined || !('L' in list) || !Array.isArray(list.L) || list.L.length === 0) return undefined;
  const ids: string[] = [];
  for (const entry of list.L) {
    if (!('S' in entry) || typeof entry.S !== 'string') return undefined;
    ids.push(entry.S);
  }
  return ids;
}

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
    const { batches, malformed } = await this.batchesOf(out.Items ?? []);
    return { batches, malformed, cursor: encodeCursor(out.LastEvaluatedKey) };
  }

  async pendingRecordsOf(commandIds: readonly string[]): Promise<OutboxBatch[]> {
    const commands = await batchGetConsistent(this.dynamodb, this.tableName, commandIds);
    // An earlier build's command is its own record.
    const recordIds = commands.flatMap((c) => readString(c, 'outbox') ?? readString(c, 'id') ?? []);
    const records = await batchGetConsistent(this.dynamodb, this.tableName, recordIds);
    const pending = records.filter((r) => readString(r, 'pending') !== undefined);
    return (await this.batchesOf(pending)).batches;
  }

  /** The batches of `pending` index items, with the commands the records list read consistently. */
  private async batchesOf(items: readonly Item[]): Promise<Omit<PendingPage, 'cursor'>> {
    const page: Omit<PendingPage, 'cursor'> = { batches: [], malformed: [] };
    const records: PendingEntry[] = [];
    for (const item of items) {
      const entry = parsePendingItem(item);
      if (entry === undefined) page.malformed.push(readString(item, 'id') ?? '(no id)');
      else if (entry.command !== undefined)
        page.batches.push({ outboxId: entry.id, commands: [entry.command] });
      else records.push(entry);
    }
    const found = new Map<string, Item>();
    const listed = records.flatMap((r) => r.commandIds);
    for (const item of await batchGetConsistent(this.dynamodb, this.tableName, listed)) {
      const id = readString(item, 'id');
      if (id !== undefined) found.set(id, item);
    }
    for (const record of records) {
      const batch: OutboxBatch = { outboxId: record.id, commands: [], unsendable: [] };
      for (const commandId of record.commandIds) {
        const item = found.get(commandId);
        const command = item === undefined ? undefined : parseCommandItem(item);
        if (command !== undefined && command.id === commandId) batch.commands.push(command);
        else batch.unsendable?.push(commandId);
      }
      page.malformed.push(...(batch.unsendable ?? []));
      page.batches.push(batch);
    }
    return page;
  }

  async markEnqueued(outboxId: string, now: number): Promise<void> {
    await this.updateRecord({
      TableName: this.tableName,
      Key: { id: str(outboxId) },
      ConditionExpression: 'attribute_exists(#pending)',
      UpdateExpression: 'SET #enqueuedAt = :now, #expiresAt = :expiresAt REMOVE #pending',
      ExpressionAttributeNames: {
        '#pending': 'pending',
        '#enqueuedAt': 'enqueuedAt',
        '#expiresAt': 'expiresAt',
      },
      ExpressionAttributeValues: { ':now': num(now), ':expiresAt': num(expiresAt(now)) },
    });
  }

  async keepPending(outboxId: string, remaining: readonly string[]): Promise<void> {
    if (remaining.length === 0) throw new RangeError('keepPending needs the commands still to send');
    await this.updateRecord({
      TableName: this.tableName,
      Key: { id: str(outboxId) },
      ConditionExpression: 'attribute_exists(#pending)',
      UpdateExpression: 'SET #commands = :remaining',
      ExpressionAttributeNames: { '#pending': 'pending', '#commands': 'commands' },
      ExpressionAttributeValues: { ':remaining': { L: remaining.map((id) => str(id)) } },
    });
  }

  /** A record no longer pending was delivered by someone else meanwhile (the sweep, a retry): nothing to do. */
  private async updateRecord(input: ConstructorParameters<typeof UpdateItemCommand>[0]): Promise<void> {
    try {
      await this.dynamodb.send(new UpdateItemCommand(input));
    } catch (error: unknown) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  async get(id: string): Promise<CommandState | undefined> {
    const item = await this.read(id);
    const command = item === undefined ? undefined : parseCommandItem(item);
    if (item === undefined || command === undefined) return undefined;
    const outbox = readString(item, 'outbox');
    // Without `outbox`: a command of an earlier build, which carries its own outbox state.
    const record = outbox === undefined ? { ...item, commands: { L: [str(id)] } } : await this.read(outbox);
    if (record === undefined) return { command, pending: false };
    const pending =
      readString(record, 'pending') !== undefined && (outboxCommandIds(record) ?? []).includes(id);
    const enqueuedAt = readNumber(record, 'enqueuedAt');
    return { command, pending, ...(enqueuedAt === undefined ? {} : { enqueuedAt }) };
  }

  private async read(id: string): Promise<Item | undefined> {
    const out = await this.dynamodb.send(
      new GetItemCommand({ TableName: this.tableName, Key: { id: str(id) }, ConsistentRead: true }),
    );
    return out.Item;
  }
}
