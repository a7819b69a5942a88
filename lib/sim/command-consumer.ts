// A simulated DolphinScheduler master consuming the commands queue, as the data contract asks of the real
// scheduler (docs/data-contract.md): a recovery command takes the instance over (host := this master,
// restartTime := now, only while the instance is unowned), a task failover notice re-dispatches the task
// to a live worker (only while it is NEED_FAULT_TOLERANCE). The command id is the idempotency key: a
// redelivery finds its effect already there and is only acknowledged.
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { NEED_FAULT_TOLERANCE } from '../failover/rules.ts';
import { parseCommandMessage, type RecoveryCommand, type TaskFailoverNotice } from '../messages.ts';
import { num, readString, str } from '../store/dynamodb/attributes.ts';
import type { SimReport } from './protocol.ts';

export interface CommandConsumerDeps {
  sqs: SQSClient;
  dynamodb: DynamoDBClient;
  queueUrl: string;
  instancesTable: string;
  tasksTable: string;
  /** This master's registered name. */
  self: string;
  /** Live workers as the registry shows them now. */
  liveWorkers(): Promise<string[]>;
  report(report: SimReport): void;
  now?: () => number;
}

type Outcome = 'done' | 'retry';

export class CommandConsumer {
  /** Command ids already applied or acknowledged by this process. */
  private readonly handled = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly deps: CommandConsumerDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Polls until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { sqs, queueUrl } = this.deps;
    while (!signal.aborted) {
      let messages: Message[];
      try {
        const out = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
            // Short: a master that dies holding messages gives them back soon.
            VisibilityTimeout: 10,
            MessageSystemAttributeNames: ['MessageGroupId'],
          }),
          { abortSignal: signal },
        );
        messages = out.Messages ?? [];
      } catch (error: unknown) {
        if (signal.aborted) return;
        this.problem('receive failed', error);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (messages.length === 0) continue;
      // FIFO: messages of one group (one process instance) in order; groups side by side.
      const groups = new Map<string, Message[]>();
      for (const m of messages) {
        const group = m.Attributes?.MessageGroupId ?? m.MessageId ?? '';
        groups.set(group, [...(groups.get(group) ?? []), m]);
      }
      const done: Message[] = [];
      await Promise.all(
        [...groups.values()].map(async (group) => {
          for (const m of group) {
            if ((await this.handle(m)) === 'retry') return; // later ones of the group wait for it
            done.push(m);
          }
        }),
      );
      if (done.length > 0) {
        await sqs
          .send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
            }),
          )
          .catch((error: unknown) => this.problem('delete failed', error));
      }
    }
  }

  private async handle(message: Message): Promise<Outcome> {
    const parsed = parseCommandMessage(message.Body ?? '');
    if (!parsed.ok) {
      // Not ours to fix: left on the queue, it reaches the commands DLQ after 5 receives.
      this.deps.report({ type: 'problem', what: `unreadable command: ${parsed.reason}`, at: this.now() });
      return 'retry';
    }
    const command = parsed.value;
    if (this.handled.has(command.id)) return 'done';
    try {
      const outcome =
        command.type === 'RecoveryCommand' ? await this.takeOver(command) : await this.redispatch(command);
      if (outcome === 'done') this.handled.add(command.id);
      return outcome;
    } catch (error: unknown) {
      this.problem(`command ${command.id} failed`, error);
      return 'retry';
    }
  }

  private async takeOver(command: RecoveryCommand): Promise<Outcome> {
    const { dynamodb, instancesTable, self } = this.deps;
    try {
      await dynamodb.send(
        new UpdateItemCommand({
          TableName: instancesTable,
          Key: { id: str(command.processInstanceId) },
          // Only an unowned instance of this very failover generation: a stale or repeated command is a no-op.
          ConditionExpression: 'attribute_not_exists(#host) AND failoverCount = :generation',
          UpdateExpression: 'SET #host = :self, restartTime = :now, recoveredBy = :command',
          ExpressionAttributeNames: { '#host': 'host' },
          ExpressionAttributeValues: {
            ':self': str(self),
            ':now': num(this.now()),
            ':command': str(command.id),
            ':generation': num(command.generation),
          },
        }),
      );
    } catch (error: unknown) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const current = await this.read(instancesTable, command.processInstanceId);
      const why =
        current && readString(current, 'recoveredBy') === command.id
          ? `already taken over by ${readString(current, 'host') ?? '?'}`
          : 'instance no longer unowned in this generation';
      this.deps.report({ type: 'ignored', commandId: command.id, why, at: this.now() });
      return 'done';
    }
    this.deps.report({
      type: 'took-over',
      commandId: command.id,
      instanceId: command.processInstanceId,
      at: this.now(),
    });
    return 'done';
  }

  private async redispatch(notice: TaskFailoverNotice): Promise<Outcome> {
    const { dynamodb, tasksTable } = this.deps;
    const workers = (await this.deps.liveWorkers()).filter((w) => w !== notice.failedHost).sort();
    if (workers.length === 0) {
      this.deps.report({ type: 'problem', what: 'no live worker to re-dispatch to', at: this.now() });
      return 'retry';
    }
    const worker = workers[hash(notice.taskInstanceId) % workers.length] ?? workers[0] ?? '';
    try {
      await dynamodb.send(
        new UpdateItemCommand({
          TableName: tasksTable,
          Key: { id: str(notice.taskInstanceId) },
          ConditionExpression: '#state = :needFaultTolerance AND lastHost = :failedHost',
          UpdateExpression:
            'SET #state = :submitted, #host = :worker, submitTime = :now, redispatchedBy = :command',
          ExpressionAttributeNames: { '#state': 'state', '#host': 'host' },
          ExpressionAttributeValues: {
            ':needFaultTolerance': str(NEED_FAULT_TOLERANCE),
            ':failedHost': str(notice.failedHost),
            ':submitted': str('SUBMITTED_SUCCESS'),
            ':worker': str(worker),
            ':now': num(this.now()),
            ':command': str(notice.id),
          },
        }),
      );
    } catch (error: unknown) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const current = await this.read(tasksTable, notice.taskInstanceId);
      const why =
        current && readString(current, 'redispatchedBy') === notice.id
          ? 'already re-dispatched'
          : 'task no longer NEED_FAULT_TOLERANCE';
      this.deps.report({ type: 'ignored', commandId: notice.id, why, at: this.now() });
      return 'done';
    }
    this.deps.report({
      type: 'redispatched',
      commandId: notice.id,
      taskId: notice.taskInstanceId,
      worker,
      at: this.now(),
    });
    return 'done';
  }

  private async read(table: string, id: string) {
    const out = await this.deps.dynamodb.send(
      new GetItemCommand({ TableName: table, Key: { id: str(id) }, ConsistentRead: true }),
    );
    return out.Item;
  }

  private problem(what: string, error: unknown): void {
    const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    this.deps.report({ type: 'problem', what: `${what}: ${detail}`.slice(0, 300), at: this.now() });
  }
}

function hash(text: string): number {
  let h = 0;
  for (let i = 0; i < text.length; i += 1) h = (h * 31 + text.charCodeAt(i)) >>> 0;
  return h;
}
