// `zkf dlq list|redrive`: the dead-letter queues. Listing never consumes: the messages are received (which
// hides them) and made visible again at once. Re-driving moves them back to their source queue in order,
// one message group after the other, each with a deduplication id derived from its DLQ message id, so a
// redrive interrupted between the send and the delete and run again sends nothing twice (within 5 minutes).
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import {
  type CommandMessage,
  commandGroupId,
  type FailoverRequest,
  failoverRequestGroupId,
  parseCommandMessage,
  parseFailoverRequest,
  toFifoSafeId,
} from '../../messages.ts';
import { intOption, UsageError } from '../args.ts';
import type { CliCommand, CommandContext } from '../command.ts';
import { isoTime, Progress, relative, truncate } from '../format.ts';
import { queueDepth } from '../inspect.ts';
import type { Target } from '../target.ts';

type QueueKind = 'failover' | 'commands';

const queueOption = {
  name: 'queue',
  value: 'failover|commands',
  description: 'which dead-letter queue (default failover)',
} as const;

function queueKind(options: ReadonlyMap<string, string>, command: string): QueueKind {
  const value = options.get('queue') ?? 'failover';
  if (value === 'failover' || value === 'commands') return value;
  throw new UsageError(`--queue must be failover or commands, got ${JSON.stringify(value)}`, command);
}

function urls(target: Target, kind: QueueKind): { dlq: string; source: string } {
  return kind === 'failover'
    ? { dlq: target.queues.failoverDlq, source: target.queues.failover }
    : { dlq: target.queues.commandsDlq, source: target.queues.commands };
}

export interface DlqMessage {
  messageId: string;
  sentAt: number | null;
  /** Receives so far, this listing's included. */
  receiveCount: number | null;
  groupId: string | null;
  /** Why the failover function dead-lettered it (poison); absent when SQS moved it after maxReceiveCount. */
  rejectReason: string | null;
  sourceMessageId: string | null;
  sourceGroupId: string | null;
  body: string;
  /** The body as a valid message (request or command), or null: poison. */
  parsed: FailoverRequest | CommandMessage | null;
  /** Why the body is not a valid message, when it is not. */
  invalidBecause: string | null;
  /** The message group it belongs to in its source queue, when the body is valid. */
  sourceGroup: string | null;
}

function summarize(
  kind: QueueKind,
  body: string,
): Pick<DlqMessage, 'parsed' | 'invalidBecause' | 'sourceGroup'> {
  if (kind === 'failover') {
    const parsed = parseFailoverRequest(body);
    return parsed.ok
      ? { parsed: parsed.value, invalidBecause: null, sourceGroup: failoverRequestGroupId(parsed.value) }
      : { parsed: null, invalidBecause: parsed.reason, sourceGroup: null };
  }
  const parsed = parseCommandMessage(body);
  return parsed.ok
    ? { parsed: parsed.value, invalidBecause: null, sourceGroup: commandGroupId(parsed.value) }
    : { parsed: null, invalidBecause: parsed.reason, sourceGroup: null };
}

function describe(kind: QueueKind, m: Message): DlqMessage {
  const body = m.Body ?? '';
  const attribute = (name: string) => m.MessageAttributes?.[name]?.StringValue ?? null;
  const sent = Number(m.Attributes?.SentTimestamp);
  const receives = Number(m.Attributes?.ApproximateReceiveCount);
  return {
    messageId: m.MessageId ?? '',
    sentAt: Number.isFinite(sent) ? sent : null,
    receiveCount: Number.isFinite(receives) ? receives : null,
    groupId: m.Attributes?.MessageGroupId ?? null,
    rejectReason: attribute('RejectReason'),
    sourceMessageId: attribute('SourceMessageId'),
    sourceGroupId: attribute('SourceGroupId'),
    body,
    ...summarize(kind, body),
  };
}

/** Receives up to `max` messages (they stay in flight for `visibility` seconds); stops at an empty receive. */
async function receiveAll(sqs: SQSClient, url: string, max: number, visibility: number): Promise<Message[]> {
  const messages: Message[] = [];
  while (messages.length < max) {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: Math.min(10, max - messages.length),
        VisibilityTimeout: visibility,
        WaitTimeSeconds: 1,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    );
    const batch = out.Messages ?? [];
    if (batch.length === 0) break;
    messages.push(...batch);
  }
  return messages;
}

/** Makes received messages visible again at once (ChangeMessageVisibility 0). */
async function release(sqs: SQSClient, url: string, messages: readonly Message[]): Promise<void> {
  for (let i = 0; i < messages.length; i += 10) {
    const batch = messages.slice(i, i + 10);
    await sqs.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: url,
        Entries: batch.map((m, j) => ({
          Id: String(j),
          ReceiptHandle: m.ReceiptHandle ?? '',
          VisibilityTimeout: 0,
        })),
      }),
    );
  }
}

function renderMessage(kind: QueueKind, d: DlqMessage, index: number, now: number): string[] {
  const lines = [
    `#${index + 1}  sent ${isoTime(d.sentAt)} (${relative(d.sentAt, now)}), receives ${d.receiveCount ?? '?'}, group ${
      d.groupId ?? '-'
    }, id ${d.messageId}`,
  ];
  if (d.rejectReason !== null) {
    lines.push(`    reason:  ${d.rejectReason}  (RejectReason, set by the failover function: poison)`);
  } else if (d.invalidBecause !== null) {
    lines.push(
      `    reason:  not a valid ${kind === 'failover' ? 'request' : 'command'}: ${d.invalidBecause}`,
    );
  } else {
    lines.push(
      `    reason:  none recorded: moved by SQS after ${kind === 'failover' ? 'the failover function' : 'the consumers'} failed it repeatedly (maxReceiveCount); see the logs`,
    );
  }
  const p = d.parsed;
  if (p !== null) {
    lines.push(
      'kind' in p
        ? `    request: ${p.kind} ${p.nodeType} ${p.host} from ${p.source}, observed ${isoTime(p.observedAt)}`
        : `    command: ${p.type} ${p.id}`,
    );
  }
  lines.push(`    body:    ${truncate(d.body, 200)}`);
  return lines;
}

async function listDlq(context: CommandContext): Promise<number> {
  const { options, io } = context;
  const kind = queueKind(options, 'dlq');
  const max = intOption(options, 'max', 100, { min: 1, max: 10_000 }, 'dlq');
  const target = await context.target();
  const { dlq } = urls(target, kind);
  const depth = await queueDepth(target.sqs, dlq);
  const received = await receiveAll(target.sqs, dlq, max, 30);
  // Not consuming: visible again at once (also if rendering fails below).
  await release(target.sqs, dlq, received);
  const now = io.now();
  const messages = received.map((m) => describe(kind, m));
  const total = depth.visible + depth.inFlight + depth.delayed;
  const result = {
    queue: kind,
    url: dlq,
    depth,
    listed: messages.length,
    notShown: Math.max(0, total - messages.length),
    messages,
  };
  const out = [
    `${kind.toUpperCase()} DLQ ${dlq}: about ${total} messages (visible ${depth.visible}, in flight ${depth.inFlight}), ${messages.length} listed (made visible again)`,
  ];
  messages.forEach((d, i) => {
    out.push(...renderMessage(kind, d, i, now));
  });
  if (messages.length < total) {
    out.push(
      `(${total - messages.length} more not shown: ${
        messages.length >= max ? '--max, or ' : ''
      }FIFO hides a message group's later messages while its first ones are in flight, and listing must not consume them; \`zkf dlq redrive\` goes through every group.)`,
    );
  }
  context.print(out.join('\n'), result);
  return 0;
}

async function redriveDlq(context: CommandContext): Promise<number> {
  const { options, io } = context;
  const kind = queueKind(options, 'dlq');
  const max = intOption(options, 'max', 10_000, { min: 1, max: 1_000_000 }, 'dlq');
  const includePoison = options.has('include-poison');
  const target = await context.target();
  const { dlq, source } = urls(target, kind);
  const depth = await queueDepth(target.sqs, dlq);
  const total = Math.min(max, depth.visible);
  const progress = new Progress(io.stderr, 'redrive');
  const moved: Array<{ messageId: string; groupId: string }> = [];
  const skipped: Message[] = [];
  try {
    while (moved.length + skipped.length < max) {
      const out = await target.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: dlq,
          MaxNumberOfMessages: Math.min(10, max - moved.length - skipped.length),
          // Long enough to send and delete the batch; skipped ones are released at the end.
          VisibilityTimeout: 120,
          WaitTimeSeconds: 1,
          MessageAttributeNames: ['All'],
          MessageSystemAttributeNames: ['All'],
        }),
      );
      const batch = out.Messages ?? [];
      if (batch.length === 0) break;
      // In the order received: FIFO delivers each group's messages in order, and they are sent in order.
      for (const m of batch) {
        const d = describe(kind, m);
        if (d.parsed === null && !includePoison) {
          skipped.push(m);
          continue;
        }
        const groupId = d.sourceGroup ?? d.sourceGroupId ?? d.groupId ?? 'poison';
        await target.sqs.send(
          new SendMessageCommand({
            QueueUrl: source,
            MessageBody: d.body,
            MessageGroupId: groupId,
            MessageDeduplicationId: toFifoSafeId(`redrive/${d.messageId}`),
          }),
        );
        await target.sqs.send(
          new DeleteMessageCommand({ QueueUrl: dlq, ReceiptHandle: m.ReceiptHandle ?? '' }),
        );
        moved.push({ messageId: d.messageId, groupId });
        progress.update(`${moved.length}/${total} moved back to the ${kind} queue`);
      }
    }
  } finally {
    await release(target.sqs, dlq, skipped);
  }
  progress.done(`${moved.length} moved, ${skipped.length} poison left in the DLQ`);
  const result = { queue: kind, from: dlq, to: source, moved, skippedPoison: skipped.length };
  const lines = [`moved ${moved.length} messages from ${dlq} back to ${source}`];
  if (skipped.length > 0) {
    lines.push(
      `left ${skipped.length} poison messages in the DLQ (not valid ${kind === 'failover' ? 'requests' : 'commands'}: re-driving them would only bring them back; fix the producer, then purge them, or --include-poison)`,
    );
  }
  context.print(lines.join('\n'), result);
  return 0;
}

export const dlqListCommand: CliCommand = {
  words: ['dlq', 'list'],
  summary: 'show dead-lettered messages with their reasons (does not consume them)',
  synopsis: '[--queue failover|commands] [--max N]',
  description: `Receives the messages of a dead-letter queue and makes them visible again at once (listing
counts as a receive). For each: when it was sent, its receive count, its message group, the RejectReason
attribute the failover function sets on poison (malformed, oversized or hostile bodies), or, when there is
none, that SQS moved it after maxReceiveCount failed attempts; the request or command it holds, if valid.
Listing cannot consume, and FIFO queues hide a message group's later messages while its first ones are in
flight: only the first message(s) of each group show (each poison message has a group of its own); the
total is the queue's approximate depth.`,
  options: [queueOption, { name: 'max', value: 'N', description: 'list at most N messages (default 100)' }],
  run: listDlq,
};

export const dlqRedriveCommand: CliCommand = {
  words: ['dlq', 'redrive'],
  summary: 'move dead-lettered messages back to their queue (after a fix), FIFO-safe, with progress',
  synopsis: '[--queue failover|commands] [--max N] [--include-poison]',
  description: `Moves each valid message of the dead-letter queue back to its source queue (failover or
commands), in order, with its original message group (a request's <type>/<host>, a command's process
instance) and the deduplication id redrive/<DLQ message id>: a redrive that was interrupted and is run again
does not send a message twice within 5 minutes. Each message is deleted from the DLQ only after it was
sent. Re-driving failover requests is always safe: a failover is idempotent.

Poison (bodies that are not valid messages) is left in the DLQ, made visible again: re-driving it would
only bring it back. --include-poison moves it anyway (for a consumer fixed to accept it).`,
  options: [
    queueOption,
    { name: 'max', value: 'N', description: 'move at most N messages' },
    { name: 'include-poison', description: 'move invalid bodies too' },
  ],
  run: redriveDlq,
};
