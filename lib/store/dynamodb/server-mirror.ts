// Read-only view of the membership mirror (servers table) that the watcher keeps, for the F3 liveness
// check of the failover function, which runs outside the ZooKeeper network. See docs/failover.md for the
// staleness this allows.
import { type DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { LivenessSource } from '../../failover/ports.ts';
import type { LiveIncarnation } from '../../failover/rules.ts';
import type { NodeType } from '../../messages.ts';
import { type Item, readBoolean, readNumber, str } from './attributes.ts';

/** Mirror row -> F3 input. A live row without a usable startupTime gives NaN: nothing is provably older. */
export function liveIncarnationOf(row: Item | undefined): LiveIncarnation {
  if (row === undefined || readBoolean(row, 'alive') !== true) return null;
  return { startupTime: readNumber(row, 'startupTime') ?? Number.NaN };
}

/** The liveness the membership mirror shows: the incarnation registered for a server, or null. */
export class DynamoServerMirror implements LivenessSource {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async liveIncarnation(type: NodeType, host: string): Promise<LiveIncarnation> {
    const out = await this.dynamodb.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { id: str(`${type}/${host}`) },
        ConsistentRead: true,
      }),
    );
    return liveIncarnationOf(out.Item);
  }
}
