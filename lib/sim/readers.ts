// DynamoDB reads the demo needs to show progress and to check its invariants (queue depths: lib/cli/inspect.ts).
import {
  type AttributeValue,
  type DynamoDBClient,
  paginateQuery,
  paginateScan,
} from '@aws-sdk/client-dynamodb';
import { EXECUTING_PROCESS_STATES, TASK_FAILOVER_STATES } from '../failover/rules.ts';
import { type Item, str, unmarshalFlat } from '../store/dynamodb/attributes.ts';
import { commandsWithOutboxState } from '../store/dynamodb/commands.ts';

/** Executing items of one host (F1 states for instances, F5 states for tasks), through `byHost`. */
export async function countExecuting(
  dynamodb: DynamoDBClient,
  table: string,
  kind: 'instances' | 'tasks',
  host: string,
): Promise<number> {
  const states = kind === 'instances' ? EXECUTING_PROCESS_STATES : TASK_FAILOVER_STATES;
  const values: Record<string, AttributeValue> = { ':host': str(host) };
  states.forEach((s, i) => {
    values[`:s${i}`] = str(s);
  });
  let count = 0;
  for await (const page of paginateQuery(
    { client: dynamodb },
    {
      TableName: table,
      IndexName: 'byHost',
      KeyConditionExpression: '#host = :host',
      FilterExpression: `#state IN (${states.map((_, i) => `:s${i}`).join(', ')})`,
      ExpressionAttributeNames: { '#host': 'host', '#state': 'state' },
      ExpressionAttributeValues: values,
      Select: 'COUNT',
    },
  )) {
    count += page.Count ?? 0;
  }
  return count;
}

/** Every item of a (small) table as flat records: strings and numbers only. */
export async function scanAll(
  dynamodb: DynamoDBClient,
  table: string,
): Promise<Array<Record<string, string | number>>> {
  const items: Array<Record<string, string | number>> = [];
  for await (const page of paginateScan({ client: dynamodb }, { TableName: table, ConsistentRead: true })) {
    for (const item of page.Items ?? []) items.push(unmarshalFlat(item));
  }
  return items;
}

/** Every command of a (small) commands table, with its outbox state (`commandsWithOutboxState`). */
export async function scanCommands(
  dynamodb: DynamoDBClient,
  table: string,
): Promise<Array<Record<string, string | number>>> {
  const items: Item[] = [];
  for await (const page of paginateScan({ client: dynamodb }, { TableName: table, ConsistentRead: true })) {
    items.push(...(page.Items ?? []));
  }
  return commandsWithOutboxState(items);
}
