// The simulated cluster's work in DynamoDB (docs/data-contract.md): process instances owned by the masters,
// most of them executing (F1 states), some finished; task instances of them on the workers, most executing
// (F5 states), some finished. Deterministic for a given size, so a run can be compared with another.
import { type AttributeValue, BatchWriteItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { chunk, mapConcurrently, sleep } from '../failover/concurrency.ts';
import {
  isExecutingProcessState,
  isTaskFailoverState,
  type ProcessInstance,
  type TaskInstance,
} from '../failover/rules.ts';
import { marshalFlat } from '../store/dynamodb/attributes.ts';
import type { SimServer } from './options.ts';

export interface SeededWork {
  readonly instances: readonly ProcessInstance[];
  readonly tasks: readonly TaskInstance[];
}

const INSTANCE_STATES = [
  'RUNNING_EXECUTION',
  'RUNNING_EXECUTION',
  'SUCCESS',
  'RUNNING_EXECUTION',
  'SUBMITTED_SUCCESS',
  'RUNNING_EXECUTION',
  'READY_PAUSE',
  'RUNNING_EXECUTION',
  'FAILURE',
  'RUNNING_EXECUTION',
  'DELAY_EXECUTION',
  'RUNNING_EXECUTION',
  'READY_STOP',
  'RUNNING_EXECUTION',
  'STOP',
  'RUNNING_EXECUTION',
] as const;

const TASK_STATES = [
  'RUNNING_EXECUTION',
  'DISPATCH',
  'RUNNING_EXECUTION',
  'SUBMITTED_SUCCESS',
  'RUNNING_EXECUTION',
  'DELAY_EXECUTION',
  'RUNNING_EXECUTION',
] as const;

/** `count` process instances over the masters, and their tasks over the workers. */
export function buildWork(servers: readonly SimServer[], count: number, now: number): SeededWork {
  const masters = servers.filter((s) => s.nodeType === 'master');
  const workers = servers.filter((s) => s.nodeType === 'worker');
  const instances: ProcessInstance[] = [];
  const tasks: TaskInstance[] = [];
  for (let i = 0; i < count; i += 1) {
    const master = masters[i % masters.length];
    const state = INSTANCE_STATES[(i * 7) % INSTANCE_STATES.length] ?? 'RUNNING_EXECUTION';
    // Started between 1 and 60 minutes ago.
    const startTime = now - 60_000 - ((i * 7_919) % 3_540_000);
    const instance: ProcessInstance = {
      id: String(10_001 + i),
      host: master?.host ?? '',
      state,
      processDefinitionCode: 8_000_000_000 + (i % 12),
      processDefinitionVersion: 1 + (i % 3),
      executorId: 1 + (i % 4),
      priority: ['HIGHEST', 'HIGH', 'MEDIUM', 'LOW'][i % 4] ?? 'MEDIUM',
      startTime,
      ...(i % 5 === 0 ? { commandParam: JSON.stringify({ StartParams: { bizDate: '2024-05-01' } }) } : {}),
    };
    instances.push(instance);
    const executing = isExecutingProcessState(state);
    const taskCount = executing ? 1 + (i % 3 === 0 ? 1 : 0) : 1;
    for (let t = 0; t < taskCount; t += 1) {
      const n = tasks.length;
      const worker = workers[n % workers.length];
      const submitTime = startTime + 1_000 + t * 30_000;
      tasks.push({
        id: String(500_001 + n),
        processInstanceId: instance.id,
        host: worker?.host ?? '',
        state: executing ? (TASK_STATES[n % TASK_STATES.length] ?? 'RUNNING_EXECUTION') : 'SUCCESS',
        submitTime,
        startTime: submitTime + 500,
      });
    }
  }
  return { instances, tasks };
}

/** Writes the work with BatchWriteItem (25 items per call, a few calls at once). */
export async function putWork(
  dynamodb: DynamoDBClient,
  tables: { instances: string; tasks: string },
  work: SeededWork,
): Promise<void> {
  await Promise.all([
    batchPut(
      dynamodb,
      tables.instances,
      work.instances.map((i) => marshalFlat({ ...i })),
    ),
    batchPut(
      dynamodb,
      tables.tasks,
      work.tasks.map((t) => marshalFlat({ ...t })),
    ),
  ]);
}

async function batchPut(
  dynamodb: DynamoDBClient,
  table: string,
  items: Record<string, AttributeValue>[],
): Promise<void> {
  await mapConcurrently(chunk(items, 25), 3, async (batch) => {
    let requests = batch.map((Item) => ({ PutRequest: { Item } }));
    for (let attempt = 1; requests.length > 0; attempt += 1) {
      if (attempt > 1) await sleep(50 * attempt);
      if (attempt > 20) throw new Error(`seeding ${table}: ${requests.length} items left unprocessed`);
      const out = await dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [table]: requests } }));
      requests = (out.UnprocessedItems?.[table] ?? []) as typeof requests;
    }
  });
}

/** Per host: executing process instances (masters) or executing tasks (workers) as seeded. */
export function executingByHost(work: SeededWork): Map<string, number> {
  const counts = new Map<string, number>();
  for (const i of work.instances) {
    if (i.host !== undefined && isExecutingProcessState(i.state))
      counts.set(i.host, (counts.get(i.host) ?? 0) + 1);
  }
  for (const t of work.tasks) {
    if (t.host !== undefined && isTaskFailoverState(t.state))
      counts.set(t.host, (counts.get(t.host) ?? 0) + 1);
  }
  return counts;
}
