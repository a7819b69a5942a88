// The invariants of a chaos run on DolphinScheduler's database (issue 17, DESIGN D1-D6, F3, F8), as a pure
// function of what the run observed, read from the database itself: the rows at the end, and the audit
// log of every t_ds_command insert and delete and every t_ds_process_instance update, with who wrote it.
// Expected outcomes come from the registry at the end and each instance as the scheduler last wrote it,
// never from the product's code: the command's fields follow shared/dolphinscheduler.md section 3.
//
// "From whichever side": an eligible instance's one recovery command may come from the failover function
// (`zk-failover`) or from DolphinScheduler's own masters (`ds-master`). A duplicate or a touched instance
// is charged to the function when the function wrote it (or wrote while a DolphinScheduler master held
// that host's failover lock); one that only DolphinScheduler's own unconditional writes produced is
// reported apart, as DolphinScheduler's (its known races), not as a violation of ours.

import type { DsLockHold } from './ds-agent.ts';
import type { CommandLogRow, InstanceLogRow } from './ds-db.ts';
import { FUNCTION_WRITER, SWEEP_WRITER } from './ds-db.ts';
import type { DsChange } from './ds-scenario.ts';

export type Row = Readonly<Record<string, string | null>>;

/** Where an instance comes from in the plan (violations name it). */
export type DsOrigin = 'dying' | 'new-incarnation' | 'live' | 'stale-host' | 'unowned' | 'to-repair';

export interface DsTrackedInstance {
  readonly id: number;
  readonly key: string;
  readonly origin: DsOrigin;
  /** The row as the scheduler last wrote it (its seed, or a concurrent change that applied), as text. */
  readonly reference: Row;
  /** Its start and restart times as the exact instants the harness wrote. */
  readonly startTime: number;
  readonly restartTime?: number;
  /** The time zone of its workflow's schedule, when it has one (the command then carries it). */
  readonly scheduleTimeZone: string | null;
  /** The pending command of an earlier failover, seeded with it (host 'NULL'). */
  readonly seededCommandId?: number;
  readonly change?: DsChange;
}

export interface DsJournalEntry {
  readonly host: string;
  readonly fence: number;
  readonly receipts: ReadonlyArray<{ readonly itemId: string; readonly commandId: string }>;
}

export interface DsObservations {
  readonly instances: readonly DsTrackedInstance[];
  readonly finalRows: ReadonlyMap<number, Row>;
  /** Registered servers at the end, by `<type>/<host>`. */
  readonly registry: ReadonlyMap<string, { readonly startupTime: number }>;
  readonly commandLog: readonly CommandLogRow[];
  readonly instanceLog: readonly InstanceLogRow[];
  /** Commands still in t_ds_command at the end. */
  readonly pendingCommandIds: ReadonlySet<number>;
  readonly errorCommands: ReadonlyArray<{
    readonly id: number;
    readonly instanceId: number;
    readonly message: string;
  }>;
  /** Executing instances (anywhere in the table) whose host is SQL NULL. */
  readonly sqlNullHost: readonly number[];
  /** Executing instances with host 'NULL' and no command for them in t_ds_command. */
  readonly nullHostWithoutCommand: readonly number[];
  /** Task rows that differ from their seed (D4: the function writes no task row). */
  readonly taskChanges: readonly string[];
  readonly journal: readonly DsJournalEntry[];
  readonly dsLockHolds: readonly DsLockHold[];
  /** DynamoDB lease locks still held (owner set, lease not expired). */
  readonly leasesHeld: readonly string[];
  /** Nodes left under DolphinScheduler's master failover locks. */
  readonly dsLockNodes: readonly string[];
  /** Recovery commands' start_time must lie in this window (epoch ms). */
  readonly commandTimeWindow: { readonly from: number; readonly to: number };
  /** A stored wall time as an instant (DolphinScheduler's zone). */
  readonly instantOf: (wallTime: string) => number;
  readonly dialect: 'postgresql' | 'mysql';
  readonly settled: boolean;
  readonly settleProblem?: string;
}

export interface DsViolation {
  readonly invariant: string;
  readonly subject: string;
  readonly detail: string;
}

export interface DsSummary {
  instances: number;
  eligible: number;
  /** Eligible instances failed over by the function / by DolphinScheduler's masters. */
  byFunction: number;
  byDolphinScheduler: number;
  /** Their commands: consumed by a master / still pending at the end. */
  consumed: number;
  pending: number;
  protected: number;
  /** DolphinScheduler's own findings (duplicates or touched instances its unconditional writes made). */
  dolphinScheduler: number;
  /** Instances seeded without owner and command, for the sweep to repair. */
  repaired: number;
}

export interface DsCheckResult {
  readonly violations: DsViolation[];
  /** Outcomes DolphinScheduler's own routine produced (its known races): reported, not charged to the function. */
  readonly dolphinScheduler: DsViolation[];
  readonly summary: DsSummary;
}

const EXECUTING = new Set(['0', '1', '2', '4', '12']);
const FAILOVER_WRITERS = new Set([FUNCTION_WRITER, 'ds-master', SWEEP_WRITER]);

/** Whether the instance, as the scheduler last wrote it, belongs to a master incarnation that is dead at the end. */
export function mustFailOver(instance: DsTrackedInstance, registry: DsObservations['registry']): boolean {
  const host = instance.reference.host;
  if (host === null || host === undefined || host === '' || host === 'NULL') return false;
  if (!EXECUTING.has(String(instance.reference.state))) return false;
  const live = registry.get(`master/${host}`);
  if (live === undefined) return true;
  return (
    instance.startTime < live.startupTime &&
    (instance.restartTime === undefined || instance.restartTime < live.startupTime)
  );
}

/** The recovery command's command_param as DolphinScheduler 3.2 writes it for this instance (facts section 3). */
export function expectedCommandParam(instance: DsTrackedInstance): Record<string, unknown> {
  let startParams: unknown;
  const own = instance.reference.command_param;
  if (own !== null && own !== undefined) {
    try {
      const parsed = JSON.parse(own) as unknown;
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        startParams = (parsed as Record<string, unknown>).StartParams ?? undefined;
      }
    } catch {
      startParams = undefined;
    }
  }
  if (instance.scheduleTimeZone === null) {
    return {
      ...(startParams === undefined || startParams === null ? {} : { StartParams: startParams }),
      ProcessInstanceId: instance.id,
    };
  }
  return {
    ...(startParams === undefined || startParams === null
      ? {}
      : { StartParams: typeof startParams === 'string' ? startParams : JSON.stringify(startParams) }),
    ProcessInstanceId: String(instance.id),
    schedule_timezone: instance.scheduleTimeZone,
  };
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 400 ? `${text.slice(0, 397)}...` : text;
}

/** Columns whose values differ, as `column: expected -> actual`. */
export function diffRows(expected: Row, actual: Row | undefined, ignore: readonly string[] = []): string[] {
  if (actual === undefined) return ['(row is gone)'];
  const out: string[] = [];
  for (const column of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
    if (ignore.includes(column)) continue;
    if ((expected[column] ?? null) !== (actual[column] ?? null)) {
      out.push(`${column}: ${describe(expected[column] ?? null)} -> ${describe(actual[column] ?? null)}`);
    }
  }
  return out.sort();
}

/** The fields of a recovery command (as logged at its insert) that differ from the specification. */
export function commandDeviations(
  instance: DsTrackedInstance,
  command: CommandLogRow,
  window: DsObservations['commandTimeWindow'],
  instantOf: (wallTime: string) => number,
): string[] {
  const c = command.columns;
  const ref = instance.reference;
  const out: string[] = [];
  const expect = (column: string, expected: string | null, actual = c[column]) => {
    const a = actual === null || actual === undefined ? null : String(actual);
    if (a !== expected) out.push(`${column}: ${describe(expected)} -> ${describe(a)}`);
  };
  expect('command_type', '2');
  expect('process_instance_id', String(instance.id), String(command.instanceId));
  expect('process_definition_code', ref.process_definition_code ?? null);
  expect('process_definition_version', ref.process_definition_version ?? null);
  expect('executor_id', ref.executor_id ?? null);
  expect('process_instance_priority', ref.process_instance_priority ?? '2');
  // A SQL NULL test_flag: DolphinScheduler's int field writes 0, the function copies NULL (both read as 0).
  if (ref.test_flag === null || ref.test_flag === undefined) {
    if (c.test_flag !== null && String(c.test_flag) !== '0') expect('test_flag', null);
  } else expect('test_flag', ref.test_flag);
  expect('task_depend_type', '2');
  expect('failure_strategy', '1');
  expect('warning_type', '0');
  expect('dry_run', '0');
  expect('worker_group', null);
  expect('tenant_code', 'default');
  expect('environment_code', '-1');
  const expected = expectedCommandParam(instance);
  let actual: unknown;
  try {
    actual = JSON.parse(String(c.command_param));
  } catch {
    actual = c.command_param;
  }
  const sameKeys =
    typeof actual === 'object' &&
    actual !== null &&
    JSON.stringify(Object.keys(actual)) === JSON.stringify(Object.keys(expected));
  if (!sameKeys || JSON.stringify(actual) !== JSON.stringify(expected)) {
    out.push(`command_param: ${describe(expected)} -> ${describe(c.command_param)}`);
  }
  const start = c.start_time === null ? Number.NaN : instantOf(String(c.start_time));
  // MySQL keeps whole seconds: the window widens by one.
  if (!(start >= window.from - 1_000 && start <= window.to + 1_000)) {
    out.push(`start_time: within the run -> ${describe(c.start_time)}`);
  }
  if (c.update_time !== c.start_time)
    out.push(`update_time: ${describe(c.start_time)} -> ${describe(c.update_time)}`);
  return out;
}

function insideHold(at: number, host: string, holds: readonly DsLockHold[]): DsLockHold | undefined {
  return holds.find(
    (h) => h.deadHost === host && h.acquiredAt <= at && at <= (h.releasedAt ?? Number.POSITIVE_INFINITY),
  );
}

function chain(inserts: readonly CommandLogRow[], start: number): string {
  return inserts.map((i) => `command ${i.commandId} by ${i.writer} at +${i.at - start} ms`).join(', ');
}

/**
 * The segments after each takeover: the master that took the instance over owns it until the next one. A
 * segment whose owner's incarnation is dead at the end (not registered, or registered again after it took
 * the instance over) needs exactly one recovery command in it; any other segment none from the function.
 */
function checkTakeovers(
  subject: string,
  takeovers: readonly InstanceLogRow[],
  inserts: readonly CommandLogRow[],
  changes: readonly InstanceLogRow[],
  o: DsObservations,
  violations: DsViolation[],
  dolphinScheduler: DsViolation[],
  summary: DsSummary,
): void {
  const t0 = o.commandTimeWindow.from;
  takeovers.forEach((takeover, k) => {
    const owner = String(takeover.newHost);
    const from = takeover.at;
    const to = takeovers[k + 1]?.at ?? Number.POSITIVE_INFINITY;
    const restart = takeover.newRestartTime;
    // MySQL keeps whole seconds: 12:00:00 may be 12:00:00.999 (the latest instant it can stand for).
    const taken =
      restart === null
        ? Number.NaN
        : o.instantOf(restart) + (o.dialect === 'mysql' && !restart.includes('.') ? 999 : 0);
    const live = o.registry.get(`master/${owner}`);
    const needy = live === undefined || taken < live.startupTime;
    const inSegment = inserts.filter((i) => i.at >= from && i.at < to);
    const at = `${subject}, taken over by ${owner} at +${from - t0} ms`;
    if (needy) {
      summary.eligible += 1;
      if (inSegment.length === 0) {
        violations.push({
          invariant: 'every eligible instance gets exactly one recovery command (none lost)',
          subject: at,
          detail: `its new owner's incarnation is dead at the end and no recovery command followed`,
        });
        return;
      }
      const first = inSegment[0] as CommandLogRow;
      if (first.writer === FUNCTION_WRITER) summary.byFunction += 1;
      else if (first.writer === 'ds-master') summary.byDolphinScheduler += 1;
      if (inSegment.length > 1) {
        const ours = inSegment.filter((i) => i.writer === FUNCTION_WRITER);
        const underTheirLock = ours.find((i) => insideHold(i.at, owner, o.dsLockHolds) !== undefined);
        const entry = {
          invariant: 'every eligible instance gets exactly one recovery command (no duplicate)',
          subject: at,
          detail: `${inSegment.length} commands: ${chain(inSegment, t0)}`,
        };
        if (ours.length > 1 || ours.some((i) => i !== first) || underTheirLock !== undefined)
          violations.push(entry);
        else dolphinScheduler.push(entry);
      }
      return;
    }
    const byFunction = inSegment.filter((i) => i.writer === FUNCTION_WRITER);
    const functionUpdates = changes.filter((u) => u.writer === FUNCTION_WRITER && u.at >= from && u.at < to);
    if (byFunction.length > 0 || functionUpdates.length > 0) {
      violations.push({
        invariant: 'no instance of a live incarnation (or changed by the scheduler) is touched',
        subject: at,
        detail: `the function wrote ${chain(byFunction, t0)} while its owner ${owner} is live`,
      });
    } else if (inSegment.length > 0) {
      dolphinScheduler.push({
        invariant: 'no instance of a live incarnation (or changed by the scheduler) is touched',
        subject: at,
        detail: `DolphinScheduler's own failover wrote ${chain(inSegment, t0)}`,
      });
    }
  });
}

export function checkDsInvariants(o: DsObservations): DsCheckResult {
  const violations: DsViolation[] = [];
  const dolphinScheduler: DsViolation[] = [];
  const summary: DsSummary = {
    instances: o.instances.length,
    eligible: 0,
    byFunction: 0,
    byDolphinScheduler: 0,
    consumed: 0,
    pending: 0,
    protected: 0,
    dolphinScheduler: 0,
    repaired: 0,
  };
  const t0 = o.commandTimeWindow.from;
  const inserts = new Map<number, CommandLogRow[]>();
  const deletes = new Map<number, CommandLogRow>();
  for (const row of o.commandLog) {
    if (row.op === 'I' && FAILOVER_WRITERS.has(row.writer)) {
      inserts.set(row.instanceId, [...(inserts.get(row.instanceId) ?? []), row]);
    }
    if (row.op === 'D') deletes.set(row.commandId, row);
  }
  const updates = new Map<number, InstanceLogRow[]>();
  for (const row of o.instanceLog) updates.set(row.instanceId, [...(updates.get(row.instanceId) ?? []), row]);

  for (const instance of o.instances) {
    const subject = `instance ${instance.id} (${instance.key}, ${instance.origin}${instance.change ? `, ${instance.change}` : ''}, host ${instance.reference.host})`;
    // A master that took the instance over owns it from then on: if that incarnation is dead at the end
    // too, the instance needs a failover of its own for that death (ownership segments, checked below).
    const takeovers = (updates.get(instance.id) ?? [])
      .filter(
        (u) => u.writer === 'ds-master' && u.oldHost === 'NULL' && u.newHost !== null && u.newHost !== 'NULL',
      )
      .sort((a, b) => a.at - b.at || a.seq - b.seq);
    const firstTakeover = takeovers[0]?.at ?? Number.POSITIVE_INFINITY;
    const allInserts = inserts.get(instance.id) ?? [];
    const allChanges = (updates.get(instance.id) ?? []).filter(
      (u) => u.writer !== 'chaos-scheduler' && u.writer !== 'chaos-harness',
    );
    checkTakeovers(subject, takeovers, allInserts, allChanges, o, violations, dolphinScheduler, summary);
    const laterWrites = allChanges.some((u) => u.at > firstTakeover && u.newHost === 'NULL');
    const own = allInserts.filter((i) => i.at < firstTakeover);
    const changes = allChanges.filter((u) => u.at < firstTakeover);
    const final = o.finalRows.get(instance.id);
    const ref = instance.reference;
    const byDs = changes.some((u) => u.writer === 'ds-master' && u.newHost === 'NULL');
    const ignore = byDs ? ['update_time'] : [];
    if (instance.origin === 'to-repair') {
      // Executing with no owner and no command from the start: the sweep's repair (D5), exactly once.
      summary.repaired += 1;
      const repair = own[0];
      if (own.length !== 1 || repair?.writer !== SWEEP_WRITER) {
        violations.push({
          invariant:
            'the sweep gives every executing instance without owner and command exactly one command (D5)',
          subject,
          detail: own.length === 0 ? 'no command' : `${own.length} command(s): ${chain(own, t0)}`,
        });
        continue;
      }
      const deviations = commandDeviations(instance, repair, o.commandTimeWindow, o.instantOf);
      if (deviations.length > 0) {
        violations.push({
          invariant: 'the recovery command is the one DolphinScheduler 3.2 writes',
          subject,
          detail: `command ${repair.commandId} by ${repair.writer}: ${deviations.join('; ')}`,
        });
      }
      if (o.pendingCommandIds.has(repair.commandId)) {
        const diff = diffRows(ref, final, ['host']);
        if (final?.host !== 'NULL' || diff.length > 0) {
          violations.push({
            invariant: "the sweep's repair writes host 'NULL' and nothing else (D5)",
            subject,
            detail: [`host ${describe(final?.host ?? null)}`, ...diff].join('; '),
          });
        }
      } else if (deletes.get(repair.commandId)?.writer !== 'ds-master') {
        violations.push({
          invariant: 'the recovery command is pending or consumed by a master',
          subject,
          detail: `command ${repair.commandId} is gone, not consumed`,
        });
      }
      continue;
    }
    if (mustFailOver(instance, o.registry)) {
      summary.eligible += 1;
      const host = String(ref.host);
      if (own.length === 0) {
        violations.push({
          invariant: 'every eligible instance gets exactly one recovery command (none lost)',
          subject,
          detail: `no recovery command; at the end host ${describe(final?.host ?? null)}, state ${describe(final?.state ?? null)}`,
        });
        continue;
      }
      const first = own[0] as CommandLogRow;
      if (first.writer === FUNCTION_WRITER) summary.byFunction += 1;
      else if (first.writer === 'ds-master') summary.byDolphinScheduler += 1;
      const repairs = own.filter((i) => i.writer === SWEEP_WRITER);
      if (repairs.length > 0) {
        const released = changes.find((u) => u.newHost === 'NULL');
        violations.push({
          invariant:
            'a failover writes the host and its command in one transaction (none left for the sweep to repair)',
          subject,
          detail:
            `host 'NULL' written by ${released?.writer ?? 'nobody'} at +${(released?.at ?? t0) - t0} ms without its command; ` +
            `the sweep repaired it: ${chain(repairs, t0)}`,
        });
      }
      if (own.length > 1) {
        const ours = own.filter((i) => i.writer === FUNCTION_WRITER);
        const underTheirLock = ours.find((i) => insideHold(i.at, host, o.dsLockHolds) !== undefined);
        const charged = ours.length > 1 || ours.some((i) => i !== first) || underTheirLock !== undefined;
        const entry = {
          invariant: 'every eligible instance gets exactly one recovery command (no duplicate)',
          subject,
          detail:
            `${own.length} commands: ${chain(own, t0)}` +
            (underTheirLock === undefined
              ? ''
              : `; the function's command ${underTheirLock.commandId} was written while a DolphinScheduler master held the failover lock of ${host}`),
        };
        if (charged) violations.push(entry);
        else dolphinScheduler.push(entry);
      }
      const deviations = commandDeviations(instance, first, o.commandTimeWindow, o.instantOf);
      if (deviations.length > 0) {
        violations.push({
          invariant: 'the recovery command is the one DolphinScheduler 3.2 writes',
          subject,
          detail: `command ${first.commandId} by ${first.writer}: ${deviations.join('; ')}`,
        });
      }
      const ours = changes.filter((u) => u.writer === FUNCTION_WRITER);
      for (const u of ours) {
        if (u.oldHost !== host || u.newHost !== 'NULL' || u.oldState !== u.newState) {
          violations.push({
            invariant: "the function moves exactly the dead host's rows to host 'NULL', state unchanged",
            subject,
            detail: `update by the function: host ${describe(u.oldHost)} -> ${describe(u.newHost)}, state ${u.oldState} -> ${u.newState}`,
          });
        }
      }
      if (o.pendingCommandIds.has(first.commandId)) {
        summary.pending += 1;
        if (final?.host !== 'NULL') {
          violations.push({
            invariant: "a failed-over instance has host 'NULL' while its command is pending",
            subject,
            detail: `host ${describe(final?.host ?? null)} with command ${first.commandId} pending`,
          });
        }
        // DolphinScheduler's own full-row update rewrites columns (a NULL int field as 0, MySQL's update_time):
        // "host and nothing else" is the function's rule (D1).
        const diff = byDs ? [] : diffRows(ref, final, ['host', ...ignore]);
        if (diff.length > 0) {
          violations.push({
            invariant: 'failover writes host and nothing else (D1)',
            subject,
            detail: diff.join('; '),
          });
        }
      } else {
        const deleted = deletes.get(first.commandId);
        if (deleted?.writer === 'ds-master' && !o.errorCommands.some((e) => e.id === first.commandId)) {
          summary.consumed += 1;
          if (!laterWrites && (final?.host === null || final?.host === undefined || final.host === 'NULL')) {
            violations.push({
              invariant: 'a consumed command leaves its instance with the master that took it over',
              subject,
              detail: `command ${first.commandId} consumed, host ${describe(final?.host ?? null)}`,
            });
          }
        } else {
          violations.push({
            invariant: 'the recovery command is pending or consumed by a master',
            subject,
            detail: `command ${first.commandId}: ${deleted === undefined ? 'gone without a trace' : `deleted by ${deleted.writer}`}${
              o.errorCommands.some((e) => e.id === first.commandId) ? ', moved to t_ds_error_command' : ''
            }`,
          });
        }
      }
      continue;
    }

    // Not to fail over: a live incarnation's, finished, unowned, or changed by the scheduler.
    summary.protected += 1;
    const finished = !EXECUTING.has(String(ref.state));
    const invariant = finished
      ? 'finished instances are untouched'
      : instance.origin === 'unowned'
        ? "instances already failed over (host 'NULL') are not failed over again"
        : 'no instance of a live incarnation (or changed by the scheduler) is touched';
    const byFunction = own.filter((i) => i.writer === FUNCTION_WRITER);
    const functionUpdates = changes.filter((u) => u.writer === FUNCTION_WRITER);
    if (byFunction.length > 0 || functionUpdates.length > 0) {
      violations.push({
        invariant,
        subject,
        detail: [
          byFunction.length > 0
            ? `${byFunction.length} recovery command(s) by the function: ${chain(byFunction, t0)}`
            : '',
          functionUpdates.length > 0
            ? `updated by the function: ${functionUpdates.map((u) => `host ${u.oldHost} -> ${u.newHost}`).join(', ')}`
            : '',
        ]
          .filter((s) => s !== '')
          .join('; '),
      });
      continue;
    }
    if (own.length > 0) {
      dolphinScheduler.push({
        invariant,
        subject,
        detail: `DolphinScheduler's own failover wrote ${chain(own, t0)}`,
      });
      continue;
    }
    // The seeded command of an unowned instance may be consumed: a master then owns it.
    const consumedSeed =
      instance.seededCommandId !== undefined &&
      deletes.get(instance.seededCommandId)?.writer === 'ds-master' &&
      !o.pendingCommandIds.has(instance.seededCommandId);
    if (consumedSeed || takeovers.length > 0) continue;
    const diff = diffRows(ref, final);
    if (diff.length > 0) {
      const entry = { invariant, subject, detail: diff.join('; ') };
      if (changes.every((u) => u.writer === 'ds-master')) dolphinScheduler.push(entry);
      else violations.push(entry);
    }
  }

  for (const id of o.sqlNullHost) {
    violations.push({
      invariant: 'no executing instance has SQL NULL host',
      subject: `instance ${id}`,
      detail: "host IS NULL (DolphinScheduler's periodic check throws on it)",
    });
  }
  for (const id of o.nullHostWithoutCommand) {
    violations.push({
      invariant: "no executing instance is left with host 'NULL' and no command",
      subject: `instance ${id}`,
      detail: "host 'NULL', no command in t_ds_command: no master will ever take it (#13355)",
    });
  }
  for (const e of o.errorCommands) {
    violations.push({
      invariant: 'DolphinScheduler can handle every recovery command',
      subject: `command ${e.id} (instance ${e.instanceId})`,
      detail: `moved to t_ds_error_command: ${e.message}`,
    });
  }
  for (const change of o.taskChanges) {
    violations.push({ invariant: 'worker removals write no task row (D4)', subject: 'task', detail: change });
  }
  const byFunction = new Set(
    o.commandLog
      .filter((r) => r.op === 'I' && r.writer === FUNCTION_WRITER)
      .map((r) => `${r.instanceId}/${r.commandId}`),
  );
  for (const entry of o.journal) {
    for (const receipt of entry.receipts) {
      if (!byFunction.has(`${receipt.itemId}/${receipt.commandId}`)) {
        violations.push({
          invariant: 'the run journal records only commands the function wrote (D6)',
          subject: `journal ${entry.host} fence ${entry.fence}`,
          detail: `instance ${receipt.itemId} command ${receipt.commandId}: no such insert by the function`,
        });
      }
    }
  }
  for (const lease of o.leasesHeld) {
    violations.push({
      invariant: 'no lease lock held once settled',
      subject: lease,
      detail: 'owner set, lease not expired',
    });
  }
  for (const node of o.dsLockNodes) {
    violations.push({
      invariant: 'no DolphinScheduler failover lock node is left once settled',
      subject: node,
      detail: 'a lock node whose holder is done (or gone) still exists',
    });
  }
  if (!o.settled) {
    violations.push({
      invariant: 'the run settles',
      subject: 'run',
      detail: o.settleProblem ?? 'not settled',
    });
  }
  summary.dolphinScheduler = dolphinScheduler.length;
  return { violations, dolphinScheduler, summary };
}
