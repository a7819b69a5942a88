// The sweep's repair ledger (DESIGN D5): when each unowned instance was first seen without a command, so
// that it gets one only after the grace period. One item of the servers table (`sweep/unowned-instances`,
// next to the sweep's discovery checkpoint), which the membership mirror skips as not a server row.
import { type DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { RepairLedger } from '../../sweep/repair-unowned.ts';
import { num, str } from './attributes.ts';

export const repairLedgerId = 'sweep/unowned-instances';

export class DynamoRepairLedger implements RepairLedger {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async load(): Promise<Map<string, number>> {
    const out = await this.dynamodb.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { id: str(repairLedgerId) },
        ConsistentRead: true,
      }),
    );
    const seen = new Map<string, number>();
    for (const [id, value] of Object.entries(out.Item?.firstSeen?.M ?? {})) {
      const at = Number(value.N);
      if (Number.isFinite(at)) seen.set(id, at);
    }
    return seen;
  }

  async save(firstSeen: ReadonlyMap<string, number>): Promise<void> {
    await this.dynamodb.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: {
          id: str(repairLedgerId),
          type: str('sweep'),
          firstSeen: { M: Object.fromEntries([...firstSeen.entries()].map(([id, at]) => [id, num(at)])) },
        },
      }),
    );
  }
}
