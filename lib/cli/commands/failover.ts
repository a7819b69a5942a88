// `zkf failover --host H`: sends an operator failover request to the failover queue, exactly as the
// watcher would for a removal (same schema, FIFO group and deduplication id), with `source: operator`.
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { failoverLockName } from '../../failover/ports.ts';
import {
  type FailoverRequestInput,
  FailoverRequestSchema,
  failoverRequestDedupId,
  failoverRequestGroupId,
} from '../../messages.ts';
import { SqsFailoverRequestQueue } from '../../queue/failover-requests.ts';
import { readNumber, readString, str } from '../../store/dynamodb/attributes.ts';
import { intOption } from '../args.ts';
import type { CliCommand } from '../command.ts';
import { duration, isoTime, Progress } from '../format.ts';
import { hostOption, identifyHost, typeOption } from '../hosts.ts';
import type { Target } from '../target.ts';
import { computePlan } from './plan.ts';

async function readLock(
  target: Target,
  name: string,
): Promise<{ fence: number; held: boolean; owner?: string }> {
  const item = (
    await target.dynamodb.send(
      new GetItemCommand({ TableName: target.tables.locks, Key: { name: str(name) }, ConsistentRead: true }),
    )
  ).Item;
  const owner = item === undefined ? undefined : readString(item, 'owner');
  return {
    fence: item === undefined ? 0 : (readNumber(item, 'fence') ?? 0),
    held: owner !== undefined,
    ...(owner === undefined ? {} : { owner }),
  };
}

export const failoverCommand: CliCommand = {
  words: ['failover'],
  summary: 'send an operator failover request for a host (safe to repeat)',
  synopsis: '--host H [--type master|worker] [--wait [--timeout S]]',
  description: `Sends {"kind":"NodeRemoved","source":"operator","nodeType","host","czxid","startupTime",
"observedAt": now} to the failover queue (FIFO group <type>/<host>), where the failover function takes it
like a watcher's request. czxid and startupTime are the host's last incarnation in the servers mirror (null
when the watcher never saw it). Idempotent: items already failed over are skipped, commands are never
duplicated, and a host that is registered again only loses work older than its new startup (F3): run
\`zkf plan\` first to see what it would change. SQS drops a repeat of the same request (same host and
incarnation) within 5 minutes as a duplicate.

--wait follows the failover until its lock is released with nothing left to fail over for this request
(progress on stderr), or --timeout seconds (default 120) pass (exit code 1).`,
  options: [
    { name: 'host', value: 'IP:PORT', description: 'the server, exactly as registered' },
    { name: 'type', value: 'master|worker', description: 'node type (default: from the servers mirror)' },
    { name: 'wait', description: 'wait until the failover is done' },
    { name: 'timeout', value: 'S', description: 'with --wait: give up after S seconds (default 120)' },
  ],
  async run(context) {
    const { options, io } = context;
    const host = hostOption(options, 'failover');
    const type = typeOption(options, 'failover');
    const timeoutS = intOption(options, 'timeout', 120, { min: 1, max: 86_400 }, 'failover');
    const target = await context.target();
    const identity = await identifyHost(target, host, type, 'failover');
    const { row, nodeType } = identity;
    const lockName = failoverLockName(nodeType, host);
    const before = await readLock(target, lockName);
    const observedAt = io.now();
    const input: FailoverRequestInput = {
      kind: 'NodeRemoved',
      nodeType,
      host,
      czxid: row?.czxid ?? null,
      startupTime: row?.startupTime ?? null,
      observedAt,
      source: 'operator',
    };
    const request = FailoverRequestSchema.parse(input);
    if (row?.alive === true) {
      context.note(
        `note: ${host} is registered (alive in the servers mirror, incarnation started ${isoTime(row.startupTime)}): only work older than that is failed over (F3). \`zkf plan --host ${host}\` shows what.`,
      );
    }
    await new SqsFailoverRequestQueue(target.sqs, target.queues.failover).send([request]);
    const sent = {
      request,
      groupId: failoverRequestGroupId(request),
      deduplicationId: failoverRequestDedupId(request),
      queue: target.queues.failover,
    };
    if (!options.has('wait')) {
      context.print(
        [
          `sent a failover request for ${nodeType} ${host} (group ${sent.groupId}, deduplication id ${sent.deduplicationId})`,
          `  ${JSON.stringify(request)}`,
          'follow it with `zkf status` (locks) or `zkf plan` (what is left); --wait waits for it.',
        ].join('\n'),
        { sent },
      );
      return 0;
    }
    const progress = new Progress(io.stderr, 'failover');
    const deadline = Date.now() + timeoutS * 1000;
    const started = Date.now();
    for (;;) {
      const lock = await readLock(target, lockName);
      if (lock.fence > before.fence && !lock.held) {
        const plan = await computePlan(target, host, nodeType, identity.typeSource, observedAt, io.now());
        if (plan.eligible.length === 0 && plan.leftoverCommands.length === 0) {
          progress.done(`done in ${duration(Date.now() - started)} (lock fence ${lock.fence})`);
          const executingLeft = plan.skipped.length + plan.malformed.length;
          context.print(
            [
              `failover of ${nodeType} ${host} done: lock ${lockName} released at fence ${lock.fence}`,
              `  ${executingLeft} executing items left on the host${
                executingLeft > 0
                  ? ` (${Object.entries(plan.summary.skipped)
                      .map(([r, n]) => `${r} ${n}`)
                      .join(', ')}${plan.malformed.length > 0 ? `, malformed ${plan.malformed.length}` : ''})`
                  : ''
              }`,
            ].join('\n'),
            { sent, done: true, fence: lock.fence, executingLeft, skipped: plan.summary.skipped },
          );
          return 0;
        }
        progress.update(`${plan.eligible.length} items still to fail over (a continuation is on its way)`);
      } else {
        progress.update(
          lock.fence > before.fence
            ? `running (fence ${lock.fence}, held by ${lock.owner ?? '?'})`
            : 'waiting for the failover function to take the lock',
        );
      }
      if (Date.now() > deadline) {
        progress.done(`not done after ${timeoutS} s`);
        context.print(
          `gave up waiting after ${timeoutS} s: the request is on the queue (a repeat within 5 minutes is dropped by SQS as a duplicate); see \`zkf status\``,
          { sent, done: false },
        );
        return 1;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  },
};
