import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { FailoverRequestQueue } from '../failover/ports.ts';
import {
  type FailoverRequest,
  type FailoverRequestInput,
  FailoverRequestSchema,
  failoverRequestDedupId,
  failoverRequestGroupId,
} from '../messages.ts';

export class QueueSendError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QueueSendError';
  }
}

export class SqsFailoverRequestQueue implements FailoverRequestQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(requests: readonly FailoverRequestInput[]): Promise<void> {
    // Validate on the way out too: a producer bug must not become a poison message.
    const valid: FailoverRequest[] = requests.map((r) => FailoverRequestSchema.parse(r));
    for (let i = 0; i < valid.length; i += 10) {
      let entries = valid.slice(i, i + 10).map((r, j) => ({
        Id: String(j),
        MessageBody: JSON.stringify(r),
        MessageGroupId: failoverRequestGroupId(r),
        MessageDeduplicationId: failoverRequestDedupId(r),
      }));
      for (let attempt = 1; entries.length > 0; attempt += 1) {
        const out = await this.sqs.send(
          new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: entries }),
        );
        const failed = new Set((out.Failed ?? []).map((f) => f.Id));
        if (failed.size === 0) break;
        if (attempt >= 5) {
          throw new QueueSendError(
            `failover queue rejected ${failed.size} request(s): ${JSON.stringify(out.Failed)}`,
          );
        }
        entries = entries.filter((e) => failed.has(e.Id));
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
  }
}
