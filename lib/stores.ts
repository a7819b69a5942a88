// Composition: the failover core's ports built for the store the configuration names (DESIGN section 11).
// Handlers, the operator command line, the benchmark and the tests wire a store through here, so that each
// store's adapters are put together in one place. Imports point one way: this file -> adapters -> core.
import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { DolphinSchedulerConfig } from './config.ts';
import type { FailoverDeps } from './failover/fail-over-host.ts';
import type { LockStore, RunJournal } from './failover/ports.ts';
import type { Log } from './observability.ts';
import { MAX_COMMAND_BYTES, SqsCommandQueue } from './queue/commands.ts';
import { OutboxCommandDelivery } from './queue/outbox.ts';
import { DsFailoverLockGuard, type DsRelease } from './registry/ds-failover-lock.ts';
import type { RegistryLayout } from './registry/layout.ts';
import type { RegistryLogger } from './registry/zk-client.ts';
import { ZkLiveness } from './registry/zk-liveness.ts';
import type { ZkSessionProvider } from './registry/zk-session-provider.ts';
import {
  type Database,
  DatabaseConfigError,
  defaultPoolSettings,
  lazyDatabase,
  openDatabase,
  parseDatabaseUrl,
  parseRdsSecret,
} from './store/dolphinscheduler/database.ts';
import { CoalescingJournal, DsCommandDelivery } from './store/dolphinscheduler/delivery.ts';
import { DsInstanceStore } from './store/dolphinscheduler/instances.ts';
import { DsExecutingHosts, DsUnownedWork } from './store/dolphinscheduler/sweep-work.ts';
import { WallClock } from './store/dolphinscheduler/wall-time.ts';
import { DynamoCommandStore } from './store/dynamodb/commands.ts';
import { DynamoInstanceStore } from './store/dynamodb/instances.ts';
import { DynamoServerMirror } from './store/dynamodb/server-mirror.ts';
import { DynamoTaskStore } from './store/dynamodb/tasks.ts';
import type { ExecutingHostScan } from './sweep/executing-work.ts';
import { type RepairLedger, type RepairSummary, repairUnownedInstances } from './sweep/repair-unowned.ts';

/** What a store contributes to the failover use case. */
export type FailoverStorePorts = Pick<
  FailoverDeps,
  'instances' | 'tasks' | 'delivery' | 'maxCommandBytes' | 'liveness' | 'guard'
>;

export interface DynamoStoreNames {
  instancesTable: string;
  tasksTable: string;
  commandsTable: string;
  serversTable: string;
  commandsQueueUrl: string;
}

/** The DynamoDB store (DESIGN section 4): its tables, the outbox and the commands queue, the mirror's liveness. */
export function dynamoFailoverPorts(
  clients: { dynamodb: DynamoDBClient; sqs: SQSClient },
  names: DynamoStoreNames,
  log?: Log,
): FailoverStorePorts {
  const { dynamodb, sqs } = clients;
  const commands = new DynamoCommandStore(dynamodb, names.commandsTable);
  return {
    instances: new DynamoInstanceStore(dynamodb, {
      instances: names.instancesTable,
      commands: names.commandsTable,
    }),
    tasks: new DynamoTaskStore(dynamodb, { tasks: names.tasksTable, commands: names.commandsTable }),
    delivery: new OutboxCommandDelivery({
      commands,
      queue: new SqsCommandQueue(sqs, names.commandsQueueUrl),
      ...(log ? { log } : {}),
    }),
    maxCommandBytes: MAX_COMMAND_BYTES,
    liveness: new DynamoServerMirror(dynamodb, names.serversTable),
  };
}

export interface DolphinSchedulerStoreParts {
  database: Database;
  /** DolphinScheduler's time zone (DS_TIME_ZONE). */
  timeZone: string;
  scanSpan?: number;
  /** The registry: DolphinScheduler's failover lock and the masters' heartbeats (F3) are read there. */
  zookeeper: ZkSessionProvider;
  layout: RegistryLayout;
  version: DsRelease;
  /** Where committed batches are recorded (DESIGN D6). */
  journal?: RunJournal;
  log?: Log;
  registryLog?: RegistryLogger;
}

/**
 * DolphinScheduler's own database (DESIGN section 10): its instances and command table, its failover lock
 * in ZooKeeper held while writing, liveness straight from the registry, and no worker task store (D4).
 */
export function dolphinSchedulerFailoverPorts(parts: DolphinSchedulerStoreParts): FailoverStorePorts {
  const clock = new WallClock(parts.timeZone);
  return {
    instances: new DsInstanceStore(parts.database, {
      clock,
      ...(parts.scanSpan === undefined ? {} : { scanSpan: parts.scanSpan }),
    }),
    // Busy runs write one journal record per few batches rather than one each (DESIGN D6).
    delivery: new DsCommandDelivery(
      parts.journal === undefined ? undefined : new CoalescingJournal(parts.journal),
      parts.log,
    ),
    // command_param is MySQL `text` (64 KiB); the command row carries little else.
    maxCommandBytes: 60 * 1024,
    liveness: new ZkLiveness(parts.zookeeper, {
      layout: parts.layout,
      ...(parts.registryLog ? { logger: parts.registryLog } : {}),
    }),
    guard: new DsFailoverLockGuard(parts.zookeeper, {
      root: parts.layout.root,
      version: parts.version,
      ...(parts.registryLog ? { logger: parts.registryLog } : {}),
    }),
  };
}

/** DolphinScheduler's database from the store's configuration: the URL, or the RDS secret read once. */
export function dolphinSchedulerDatabase(
  config: DolphinSchedulerConfig,
  readSecret: (arn: string) => Promise<string | undefined>,
): Database {
  const settings = { ...defaultPoolSettings, max: config.poolMax };
  const { database } = config;
  if ('url' in database) return openDatabase(parseDatabaseUrl(database.url), settings);
  return lazyDatabase(
    database.dialect,
    async () => {
      const text = await readSecret(database.secretArn);
      if (text === undefined)
        throw new DatabaseConfigError(`secret ${database.secretArn} has no string value`);
      return parseRdsSecret(text);
    },
    settings,
  );
}

/** The sweep on DolphinScheduler's database (D5): one pass for the executing hosts, and the repairs. */
export function dolphinSchedulerSweepParts(parts: {
  database: Database;
  timeZone: string;
  ledger: RepairLedger;
  locks: LockStore;
  graceMs: number;
  log?: Log;
}): { work: ExecutingHostScan; repairUnowned: () => Promise<RepairSummary> } {
  const unowned = new DsUnownedWork(parts.database, new WallClock(parts.timeZone));
  return {
    work: new DsExecutingHosts(parts.database),
    repairUnowned: () =>
      repairUnownedInstances({
        work: unowned,
        ledger: parts.ledger,
        locks: parts.locks,
        clock: Date.now,
        graceMs: parts.graceMs,
        owner: randomUUID(),
        ...(parts.log ? { log: parts.log } : {}),
      }),
  };
}
