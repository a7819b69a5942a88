import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { dynamoDbClient, sqsClient, withoutRequestLogging } from '../../lib/aws.ts';

const loggerSteps = (client: { middlewareStack: { identify(): string[] } }) =>
  client.middlewareStack.identify().filter((step) => step.startsWith('loggerMiddleware'));

describe('the functions SDK clients', () => {
  it('carry no request-logging middleware (it copies every request and response for a no-op logger)', () => {
    expect(loggerSteps(dynamoDbClient())).toEqual([]);
    expect(loggerSteps(sqsClient())).toEqual([]);
  });

  it('withoutRequestLogging removes exactly that middleware', () => {
    const client = new DynamoDBClient({ region: 'us-east-1' });
    const before = client.middlewareStack.identify();
    expect(loggerSteps(client)).toHaveLength(1);
    withoutRequestLogging(client);
    expect(client.middlewareStack.identify()).toEqual(
      before.filter((s) => !s.startsWith('loggerMiddleware')),
    );
  });
});
