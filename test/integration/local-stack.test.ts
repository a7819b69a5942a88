import { execFileSync } from 'node:child_process';
import { GetItemCommand, ListTablesCommand, PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../lib/local/stack.ts';
import { startLocalStack } from '../../lib/local/stack.ts';
import { connectZk } from '../../lib/registry/zk-client.ts';

function listeningAddresses(port: number): string[] {
  const out = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s+/)[3] ?? '');
}

describe('local stack', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startLocalStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('creates every table and queue declared in serverless.yml', async () => {
    const declared = Object.values(stack.service.resources.Resources);
    const tableNames = declared
      .filter((r) => r.Type === 'AWS::DynamoDB::Table')
      .map((r) => r.Properties.TableName as string)
      .sort();
    const { TableNames } = await stack.clients.dynamodb.send(new ListTablesCommand({}));
    expect(TableNames?.sort()).toEqual(tableNames);
    expect(tableNames).toHaveLength(5);

    const { Attributes } = await stack.clients.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: stack.info.queues.failover, AttributeNames: ['All'] }),
    );
    expect(Attributes?.FifoQueue).toBe('true');
    const redrive = JSON.parse(Attributes?.RedrivePolicy ?? '{}') as {
      deadLetterTargetArn?: string;
      maxReceiveCount?: number;
    };
    expect(redrive.deadLetterTargetArn).toContain('failover-dlq.fifo');
    expect(redrive.maxReceiveCount).toBe(5);
  });

  it('round-trips ZooKeeper', async () => {
    const zk = await connectZk({
      connectString: stack.info.zookeeper,
      sessionTimeoutMs: 4_000,
      connectTimeoutMs: 10_000,
    });
    try {
      await zk.create('/stack-test/node', 'hello', { persistent: true });
      const node = await zk.data('/stack-test/node');
      expect(node?.data?.toString()).toBe('hello');
    } finally {
      await zk.close();
    }
  });

  it('round-trips DynamoDB Local, including the byHost index', async () => {
    const table = stack.info.tables.instances;
    await stack.clients.dynamodb.send(
      new PutItemCommand({
        TableName: table,
        Item: { id: { S: 'p-1' }, host: { S: '10.0.0.1:5678' }, state: { S: 'RUNNING_EXECUTION' } },
      }),
    );
    const got = await stack.clients.dynamodb.send(
      new GetItemCommand({ TableName: table, Key: { id: { S: 'p-1' } } }),
    );
    expect(got.Item?.state?.S).toBe('RUNNING_EXECUTION');
    const byHost = await stack.clients.dynamodb.send(
      new QueryCommand({
        TableName: table,
        IndexName: 'byHost',
        KeyConditionExpression: 'host = :h',
        ExpressionAttributeValues: { ':h': { S: '10.0.0.1:5678' } },
      }),
    );
    expect(byHost.Items?.map((i) => i.id?.S)).toEqual(['p-1']);
  });

  it('round-trips the SQS emulator with FIFO attributes', async () => {
    await stack.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: stack.info.queues.commands,
        MessageBody: '{"hello":1}',
        MessageGroupId: 'g1',
        MessageDeduplicationId: 'd1',
      }),
    );
    const out = await stack.clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: stack.info.queues.commands,
        WaitTimeSeconds: 1,
        MessageSystemAttributeNames: ['MessageGroupId'],
      }),
    );
    expect(out.Messages?.[0]?.Body).toBe('{"hello":1}');
    expect(out.Messages?.[0]?.Attributes?.MessageGroupId).toBe('g1');
  });

  it('listens on 127.0.0.1 only', () => {
    const ports = [stack.dynamodb.port, stack.sqs.port, ...stack.zookeeper.nodes.map((n) => n.clientPort)];
    for (const port of ports) {
      const addresses = listeningAddresses(port);
      expect(addresses.length).toBeGreaterThan(0);
      for (const a of addresses) expect(a).toMatch(/^(\[::ffff:)?127\.0\.0\.1\]?:\d+$/);
    }
  });

  it('builds each function environment from its declaration, pointed at the local endpoints', () => {
    const env = stack.functionEnv('failover');
    expect(env.INSTANCES_TABLE).toBe(stack.info.tables.instances);
    expect(env.COMMANDS_QUEUE_URL).toBe(stack.info.queues.commands);
    expect(env.AWS_ENDPOINT_URL_DYNAMODB).toBe(stack.info.dynamodb);
    // Every function that declares ZooKeeper access (the failover: for the DolphinScheduler store) is
    // pointed at the local server; the sweep's commands queue likewise at the emulator.
    expect(env.ZK_CONNECT).toBe(stack.info.zookeeper);
    expect(env.STORE).toBe('dynamodb');
    expect(stack.functionEnv('watcher').ZK_CONNECT).toBe(stack.info.zookeeper);
  });
});
