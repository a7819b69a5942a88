// `zkf failover --host H`: sends an operator failover request to the failover queue, exactly as the
// watcher would for a removal (same schema, FIFO group and deduplication id), with `source: operator`.
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { failoverLockName } from '../../failover/ports.ts';
import {
  type FailoverRequestInput,
  FailoverRequestSchema,
  failoverRequestDedupId,
  failoverRequestGroupId,
  type NodeType,
} from '../../messages.ts';
import { SqsFailoverRequestQueue } from '../../queue/failover-requests.ts';
import { readNumber, readString, str } from '../../store/dynamodb/attributes.ts';
import { DynamoRunJournal } from '../../store/dynamodb/run-journal.ts';
import { intOption } from '../args.ts';
import type { CliCommand } from '../command.ts';
import { computeDsPlan } from '../ds-plan.ts';
import { duration, isoTime, Progress } from '../format.ts';
import { hostOption, identifyHost, typeOption } from '../hosts.ts';
import type { Target } from '../target.ts';
import { computePlan } from './plan.ts';

/** What is left to fail over on the host for this request: eligible items (and, DynamoDB, unsent commands). */
async function leftToFailOver(
  target: Target,
  host: string,
  nodeType: NodeType,
  typeSource: 'option' | 'mirror',
  observedAt: number,
  now: number,
  digest: string | undefined,
): Promise<{ left: number; executingLeft: number; skipped: Record<string, number>; malformed: number }> {
  if (target.store.kind === 'dolphinscheduler') {
    const plan = await computeDsPlan(target, target.store, host, nodeType, typeSource, observedAt, now, {
      ...(digest === undefined ? {} : { digest }),
    });
    return {
      left: plan.eligible.length,
      executingLeft: plan.skipped.length + plan.malformed.length,
      skipped: plan.summary.skipped,
      malformed: plan.malformed.length,
    };
  }
  const plan = await computePlan(target, host, nodeType, typeSource, observedAt, now);
  return {
    left: plan.eligible.length + plan.leftoverCommands.length,
    executingLeft: plan.skipped.length + plan.malformed.length,
    skipped: plan.summary.skipped,
    malformed: plan.malformed.length,
  };
}

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
(progress on stderr), or --timeout seconds (default 120) pass (exit code 1).

On DolphinScheduler's database the request is the same; --wait judges "nothing left" with the plan of that
store and reports the t_ds_command rows the run wrote (from the run journal). A worker's request is only
acknowledged there (D4: DolphinScheduler's live masters fail its tasks over): there is nothing to wait for.`,
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
    const acknowledgedOnly = target.store.kind === 'dolphinscheduler' && nodeType === 'worker';
    if (acknowledgedOnly) {
      context.note(
        `note: on DolphinScheduler's database a worker's removal is only acknowledged: DolphinScheduler's live masters fail its tasks over (D4); no row is written${options.has('wait') ? ', nothing to wait for' : ''}.`,
      );
    }
    if (!options.has('wait') || acknowledgedOnly) {
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
        const plan = await leftToFailOver(
          target,
          host,
          nodeType,
          identity.typeSource,
          observedAt,
          io.now(),
          io.env.ZK_DIGEST,
        );
        if (plan.left === 0) {
          progress.done(`done in ${duration(Date.now() - started)} (lock fence ${lock.fence})`);
          const { executingLeft } = plan;
          // DolphinScheduler's database: what the runs since the request wrote, from the run journal (D6).
          const written =
            target.store.kind === 'dolphinscheduler'
              ? (await new DynamoRunJournal(target.dynamodb, target.tables.commands).runsOf(lockName))
                  .filter((run) => run.fence > before.fence)
                  .flatMap((run) => run.receipts)
              : undefined;
          context.print(
            [
              `failover of ${nodeType} ${host} done: lock ${lockName} released at fence ${lock.fence}`,
              ...(written === undefined
                ? []
                : [
                    `  ${written.length} instances set to host 'NULL' with one t_ds_command row each${
                      written.length > 0 ? ` (command ids ${written.map((r) => r.commandId).join(', ')})` : ''
                    }`,
                  ]),
              `  ${executingLeft} executing items left on the host${
                executingLeft > 0
                  ? ` (${Object.entries(plan.skipped)
                      .map(([r, n]) => `${r} ${n}`)
                      .join(', ')}${plan.malformed > 0 ? `, malformed ${plan.malformed}` : ''})`
                  : ''
              }`,
            ].join('\n'),
            {
              sent,
              done: true,
              fence: lock.fence,
              executingLeft,
              skipped: plan.skipped,
              ...(written === undefined ? {} : { written }),
            },
          );
          return 0;
        }
        progress.update(`${plan.left} items still to fail over (a continuation is on its way)`);
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
