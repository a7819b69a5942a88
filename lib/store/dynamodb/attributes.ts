// Small, explicit AttributeValue helpers: the stores read untrusted items written by other systems, so
// every read checks the type instead of casting.
import {
  type AttributeValue,
  BatchGetItemCommand,
  type BatchGetItemCommandOutput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { sleep } from '../../failover/concurrency.ts';

export type Item = Record<string, AttributeValue>;

export const str = (value: string): AttributeValue => ({ S: value });
export const num = (value: number): AttributeValue => ({ N: String(value) });

export function readString(item: Item, key: string): string | undefined {
  const v = item[key];
  return v !== undefined && 'S' in v && typeof v.S === 'string' ? v.S : undefined;
}

/** A finite number stored as N; anything else (absent, S, NaN text) is undefined. */
export function readNumber(item: Item, key: string): number | undefined {
  const v = item[key];
  if (v === undefined || !('N' in v) || typeof v.N !== 'string') return undefined;
  const n = Number(v.N);
  return Number.isFinite(n) ? n : undefined;
}

/** Which attribute type the item holds under key ('S', 'N', 'BOOL', ...), or undefined when absent. */
export function attributeType(item: Item, key: string): string | undefined {
  const v = item[key];
  if (v === undefined) return undefined;
  return Object.entries(v).find(([, value]) => value !== undefined)?.[0];
}

export function readBoolean(item: Item, key: string): boolean | undefined {
  const v = item[key];
  return v !== undefined && 'BOOL' in v && typeof v.BOOL === 'boolean' ? v.BOOL : undefined;
}

/** A flat record of strings and numbers as an item (undefined values are left out). */
export function marshalFlat(record: Readonly<Record<string, string | number | undefined>>): Item {
  const item: Item = {};
  for (const [k, v] of Object.entries(record)) {
    if (typeof v === 'string') item[k] = str(v);
    else if (typeof v === 'number') item[k] = num(v);
  }
  return item;
}

/** The S and N attributes of an item as a plain record (other types are left out). */
export function unmarshalFlat(item: Item): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(item)) {
    if ('S' in v && typeof v.S === 'string') out[k] = v.S;
    else if ('N' in v && typeof v.N === 'string') out[k] = Number(v.N);
  }
  return out;
}

/** Opaque page cursor: DynamoDB's LastEvaluatedKey as JSON text. */
export function encodeCursor(key: Item | undefined): string | undefined {
  return key === undefined ? undefined : JSON.stringify(key);
}

export function decodeCursor(cursor: string | undefined): Item | undefined {
  if (cursor === undefined) return undefined;
  const parsed: unknown = JSON.parse(cursor);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TypeError('invalid page cursor');
  }
  return parsed as Item;
}

/** One DynamoDB error name, whatever shape the SDK gave it. */
export function errorName(error: unknown): string {
  return error instanceof Error ? error.name : '';
}

/**
 * Strongly consistent reads of the items with these `id`s (100 per request; unprocessed keys retried with
 * a backoff). Ids that do not exist are simply absent from the result.
 */
export async function batchGetConsistent(
  dynamodb: DynamoDBClient,
  table: string,
  ids: readonly string[],
): Promise<Item[]> {
  const found: Item[] = [];
  const unique = [...new Set(ids)];
  for (let i = 0; i < unique.length; i += 100) {
    let keys: Item[] | undefined = unique.slice(i, i + 100).map((id) => ({ id: str(id) }));
    for (let attempt = 0; keys !== undefined && keys.length > 0; attempt += 1) {
      if (attempt > 0) await sleep(Math.min(1_000, 20 * 2 ** attempt));
      const out: BatchGetItemCommandOutput = await dynamodb.send(
        new BatchGetItemCommand({ RequestItems: { [table]: { Keys: keys, ConsistentRead: true } } }),
      );
      found.push(...(out.Responses?.[table] ?? []));
      keys = out.UnprocessedKeys?.[table]?.Keys;
    }
  }
  return found;
}
