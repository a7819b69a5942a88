// Task instances (DESIGN section 4, `tasks` table) and their failover transaction (F5).
import type { DynamoDBClient, TransactWriteItem } from '@aws-sdk/client-dynamodb';
import type { FailoverWrite, FenceStamp, HostItemStore } from '../../failover/ports.ts';
import { NEED_FAULT_TOLERANCE, TASK_FAILOVER_STATES, type TaskInstance } from '../../failover/rules.ts';
import type { TaskFailoverNotice } from '../../messages.ts';
import { attributeType, type Item, num, readNumber, readString, str } from './attributes.ts';
import { DynamoHostItemStore, type Parsed } from './failover-writes.ts';
import { failoverCondition, failoverNames } from './instances.ts';

export type TaskStore = HostItemStore<TaskInstance, TaskFailoverNotice>;

const OPTIONAL_NUMBERS = ['startTime', 'failoverCount', 'fence'] as const;
const OPTIONAL_STRINGS = ['host', 'fenceLock', 'lastHost'] as const;

/** A tasks-table item as a TaskInstance, or what is wrong with it. Never throws. */
export function parseTaskInstance(item: Item): Parsed<TaskInstance> {
  const id = readString(item, 'id') ?? '';
  const bad = (problem: string): Parsed<TaskInstance> => ({ ok: false, id, problem });
  if (id === '') return bad('id is not a non-empty string');
  const processInstanceId = readString(item, 'processInstanceId');
  if (processInstanceId === undefined || processInstanceId === '')
    return bad('processInstanceId is not a string');
  const state = readString(item, 'state');
  if (state === undefined) return bad('state is not a string');
  const submitTime = readNumber(item, 'submitTime');
  if (submitTime === undefined) return bad('submitTime is not a number');
  for (const key of OPTIONAL_NUMBERS) {
    if (attributeType(item, key) !== undefined && readNumber(item, key) === undefined) {
      return bad(`${key} is not a number`);
    }
  }
  for (const key of OPTIONAL_STRINGS) {
    if (attributeType(item, key) !== undefined && readString(item, key) === undefined) {
      return bad(`${key} is not a string`);
    }
  }
  const value: TaskInstance = { id, processInstanceId, state, submitTime };
  const host = readString(item, 'host');
  if (host !== undefined) value.host = host;
  const startTime = readNumber(item, 'startTime');
  if (startTime !== undefined) value.startTime = startTime;
  const failoverCount = readNumber(item, 'failoverCount');
  if (failoverCount !== undefined) value.failoverCount = failoverCount;
  const fence = readNumber(item, 'fence');
  if (fence !== undefined) value.fence = fence;
  const fenceLock = readString(item, 'fenceLock');
  if (fenceLock !== undefined) value.fenceLock = fenceLock;
  const lastHost = readString(item, 'lastHost');
  if (lastHost !== undefined) value.lastHost = lastHost;
  return { ok: true, value };
}

export class DynamoTaskStore
  extends DynamoHostItemStore<TaskInstance, TaskFailoverNotice>
  implements TaskStore
{
  constructor(dynamodb: DynamoDBClient, tables: { tasks: string; commands: string }) {
    super(dynamodb, tables.tasks, tables.commands, TASK_FAILOVER_STATES);
  }

  protected parse(item: Item): Parsed<TaskInstance> {
    return parseTaskInstance(item);
  }

  protected update(
    write: FailoverWrite<TaskInstance, TaskFailoverNotice>,
    stamp: FenceStamp,
  ): TransactWriteItem {
    const { item, generation } = write;
    return {
      Update: {
        TableName: this.tableName,
        Key: { id: str(item.id) },
        ConditionExpression: `${failoverCondition(item.failoverCount)} AND #submitTime = :submitTime`,
        // F5: the state changes; the host stays (the task's record of where it ran), so the item leaves the
        // set of executing tasks without leaving the host's index.
        UpdateExpression:
          'SET #state = :needFaultTolerance, #lastHost = :host, #failoverCount = :generation, ' +
          '#failedOverAt = :now, #fence = :fence, #fenceLock = :lock',
        ExpressionAttributeNames: { ...failoverNames, '#submitTime': 'submitTime' },
        ExpressionAttributeValues: {
          ':host': str(stamp.host),
          ':state': str(item.state),
          ...(item.failoverCount === undefined ? {} : { ':previousCount': num(item.failoverCount) }),
          ':submitTime': num(item.submitTime),
          ':needFaultTolerance': str(NEED_FAULT_TOLERANCE),
          ':generation': num(generation),
          ':now': num(stamp.now),
          ':fence': num(stamp.fence),
          ':lock': str(stamp.lockName),
        },
      },
    };
  }
}
