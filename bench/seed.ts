// Seeding of process instances on the local stack, shared by the benchmark and the failover integration
// tests (test/integration/failover-support.ts re-exports these), so both measure the same data shape.
import { randomUUID } from 'node:crypto';
import { type AttributeValue, BatchWriteItemCommand } from '@aws-sdk/client-dynamodb';
import { mapConcurrently } from '../lib/failover/concurrency.ts';
import type { ProcessInstance, TaskInstance } from '../lib/failover/rules.ts';
import type { LocalStack } from '../lib/local/stack.ts';
import { marshalFlat } from '../lib/store/dynamodb/attributes.ts';

export const T0 = 1_700_000_000_000;

let hostCounter = 0;
/** A host no other test of this process uses: `10.<pid>.<n>.1:5678`-like, always a valid ip:port. */
export function uniqueHost(): string {
  hostCounter += 1;
  return `10.${process.pid % 250}.${Math.floor(hostCounter / 250)}.${(hostCounter % 250) + 1}:5678`;
}

/** A running process instance of the shape every test and benchmark uses. */
export function instanceItem(
  overrides: Partial<ProcessInstance> & { id: string; host?: string },
): ProcessInstance {
  return {
    state: 'RUNNING_EXECUTION',
    processDefinitionCode: 9_876_543_210,
    processDefinitionVersion: 3,
    executorId: 7,
    priority: 'MEDIUM',
    startTime: T0,
    ...overrides,
  };
}

export async function putInstances(
  stack: LocalStack,
  instances: readonly ProcessInstance[],
  concurrency = 4,
): Promise<void> {
  await batchPut(
    stack,
    stack.info.tables.instances,
    instances.map((i) => marshalFlat({ ...i })),
    concurrency,
  );
}

export async function putTasks(stack: LocalStack, tasks: readonly TaskInstance[]): Promise<void> {
  await batchPut(
    stack,
    stack.info.tables.tasks,
    tasks.map((t) => marshalFlat({ ...t })),
  );
}

async function batchPut(
  stack: LocalStack,
  table: string,
  items: Record<string, AttributeValue>[],
  concurrency = 4,
): Promise<void> {
  const chunks: Record<string, AttributeValue>[][] = [];
  for (let i = 0; i < items.length; i += 25) chunks.push(items.slice(i, i + 25));
  await mapConcurrently(chunks, concurrency, async (chunk) => {
    let requests = chunk.map((Item) => ({ PutRequest: { Item } }));
    while (requests.length > 0) {
      const out = await stack.clients.dynamodb.send(
        new BatchWriteItemCommand({ RequestItems: { [table]: requests } }),
      );
      requests = (out.UnprocessedItems?.[table] ?? []) as typeof requests;
    }
  });
}

/** The id of instance `i` of a seeding with this prefix. */
export function seededId(prefix: string, i: number): string {
  return `${prefix}-${String(i).padStart(5, '0')}`;
}

/** `n` running instances on `host`, ids `<prefix>-00000...`. */
export async function seedInstances(
  stack: LocalStack,
  host: string,
  n: number,
  overrides: Partial<ProcessInstance> = {},
): Promise<string[]> {
  const prefix = randomUUID().slice(0, 8);
  const instances = Array.from({ length: n }, (_, i) =>
    instanceItem({ id: seededId(prefix, i), host, ...overrides }),
  );
  await putInstances(stack, instances);
  return instances.map((i) => i.id);
}

/**
 * Like seedInstances, for large n: writes in slices so the whole set is never built at once, and returns
 * only the id prefix (ids are `seededId(prefix, 0..n-1)`).
 */
export async function seedManyInstances(
  stack: LocalStack,
  host: string,
  n: number,
  options: { concurrency?: number; slice?: number } = {},
): Promise<string> {
  const prefix = randomUUID().slice(0, 8);
  const slice = options.slice ?? 5_000;
  for (let start = 0; start < n; start += slice) {
    const instances = Array.from({ length: Math.min(slice, n - start) }, (_, i) =>
      instanceItem({ id: seededId(prefix, start + i), host }),
    );
    await putInstances(stack, instances, options.concurrency ?? 4);
  }
  return prefix;
}
