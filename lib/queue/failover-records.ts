// What the failover function does to its own SQS records besides reporting them failed: move a poison
// message to the dead-letter queue at once (with the reason an operator needs), and shorten a failed
// record's visibility timeout so its retry comes when it can succeed rather than 12 minutes later.
import { ChangeMessageVisibilityCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { FailoverRecordControl, RejectedRecord } from '../failover/ports.ts';
import { MAX_REASON_CHARS, toFifoSafeId } from '../messages.ts';

/**
 * Group of a poison message in the (FIFO) dead-letter queue: one group per message, since poison messages
 * have no order among themselves and a shared group would let a reader see only one at a time (a FIFO
 * queue holds back the rest of a group while one of its messages is in flight). The dedup id is the
 * source message id.
 */
export const poisonGroupId = (messageId: string): string => toFifoSafeId(`poison/${messageId}`);

export class SqsFailoverRecordControl implements FailoverRecordControl {
  constructor(
    private readonly sqs: SQSClient,
    private readonly urls: { queue: string; deadLetterQueue: string },
  ) {}

  async deadLetter(record: RejectedRecord, reason: string): Promise<void> {
    const attributes: Record<string, { DataType: 'String'; StringValue: string }> = {
      RejectReason: { DataType: 'String', StringValue: reason.slice(0, MAX_REASON_CHARS) || 'rejected' },
      SourceMessageId: { DataType: 'String', StringValue: record.messageId },
    };
    if (record.groupId) attributes.SourceGroupId = { DataType: 'String', StringValue: record.groupId };
    await this.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.urls.deadLetterQueue,
        MessageBody: record.body,
        MessageGroupId: poisonGroupId(record.messageId),
        MessageDeduplicationId: toFifoSafeId(record.messageId),
        MessageAttributes: attributes,
      }),
    );
  }

  async retryAfter(receiptHandle: string, seconds: number): Promise<void> {
    await this.sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.urls.queue,
        ReceiptHandle: receiptHandle,
        VisibilityTimeout: Math.max(0, Math.min(43_200, Math.round(seconds))),
      }),
    );
  }
}
