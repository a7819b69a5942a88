import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';

// One client per service per container, created on first use. Region, credentials and (locally)
// endpoints come from the standard AWS variables (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, ...).
let dynamodb: DynamoDBClient | undefined;
let sqs: SQSClient | undefined;

export function dynamoDbClient(): DynamoDBClient {
  dynamodb ??= new DynamoDBClient({ maxAttempts: 5 });
  return dynamodb;
}

export function sqsClient(): SQSClient {
  sqs ??= new SQSClient({ maxAttempts: 5 });
  return sqs;
}
