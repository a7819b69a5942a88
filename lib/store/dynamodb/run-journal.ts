// The run journal (DESIGN D6): where failovers are recorded when the write itself is the delivery (the
// DolphinScheduler store, whose masters poll their own command table). One item per record (a committed
// batch, or the batches a CoalescingJournal folded into one) in the commands table,
// `journal/<lock name>/<fence>/<first instance id>`: the host, the fence, and which instances got which
// command. Outside the outbox's `pending` index; kept as long as commands are.
import { type DynamoDBClient, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import type { CommandReceipt, RunJournal, RunRecord } from '../../failover/ports.ts';
import { type Item, num, readNumber, readString, str } from './attributes.ts';
import { COMMAND_RETENTION_MS } from './commands.ts';

export const JOURNAL_PREFIX = 'journal/';

const list = (values: readonly string[]) => ({ L: values.map(str) });

export class DynamoRunJournal implements RunJournal {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async record(entry: RunRecord): Promise<void> {
    const first = entry.receipts[0]?.itemId ?? '-';
    await this.dynamodb.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: {
          id: str(`${JOURNAL_PREFIX}${entry.lockName}/${entry.fence}/${first}`),
          lockName: str(entry.lockName),
          host: str(entry.host),
          fence: num(entry.fence),
          instanceIds: list(entry.receipts.map((r) => r.itemId)),
          commandIds: list(entry.receipts.map((r) => r.commandId)),
          writtenAt: num(entry.writtenAt),
          expiresAt: num(Math.ceil((entry.writtenAt + COMMAND_RETENTION_MS) / 1_000)),
        },
      }),
    );
  }

  /** Every recorded batch of a lock (`failover/master/<host>`), oldest fence first. A scan: for operators and tests. */
  async runsOf(lockName: string): Promise<RunRecord[]> {
    const records: RunRecord[] = [];
    let start: Item | undefined;
    do {
      const out = await this.dynamodb.send(
        new ScanCommand({
          TableName: this.tableName,
          ConsistentRead: true,
          FilterExpression: 'begins_with(id, :prefix)',
          ExpressionAttributeValues: { ':prefix': str(`${JOURNAL_PREFIX}${lockName}/`) },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) {
        const record = parseRecord(item);
        if (record !== undefined) records.push(record);
      }
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
    return records.sort((a, b) => a.fence - b.fence || a.writtenAt - b.writtenAt);
  }
}

function parseRecord(item: Item): RunRecord | undefined {
  const lockName = readString(item, 'lockName');
  const host = readString(item, 'host');
  const fence = readNumber(item, 'fence');
  const writtenAt = readNumber(item, 'writtenAt');
  const instanceIds = item.instanceIds?.L?.map((v) => v.S ?? '') ?? [];
  const commandIds = item.commandIds?.L?.map((v) => v.S ?? '') ?? [];
  if (!lockName || !host || fence === undefined || writtenAt === undefined) return undefined;
  const receipts: CommandReceipt[] = instanceIds.map((itemId, i) => ({
    itemId,
    commandId: commandIds[i] ?? '',
  }));
  return { lockName, host, fence, receipts, writtenAt };
}
