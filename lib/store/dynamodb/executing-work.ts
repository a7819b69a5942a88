// The sweep's questions (lib/sweep/executing-work.ts) on the instances and tasks tables, through their
// `byHost` index (partition `host`, sort `id`). Executing = F1 states for process instances, F5 for tasks.
import {
  type AttributeValue,
  type DynamoDBClient,
  QueryCommand,
  ScanCommand,
} from '@aws-sdk/client-dynamodb';
import { EXECUTING_PROCESS_STATES, TASK_FAILOVER_STATES } from '../../failover/rules.ts';
import type { NodeType } from '../../messages.ts';
import type { DiscoveryStep, ExecutingWork, ProbeOptions, ProbeResult } from '../../sweep/executing-work.ts';
import { decodeCursor, encodeCursor } from './attributes.ts';

export interface DynamoExecutingWorkOptions {
  readonly instancesTable: string;
  readonly tasksTable: string;
  /** Items DynamoDB evaluates per page (it also stops at 1 MB). Default 1000. */
  readonly pageSize?: number;
  /** Parallel scan segments per table for discovery. Default 4. */
  readonly discoverySegments?: number;
}

const indexName = 'byHost';

interface Shape {
  readonly table: string;
  readonly states: readonly string[];
  /** F3's time attributes: a process instance also has `restartTime`. */
  readonly timeFilter: string;
}

export class DynamoExecutingWork implements ExecutingWork {
  readonly #shapes: Record<NodeType, Shape>;

  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly options: DynamoExecutingWorkOptions,
  ) {
    this.#shapes = {
      master: {
        table: options.instancesTable,
        states: EXECUTING_PROCESS_STATES,
        timeFilter: 'startTime < :before AND (attribute_not_exists(restartTime) OR restartTime < :before)',
      },
      worker: {
        table: options.tasksTable,
        states: TASK_FAILOVER_STATES,
        timeFilter: 'submitTime < :before',
      },
    };
  }

  async probeHost(nodeType: NodeType, host: string, options: ProbeOptions): Promise<ProbeResult> {
    const shape = this.#shapes[nodeType];
    const states = stateFilter(shape.states);
    const filter =
      options.olderThan === undefined ? states.expression : `${states.expression} AND ${shape.timeFilter}`;
    const values: Record<string, AttributeValue> = { ...states.values, ':host': { S: host } };
    if (options.olderThan !== undefined) values[':before'] = { N: String(options.olderThan) };
    let startKey = decodeCursor(options.cursor);
    for (;;) {
      const page = await this.dynamodb.send(
        new QueryCommand({
          TableName: shape.table,
          IndexName: indexName,
          KeyConditionExpression: '#host = :host',
          FilterExpression: filter,
          ExpressionAttributeNames: { '#host': 'host', '#state': 'state' },
          ExpressionAttributeValues: values,
          ProjectionExpression: 'id',
          Limit: this.options.pageSize ?? 1_000,
          ExclusiveStartKey: startKey,
        }),
      );
      if ((page.Items?.length ?? 0) > 0) return { kind: 'found' };
      if (page.LastEvaluatedKey === undefined) return { kind: 'clean' };
      startKey = page.LastEvaluatedKey;
      if (Date.now() >= options.endAt) return { kind: 'unfinished', cursor: encodeCursor(startKey) ?? '' };
    }
  }

  async discover(cursors: Readonly<Record<string, string>>, endAt: number): Promise<DiscoveryStep> {
    const segments = this.options.discoverySegments ?? 4;
    const next: Record<string, string> = { ...cursors };
    const hosts = new Map<string, { nodeType: NodeType; host: string }>();
    const scanSegment = async (nodeType: NodeType, segment: number) => {
      const shape = this.#shapes[nodeType];
      const name = `${nodeType}#${segment}/${segments}`;
      const states = stateFilter(shape.states);
      while (next[name] !== 'done' && Date.now() < endAt) {
        const from = next[name];
        const page = await this.dynamodb.send(
          new ScanCommand({
            TableName: shape.table,
            IndexName: indexName,
            Segment: segment,
            TotalSegments: segments,
            FilterExpression: states.expression,
            ExpressionAttributeNames: { '#host': 'host', '#state': 'state' },
            ExpressionAttributeValues: states.values,
            ProjectionExpression: '#host',
            Limit: this.options.pageSize ?? 1_000,
            ExclusiveStartKey: decodeCursor(from),
          }),
        );
        for (const item of page.Items ?? []) {
          const host = item.host;
          if (host !== undefined && 'S' in host && typeof host.S === 'string' && host.S !== '') {
            hosts.set(`${nodeType}/${host.S}`, { nodeType, host: host.S });
          }
        }
        next[name] = encodeCursor(page.LastEvaluatedKey) ?? 'done';
      }
    };
    const work: Promise<void>[] = [];
    for (const nodeType of ['master', 'worker'] as const) {
      for (let segment = 0; segment < segments; segment += 1) work.push(scanSegment(nodeType, segment));
    }
    await Promise.all(work);
    const done = (['master', 'worker'] as const).every((nodeType) =>
      Array.from({ length: segments }, (_, s) => next[`${nodeType}#${s}/${segments}`]).every(
        (c) => c === 'done',
      ),
    );
    return { hosts: [...hosts.values()], cursors: next, done };
  }
}

function stateFilter(states: readonly string[]): {
  expression: string;
  values: Record<string, AttributeValue>;
} {
  const values: Record<string, AttributeValue> = {};
  const names = states.map((state, index) => {
    values[`:state${index}`] = { S: state };
    return `:state${index}`;
  });
  return { expression: `#state IN (${names.join(', ')})`, values };
}
