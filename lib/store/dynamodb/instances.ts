// Process instances (DESIGN section 4, `instances` table) and their failover transaction (F2).
import type { DynamoDBClient, TransactWriteItem } from '@aws-sdk/client-dynamodb';
import type { FailoverWrite, FenceStamp, HostItemStore } from '../../failover/ports.ts';
import { EXECUTING_PROCESS_STATES, type ProcessInstance } from '../../failover/rules.ts';
import type { RecoveryCommand } from '../../messages.ts';
import { attributeType, type Item, num, readNumber, readString, str } from './attributes.ts';
import { DynamoHostItemStore, type Parsed } from './failover-writes.ts';

export type InstanceStore = HostItemStore<ProcessInstance, RecoveryCommand>;

const REQUIRED_NUMBERS = [
  'processDefinitionCode',
  'processDefinitionVersion',
  'executorId',
  'startTime',
] as const;
const OPTIONAL_NUMBERS = ['restartTime', 'failoverCount', 'fence'] as const;
const OPTIONAL_STRINGS = ['host', 'commandParam', 'fenceLock', 'lastHost'] as const;

/** An instances-table item as a ProcessInstance, or what is wrong with it. Never throws. */
export function parseProcessInstance(item: Item): Parsed<ProcessInstance> {
  const id = readString(item, 'id') ?? '';
  const bad = (problem: string): Parsed<ProcessInstance> => ({ ok: false, id, problem });
  if (id === '') return bad('id is not a non-empty string');
  const state = readString(item, 'state');
  if (state === undefined) return bad('state is not a string');
  const priority = readString(item, 'priority');
  if (priority === undefined) return bad('priority is not a string');
  for (const key of REQUIRED_NUMBERS)
    if (readNumber(item, key) === undefined) return bad(`${key} is not a number`);
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
  const value: ProcessInstance = {
    id,
    state,
    priority,
    processDefinitionCode: readNumber(item, 'processDefinitionCode') ?? 0,
    processDefinitionVersion: readNumber(item, 'processDefinitionVersion') ?? 0,
    executorId: readNumber(item, 'executorId') ?? 0,
    startTime: readNumber(item, 'startTime') ?? 0,
  };
  const host = readString(item, 'host');
  if (host !== undefined) value.host = host;
  const restartTime = readNumber(item, 'restartTime');
  if (restartTime !== undefined) value.restartTime = restartTime;
  const commandParam = readString(item, 'commandParam');
  if (commandParam !== undefined) value.commandParam = commandParam;
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

/**
 * The shared part of the failover condition: the item still has the dead host, the failover count that was
 * read, and no newer fence of the same lock (a zombie holder whose lease was taken over cannot write an
 * item the newer holder touched). Fences of other locks (other hosts) are not comparable and are ignored.
 */
export function failoverCondition(failoverCount: number | undefined): string {
  return [
    '#host = :host',
    '#state = :state',
    failoverCount === undefined ? 'attribute_not_exists(#failoverCount)' : '#failoverCount = :previousCount',
    '(attribute_not_exists(#fence) OR attribute_not_exists(#fenceLock) OR #fenceLock <> :lock OR #fence <= :fence)',
  ].join(' AND ');
}

export const failoverNames = {
  '#host': 'host',
  '#state': 'state',
  '#failoverCount': 'failoverCount',
  '#fence': 'fence',
  '#fenceLock': 'fenceLock',
  '#lastHost': 'lastHost',
  '#failedOverAt': 'failedOverAt',
};

export class DynamoInstanceStore
  extends DynamoHostItemStore<ProcessInstance, RecoveryCommand>
  implements InstanceStore
{
  constructor(dynamodb: DynamoDBClient, tables: { instances: string; commands: string }) {
    super(dynamodb, tables.instances, tables.commands, EXECUTING_PROCESS_STATES);
  }

  protected parse(item: Item): Parsed<ProcessInstance> {
    return parseProcessInstance(item);
  }

  protected update(
    write: FailoverWrite<ProcessInstance, RecoveryCommand>,
    stamp: FenceStamp,
  ): TransactWriteItem {
    const { item, generation } = write;
    // F3 was decided on startTime/restartTime as read: pin them too.
    const times = [
      '#startTime = :startTime',
      item.restartTime === undefined ? 'attribute_not_exists(#restartTime)' : '#restartTime = :restartTime',
    ];
    return {
      Update: {
        TableName: this.tableName,
        Key: { id: str(item.id) },
        ConditionExpression: [failoverCondition(item.failoverCount), ...times].join(' AND '),
        // F2: unowned, state unchanged, bookkeeping set.
        UpdateExpression:
          'REMOVE #host SET #lastHost = :host, #failoverCount = :generation, #failedOverAt = :now, ' +
          '#fence = :fence, #fenceLock = :lock',
        ExpressionAttributeNames: {
          ...failoverNames,
          '#startTime': 'startTime',
          '#restartTime': 'restartTime',
        },
        ExpressionAttributeValues: {
          ':host': str(stamp.host),
          ':state': str(item.state),
          ...(item.failoverCount === undefined ? {} : { ':previousCount': num(item.failoverCount) }),
          ':startTime': num(item.startTime),
          ...(item.restartTime === undefined ? {} : { ':restartTime': num(item.restartTime) }),
          ':generation': num(generation),
          ':now': num(stamp.now),
          ':fence': num(stamp.fence),
          ':lock': str(stamp.lockName),
        },
      },
    };
  }
}
