import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';

// One client per service per container, created on first use. Region, credentials and (locally)
// endpoints come from the standard AWS variables (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, ...).
let dynamodb: DynamoDBClient | undefined;
let sqs: SQSClient | undefined;

export function dynamoDbClient(): DynamoDBClient {
  dynamodb ??= withoutRequestLogging(new DynamoDBClient({ maxAttempts: 5 }));
  return dynamodb;
}

export function sqsClient(): SQSClient {
  sqs ??= withoutRequestLogging(new SQSClient({ maxAttempts: 5 }));
  return sqs;
}

/**
 * Removes the SDK's request-logging middleware. We never give the SDK a logger, yet with its default no-op
 * logger that middleware still builds a redacted deep copy of every request and response for the log call
 * it then drops: about a tenth of the failover function's CPU, most of it on the 80 KB transactions and
 * the 200-item pages. Errors still reach our own logs through the thrown exceptions.
 */
export function withoutRequestLogging<T extends DynamoDBClient | SQSClient>(client: T): T {
  client.middlewareStack.remove('loggerMiddleware');
  return client;
}
