// DESIGN.md section 2 as pure functions: no I/O, no clock reads (time is an argument).
import type { RecoveryCommand, TaskFailoverNotice } from '../messages.ts';
import { toFifoSafeId } from '../messages.ts';

/** F1: process-instance states that need failover when their host dies. */
export const EXECUTING_PROCESS_STATES = [
  'SUBMITTED_SUCCESS',
  'RUNNING_EXECUTION',
  'READY_PAUSE',
  'READY_STOP',
  'DELAY_EXECUTION',
] as const;

/** F5: task-instance states that need failover when their worker dies (DISPATCH included, #16107). */
export const TASK_FAILOVER_STATES = [
  'SUBMITTED_SUCCESS',
  'DISPATCH',
  'RUNNING_EXECUTION',
  'DELAY_EXECUTION',
] as const;

/** F5: the state a failed-over task instance is moved to. */
export const NEED_FAULT_TOLERANCE = 'NEED_FAULT_TOLERANCE';

export const RECOVER_TOLERANCE_FAULT_PROCESS = 'RECOVER_TOLERANCE_FAULT_PROCESS';

export type ExecutingProcessState = (typeof EXECUTING_PROCESS_STATES)[number];
export type TaskFailoverState = (typeof TASK_FAILOVER_STATES)[number];

const executingProcessStates: ReadonlySet<string> = new Set(EXECUTING_PROCESS_STATES);
const taskFailoverStates: ReadonlySet<string> = new Set(TASK_FAILOVER_STATES);

export function isExecutingProcessState(state: string): state is ExecutingProcessState {
  return executingProcessStates.has(state);
}

export function isTaskFailoverState(state: string): state is TaskFailoverState {
  return taskFailoverStates.has(state);
}

export interface ProcessInstance {
  id: string;
  /** Absent = unowned. */
  host?: string;
  state: string;
  processDefinitionCode: number;
  processDefinitionVersion: number;
  executorId: number;
  priority: string;
  /** Epoch ms. */
  startTime: number;
  /** Epoch ms. */
  restartTime?: number;
  /** JSON object text. */
  commandParam?: string;
  failoverCount?: number;
  /** Fence of the last failover that wrote this item, and the lock that fence belongs to. */
  fence?: number;
  fenceLock?: string;
  lastHost?: string;
}

export interface TaskInstance {
  id: string;
  processInstanceId: string;
  host?: string;
  state: string;
  /** Epoch ms. */
  submitTime: number;
  startTime?: number;
  failoverCount?: number;
  fence?: number;
  fenceLock?: string;
  lastHost?: string;
}

/** The incarnation currently registered for a host (F3), or null when the host is not registered. */
export type LiveIncarnation = { startupTime: number } | null;

export type FailoverSkipReason =
  | 'unowned'
  | 'other-host'
  | 'not-executing'
  | 'new-incarnation'
  | 'after-observation';

/**
 * Extra bounds from the failover request. `observedAt` is when the removal (or orphan) was observed: an
 * item started (or restarted, or submitted) at or after it cannot belong to the incarnation whose removal
 * was observed, so it is skipped even when the membership mirror does not show the new incarnation yet
 * (the mirror lags ZooKeeper by the watcher's write latency, and is blind while no watcher runs). The
 * price is clock skew: an item the dead incarnation started less than the skew between its clock and the
 * observer's before it died may be skipped here; the sweep catches it later with a later `observedAt`.
 */
export interface FailoverBounds {
  observedAt?: number;
}
export type FailoverDecision = { eligible: true } | { eligible: false; reason: FailoverSkipReason };

/**
 * Exact `ip:port` equality, never substring or prefix (`10.0.0.1:5678` is not `110.0.0.1:5678`).
 * An empty host matches nothing, so it can never stand for "all hosts" (#5044).
 */
export function sameHost(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && a !== '' && a === b;
}

/** The refinement of FailoverBounds: false when some time is at or after the observation. */
function predatesObservation(bounds: FailoverBounds, times: ReadonlyArray<number | undefined>): boolean {
  const { observedAt } = bounds;
  if (observedAt === undefined) return true;
  return times.every((t) => t === undefined || Number.isNaN(t) || t < observedAt);
}

/**
 * F3: true only when every given time is provably before the live incarnation's startup. A missing or
 * non-finite time cannot be proved older, so the item is left to the live server (F8: never touch a
 * live incarnation's work).
 */
function predatesIncarnation(live: LiveIncarnation, times: ReadonlyArray<number | undefined>): boolean {
  if (live === null) return true;
  if (!Number.isFinite(live.startupTime)) return false;
  return times.every((t) => t === undefined || (Number.isFinite(t) && t < live.startupTime));
}

/** F2/F3: may this process instance be failed over from `deadHost`? */
export function processFailoverDecision(
  instance: ProcessInstance,
  deadHost: string,
  live: LiveIncarnation,
  bounds: FailoverBounds = {},
): FailoverDecision {
  if (instance.host === undefined || instance.host === '') return { eligible: false, reason: 'unowned' };
  if (!sameHost(instance.host, deadHost)) return { eligible: false, reason: 'other-host' };
  if (!isExecutingProcessState(instance.state)) return { eligible: false, reason: 'not-executing' };
  // startTime is required: a missing one (a malformed item) is treated as unprovable, hence skipped.
  if (!predatesIncarnation(live, [instance.startTime ?? Number.NaN, instance.restartTime])) {
    return { eligible: false, reason: 'new-incarnation' };
  }
  if (!predatesObservation(bounds, [instance.startTime, instance.restartTime])) {
    return { eligible: false, reason: 'after-observation' };
  }
  return { eligible: true };
}

/** F5: may this task instance be failed over from `deadWorker`? */
export function taskFailoverDecision(
  task: TaskInstance,
  deadWorker: string,
  live: LiveIncarnation,
  bounds: FailoverBounds = {},
): FailoverDecision {
  if (task.host === undefined || task.host === '') return { eligible: false, reason: 'unowned' };
  if (!sameHost(task.host, deadWorker)) return { eligible: false, reason: 'other-host' };
  if (!isTaskFailoverState(task.state)) return { eligible: false, reason: 'not-executing' };
  if (!predatesIncarnation(live, [task.submitTime ?? Number.NaN])) {
    return { eligible: false, reason: 'new-incarnation' };
  }
  if (!predatesObservation(bounds, [task.submitTime]))
    return { eligible: false, reason: 'after-observation' };
  return { eligible: true };
}

/** The failover generation this failover will create: one more than the failovers already recorded. */
export function failoverGeneration(item: { failoverCount?: number }): number {
  return (item.failoverCount ?? 0) + 1;
}

/** F4: deterministic per (instance, generation), so a retry can never create a second command. */
export function recoveryCommandId(instanceId: string, generation: number): string {
  return toFifoSafeId(`recover/${instanceId}/${generation}`);
}

/** F5: deterministic per (task, generation). */
export function taskNoticeId(taskId: string, generation: number): string {
  return toFifoSafeId(`task-failover/${taskId}/${generation}`);
}

export interface FailoverContext {
  fence: number;
  /** Epoch ms, supplied by the caller's clock. */
  now: number;
}

/** F4: the recovery command for one failed-over process instance. */
export function buildRecoveryCommand(
  instance: ProcessInstance,
  context: FailoverContext & { deadHost: string },
): RecoveryCommand {
  const generation = failoverGeneration(instance);
  return {
    type: 'RecoveryCommand',
    id: recoveryCommandId(instance.id, generation),
    commandType: RECOVER_TOLERANCE_FAULT_PROCESS,
    processInstanceId: instance.id,
    processDefinitionCode: instance.processDefinitionCode,
    processDefinitionVersion: instance.processDefinitionVersion,
    executorId: instance.executorId,
    priority: instance.priority,
    commandParam: recoveryCommandParam(instance),
    failedHost: context.deadHost,
    generation,
    fence: context.fence,
    createdAt: context.now,
  };
}

/** F5: the notice telling the owning workflow that one of its tasks was failed over. */
export function buildTaskNotice(
  task: TaskInstance,
  context: FailoverContext & { deadWorker: string },
): TaskFailoverNotice {
  return {
    type: 'TaskFailover',
    id: taskNoticeId(task.id, failoverGeneration(task)),
    taskInstanceId: task.id,
    processInstanceId: task.processInstanceId,
    failedHost: context.deadWorker,
    fence: context.fence,
    createdAt: context.now,
  };
}

const SAFE_DECIMAL_ID = /^(?:0|[1-9][0-9]{0,15})$/;

function recoveryCommandParam(instance: ProcessInstance): string {
  // DolphinScheduler ids are numbers; keep the id a string when it is not one (or would lose precision).
  const numeric = SAFE_DECIMAL_ID.test(instance.id) && Number.isSafeInteger(Number(instance.id));
  const param: Record<string, unknown> = { ProcessInstanceId: numeric ? Number(instance.id) : instance.id };
  const startParams = readStartParams(instance.commandParam);
  if (startParams !== undefined) param.StartParams = startParams;
  return JSON.stringify(param);
}

/** The instance's own `StartParams`, or undefined when absent, null, or the commandParam is malformed. */
export function readStartParams(commandParam: string | undefined): unknown {
  if (commandParam === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(commandParam);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  if (!Object.hasOwn(parsed, 'StartParams')) return undefined;
  const value: unknown = (parsed as Record<string, unknown>).StartParams;
  return value === null ? undefined : value;
}
