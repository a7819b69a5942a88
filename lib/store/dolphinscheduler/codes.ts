// DolphinScheduler's stored codes that failover reads and writes (shared/dolphinscheduler.md section 2),
// and the mapping between its workflow states and the failover rules' state names (DESIGN F1).

/** Workflow (process instance) states, as stored in `t_ds_process_instance.state`. */
export const WorkflowState = {
  SUBMITTED_SUCCESS: 0,
  RUNNING_EXECUTION: 1,
  READY_PAUSE: 2,
  PAUSE: 3,
  READY_STOP: 4,
  STOP: 5,
  FAILURE: 6,
  SUCCESS: 7,
  DELAY_EXECUTION: 12,
  SERIAL_WAIT: 14,
  READY_BLOCK: 15,
  BLOCK: 16,
  WAIT_TO_RUN: 17,
} as const;

/** 3.1/3.2: the states whose instances need failover when their master dies, {0,1,12,2,4}. */
export const NEED_FAILOVER_STATES: readonly number[] = [
  WorkflowState.SUBMITTED_SUCCESS,
  WorkflowState.RUNNING_EXECUTION,
  WorkflowState.DELAY_EXECUTION,
  WorkflowState.READY_PAUSE,
  WorkflowState.READY_STOP,
];

const stateNames = new Map<number, string>(Object.entries(WorkflowState).map(([name, code]) => [code, name]));

/** The rules' name for a stored state (unknown codes keep a name the rules never treat as executing). */
export function workflowStateName(code: number): string {
  return stateNames.get(code) ?? `UNKNOWN_${code}`;
}

/** `t_ds_command.command_type` of a failover's recovery command. */
export const RECOVER_TOLERANCE_FAULT_PROCESS = 2;
/** `task_depend_type` TASK_POST, written on recovery commands. */
export const TASK_DEPEND_TYPE_TASK_POST = 2;
/** `failure_strategy` CONTINUE, written on recovery commands. */
export const FAILURE_STRATEGY_CONTINUE = 1;

/** The host marker of an instance whose master died and whose recovery command is written (never SQL NULL). */
export const FAILED_OVER_HOST = 'NULL';

/** `process_instance_priority`: 0 HIGHEST .. 4 LOWEST (default 2 MEDIUM). */
const priorities = ['HIGHEST', 'HIGH', 'MEDIUM', 'LOW', 'LOWEST'] as const;

export function priorityName(code: number): string {
  return priorities[code] ?? 'MEDIUM';
}
