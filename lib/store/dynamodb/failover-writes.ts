// What the instance and task stores have in common: paging a host's items through the `byHost` GSI,
// consistent re-reads, and the failover transaction (conditional item updates + command puts + the
// batch's outbox record, DESIGN section 5), with the outcome of a cancelled transaction mapped to "which
// items no longer match".
import { randomUUID } from 'node:crypto';
import {
  type CancellationReason,
  type DynamoDBClient,
  QueryCommand,
  TransactionCanceledException,
  type TransactWriteItem,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import type {
  FailoverWrite,
  FenceStamp,
  HostItemStore,
  Page,
  TransactOutcome,
} from '../../failover/ports.ts';
import type { CommandMessage } from '../../messages.ts';
import { batchGetConsistent, decodeCursor, encodeCursor, errorName, type Item, str } from './attributes.ts';
import { commandItem, outboxId, outboxItem } from './commands.ts';

export type Parsed<T> = { ok: true; value: T } | { ok: false; id: string; problem: string };

/**
 * The transaction's items: per write its conditional update (from `update`) and its command put, then the
 * outbox record listing the commands (DynamoDB's limit of 100 items: at most 49 writes).
 */
export function failoverTransaction<T, M extends CommandMessage>(
  writes: ReadonlyArray<FailoverWrite<T, M>>,
  update: (write: FailoverWrite<T, M>) => TransactWriteItem,
  commandsTable: string,
  stamp: FenceStamp,
): { items: TransactWriteItem[]; outboxId: string } {
  const messages = writes.map((w) => w.message);
  const id = outboxId(messages);
  const items: TransactWriteItem[] = [];
  for (const write of writes) {
    items.push(update(write), {
      Put: {
        TableName: commandsTable,
        Item: commandItem(write.message, id),
        ConditionExpression: 'attribute_not_exists(id)',
      },
    });
  }
  items.push({
    Put: {
      TableName: commandsTable,
      Item: outboxItem(id, messages, stamp),
      ConditionExpression: 'attribute_not_exists(id)',
    },
  });
  return { items, outboxId: id };
}

const RETRYABLE_REASONS = new Set([
  'TransactionConflict',
  'ThrottlingError',
  'ProvisionedThroughputExceeded',
  'RequestLimitExceeded',
]);

/** Errors after which the same request may simply be sent again. */
const RETRYABLE_ERRORS = new Set([
  'TransactionInProgressException',
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'InternalServerError',
]);

export abstract class DynamoHostItemStore<T extends { id: string }, M extends CommandMessage>
  implements HostItemStore<T, M>
{
  constructor(
    protected readonly dynamodb: DynamoDBClient,
    protected readonly tableName: string,
    protected readonly commandsTable: string,
    private readonly executingStates: readonly string[],
  ) {}

  protected abstract parse(item: Item): Parsed<T>;
  /** The conditional update of one item (its condition must pin every attribute the decision used). */
  protected abstract update(write: FailoverWrite<T, M>, stamp: FenceStamp): TransactWriteItem;

  async pageByHost(host: string, limit: number, cursor?: string): Promise<Page<T>> {
    const states = Object.fromEntries(this.executingStates.map((s, i) => [`:s${i}`, str(s)]));
    const out = await this.dynamodb.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: 'byHost',
        KeyConditionExpression: '#host = :host',
        // Finished items keep their host: filter them server-side (they still count against Limit).
        FilterExpression: `#state IN (${Object.keys(states).join(', ')})`,
        ExpressionAttributeNames: { '#host': 'host', '#state': 'state' },
        ExpressionAttributeValues: { ':host': str(host), ...states },
        Limit: limit,
        ExclusiveStartKey: decodeCursor(cursor),
      }),
    );
    const page: Page<T> = { items: [], malformed: [], cursor: encodeCursor(out.LastEvaluatedKey) };
    for (const raw of out.Items ?? []) {
      const parsed = this.parse(raw);
      if (parsed.ok) page.items.push(parsed.value);
      else page.malformed.push({ id: parsed.id, problem: parsed.problem });
    }
    return page;
  }

  async getMany(ids: readonly string[]): Promise<Map<string, T>> {
    const found = new Map<string, T>();
    for (const raw of await batchGetConsistent(this.dynamodb, this.tableName, ids)) {
      const parsed = this.parse(raw);
      if (parsed.ok) found.set(parsed.value.id, parsed.value);
    }
    return found;
  }

  async failOver(writes: ReadonlyArray<FailoverWrite<T, M>>, stamp: FenceStamp): Promise<TransactOutcome> {
    const { items, outboxId } = failoverTransaction(
      writes,
      (write) => this.update(write, stamp),
      this.commandsTable,
      stamp,
    );
    try {
      // An explicit token makes the SDK's own retries of this request idempotent (10-minute window).
      await this.dynamodb.send(
        new TransactWriteItemsCommand({ TransactItems: items, ClientRequestToken: randomUUID() }),
      );
      return { status: 'committed', outboxId };
    } catch (error: unknown) {
      if (error instanceof TransactionCanceledException) {
        return cancellationOutcome(writes, error.CancellationReasons ?? []);
      }
      const name = errorName(error);
      if (RETRYABLE_ERRORS.has(name)) {
        return { status: 'cancelled', conditionFailed: [], retryable: true, reasons: [name] };
      }
      if (name === 'ValidationException') {
        return { status: 'invalid', reason: error instanceof Error ? error.message : name };
      }
      throw error;
    }
  }
}

/**
 * Item 2i is the update of writes[i], item 2i+1 its command, the last one the outbox record (whose id
 * derives from a command's, so its condition fails only with that command's): map each reason back.
 */
export function cancellationOutcome<T extends { id: string }>(
  writes: ReadonlyArray<{ item: T }>,
  reasons: readonly CancellationReason[],
): TransactOutcome {
  const conditionFailed = new Set<string>();
  let retryable = false;
  const codes: string[] = [];
  reasons.forEach((reason, index) => {
    const code = reason.Code ?? 'None';
    if (code !== 'None') codes.push(code);
    const write = writes[Math.floor(index / 2)];
    if (code === 'ConditionalCheckFailed' && write !== undefined) conditionFailed.add(write.item.id);
    else if (RETRYABLE_REASONS.has(code)) retryable = true;
  });
  if (codes.includes('ValidationError')) return { status: 'invalid', reason: codes.join(',') };
  // No reasons at all (should not happen): retry everything after a backoff.
  if (reasons.length === 0) retryable = true;
  return { status: 'cancelled', conditionFailed: [...conditionFailed], retryable, reasons: codes };
}
