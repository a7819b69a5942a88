// `zkf sweep [--discover]`: runs the sweep (lib/sweep/sweep.ts, the code of the sweep function) from here,
// when this machine reaches ZooKeeper (always locally; in AWS with --zookeeper, e.g. from a bastion in the
// VPC). Without a connect string in AWS it does not pretend: it prints the `aws lambda invoke` command
// that runs the deployed sweep (invoking Lambda needs @aws-sdk/client-lambda, which this project does not
// ship).
import { silentLog } from '../../observability.ts';
import { SqsCommandQueue } from '../../queue/commands.ts';
import { SqsFailoverRequestQueue } from '../../queue/failover-requests.ts';
import { resendPendingCommands } from '../../queue/outbox.ts';
import { registryFromConfig } from '../../registry/registry-config.ts';
import type { RegistryLogger } from '../../registry/zk-client.ts';
import { DynamoCommandStore } from '../../store/dynamodb/commands.ts';
import { DynamoExecutingWork } from '../../store/dynamodb/executing-work.ts';
import { DynamoServerStore } from '../../store/dynamodb/servers.ts';
import { runSweep } from '../../sweep/sweep.ts';
import { intOption } from '../args.ts';
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
  synopsis: '[--discover] [--timeout S]',
  description: `Runs the sweep's own code (lib/sweep/sweep.ts) from this machine against the target: re-sends
commands written more than 60 s ago and never enqueued, lists the registry, repairs the servers mirror, and
requests the failover of every host with executing work that is not live (F6). --discover also scans the
byHost indexes of both tables for hosts the mirror does not know (after a restore of the instances table,
or for work written before the mirror existed); it is checkpointed and resumes in the next sweep if
--timeout (default 60 s) runs out.

It needs ZooKeeper: locally the READY line gives it; in AWS pass --zookeeper (from a machine inside the
VPC; ZK_DIGEST=user:password for digest auth). Without it, in AWS, zkf prints the \`aws lambda invoke\`
command that runs the deployed sweep function with {"discover": true} instead, and runs nothing.`,
  options: [
    { name: 'discover', description: 'start (or finish) a full discovery pass' },
    { name: 'timeout', value: 'S', description: 'time budget in seconds (default 60)' },
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
    const commands = new DynamoCommandStore(target.dynamodb, target.tables.commands);
    const commandQueue = new SqsCommandQueue(target.sqs, target.queues.commands);
    context.note(`sweep: running${discover ? ' with discovery' : ''} against ${target.description} ...`);
    const started = Date.now();
    const summary = await runSweep(
      {
        ...registry,
        store: new DynamoServerStore(target.dynamodb, target.tables.servers),
        queue: new SqsFailoverRequestQueue(target.sqs, target.queues.failover),
        work: new DynamoExecutingWork(target.dynamodb, {
          instancesTable: target.tables.instances,
          tasksTable: target.tables.tasks,
        }),
        logger,
        resendPendingCommands: () =>
          resendPendingCommands({
            commands,
            queue: commandQueue,
            now: Date.now(),
            olderThanMs: OUTBOX_GRACE_MS,
            log: silentLog,
          }),
      },
      { endAt: Date.now() + timeoutS * 1000, discover },
    );
    const orphans = summary.orphans.map((o) => `${o.nodeType} ${o.host} (${o.via})`);
    context.print(
      [
        `sweep done in ${Date.now() - started} ms: registry ${summary.registry} (${summary.liveServers} live servers)`,
        `  orphan hosts, failover requested: ${orphans.length === 0 ? 'none' : orphans.join(', ')}`,
        `  removals relayed by the mirror repair: ${summary.removalsRelayed}`,
        `  probes: ${summary.probes} (${summary.probesUnfinished} unfinished), discovery: ${summary.discovery}`,
        `  outbox: ${JSON.stringify(summary.commands ?? null)}`,
      ].join('\n'),
      { ran: true, summary },
    );
    return summary.registry === 'listed' ? 0 : 1;
  },
};
