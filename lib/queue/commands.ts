// The commands FIFO queue (DESIGN section 4): message group = process instance, deduplication id = the
// deterministic command id, so a re-send within 5 minutes is dropped by SQS and a later one is recognised
// by consumers (the command id is their idempotency key).
import {
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { mapConcurrently, sleep } from '../failover/concurrency.ts';
import { type CommandMessage, commandDedupId, commandGroupId } from '../messages.ts';

export interface CommandSendResult {
  /** Ids of the commands the queue accepted (including ones it dropped as duplicates). */
  sent: string[];
  failed: Array<{ id: string; reason: string }>;
}

export interface CommandQueue {
  /** Sends each command; never throws for a rejected entry (see `failed`), only for a failed call. */
  send(commands: readonly CommandMessage[]): Promise<CommandSendResult>;
}

/** SendMessageBatch limits: 10 entries, and (conservatively) 256 KiB of bodies per call. */
const MAX_ENTRIES = 10;
const MAX_BATCH_BYTES = 256 * 1024;
/** Largest command body the queue takes; larger commands are refused before they are written. */
export const MAX_COMMAND_BYTES = MAX_BATCH_BYTES;
const SEND_CONCURRENCY = 8;
const MAX_ATTEMPTS = 5;

export class SqsCommandQueue implements CommandQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(commands: readonly CommandMessage[]): Promise<CommandSendResult> {
    const result: CommandSendResult = { sent: [], failed: [] };
    const entries = commands.map((c) => ({
      id: c.id,
      body: JSON.stringify(c),
      group: commandGroupId(c),
      dedup: commandDedupId(c),
    }));
    const batches: (typeof entries)[] = [];
    let current: typeof entries = [];
    let bytes = 0;
    for (const entry of entries) {
      const size = Buffer.byteLength(entry.body, 'utf8');
      if (size > MAX_BATCH_BYTES) {
        result.failed.push({ id: entry.id, reason: `body of ${size} bytes exceeds ${MAX_BATCH_BYTES}` });
        continue;
      }
      if (current.length === MAX_ENTRIES || bytes + size > MAX_BATCH_BYTES) {
        batches.push(current);
        current = [];
        bytes = 0;
      }
      current.push(entry);
      bytes += size;
    }
    if (current.length > 0) batches.push(current);
    await mapConcurrently(batches, SEND_CONCURRENCY, async (batch) => {
      let remaining: SendMessageBatchRequestEntry[] = batch.map((e, i) => ({
        Id: String(i),
        MessageBody: e.body,
        MessageGroupId: e.group,
        MessageDeduplicationId: e.dedup,
      }));
      for (let attempt = 1; remaining.length > 0; attempt += 1) {
        const out = await this.sqs.send(
          new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: remaining }),
        );
        for (const ok of out.Successful ?? []) {
          const entry = batch[Number(ok.Id)];
          if (entry) result.sent.push(entry.id);
        }
        const retry: SendMessageBatchRequestEntry[] = [];
        for (const failure of out.Failed ?? []) {
          const entry = batch[Number(failure.Id)];
          const request = remaining.find((r) => r.Id === failure.Id);
          if (!entry || !request) continue;
          if (failure.SenderFault || attempt >= MAX_ATTEMPTS) {
            result.failed.push({
              id: entry.id,
              reason: `${failure.Code ?? 'Failed'}: ${failure.Message ?? ''}`,
            });
          } else {
            retry.push(request);
          }
        }
        remaining = retry;
        if (remaining.length > 0) await sleep(50 * 2 ** attempt);
      }
    });
    return result;
  }
}
