// The recovery command exactly as DolphinScheduler 3.2 writes it for a failed-over workflow instance
// (shared/dolphinscheduler.md section 3), as a pure function of the instance row it was built from.
import { type ProcessInstance, readStartParams } from '../../failover/rules.ts';

/** A process instance as read from `t_ds_process_instance`, with what its recovery command needs. */
export interface DsProcessInstance extends ProcessInstance {
  /** The stored state code (`state` carries its name for the rules). */
  stateCode: number;
  /** The stored priority code (0..4). */
  priorityCode: number;
  testFlag: number | null;
  /** The row's `command_param` as stored (null when SQL NULL). */
  storedCommandParam: string | null;
  /** The workflow's schedule, when it has one: DolphinScheduler then adds its time zone to the command. */
  schedule: { timezoneId: string | null } | null;
}

/**
 * `t_ds_command.command_param` of the recovery command. DolphinScheduler builds a map of the instance's
 * own `StartParams` (when its command_param has them) and `ProcessInstanceId`, serialised from a Java
 * HashMap, which puts StartParams first (both keys fall in the same bucket, in insertion order). When the
 * workflow has a schedule, that text is read back into a string map, `schedule_timezone` appended, and
 * written again: every value is then a string (`"ProcessInstanceId":"123"`).
 */
export function recoveryCommandParam(
  instanceId: number,
  storedCommandParam: string | null,
  schedule: { timezoneId: string | null } | null,
): string {
  const startParams = readStartParams(storedCommandParam ?? undefined);
  if (schedule === null) {
    const param: Record<string, unknown> = {};
    if (startParams !== undefined) param.StartParams = startParams;
    param.ProcessInstanceId = instanceId;
    return JSON.stringify(param);
  }
  const param: Record<string, string | null> = {};
  // A StartParams that is not text is kept as its JSON text (DolphinScheduler's string map cannot hold
  // it; its own failover fails on such an instance).
  if (startParams !== undefined) {
    param.StartParams = typeof startParams === 'string' ? startParams : JSON.stringify(startParams);
  }
  param.ProcessInstanceId = String(instanceId);
  param.schedule_timezone = schedule.timezoneId;
  return JSON.stringify(param);
}
