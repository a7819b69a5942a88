// The membership mirror (servers table): one row per server, written only by the watcher and the sweep
// with conditional writes, read by the failover function for F3 (see lib/store/server-mirror.ts).
//
// Row: id `<type>/<host>`, type, host, czxid (current or last incarnation), startupTime, startupTimeSource,
// alive, seenAt, removedAt (when removed), ephemeralOwner, anchor (directory of the czxid node), groups
// (ds-1.3 workers), previousCzxid/previousStartupTime (after a restart), pending (map czxid -> request JSON,
// removals flipped but not yet confirmed on the queue), sweptFor/sweptAt/sweepCursor (sweep bookkeeping).
// The sweep's discovery checkpoint is one more item, id `sweep/discovery`, which is not a server row.
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  paginateScan,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { FailoverRequestSchema, NodeTypeSchema } from '../../messages.ts';
import {
  type MembershipAction,
  type MembershipStore,
  type MirrorRow,
  type PendingRequest,
  type ServerObservation,
  sweepKey,
} from '../../registry/membership.ts';
import type { DiscoveryCheckpoint } from '../../sweep/executing-work.ts';
import { type Item, num, readBoolean, readNumber, readString, str } from './attributes.ts';

const bool = (value: boolean): AttributeValue => ({ BOOL: value });
const list = (values: readonly string[]): AttributeValue => ({ L: values.map(str) });

/** The key of the sweep's discovery checkpoint (not a server row). */
export const discoveryCheckpointId = 'sweep/discovery';

export class DynamoServerStore implements MembershipStore {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async scan(): Promise<MirrorRow[]> {
    const rows: MirrorRow[] = [];
    for await (const page of paginateScan(
      { client: this.dynamodb },
      { TableName: this.tableName, ConsistentRead: true },
    )) {
      for (const item of page.Items ?? []) {
        const row = parseRow(item);
        if (row !== undefined) rows.push(row);
      }
    }
    return rows;
  }

  async get(id: string): Promise<MirrorRow | undefined> {
    const out = await this.dynamodb.send(
      new GetItemCommand({ TableName: this.tableName, Key: { id: str(id) }, ConsistentRead: true }),
    );
    return out.Item === undefined ? undefined : parseRow(out.Item);
  }

  async apply(action: MembershipAction, now: number): Promise<MirrorRow | null> {
    try {
      if (action.kind === 'register') {
        const item = registerItem(action.server, now);
        await this.dynamodb.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: item,
            ConditionExpression: 'attribute_not_exists(id)',
          }),
        );
        return parseRow(item) ?? null;
      }
      const update = updateFor(action, now);
      const out = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { id: str(action.row.id) },
          UpdateExpression: update.expression,
          ConditionExpression: 'czxid = :expectedCzxid AND alive = :expectedAlive',
          ExpressionAttributeNames: update.names,
          ExpressionAttributeValues: {
            ...update.values,
            ':expectedCzxid': str(action.row.czxid),
            ':expectedAlive': bool(action.row.alive),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes === undefined ? null : (parseRow(out.Attributes) ?? null);
    } catch (error: unknown) {
      if (error instanceof ConditionalCheckFailedException) return null;
      throw error;
    }
  }

  async clearPending(id: string, czxid: string): Promise<void> {
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { id: str(id) },
          UpdateExpression: 'REMOVE pending.#czxid',
          ConditionExpression: 'attribute_exists(pending.#czxid)',
          ExpressionAttributeNames: { '#czxid': czxid },
        }),
      );
    } catch (error: unknown) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  /**
   * Sweep: records a probe's progress for the row as it was read (conditional on czxid and alive): `cursor`
   * null = found clean, else where the next sweep resumes.
   */
  async saveSweepProgress(row: MirrorRow, cursor: string | null, now: number): Promise<void> {
    const key = sweepKey(row);
    const update: { expression: string; values: Item } =
      cursor === null
        ? {
            expression: 'SET sweptFor = :key, sweptAt = :now REMOVE sweepCursor',
            values: { ':key': str(key), ':now': num(now) },
          }
        : {
            expression: 'SET sweepCursor = :cursor',
            values: { ':cursor': { M: { for: str(key), key: str(cursor) } } },
          };
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { id: str(row.id) },
          UpdateExpression: update.expression,
          ConditionExpression: 'czxid = :czxid AND alive = :alive',
          ExpressionAttributeValues: {
            ...update.values,
            ':czxid': str(row.czxid),
            ':alive': bool(row.alive),
          },
        }),
      );
    } catch (error: unknown) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  async loadDiscoveryCheckpoint(): Promise<DiscoveryCheckpoint | undefined> {
    const out = await this.dynamodb.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { id: str(discoveryCheckpointId) },
        ConsistentRead: true,
      }),
    );
    const item = out.Item;
    if (item === undefined) return undefined;
    const startedAt = readNumber(item, 'startedAt');
    const cursorsValue = item.cursors;
    if (startedAt === undefined || cursorsValue === undefined || !('M' in cursorsValue)) return undefined;
    const cursors: Record<string, string> = {};
    for (const [key, value] of Object.entries(cursorsValue.M ?? {})) {
      if ('S' in value && typeof value.S === 'string') cursors[key] = value.S;
    }
    const completedAt = readNumber(item, 'completedAt');
    return completedAt === undefined ? { cursors, startedAt } : { cursors, startedAt, completedAt };
  }

  async saveDiscoveryCheckpoint(checkpoint: DiscoveryCheckpoint): Promise<void> {
    const item: Item = {
      id: str(discoveryCheckpointId),
      type: str('sweep'),
      startedAt: num(checkpoint.startedAt),
      cursors: { M: Object.fromEntries(Object.entries(checkpoint.cursors).map(([k, v]) => [k, str(v)])) },
    };
    if (checkpoint.completedAt !== undefined) item.completedAt = num(checkpoint.completedAt);
    await this.dynamodb.send(new PutItemCommand({ TableName: this.tableName, Item: item }));
  }
}

function incarnationItem(server: ServerObservation): Item {
  return {
    czxid: str(server.czxid),
    startupTime: num(server.startupTime),
    startupTimeSource: str(server.startupTimeSource),
    ephemeralOwner: str(server.ephemeralOwner),
    anchor: str(server.anchor),
    groups: list(server.groups),
  };
}

function registerItem(server: ServerObservation, now: number): Item {
  return {
    id: str(server.id),
    type: str(server.nodeType),
    host: str(server.host),
    ...incarnationItem(server),
    alive: bool(true),
    seenAt: num(now),
    pending: { M: {} },
  };
}

interface Update {
  expression: string;
  names: Record<string, string> | undefined;
  values: Item;
}

/** The update of one conditional action; the condition itself is added by `apply`. */
function updateFor(action: Exclude<MembershipAction, { kind: 'register' }>, now: number): Update {
  const set: string[] = ['seenAt = :now'];
  const remove: string[] = [];
  const values: Item = { ':now': num(now) };
  let names: Record<string, string> | undefined;
  const setAll = (item: Item) => {
    for (const [key, value] of Object.entries(item)) {
      set.push(`${key} = :${key}`);
      values[`:${key}`] = value;
    }
  };
  const addPending = (request: PendingRequest) => {
    const body = str(JSON.stringify(request));
    if (action.row.pending === undefined) {
      set.push('pending = :pending');
      values[':pending'] = { M: { [request.czxid]: body } };
    } else {
      set.push('pending.#removed = :request');
      names = { '#removed': request.czxid };
      values[':request'] = body;
    }
  };
  switch (action.kind) {
    case 'replace': {
      setAll({ ...incarnationItem(action.server), alive: bool(true), previousCzxid: str(action.row.czxid) });
      if (action.row.startupTime === null) remove.push('previousStartupTime');
      else setAll({ previousStartupTime: num(action.row.startupTime) });
      remove.push('removedAt', 'sweptFor', 'sweptAt', 'sweepCursor');
      if (action.removal !== null) addPending(action.removal);
      break;
    }
    case 'remove': {
      setAll({ alive: bool(false), removedAt: num(now) });
      addPending(action.removal);
      break;
    }
    case 'refresh': {
      // Same incarnation: the czxid and anchor stay; the startup time improves once a heartbeat arrives.
      const { server, row } = action;
      if (row.startupTime === null || row.startupTimeSource !== 'heartbeat') {
        setAll({ startupTime: num(server.startupTime), startupTimeSource: str(server.startupTimeSource) });
      }
      setAll({ groups: list(server.groups) });
      if (row.ephemeralOwner === undefined) setAll({ ephemeralOwner: str(server.ephemeralOwner) });
      if (row.anchor === undefined && server.czxid === row.czxid) setAll({ anchor: str(server.anchor) });
      break;
    }
  }
  const expression = `SET ${set.join(', ')}${remove.length > 0 ? ` REMOVE ${remove.join(', ')}` : ''}`;
  return { expression, names, values };
}

/** A server row, or undefined for anything else (the discovery checkpoint, hand-written junk). */
export function parseRow(item: Item): MirrorRow | undefined {
  const id = readString(item, 'id');
  const type = NodeTypeSchema.safeParse(readString(item, 'type'));
  const host = readString(item, 'host');
  const czxid = readString(item, 'czxid');
  const alive = readBoolean(item, 'alive');
  if (id === undefined || !type.success || host === undefined || czxid === undefined || alive === undefined) {
    return undefined;
  }
  if (id !== `${type.data}/${host}` || !/^[0-9]{1,19}$/.test(czxid)) return undefined;
  const source = readString(item, 'startupTimeSource');
  const groupsValue = item.groups;
  const groups =
    groupsValue !== undefined && 'L' in groupsValue
      ? (groupsValue.L ?? []).flatMap((v) => ('S' in v && typeof v.S === 'string' ? [v.S] : []))
      : undefined;
  const pendingValue = item.pending;
  let pending: Map<string, PendingRequest> | undefined;
  if (pendingValue !== undefined && 'M' in pendingValue) {
    pending = new Map();
    for (const [key, value] of Object.entries(pendingValue.M ?? {})) {
      const request = parsePending(value);
      if (request !== undefined && request.czxid === key) pending.set(key, request);
    }
  }
  return {
    id,
    nodeType: type.data,
    host,
    czxid,
    startupTime: readNumber(item, 'startupTime') ?? null,
    startupTimeSource: source === 'heartbeat' || source === 'ctime' ? source : undefined,
    alive,
    seenAt: readNumber(item, 'seenAt') ?? 0,
    removedAt: readNumber(item, 'removedAt'),
    ephemeralOwner: readString(item, 'ephemeralOwner'),
    anchor: readString(item, 'anchor'),
    groups,
    previousCzxid: readString(item, 'previousCzxid'),
    previousStartupTime: readNumber(item, 'previousStartupTime'),
    pending,
    sweptFor: readString(item, 'sweptFor'),
    sweptAt: readNumber(item, 'sweptAt'),
    sweepCursor: parseSweepCursor(item.sweepCursor),
  };
}

function parseSweepCursor(value: AttributeValue | undefined): MirrorRow['sweepCursor'] {
  if (value === undefined || !('M' in value) || value.M === undefined) return undefined;
  const forValue = value.M.for;
  const keyValue = value.M.key;
  if (forValue === undefined || keyValue === undefined || !('S' in forValue) || !('S' in keyValue))
    return undefined;
  return typeof forValue.S === 'string' && typeof keyValue.S === 'string'
    ? { for: forValue.S, key: keyValue.S }
    : undefined;
}

function parsePending(value: AttributeValue): PendingRequest | undefined {
  if (!('S' in value) || typeof value.S !== 'string') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(value.S);
  } catch {
    return undefined;
  }
  const parsed = FailoverRequestSchema.safeParse(json);
  if (!parsed.success || parsed.data.czxid === null) return undefined;
  return { ...parsed.data, czxid: parsed.data.czxid };
}
