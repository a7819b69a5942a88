// The per-host failover lease lock (DESIGN section 5): one item per `failover/<type>/<host>`, never deleted,
// so its `fence` only ever grows. Every operation is a single conditional write.
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  type AcquireResult,
  type Checkpoint,
  type Lease,
  LockLostError,
  type LockStore,
} from '../../failover/ports.ts';
import { type Item, num, readNumber, readString, str } from './attributes.ts';

export class DynamoLockStore implements LockStore {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async acquire(name: string, owner: string, leaseMs: number, now: number): Promise<AcquireResult> {
    try {
      const out = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { name: str(name) },
          ConditionExpression: 'attribute_not_exists(#owner) OR leaseExpiresAt <= :now',
          UpdateExpression:
            'SET #owner = :owner, leaseExpiresAt = :expires, acquiredAt = :now ADD fence :one',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: {
            ':owner': str(owner),
            ':expires': num(now + leaseMs),
            ':now': num(now),
            ':one': num(1),
          },
          ReturnValues: 'ALL_NEW',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      const item = out.Attributes ?? {};
      const fence = readNumber(item, 'fence');
      if (fence === undefined) throw new TypeError(`lock ${name} has no numeric fence after acquisition`);
      const lease = { name, owner, fence, expiresAt: now + leaseMs };
      const key = readString(item, 'checkpointKey');
      const cursor = readString(item, 'checkpointCursor');
      return { acquired: true, lease, ...(key && cursor ? { checkpoint: { key, cursor } } : {}) };
    } catch (error: unknown) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const held = error.Item ?? (await this.read(name));
      return {
        acquired: false,
        heldUntil: readNumber(held ?? {}, 'leaseExpiresAt') ?? now,
        holder: readString(held ?? {}, 'owner'),
        fence: readNumber(held ?? {}, 'fence'),
      };
    }
  }

  async renew(lease: Lease, leaseMs: number, now: number): Promise<Lease> {
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { name: str(lease.name) },
          ConditionExpression: '#owner = :owner AND fence = :fence',
          UpdateExpression: 'SET leaseExpiresAt = :expires',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: {
            ':owner': str(lease.owner),
            ':fence': num(lease.fence),
            ':expires': num(now + leaseMs),
          },
        }),
      );
      return { ...lease, expiresAt: now + leaseMs };
    } catch (error: unknown) {
      if (error instanceof ConditionalCheckFailedException) throw new LockLostError(lease, { cause: error });
      throw error;
    }
  }

  async release(lease: Lease, checkpoint?: Checkpoint): Promise<boolean> {
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { name: str(lease.name) },
          ConditionExpression: '#owner = :owner AND fence = :fence',
          // The item stays (the fence must never restart); only the ownership goes.
          UpdateExpression: checkpoint
            ? 'REMOVE #owner SET leaseExpiresAt = :zero, checkpointKey = :key, checkpointCursor = :cursor'
            : 'REMOVE #owner, checkpointKey, checkpointCursor SET leaseExpiresAt = :zero',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: {
            ':owner': str(lease.owner),
            ':fence': num(lease.fence),
            ':zero': num(0),
            ...(checkpoint ? { ':key': str(checkpoint.key), ':cursor': str(checkpoint.cursor) } : {}),
          },
        }),
      );
      return true;
    } catch (error: unknown) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  private async read(name: string): Promise<Item | undefined> {
    const out = await this.dynamodb.send(
      new GetItemCommand({ TableName: this.tableName, Key: { name: str(name) }, ConsistentRead: true }),
    );
    return out.Item;
  }
}
