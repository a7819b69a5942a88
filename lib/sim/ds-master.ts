// A simulated Apache DolphinScheduler 3.2 master: the "other side" that integration tests and the demo run
// next to our failover function. It does what the real one does (shared/dolphinscheduler.md sections 1, 3
// and 4, checked against the 3.2.2 sources), bugs included: the unconditional full-row update that causes
// duplicate workflow runs, the substring liveness check, the exception on a SQL NULL host. It is written
// from the facts and the Java sources, never from our own store code, so that tests can compare the two.
//
// What it reproduces, and where from (3.2.2):
// - MasterFailoverService.failoverMaster/doFailoverMaster/checkProcessInstanceNeedFailover;
// - ProcessServiceImpl.processNeedFailoverProcessInstances + createCommandParams, CommandServiceImpl.createCommand;
// - MyBatis-Plus updateById/insert with the default NOT_NULL field strategy on the ProcessInstance, Command
//   and ErrorCommand entities (null reference fields are left out, primitive int fields write 0 for NULL,
//   end_time is written even when null; executor_name is not in the mapper's select list, so never written);
// - RegistryClient.getServerList (exact host:port from the heartbeat JSON) and checkNodeExists (substring);
// - IdSlotBasedCommandFetcher, WorkflowExecuteContextFactory.slotCheck, ProcessServiceImpl.handleCommand /
//   constructProcessInstance for RECOVER_TOLERANCE_FAULT_PROCESS (3.2.1+), moveToErrorCommand.

import { describeError, type Log, silentLog } from '../observability.ts';
import { lockMutex } from '../registry/curator-mutex.ts';
import { dsMasterFailoverLockPath } from '../registry/ds-failover-lock.ts';
import type { ZkSession } from '../registry/zk-client.ts';
import type { Database, Dialect, Queryable } from '../store/dolphinscheduler/database.ts';

// --- registration (facts section 1) ------------------------------------------------------------------

export type DsRegistryRelease = '3.1' | '3.2';

export interface DsServerRegistrationOptions {
  /** The registry root (`/dolphinscheduler`, the Curator namespace). */
  root: string;
  /** `ip:port`: the node name, and (3.2) the heartbeat's `host` and `port`. */
  host: string;
  /** Epoch ms: the server's incarnation. */
  startupTime: number;
  version: DsRegistryRelease;
  /** Epoch ms of the last heartbeat; default `startupTime`. */
  reportTime?: number;
  /** Default 2871 (the facts' example). */
  processId?: number;
}

export interface DsServerRegistration {
  /** The ephemeral node's full path. */
  readonly path: string;
  /** The heartbeat JSON written into it. */
  readonly payload: string;
  /** Rewrites the heartbeat with a new `reportTime`, as the heartbeat task does every interval. */
  report(reportTime: number): Promise<void>;
  /** Deletes the node (idempotent); the server is gone from the registry. */
  deregister(): Promise<void>;
}

/** The master heartbeat JSON of the release, with the facts' example figures for the load fields. */
export function dsMasterHeartbeat(options: DsServerRegistrationOptions): string {
  const reportTime = options.reportTime ?? options.startupTime;
  const processId = options.processId ?? 2871;
  if (options.version === '3.1') {
    // 3.1.9 MasterHeartBeat, fields in declaration order (Jackson's order).
    return jsonObject([
      ['startupTime', integer(options.startupTime)],
      ['reportTime', integer(reportTime)],
      ['cpuUsage', javaDouble(0.12)],
      ['memoryUsage', javaDouble(0.61)],
      ['loadAverage', javaDouble(1.37)],
      ['availablePhysicalMemorySize', javaDouble(5.43)],
      ['maxCpuloadAvg', javaDouble(16)],
      ['reservedMemory', javaDouble(0.3)],
      ['diskAvailable', javaDouble(87.21)],
      ['processId', integer(processId)],
    ]);
  }
  return jsonObject(baseHeartbeat32(options.host, options.startupTime, reportTime, processId));
}

/** The worker heartbeat JSON of the release. */
export function dsWorkerHeartbeat(options: DsServerRegistrationOptions): string {
  const reportTime = options.reportTime ?? options.startupTime;
  const processId = options.processId ?? 2872;
  if (options.version === '3.1') {
    // 3.1.9 WorkerHeartBeat: serverStatus is an int (0 normal), declared before processId.
    return jsonObject([
      ['startupTime', integer(options.startupTime)],
      ['reportTime', integer(reportTime)],
      ['cpuUsage', javaDouble(0.12)],
      ['memoryUsage', javaDouble(0.61)],
      ['loadAverage', javaDouble(1.37)],
      ['availablePhysicalMemorySize', javaDouble(5.43)],
      ['maxCpuloadAvg', javaDouble(16)],
      ['reservedMemory', javaDouble(0.3)],
      ['diskAvailable', javaDouble(87.21)],
      ['serverStatus', integer(0)],
      ['processId', integer(processId)],
      ['workerHostWeight', integer(100)],
      ['workerWaitingTaskCount', integer(0)],
      ['workerExecThreadCount', integer(100)],
    ]);
  }
  return jsonObject([
    ...baseHeartbeat32(options.host, options.startupTime, reportTime, processId),
    ['workerHostWeight', integer(100)],
    ['threadPoolUsage', integer(2)],
  ]);
}

/** 3.2 BaseHeartBeat, fields in declaration order. */
function baseHeartbeat32(
  host: string,
  startupTime: number,
  reportTime: number,
  processId: number,
): Array<[string, string]> {
  const { address, port } = splitHostPort(host);
  return [
    ['processId', integer(processId)],
    ['startupTime', integer(startupTime)],
    ['reportTime', integer(reportTime)],
    ['jvmCpuUsage', javaDouble(0.0123)],
    ['cpuUsage', javaDouble(0.1531)],
    ['jvmMemoryUsage', javaDouble(0.1874)],
    ['memoryUsage', javaDouble(0.612)],
    ['diskUsage', javaDouble(0)],
    ['serverStatus', jacksonString('NORMAL')],
    ['host', jacksonString(address)],
    ['port', integer(port)],
  ];
}

/** Registers a master: the ephemeral `<root>/nodes/master/<ip:port>` with its heartbeat (parents created). */
export function registerDsMaster(
  session: ZkSession,
  options: DsServerRegistrationOptions,
): Promise<DsServerRegistration> {
  return registerServer(session, 'master', options, dsMasterHeartbeat);
}

/** Registers a worker: the ephemeral `<root>/nodes/worker/<ip:port>` (3.1.1+ and 3.2 layout). */
export function registerDsWorker(
  session: ZkSession,
  options: DsServerRegistrationOptions,
): Promise<DsServerRegistration> {
  return registerServer(session, 'worker', options, dsWorkerHeartbeat);
}

async function registerServer(
  session: ZkSession,
  type: 'master' | 'worker',
  options: DsServerRegistrationOptions,
  heartbeat: (options: DsServerRegistrationOptions) => string,
): Promise<DsServerRegistration> {
  splitHostPort(options.host);
  const path = `${normalizeRoot(options.root)}/nodes/${type}/${options.host}`;
  const payload = heartbeat(options);
  await session.create(path, payload, { ephemeral: true });
  let gone = false;
  return {
    path,
    payload,
    report: async (reportTime) => {
      await session.setData(path, heartbeat({ ...options, reportTime }));
    },
    deregister: async () => {
      if (gone || session.isLost) return;
      gone = true;
      await session.remove(path);
    },
  };
}

// --- errors -------------------------------------------------------------------------------------------

/** An exception the real master throws at this point (its Java class kept, for the tests to see why). */
export class DsJavaException extends Error {
  override readonly name = 'DsJavaException';
  constructor(
    readonly javaClass: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${javaClass}: ${message}`, options);
  }
}

/** 3.1/3.2's periodic check throws (NullPointerException) on every cycle while an executing instance has host SQL NULL. */
export class PeriodicCheckNullHostError extends Error {
  override readonly name = 'PeriodicCheckNullHostError';
  constructor() {
    super(
      'DolphinScheduler 3.2 checkMasterFailover: NullPointerException on a SQL NULL host among executing ' +
        "workflow instances (registryClient.checkNodeExists(null)); nothing is failed over until it is 'NULL'",
    );
  }
}

/** The simulation gave up waiting for the failover lock (the real master waits for ever). */
export class FailoverLockTimeoutError extends Error {
  override readonly name = 'FailoverLockTimeoutError';
  constructor(
    readonly lockPath: string,
    readonly timeoutMs: number,
  ) {
    super(`failover lock ${lockPath} not acquired within ${timeoutMs} ms`);
  }
}

// --- the master ---------------------------------------------------------------------------------------

export interface SimulatedDsMasterOptions {
  db: Database;
  session: ZkSession;
  /** The registry root (`/dolphinscheduler`). */
  root: string;
  /** Its own `ip:port` (masterConfig.getMasterAddress()). */
  host: string;
  /** Its JVM's IANA zone: times are read and written as wall-clock time in it. */
  timeZone: string;
  /** Epoch ms; default Date.now. */
  clock?: () => number;
  log?: Log;
  /** Workflow instances it runs in memory (processInstanceExecCacheManager); it adds the ones it takes over. */
  runningInstanceIds?: Iterable<number>;
  /** How long to wait for a failover lock before giving up (the real master has no limit). Default 10 min. */
  lockTimeoutMs?: number;
}

export type FailoverSkipReason =
  | 'host-is-NULL'
  | 'started-after-registration'
  | 'restarted-after-registration'
  | 'running-in-this-master';

export interface MasterFailoverResult {
  deadHost: string;
  /** The dead host's registration found (heartbeat startupTime), or null: then everything is failed over. */
  registeredStartupTime: number | null;
  /** Instance ids whose row was written (host 'NULL') with a command, in order. */
  failedOver: number[];
  /** The t_ds_command ids inserted, in the same order. */
  commandIds: number[];
  skipped: Array<{ id: number; reason: FailoverSkipReason }>;
  /**
   * The exception that ended the routine early. DolphinScheduler logs it and releases the lock; what was
   * committed before it stays, the instances after it wait for the next trigger.
   */
  error?: Error;
}

export interface PeriodicCheckResult {
  /** The hosts it decided to fail over (dead, or its own address), in the database's order. */
  hosts: string[];
  results: MasterFailoverResult[];
}

export interface ConsumeCommandsOptions {
  /** Its index among the non-busy masters ordered by startupTime. */
  slot: number;
  totalSlot: number;
  /** master.command-fetch-strategy.config.id-step; default 1. */
  idStep?: number;
  /** master.command-fetch-strategy.config.fetch-size; default 10. */
  fetchSize?: number;
}

export interface ConsumeCommandsResult {
  /** Commands handled: the instance is now this master's. */
  tookOver: Array<{ instanceId: number; commandId: number }>;
  /** Commands moved to t_ds_error_command, with the message written there. */
  movedToErrorCommand: Array<{ commandId: number; message: string; cause?: Error }>;
  /** Fetched commands this simulation does not handle (not a recovery of an existing instance): left alone. */
  ignored: number[];
  /** An exception that escaped the batch (the real loop logs it and sleeps a second). */
  error?: Error;
}

const executingStates = [0, 1, 12, 2, 4] as const;
const RECOVER_TOLERANCE_FAULT_PROCESS = 2;
const TASK_POST = 2;
const CONTINUE = 1;
const READY_PAUSE = 2;
const READY_STOP = 4;
const RUNNING_EXECUTION = 1;
const FLAG_YES = 1;
const workflowCreateFailure =
  'org.apache.dolphinscheduler.server.master.exception.WorkflowCreateException: Create WorkflowExecuteRunnable failed';

/** ProcessInstanceMapper's baseSql: the columns every ProcessInstance read selects (not executor_name). */
const processInstanceColumns = [
  'id',
  'name',
  'process_definition_version',
  'process_definition_code',
  'project_code',
  'state',
  'recovery',
  'start_time',
  'end_time',
  'run_times',
  'host',
  'command_type',
  'command_param',
  'task_depend_type',
  'max_try_times',
  'failure_strategy',
  'warning_type',
  'warning_group_id',
  'schedule_time',
  'command_start_time',
  'global_params',
  'flag',
  'update_time',
  'is_sub_process',
  'executor_id',
  'history_cmd',
  'process_instance_priority',
  'worker_group',
  'environment_code',
  'timeout',
  'tenant_code',
  'var_pool',
  'dry_run',
  'test_flag',
  'next_process_instance_id',
  'restart_time',
  'state_history',
] as const;

/**
 * How MyBatis-Plus writes one entity field (NOT_NULL strategy): `boxed` is skipped when null, `primitive`
 * (a Java int) writes 0 for a NULL read, `date` is skipped when null and otherwise goes through a
 * java.util.Date in the JVM's zone, `always-date` (FieldStrategy.IGNORED) is written even when null.
 */
type FieldKind = 'boxed' | 'primitive' | 'date' | 'always-date';

/** The ProcessInstance entity's persistent fields, in declaration order (its updateById SET list). */
const processInstanceEntity: ReadonlyArray<[string, FieldKind]> = [
  ['process_definition_code', 'boxed'],
  ['process_definition_version', 'primitive'],
  ['project_code', 'boxed'],
  ['state', 'boxed'],
  ['state_history', 'boxed'],
  ['recovery', 'boxed'],
  ['start_time', 'date'],
  ['end_time', 'always-date'],
  ['run_times', 'primitive'],
  ['name', 'boxed'],
  ['host', 'boxed'],
  ['command_type', 'boxed'],
  ['command_param', 'boxed'],
  ['task_depend_type', 'boxed'],
  ['max_try_times', 'primitive'],
  ['failure_strategy', 'boxed'],
  ['warning_type', 'boxed'],
  ['warning_group_id', 'boxed'],
  ['schedule_time', 'date'],
  ['command_start_time', 'date'],
  ['global_params', 'boxed'],
  ['executor_id', 'primitive'],
  ['executor_name', 'boxed'],
  ['tenant_code', 'boxed'],
  ['is_sub_process', 'boxed'],
  ['history_cmd', 'boxed'],
  ['process_instance_priority', 'boxed'],
  ['worker_group', 'boxed'],
  ['environment_code', 'boxed'],
  ['timeout', 'primitive'],
  ['var_pool', 'boxed'],
  ['next_process_instance_id', 'primitive'],
  ['dry_run', 'primitive'],
  ['restart_time', 'date'],
  ['test_flag', 'primitive'],
];

/** The ErrorCommand entity's fields (its insert: NOT_NULL strategy; the id is the command's). */
const errorCommandEntity: ReadonlyArray<[string, FieldKind]> = [
  ['id', 'boxed'],
  ['command_type', 'boxed'],
  ['process_definition_code', 'primitive'],
  ['process_definition_version', 'primitive'],
  ['process_instance_id', 'primitive'],
  ['executor_id', 'primitive'],
  ['command_param', 'boxed'],
  ['task_depend_type', 'boxed'],
  ['failure_strategy', 'boxed'],
  ['warning_type', 'boxed'],
  ['warning_group_id', 'boxed'],
  ['schedule_time', 'date'],
  ['start_time', 'date'],
  ['process_instance_priority', 'boxed'],
  ['update_time', 'date'],
  ['message', 'boxed'],
  ['worker_group', 'boxed'],
  ['tenant_code', 'boxed'],
  ['environment_code', 'boxed'],
  ['dry_run', 'primitive'],
  ['test_flag', 'primitive'],
];

/** WorkflowExecutionStatus in declaration order (Jackson reads an enum from a number as this index). */
const workflowStates: ReadonlyArray<[number, string]> = [
  [0, 'SUBMITTED_SUCCESS'],
  [1, 'RUNNING_EXECUTION'],
  [2, 'READY_PAUSE'],
  [3, 'PAUSE'],
  [4, 'READY_STOP'],
  [5, 'STOP'],
  [6, 'FAILURE'],
  [7, 'SUCCESS'],
  [12, 'DELAY_EXECUTION'],
  [14, 'SERIAL_WAIT'],
  [15, 'READY_BLOCK'],
  [16, 'BLOCK'],
  [17, 'WAIT_TO_RUN'],
];

type Row = Record<string, unknown>;
type Tx = Queryable & { affectedRows(): number };

export class SimulatedDsMaster {
  readonly host: string;
  readonly timeZone: string;
  /** The instance ids it runs in memory (processInstanceExecCacheManager). */
  readonly running: Set<number>;
  readonly #db: Database;
  readonly #session: ZkSession;
  readonly #root: string;
  readonly #clock: () => number;
  readonly #log: Log;
  readonly #lockTimeoutMs: number;

  constructor(options: SimulatedDsMasterOptions) {
    splitHostPort(options.host);
    wallClock(0, options.timeZone); // an unknown zone fails here
    this.host = options.host;
    this.timeZone = options.timeZone;
    this.running = new Set(options.runningInstanceIds ?? []);
    this.#db = options.db;
    this.#session = options.session;
    this.#root = normalizeRoot(options.root);
    this.#clock = options.clock ?? Date.now;
    this.#log = options.log ?? silentLog;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 600_000;
  }

  /**
   * MasterFailoverService.failoverMaster: under `<root>/lock/master-failover/<deadHost>` (waiting like
   * Curator), fails over the dead master's executing instances. Never throws: like DolphinScheduler it
   * logs what went wrong, releases the lock and returns (see `error`).
   */
  async failOverMaster(deadHost: string): Promise<MasterFailoverResult> {
    const result: MasterFailoverResult = {
      deadHost,
      registeredStartupTime: null,
      failedOver: [],
      commandIds: [],
      skipped: [],
    };
    const lockPath = this.#lockPathOf(deadHost);
    let release: (() => Promise<void>) | undefined;
    try {
      const hold = await lockMutex(this.#session, lockPath, { timeoutMs: this.#lockTimeoutMs });
      if (hold === null) throw new FailoverLockTimeoutError(lockPath, this.#lockTimeoutMs);
      release = () => hold.release();
      await this.#doFailOverMaster(deadHost, result);
      this.#log.info('dolphinscheduler master failover finished', {
        master: this.host,
        deadHost,
        failedOver: result.failedOver.length,
        skipped: result.skipped.length,
      });
    } catch (error: unknown) {
      result.error = asError(error);
      this.#log.error('dolphinscheduler master failover failed', {
        master: this.host,
        deadHost,
        ...describeError(error),
      });
    } finally {
      await release?.().catch((error: unknown) =>
        this.#log.warn('dolphinscheduler failover lock release failed', {
          lockPath,
          ...describeError(error),
        }),
      );
    }
    return result;
  }

  /**
   * MasterFailoverService.checkMasterFailover (every master.failover-interval): every distinct host of an
   * executing instance that is its own address or not registered is failed over, one after the other.
   * `isRegistered` defaults to 3.2's own check, a SUBSTRING match over the children of `<root>/nodes/master`
   * (`10.0.0.1:5678` counts as alive while `110.0.0.1:5678` is registered). Throws PeriodicCheckNullHostError,
   * before failing anything over, when a host is SQL NULL.
   */
  async periodicCheck(
    isRegistered?: (host: string) => boolean | Promise<boolean>,
  ): Promise<PeriodicCheckResult> {
    const rows = await this.#db.query<{ host: string | null }>(
      sql(
        this.#db.dialect,
        `select distinct host from t_ds_process_instance where state in (${executingStates.join(',')})`,
      ),
    );
    const registered = isRegistered ?? (await this.#substringRegistryCheck());
    const hosts: string[] = [];
    // The Java stream filters lazily while collecting: the NullPointerException comes before any failover.
    for (const { host } of rows) {
      if (host === null || host === undefined) throw new PeriodicCheckNullHostError();
      if (host === this.host || !(await registered(host))) {
        if (!hosts.includes(host)) hosts.push(host);
      }
    }
    if (hosts.length > 0) {
      this.#log.info('dolphinscheduler master failover check found hosts', { master: this.host, hosts });
    }
    const results: MasterFailoverResult[] = [];
    for (const host of hosts) results.push(await this.failOverMaster(host));
    return { hosts, results };
  }

  /**
   * One round of MasterSchedulerBootstrap: fetch this slot's commands and handle each in its own
   * transaction (handleCommand). Only recovery commands of existing instances (command_type 2) are
   * simulated; other commands are left in the table (`ignored`).
   */
  async consumeCommands(options: ConsumeCommandsOptions): Promise<ConsumeCommandsResult> {
    const idStep = options.idStep ?? 1;
    const fetchSize = options.fetchSize ?? 10;
    const result: ConsumeCommandsResult = { tookOver: [], movedToErrorCommand: [], ignored: [] };
    if (options.totalSlot <= 0 || options.slot < 0) return result;
    const commands = await this.#db.query<Row>(
      sql(
        this.#db.dialect,
        'select * from t_ds_command where (id / ?) % ? = ? order by process_instance_priority, id asc limit ?',
      ),
      [idStep, options.totalSlot, options.slot, fetchSize],
    );
    for (const command of commands) {
      const commandId = Number(command.id);
      if (
        Number(command.command_type) !== RECOVER_TOLERANCE_FAULT_PROCESS ||
        javaInt(command.process_instance_id) === 0
      ) {
        result.ignored.push(commandId);
        continue;
      }
      try {
        // WorkflowExecuteContextFactory.slotCheck: id % masterSize, whatever the id step of the fetch.
        if (commandId % options.totalSlot !== options.slot) {
          throw new DsJavaException(
            'java.lang.RuntimeException',
            'Slot check failed the current state: INJECT',
          );
        }
        const outcome = await this.#db.transaction((tx) => this.#handleCommand(tx, command));
        if (outcome.kind === 'took-over') {
          this.running.add(outcome.instanceId);
          result.tookOver.push({ instanceId: outcome.instanceId, commandId });
          this.#log.info('dolphinscheduler master took a workflow instance over', {
            master: this.host,
            instanceId: outcome.instanceId,
            commandId,
          });
        } else {
          result.movedToErrorCommand.push({ commandId, message: outcome.message });
        }
      } catch (error: unknown) {
        // MasterSchedulerBootstrap: WorkflowCreateException -> moveToErrorCommand, outside the transaction.
        this.#log.warn('dolphinscheduler master could not handle a command', {
          master: this.host,
          commandId,
          ...describeError(error),
        });
        try {
          await this.#moveToErrorCommand(this.#db, command, workflowCreateFailure);
          result.movedToErrorCommand.push({
            commandId,
            message: workflowCreateFailure,
            cause: asError(error),
          });
        } catch (moveError: unknown) {
          // The exception leaves the batch (e.g. the error command exists already): the rest waits.
          result.error = asError(moveError);
          this.#log.error('dolphinscheduler master command batch failed', {
            master: this.host,
            commandId,
            ...describeError(moveError),
          });
          break;
        }
      }
    }
    return result;
  }

  // --- failover internals ---

  async #doFailOverMaster(deadHost: string, result: MasterFailoverResult): Promise<void> {
    const startupTime = await this.#registeredStartupTime(deadHost);
    result.registeredStartupTime = startupTime;
    const instances = await this.#db.query<Row>(
      sql(
        this.#db.dialect,
        `select ${processInstanceColumns.join(', ')} from t_ds_process_instance where 1=1 and host = ? ` +
          `and state in (${executingStates.join(',')}) order by id asc`,
      ),
      [deadHost],
    );
    for (const instance of instances) {
      const id = Number(instance.id);
      const skip = this.#skipReason(startupTime, instance);
      if (skip !== null) {
        result.skipped.push({ id, reason: skip });
        continue;
      }
      // ProcessInstanceMetrics...(processInstance.getProcessDefinitionCode().toString()) comes first.
      if (instance.process_definition_code === null || instance.process_definition_code === undefined) {
        throw new DsJavaException(
          'java.lang.NullPointerException',
          `process_definition_code of instance ${id}`,
        );
      }
      const commandId = await this.#db.transaction((tx) => this.#failOverInstance(tx, instance));
      result.failedOver.push(id);
      result.commandIds.push(commandId);
      this.#log.info('dolphinscheduler master failed a workflow instance over', {
        master: this.host,
        deadHost,
        instanceId: id,
        commandId,
      });
    }
  }

  /** checkProcessInstanceNeedFailover, in its order: the in-memory check is reached only for a registered host. */
  #skipReason(startupTime: number | null, instance: Row): FailoverSkipReason | null {
    if (instance.host === 'NULL') return 'host-is-NULL';
    if (startupTime === null) return null;
    if (instance.start_time === null || instance.start_time === undefined) {
      throw new DsJavaException(
        'java.lang.NullPointerException',
        `start_time of instance ${String(instance.id)}`,
      );
    }
    if (this.#epochOf(instance.start_time) > startupTime) return 'started-after-registration';
    if (
      instance.restart_time !== null &&
      instance.restart_time !== undefined &&
      this.#epochOf(instance.restart_time) > startupTime
    ) {
      return 'restarted-after-registration';
    }
    if (this.running.has(Number(instance.id))) return 'running-in-this-master';
    return null;
  }

  /** processNeedFailoverProcessInstances: the full-row update and the command, in one transaction. */
  async #failOverInstance(tx: Tx, instance: Row): Promise<number> {
    const id = Number(instance.id);
    await this.#updateInstanceById(tx, instance, { host: 'NULL' });
    let commandParam = failoverCommandParam(instance.command_param, id);
    // CommandServiceImpl.createCommand: a scheduled workflow's command gets the schedule's time zone.
    const schedules = await tx.query<{ timezone_id: string | null }>(
      sql(this.#db.dialect, 'select timezone_id from t_ds_schedules where process_definition_code = ?'),
      [instance.process_definition_code],
    );
    if (schedules.length > 1) {
      throw new DsJavaException(
        'org.apache.ibatis.exceptions.TooManyResultsException',
        `Expected one result (or null) to be returned by selectOne(), but found: ${schedules.length}`,
      );
    }
    const schedule = schedules[0];
    if (schedule !== undefined) commandParam = withScheduleTimezone(commandParam, schedule.timezone_id);
    const now = this.#now();
    const columns: Array<[string, unknown]> = [
      ['command_type', RECOVER_TOLERANCE_FAULT_PROCESS],
      ['process_definition_code', instance.process_definition_code],
      ['executor_id', javaInt(instance.executor_id)],
      ['command_param', commandParam],
      ['task_depend_type', TASK_POST],
      ['failure_strategy', CONTINUE],
      ['start_time', now],
    ];
    if (instance.process_instance_priority !== null && instance.process_instance_priority !== undefined) {
      columns.push(['process_instance_priority', instance.process_instance_priority]);
    }
    columns.push(
      ['update_time', now],
      ['dry_run', 0],
      ['process_instance_id', id],
      ['process_definition_version', javaInt(instance.process_definition_version)],
      ['test_flag', javaInt(instance.test_flag)],
    );
    return this.#insertCommand(tx, columns);
  }

  async #insertCommand(tx: Tx, columns: ReadonlyArray<[string, unknown]>): Promise<number> {
    const names = columns.map(([name]) => name).join(', ');
    const marks = columns.map(() => '?').join(', ');
    const values = columns.map(([, value]) => value);
    if (this.#db.dialect === 'postgresql') {
      const rows = await tx.query<{ id: number }>(
        sql('postgresql', `insert into t_ds_command (${names}) values (${marks}) returning id`),
        values,
      );
      return Number(rows[0]?.id);
    }
    await tx.query(`insert into t_ds_command (${names}) values (${marks})`, values);
    const rows = await tx.query<{ id: number | string }>('select last_insert_id() as id');
    return Number(rows[0]?.id);
  }

  /** MyBatis-Plus updateById: every persistent field of the entity as read (NOT_NULL strategy), by id only. */
  async #updateInstanceById(tx: Tx, instance: Row, changes: Row): Promise<void> {
    const assignments = this.#entityValues(processInstanceEntity, {
      ...instance,
      executor_name: null,
      ...changes,
    });
    const set = assignments.map(([name]) => `${name} = ?`).join(', ');
    await tx.query(sql(this.#db.dialect, `update t_ds_process_instance set ${set} where id = ?`), [
      ...assignments.map(([, value]) => value),
      instance.id,
    ]);
  }

  /** The columns MyBatis-Plus writes for an entity read from `row` (NOT_NULL strategy), in field order. */
  #entityValues(entity: ReadonlyArray<[string, FieldKind]>, row: Row): Array<[string, unknown]> {
    const values: Array<[string, unknown]> = [];
    for (const [column, kind] of entity) {
      const value = row[column];
      const absent = value === null || value === undefined;
      switch (kind) {
        case 'primitive':
          values.push([column, absent ? 0 : value]);
          break;
        case 'boxed':
          if (!absent) values.push([column, value]);
          break;
        case 'date':
          if (!absent) values.push([column, this.#throughJavaDate(value)]);
          break;
        case 'always-date':
          values.push([column, absent ? null : this.#throughJavaDate(value)]);
          break;
      }
    }
    return values;
  }

  // --- registry reads ---

  /** RegistryClient.getServerMaps: children of nodes/master with their data; any failure ends the listing. */
  async #masterServerMaps(): Promise<Array<{ name: string; data: string }>> {
    const dir = `${this.#root}/nodes/master`;
    const entries: Array<{ name: string; data: string }> = [];
    try {
      for (const name of await this.#session.children(dir)) {
        const node = await this.#session.data(`${dir}/${name}`);
        if (node === null) throw new Error(`registry node ${dir}/${name} vanished while listing`);
        entries.push({ name, data: node.data?.toString('utf8') ?? '' });
      }
    } catch (error: unknown) {
      this.#log.error('dolphinscheduler get server list failed', {
        master: this.host,
        ...describeError(error),
      });
    }
    return entries;
  }

  /**
   * getServerStartupTime(registryClient.getServerList(MASTER), host): the first master whose heartbeat says
   * `host:port` exactly; nodes with empty data are skipped, unparsable data throws (a NullPointerException).
   */
  async #registeredStartupTime(deadHost: string): Promise<number | null> {
    for (const { name, data } of await this.#masterServerMaps()) {
      if (data === '') continue;
      const heartbeat = parseJsonObject(data);
      if (heartbeat === null) {
        throw new DsJavaException('java.lang.NullPointerException', `unparsable heartbeat of master ${name}`);
      }
      const host = typeof heartbeat.host === 'string' ? heartbeat.host : 'null';
      const port = typeof heartbeat.port === 'number' ? Math.trunc(heartbeat.port) : 0;
      if (deadHost === `${host}:${port}`) {
        return typeof heartbeat.startupTime === 'number' ? Math.trunc(heartbeat.startupTime) : 0;
      }
    }
    return null;
  }

  /** RegistryClient.checkNodeExists(host, MASTER): some registered master's NAME CONTAINS the host. */
  async #substringRegistryCheck(): Promise<(host: string) => boolean> {
    const names = (await this.#masterServerMaps()).map((entry) => entry.name);
    return (host) => names.some((name) => name.includes(host));
  }

  #lockPathOf(host: string): string {
    try {
      return dsMasterFailoverLockPath(this.#root === '' ? '/' : this.#root, '3.2', host);
    } catch {
      // The real master concatenates whatever host the database holds (`NULL` included).
      return `${this.#root}/lock/master-failover/${host}`;
    }
  }

  // --- command consumption internals ---

  /** ProcessServiceImpl.handleCommand for RECOVER_TOLERANCE_FAULT_PROCESS (3.2.1+), in its transaction. */
  async #handleCommand(
    tx: Tx,
    command: Row,
  ): Promise<{ kind: 'took-over'; instanceId: number } | { kind: 'error-command'; message: string }> {
    const commandId = Number(command.id);
    const instanceId = javaInt(command.process_instance_id);
    let cmdParam = toStringMap(command.command_param) ?? new Map<string, string | null>();
    const found = await tx.query<Row>(
      sql(
        this.#db.dialect,
        `select ${processInstanceColumns.join(', ')} from t_ds_process_instance where id = ?`,
      ),
      [instanceId],
    );
    const instance = found[0];
    if (instance === undefined) {
      const message = 'process instance is null';
      await this.#moveToErrorCommand(tx, command, message);
      return { kind: 'error-command', message };
    }
    // "reset command parameter": the instance's own command_param is read as Map<String, String> too.
    if (instance.command_param !== null && instance.command_param !== undefined) {
      const own = toStringMap(instance.command_param);
      if (own === null) {
        throw new DsJavaException(
          'java.lang.NullPointerException',
          `command_param of instance ${instanceId}`,
        );
      }
      cmdParam = new Map([...own, ...cmdParam]);
    }
    // checkCmdParam: TASK_ONLY / TASK_PRE need start nodes.
    const dependType = command.task_depend_type === null ? null : Number(command.task_depend_type);
    if ((dependType === 0 || dependType === 1) && !cmdParam.get('StartNodeList')) {
      const message = 'process instance is null';
      await this.#moveToErrorCommand(tx, command, message);
      return { kind: 'error-command', message };
    }
    const state = instance.state === null || instance.state === undefined ? null : Number(instance.state);
    const runStatus = state === READY_PAUSE || state === READY_STOP ? RUNNING_EXECUTION : state;
    const changes: Row = {
      host: this.host,
      restart_time: this.#now(),
      recovery: FLAG_YES,
      run_times: javaInt(instance.run_times) + 1,
      state: runStatus,
      state_history: this.#appendStateHistory(instance.state_history, runStatus),
      command_type: command.command_type,
      history_cmd:
        typeof instance.history_cmd === 'string' && instance.history_cmd !== ''
          ? `${instance.history_cmd},RECOVER_TOLERANCE_FAULT_PROCESS`
          : 'RECOVER_TOLERANCE_FAULT_PROCESS',
      test_flag: javaInt(command.test_flag),
    };
    if (command.schedule_time !== null && command.schedule_time !== undefined) {
      changes.schedule_time = command.schedule_time;
    }
    await this.#updateInstanceById(tx, instance, changes);
    // deleteCommandWithCheck
    await tx.query(sql(this.#db.dialect, 'delete from t_ds_command where id = ?'), [commandId]);
    if (tx.affectedRows() !== 1) {
      throw new DsJavaException(
        'org.apache.dolphinscheduler.service.exceptions.ServiceException',
        `delete command fail, id:${commandId}`,
      );
    }
    return { kind: 'took-over', instanceId };
  }

  /** CommandServiceImpl.moveToErrorCommand: the command copied (same id) with a message, then deleted. */
  async #moveToErrorCommand(db: Queryable, command: Row, message: string): Promise<void> {
    const now = this.#now();
    // Read into a Command entity: a NULL column keeps the field's initial value.
    const entity: Row = {
      ...command,
      start_time: command.start_time ?? now,
      update_time: command.update_time ?? now,
      task_depend_type: command.task_depend_type ?? TASK_POST,
      failure_strategy: command.failure_strategy ?? CONTINUE,
      message,
    };
    const columns = this.#entityValues(errorCommandEntity, entity);
    await db.query(
      sql(
        this.#db.dialect,
        `insert into t_ds_error_command (${columns.map(([name]) => name).join(', ')}) values (${columns
          .map(() => '?')
          .join(', ')})`,
      ),
      columns.map(([, value]) => value),
    );
    await db.query(sql(this.#db.dialect, 'delete from t_ds_command where id = ?'), [command.id]);
  }

  /**
   * ProcessInstance.setStateWithDesc: the JSON list of StateDesc {time, state, desc} read back (Jackson,
   * unknown states null, dates as yyyy-MM-dd HH:mm:ss in the JVM zone) with one entry appended. A list
   * that does not parse comes back as an immutable empty list, and the append throws.
   */
  #appendStateHistory(history: unknown, state: number | null): string {
    const entries: string[] = [];
    if (typeof history === 'string' && history !== '') {
      const parsed = parseJson(history);
      if (!Array.isArray(parsed)) {
        throw new DsJavaException('java.lang.UnsupportedOperationException', 'state_history is not a list');
      }
      for (const item of parsed) entries.push(this.#stateDescJson(item));
    }
    const now = wallClock(this.#clock(), this.timeZone).slice(0, 19);
    const nameOfState = state === null ? undefined : stateName(state);
    entries.push(
      jsonObject([
        ['time', jacksonString(now)],
        ['state', nameOfState === undefined ? 'null' : jacksonString(nameOfState)],
        ['desc', jacksonString('recover tolerance fault process')],
      ]),
    );
    return `[${entries.join(',')}]`;
  }

  #stateDescJson(item: unknown): string {
    if (item === null) return 'null';
    if (typeof item !== 'object' || Array.isArray(item)) {
      throw new DsJavaException(
        'java.lang.UnsupportedOperationException',
        'state_history entry is not an object',
      );
    }
    const entry = item as Record<string, unknown>;
    let time = 'null';
    if (typeof entry.time === 'number') {
      time = jacksonString(wallClock(Math.trunc(entry.time), this.timeZone).slice(0, 19));
    } else if (typeof entry.time === 'string' && entry.time !== '') {
      const m = /^(\d{1,4})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2}):(\d{1,2})/.exec(entry.time);
      if (m === null) {
        throw new DsJavaException('java.lang.UnsupportedOperationException', 'state_history time unparsable');
      }
      const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
      const local = Date.UTC(y, mo - 1, d, h, mi, s);
      time = jacksonString(wallClock(epochOfLocal(local, this.timeZone), this.timeZone).slice(0, 19));
    }
    let state = 'null';
    if (typeof entry.state === 'string') {
      state = workflowStates.some(([, name]) => name === entry.state) ? jacksonString(entry.state) : 'null';
    } else if (typeof entry.state === 'number') {
      const byIndex = workflowStates[entry.state];
      state = byIndex === undefined ? 'null' : jacksonString(byIndex[1]);
    }
    let desc = 'null';
    if (typeof entry.desc === 'string') desc = jacksonString(entry.desc);
    else if (typeof entry.desc === 'number' || typeof entry.desc === 'boolean')
      desc = jacksonString(String(entry.desc));
    else if (entry.desc !== null && entry.desc !== undefined) {
      throw new DsJavaException('java.lang.UnsupportedOperationException', 'state_history desc is not text');
    }
    return jsonObject([
      ['time', time],
      ['state', state],
      ['desc', desc],
    ]);
  }

  // --- time ---

  /** `new Date()` as the JDBC driver writes it: wall-clock time in the JVM's zone, millisecond precision. */
  #now(): string {
    return wallClock(this.#clock(), this.timeZone);
  }

  /** A timestamp read as java.util.Date in the JVM's zone (milliseconds kept, finer digits dropped). */
  #epochOf(value: unknown): number {
    return epochOfWallClock(String(value), this.timeZone);
  }

  /** A timestamp read into a java.util.Date and written back. */
  #throughJavaDate(value: unknown): string {
    return wallClock(this.#epochOf(value), this.timeZone);
  }
}

// --- command_param, as Jackson writes and reads it ------------------------------------------------------

/**
 * createCommandParams: a java.util.HashMap of {StartParams (copied when the instance's command_param is a
 * JSON object with a non-null StartParams), ProcessInstanceId: id}. Both keys hash to bucket 12 of the
 * default 16, so HashMap iterates them in insertion order: StartParams first.
 */
export function failoverCommandParam(instanceCommandParam: unknown, id: number): string {
  const fields: Array<[string, string]> = [];
  const commandMap = typeof instanceCommandParam === 'string' ? parseJsonObject(instanceCommandParam) : null;
  const startParams = commandMap?.StartParams;
  if (startParams !== undefined && startParams !== null)
    fields.push(['StartParams', jacksonValue(startParams)]);
  fields.push(['ProcessInstanceId', integer(id)]);
  return jsonObject(fields);
}

/**
 * CommandServiceImpl.createCommand for a scheduled workflow: the command_param re-read as Map<String, String>
 * (a LinkedHashMap: scalars become strings, an object or array value makes the read fail and the put throw),
 * `schedule_timezone` appended, written again.
 */
export function withScheduleTimezone(commandParam: string, timezoneId: string | null): string {
  const map = toStringMap(commandParam);
  if (map === null) {
    throw new DsJavaException('java.lang.NullPointerException', 'command_param is not a Map<String, String>');
  }
  map.set('schedule_timezone', timezoneId);
  return jsonObject([...map].map(([key, value]) => [key, value === null ? 'null' : jacksonString(value)]));
}

/** JSONUtils.toMap(json): Map<String, String>, or null when Jackson cannot read it so. */
function toStringMap(json: unknown): Map<string, string | null> | null {
  if (typeof json !== 'string' || json === '') return null;
  const parsed = parseJsonObject(json);
  if (parsed === null) return null;
  const map = new Map<string, string | null>();
  for (const [key, value] of Object.entries(parsed)) {
    if (value === null) map.set(key, null);
    else if (typeof value === 'string') map.set(key, value);
    else if (typeof value === 'number') map.set(key, jacksonNumber(value));
    else if (typeof value === 'boolean') map.set(key, String(value));
    else return null;
  }
  return map;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function parseJsonObject(text: string): Record<string, unknown> | null {
  const parsed = parseJson(text);
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : null;
}

function jsonObject(fields: ReadonlyArray<readonly [string, string]>): string {
  return `{${fields.map(([key, value]) => `${jacksonString(key)}:${value}`).join(',')}}`;
}

/** A value Jackson read as Object (LinkedHashMap, ArrayList, String, Integer/Long, Double, Boolean) written back. */
function jacksonValue(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return jacksonString(value);
  if (typeof value === 'number') return jacksonNumber(value);
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(jacksonValue).join(',')}]`;
  return jsonObject(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, jacksonValue(v)]));
}

/** Jackson's string quoting: `"`, `\`, and control characters (\b \t \n \f \r, else \u00XX upper-case). */
function jacksonString(text: string): string {
  let out = '"';
  for (const char of text) {
    const code = char.charCodeAt(0);
    if (char === '"') out += '\\"';
    else if (char === '\\') out += '\\\\';
    else if (code < 0x20) {
      const short: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };
      out += short[code] ?? `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
    } else out += char;
  }
  return `${out}"`;
}

/** An integral JSON number as Jackson reads it (Integer/Long) and writes it; others as a Java double. */
function jacksonNumber(value: number): string {
  return Number.isInteger(value) && Math.abs(value) < 2 ** 63 ? integer(value) : javaDouble(value);
}

function integer(value: number): string {
  return BigInt(Math.trunc(value)).toString();
}

/** Java's Double.toString: `0.0`, `16.0`, `0.1531`, `1.0E-4`, `1.0E7`. */
function javaDouble(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? 'Infinity' : '-Infinity';
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1e-3 && magnitude < 1e7) {
    const text = String(value);
    return text.includes('.') ? text : `${text}.0`;
  }
  const [mantissa = '0', exponent = '0'] = value.toExponential().split('e');
  return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}E${Number(exponent)}`;
}

// --- wall-clock time in an IANA zone ---------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>();

function zoneFormatter(zone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(zone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(zone, formatter);
  }
  return formatter;
}

/** The zone's wall clock at `epochMs`, as UTC-based ms of the same fields. */
function localOf(epochMs: number, zone: string): number {
  const whole = Math.floor(epochMs / 1000) * 1000;
  const fields: Record<string, number> = {};
  for (const part of zoneFormatter(zone).formatToParts(new Date(whole))) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  const local = Date.UTC(
    fields.year ?? 1970,
    (fields.month ?? 1) - 1,
    fields.day ?? 1,
    fields.hour ?? 0,
    fields.minute ?? 0,
    fields.second ?? 0,
  );
  return local + (epochMs - whole);
}

/** `yyyy-MM-dd HH:mm:ss.SSS`: the wall-clock time of `epochMs` in `zone`. */
export function wallClock(epochMs: number, zone: string): string {
  return new Date(localOf(epochMs, zone)).toISOString().slice(0, 23).replace('T', ' ');
}

/**
 * The instant of a wall-clock timestamp read in `zone` (digits beyond milliseconds dropped, as a Date
 * keeps them). An ambiguous time (clocks set back) is the earlier instant; a time in a gap (clocks set
 * forward) is read with the offset before the gap, i.e. moved forward by it.
 */
export function epochOfWallClock(text: string, zone: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?/.exec(text.trim());
  if (m === null) throw new TypeError(`not a timestamp: ${JSON.stringify(text)}`);
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = Number((m[7] ?? '').slice(0, 3).padEnd(3, '0'));
  return epochOfLocal(Date.UTC(y, mo - 1, d, h, mi, s, ms), zone);
}

function epochOfLocal(local: number, zone: string): number {
  const day = 86_400_000;
  const before = localOf(local - day, zone) - (local - day);
  const after = localOf(local + day, zone) - (local + day);
  const candidates = [local - before, local - after].filter(
    (epoch) => localOf(epoch, zone) - epoch === local - epoch,
  );
  return candidates.length > 0 ? Math.min(...candidates) : local - before;
}

// --- small helpers ----------------------------------------------------------------------------------------

function normalizeRoot(root: string): string {
  if (!root.startsWith('/')) throw new TypeError(`registry root must start with /: ${JSON.stringify(root)}`);
  return root.replace(/\/+$/, '');
}

function splitHostPort(host: string): { address: string; port: number } {
  const colon = host.lastIndexOf(':');
  const port = Number(host.slice(colon + 1));
  if (colon <= 0 || !/^[0-9]{1,5}$/.test(host.slice(colon + 1)) || port > 65_535) {
    throw new TypeError(`not a server name (ip:port): ${JSON.stringify(host)}`);
  }
  return { address: host.slice(0, colon), port };
}

/** A Java int field read from a nullable column: NULL leaves it 0. */
function javaInt(value: unknown): number {
  return value === null || value === undefined ? 0 : Number(value);
}

function stateName(code: number): string | undefined {
  return workflowStates.find(([value]) => value === code)?.[1];
}

/** `?` placeholders as the dialect wants them (none of these statements has a `?` in a literal). */
function sql(dialect: Dialect, text: string): string {
  if (dialect === 'mysql') return text;
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
