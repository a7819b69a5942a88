// `zkf sweep [--discover]`: runs the sweep (lib/sweep/sweep.ts, the code of the sweep function) from here,
// when this machine reaches ZooKeeper (always locally; in AWS with --zookeeper, e.g. from a bastion in the
// VPC). Without a connect string in AWS it does not pretend: it prints the `aws lambda invoke` command
// that runs the deployed sweep (zkf reads a function's configuration, never invokes one: operators keep
// lambda:InvokeFunction to themselves).
import { silentLog } from '../../observability.ts';
import { SqsCommandQueue } from '../../queue/commands.ts';
import { SqsFailoverRequestQueue } from '../../queue/failover-requests.ts';
import { resendPendingCommands } from '../../queue/outbox.ts';
import { registryFromConfig } from '../../registry/registry-config.ts';
import type { RegistryLogger } from '../../registry/zk-client.ts';
import { DynamoCommandStore } from '../../store/dynamodb/commands.ts';
import { DynamoExecutingWork } from '../../store/dynamodb/executing-work.ts';
import { DynamoLockStore } from '../../store/dynamodb/locks.ts';
import { DynamoRepairLedger } from '../../store/dynamodb/repair-ledger.ts';
import { DynamoServerStore } from '../../store/dynamodb/servers.ts';
import { dolphinSchedulerSweepParts } from '../../stores.ts';
import type { RepairSummary } from '../../sweep/repair-unowned.ts';
import { runSweep, type SweepDeps } from '../../sweep/sweep.ts';
import { intOption, UsageError } from '../args.ts';
import type { CliCommand } from '../command.ts';

/** The sweep function's own grace for commands a failover run may still be sending (functions/sweep). */
const OUTBOX_GRACE_MS = 60_000;

export function lambdaInvokeCommand(
  service: string,
  stage: string,
  region: string | undefined,
  discover: boolean,
) {
  return [
    'aws lambda invoke',
    `--function-name ${service}-${stage}-sweep`,
    ...(region === undefined ? [] : [`--region ${region}`]),
    '--cli-binary-format raw-in-base64-out',
    `--payload '${JSON.stringify(discover ? { discover: true } : {})}'`,
    '/dev/stdout',
  ].join(' ');
}

export const sweepCommand: CliCommand = {
  words: ['sweep'],
  summary: 'run the sweep now (orphans, mirror repair, outbox); --discover for a full discovery pass',
  synopsis: '[--discover] [--timeout S] [--repair-grace S]',
  description: `Runs the sweep's own code (lib/sweep/sweep.ts) from this machine against the target: re-sends
commands written more than 60 s ago and never enqueued, lists the registry, repairs the servers mirror, and
requests the failover of every host with executing work that is not live (F6). --discover also scans the
byHost indexes of both tables for hosts the mirror does not know (after a restore of the instances table,
or for work written before the mirror existed); it is checkpointed and resumes in the next sweep if
--timeout (default 60 s) runs out.

It needs ZooKeeper: locally the READY line gives it; in AWS pass --zookeeper (from a machine inside the
VPC; ZK_DIGEST=user:password for digest auth). Without it, in AWS, zkf prints the \`aws lambda invoke\`
command that runs the deployed sweep function with {"discover": true} instead, and runs nothing.

On DolphinScheduler's database it runs that store's sweep (DESIGN D5): one pass over the executing
instances lists their hosts (every sweep: --discover adds nothing), a failover request for each host that
is not registered (exact match, 'NULL' excluded), and the repairs under the repair lock: an executing
instance with SQL NULL host gets 'NULL' and its recovery command at once, one with host 'NULL' and no command
gets its command once the sweep has seen it so for --repair-grace seconds (default: the stage's
DS_REPAIR_GRACE_MS, 600 s). Each repair is checked and written in one transaction that locks the row.`,
  options: [
    { name: 'discover', description: 'start (or finish) a full discovery pass' },
    { name: 'timeout', value: 'S', description: 'time budget in seconds (default 60)' },
    {
      name: 'repair-grace',
      value: 'S',
      description: "DolphinScheduler store: seconds a 'NULL' host without command waits for its repair",
    },
  ],
  async run(context) {
    const { options, io } = context;
    const discover = options.has('discover');
    const timeoutS = intOption(options, 'timeout', 60, { min: 5, max: 900 }, 'sweep');
    const stage = options.get('stage');
    if (stage !== undefined && options.get('zookeeper') === undefined) {
      // Nothing to read or send from here: AWS is not even contacted.
      const service = options.get('service') ?? 'zk-failover';
      const command = lambdaInvokeCommand(service, stage, options.get('region'), discover);
      context.note(
        'zkf cannot reach ZooKeeper from here (no --zookeeper) and does not invoke Lambda: run this to have the deployed sweep do it:',
      );
      context.print(command, { ran: false, command });
      return 0;
    }
    const target = await context.target();
    const zookeeper = target.zookeeper;
    if (zookeeper === undefined) throw new Error('no ZooKeeper connect string');
    const logger: RegistryLogger = {
      info: (message, data) => {
        if (message === 'orphan failover requested')
          context.note(`sweep: ${message} ${JSON.stringify(data ?? {})}`);
      },
      warn: (message, data) => context.note(`sweep: warning: ${message} ${JSON.stringify(data ?? {})}`),
      error: (message, data) => context.note(`sweep: error: ${message} ${JSON.stringify(data ?? {})}`),
    };
    const registry = registryFromConfig(
      {
        ZK_CONNECT: zookeeper,
        ZK_DIGEST: io.env.ZK_DIGEST,
        ZK_SESSION_TIMEOUT_MS: 10_000,
        REGISTRY_ROOT: target.registryRoot,
        REGISTRY_LAYOUT: target.layout,
        REGISTRY_TZ_OFFSET_MINUTES: 0,
      },
      logger,
    );
    const ds = target.store.kind === 'dolphinscheduler' ? target.store : undefined;
    const graceS = intOption(
      options,
      'repair-grace',
      Math.round((ds?.repairGraceMs ?? 600_000) / 1000),
      { min: 1, max: 86_400 * 30 },
      'sweep',
    );
    if (ds === undefined && options.has('repair-grace')) {
      throw new UsageError(
        "--repair-grace is for DolphinScheduler's database (--store postgresql|mysql)",
        'sweep',
      );
    }
    let storeParts: Pick<SweepDeps, 'work' | 'resendPendingCommands' | 'repairUnowned'>;
    if (ds === undefined) {
      const commands = new DynamoCommandStore(target.dynamodb, target.tables.commands);
      const commandQueue = new SqsCommandQueue(target.sqs, target.queues.commands);
      storeParts = {
        work: new DynamoExecutingWork(target.dynamodb, {
          instancesTable: target.tables.instances,
          tasksTable: target.tables.tasks,
        }),
        resendPendingCommands: () =>
          resendPendingCommands({
            commands,
            queue: commandQueue,
            now: Date.now(),
            olderThanMs: OUTBOX_GRACE_MS,
            log: silentLog,
          }),
      };
    } else {
      // The sweep function's own wiring on this store (lib/stores.ts).
      storeParts = dolphinSchedulerSweepParts({
        database: ds.database,
        timeZone: ds.timeZone,
        ledger: new DynamoRepairLedger(target.dynamodb, target.tables.servers),
        locks: new DynamoLockStore(target.dynamodb, target.tables.locks),
        graceMs: graceS * 1000,
      });
      if (discover) {
        context.note(
          "sweep: on DolphinScheduler's database every sweep lists all executing hosts: --discover adds nothing",
        );
      }
    }
    context.note(`sweep: running${discover ? ' with discovery' : ''} against ${target.description} ...`);
    const started = Date.now();
    const summary = await runSweep(
      {
        ...registry,
        store: new DynamoServerStore(target.dynamodb, target.tables.servers),
        queue: new SqsFailoverRequestQueue(target.sqs, target.queues.failover),
        ...storeParts,
        logger,
      },
      { endAt: Date.now() + timeoutS * 1000, discover },
    );
    const orphans = summary.orphans.map((o) => `${o.nodeType} ${o.host} (${o.via})`);
    const repairs = summary.repairs as RepairSummary | undefined;
    context.print(
      [
        `sweep done in ${Date.now() - started} ms: registry ${summary.registry} (${summary.liveServers} live servers)`,
        `  orphan hosts, failover requested: ${orphans.length === 0 ? 'none' : orphans.join(', ')}`,
        `  removals relayed by the mirror repair: ${summary.removalsRelayed}`,
        ...(ds === undefined
          ? [
              `  probes: ${summary.probes} (${summary.probesUnfinished} unfinished), discovery: ${summary.discovery}`,
              `  outbox: ${JSON.stringify(summary.commands ?? null)}`,
            ]
          : [
              `  executing hosts: one pass over t_ds_process_instance, ${summary.scan?.durationMs ?? '?'} ms (${summary.scan?.executingItems ?? '?'} executing instances, ${summary.scan?.hosts ?? '?'} hosts)`,
              repairs === undefined
                ? '  repairs: not run'
                : repairs.status === 'lock-held'
                  ? '  repairs: skipped, another sweep holds the repair lock'
                  : `  repairs: ${repairs.sqlNullHosts} SQL NULL hosts, ${repairs.withoutCommand} 'NULL' hosts without a command (${repairs.waiting} within the ${graceS} s grace); ${repairs.repaired.length} recovery commands written${
                      repairs.repaired.length > 0
                        ? ` (${repairs.repaired.map((r) => `instance ${r.itemId} -> command ${r.commandId}`).join(', ')})`
                        : ''
                    }`,
            ]),
      ].join('\n'),
      { ran: true, summary },
    );
    return summary.registry === 'listed' ? 0 : 1;
  },
};
