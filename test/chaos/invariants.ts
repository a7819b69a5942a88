// The invariants checked after a chaos run has settled (DESIGN.md F2-F8, section 8 "Chaos"), as a pure
// function of what the run observed. Expected outcomes are derived from the registry at the end of the run
// (which incarnations are really alive) and from each item as the scheduler last wrote it, never from the
// product's own code: command ids and fields follow the specification (F4, F5), not lib/failover/rules.ts.
import { EXECUTING_PROCESS_STATES, TASK_FAILOVER_STATES } from '../../lib/failover/rules.ts';

export type Flat = Record<string, string | number>;

export interface TrackedItem {
  readonly id: string;
  /** The plan's abstract key (`pi7`). */
  readonly key: string;
  readonly type: 'instance' | 'task';
  /** The item as the scheduler last wrote it: the seed, or the result of a concurrent change that applied. */
  readonly reference: Flat;
  /** The concurrent change that applied, if any. */
  readonly change?: string;
}

export interface LockRow {
  readonly name: string;
  readonly owner?: string;
  readonly fence?: number;
  readonly leaseExpiresAt?: number;
}

export interface DlqMessage {
  readonly body: string;
  readonly rejectReason?: string;
}

export interface Observations {
  readonly items: readonly TrackedItem[];
  /** Items as they are at the end, by id (absent: deleted). */
  readonly finalItems: ReadonlyMap<string, Flat>;
  /** Registered servers at the end, by `<type>/<host>`. */
  readonly registry: ReadonlyMap<string, { readonly startupTime: number }>;
  /** Every item of the commands table. */
  readonly commands: readonly Flat[];
  /** Commands of earlier failovers that the run seeded (not written by it). */
  readonly seededCommandIds: ReadonlySet<string>;
  /** Deliveries on the commands queue, by command id. */
  readonly deliveries: ReadonlyMap<string, number>;
  /** Bodies on the commands queue that are not valid commands. */
  readonly invalidDeliveries: readonly string[];
  readonly failoverDlq: readonly DlqMessage[];
  readonly commandsDlq: number;
  /** Poison bodies sent to the failover queue (they must reach its DLQ). */
  readonly poisonQueued: readonly string[];
  /** Poison bodies given to direct invocations (they may reach the DLQ). */
  readonly poisonInvoked: readonly string[];
  readonly locks: readonly LockRow[];
  readonly checkedAt: number;
  readonly settled: boolean;
  readonly settleProblem?: string;
}

export interface Violation {
  readonly invariant: string;
  readonly subject: string;
  readonly detail: string;
}

export interface CheckSummary {
  instances: number;
  tasks: number;
  /** Items of dead incarnations that had to be failed over. */
  eligible: number;
  failedOver: number;
  /** Items that had to stay as they were (live incarnations, not executing, unowned, changed by others). */
  protected: number;
  commandsWritten: number;
  deliveries: number;
  /** Extra deliveries of a command (the same command id more than once on the queue). */
  duplicateDeliveries: number;
  /** Locks whose holder died (owner left, lease expired): recovered by the lease, as designed. */
  abandonedLocks: number;
  poisonDeadLettered: number;
}

export interface CheckResult {
  readonly violations: Violation[];
  readonly summary: CheckSummary;
}

const executingInstance: ReadonlySet<string> = new Set(EXECUTING_PROCESS_STATES);
const executingTask: ReadonlySet<string> = new Set(TASK_FAILOVER_STATES);

const num = (v: string | number | undefined): number | undefined => (typeof v === 'number' ? v : undefined);

/** Whether the item, as last written by the scheduler, belongs to an incarnation that is dead at the end. */
export function mustFailOver(item: TrackedItem, registry: Observations['registry']): boolean {
  const ref = item.reference;
  const host = ref.host;
  if (typeof host !== 'string' || host === '') return false;
  const state = String(ref.state);
  if (item.type === 'instance' ? !executingInstance.has(state) : !executingTask.has(state)) return false;
  const live = registry.get(`${item.type === 'instance' ? 'master' : 'worker'}/${host}`);
  if (live === undefined) return true;
  const times = item.type === 'instance' ? [num(ref.startTime), num(ref.restartTime)] : [num(ref.submitTime)];
  return times.every((t) => t === undefined || t < live.startupTime);
}

export function commandIdOf(item: TrackedItem, generation: number): string {
  return item.type === 'instance'
    ? `recover/${item.id}/${generation}`
    : `task-failover/${item.id}/${generation}`;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

/** Keys whose values differ, as `key: expected -> actual`. */
export function diffFlat(expected: Flat, actual: Flat | undefined, ignore: readonly string[] = []): string[] {
  if (actual === undefined) return ['(item is gone)'];
  const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  const out: string[] = [];
  for (const key of [...keys].sort()) {
    if (ignore.includes(key)) continue;
    if (expected[key] !== actual[key])
      out.push(`${key}: ${describe(expected[key])} -> ${describe(actual[key])}`);
  }
  return out;
}

function parseJsonObject(text: unknown): Record<string, unknown> | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Problems of a written command against F4 / F5 for this item and failover generation. */
function commandProblems(
  item: TrackedItem,
  command: Flat,
  generation: number,
  final: Flat | undefined,
): string[] {
  const ref = item.reference;
  const host = String(ref.host);
  const problems: string[] = [];
  const expect = (key: string, value: string | number | undefined) => {
    if (command[key] !== value)
      problems.push(`${key}: expected ${describe(value)}, got ${describe(command[key])}`);
  };
  if (item.type === 'instance') {
    expect('type', 'RecoveryCommand');
    expect('commandType', 'RECOVER_TOLERANCE_FAULT_PROCESS');
    expect('processInstanceId', item.id);
    expect('processDefinitionCode', ref.processDefinitionCode);
    expect('processDefinitionVersion', ref.processDefinitionVersion);
    expect('executorId', ref.executorId);
    expect('priority', ref.priority);
    expect('generation', generation);
    const param = parseJsonObject(command.commandParam);
    const wantedId = /^(0|[1-9][0-9]{0,15})$/.test(item.id) ? Number(item.id) : item.id;
    if (param === undefined || param.ProcessInstanceId !== wantedId) {
      problems.push(`commandParam ${describe(command.commandParam)} lacks ProcessInstanceId ${wantedId}`);
    }
    const startParams = parseJsonObject(ref.commandParam)?.StartParams;
    if (startParams !== undefined && describe(param?.StartParams) !== describe(startParams)) {
      problems.push(`commandParam lost StartParams ${describe(startParams)}`);
    }
  } else {
    expect('type', 'TaskFailover');
    expect('taskInstanceId', item.id);
    expect('processInstanceId', ref.processInstanceId);
  }
  expect('failedHost', host);
  if (typeof command.fence !== 'number') problems.push('no fence');
  // Written in one transaction with the item: the same holding (fence) wrote both.
  else if (final !== undefined && final.fence !== command.fence) {
    problems.push(`fence ${command.fence} differs from the item's ${describe(final.fence)}`);
  }
  if (typeof command.enqueuedAt !== 'number') problems.push('never marked enqueued (enqueuedAt missing)');
  if (command.pending !== undefined) problems.push('still pending in the outbox');
  return problems;
}

export function checkInvariants(obs: Observations): CheckResult {
  const violations: Violation[] = [];
  const violate = (invariant: string, subject: string, detail: string) =>
    violations.push({ invariant, subject, detail });
  const summary: CheckSummary = {
    instances: 0,
    tasks: 0,
    eligible: 0,
    failedOver: 0,
    protected: 0,
    commandsWritten: 0,
    deliveries: 0,
    duplicateDeliveries: 0,
    abandonedLocks: 0,
    poisonDeadLettered: 0,
  };
  if (!obs.settled) {
    violate('settles', 'run', obs.settleProblem ?? 'the system did not become quiescent in time');
  }

  // Commands written by this run, by the item they concern.
  const commandsByTarget = new Map<string, Flat[]>();
  const commandIds = new Set<string>();
  for (const command of obs.commands) {
    const id = String(command.id);
    commandIds.add(id);
    if (obs.seededCommandIds.has(id)) continue;
    summary.commandsWritten += 1;
    const target =
      command.type === 'TaskFailover'
        ? `task:${command.taskInstanceId}`
        : `instance:${command.processInstanceId}`;
    commandsByTarget.set(target, [...(commandsByTarget.get(target) ?? []), command]);
  }
  const trackedTargets = new Set(obs.items.map((i) => `${i.type}:${i.id}`));
  for (const [target, commands] of commandsByTarget) {
    if (!trackedTargets.has(target)) {
      violate(
        'no stray commands',
        target,
        `commands for an item the run never seeded: ${commands.map((c) => c.id).join(', ')}`,
      );
    }
  }

  for (const item of obs.items) {
    if (item.type === 'instance') summary.instances += 1;
    else summary.tasks += 1;
    const final = obs.finalItems.get(item.id);
    const commands = commandsByTarget.get(`${item.type}:${item.id}`) ?? [];
    const ref = item.reference;
    const subject = `${item.type} ${item.id} (${item.key}${item.change ? `, ${item.change}` : ''}, host ${describe(ref.host)}, ${ref.state})`;
    if (!mustFailOver(item, obs.registry)) {
      summary.protected += 1;
      const diff = diffFlat(ref, final);
      if (diff.length > 0) {
        violate('nothing of a live incarnation (or not eligible) is touched', subject, diff.join('; '));
      }
      if (commands.length > 0) {
        violate(
          'no command for an item that is not failed over',
          subject,
          `commands ${commands.map((c) => c.id).join(', ')}`,
        );
      }
      continue;
    }
    summary.eligible += 1;
    const previous = num(ref.failoverCount) ?? 0;
    const generation = previous + 1;
    const host = String(ref.host);
    const expected: Flat = { ...ref, lastHost: host, failoverCount: generation };
    if (item.type === 'instance') delete expected.host;
    else expected.state = 'NEED_FAULT_TOLERANCE';
    const diff = diffFlat(expected, final, ['failedOverAt', 'fence', 'fenceLock']);
    const lockName = `failover/${item.type === 'instance' ? 'master' : 'worker'}/${host}`;
    if (final !== undefined) {
      if (typeof final.failedOverAt !== 'number') diff.push('failedOverAt missing');
      if (typeof final.fence !== 'number') diff.push('fence missing');
      if (final.fenceLock !== lockName)
        diff.push(`fenceLock: ${describe(lockName)} -> ${describe(final.fenceLock)}`);
    }
    if (diff.length > 0) {
      const never = final !== undefined && final.failoverCount === ref.failoverCount;
      violate(
        never
          ? 'every executing item of a dead incarnation is failed over'
          : 'failed over exactly once, as F2/F5 say',
        subject,
        diff.join('; '),
      );
    } else {
      summary.failedOver += 1;
    }
    // Exactly one command for this failover, whatever its id; then, separately, the id F4/F5 prescribe.
    const wantedId = commandIdOf(item, generation);
    if (commands.length !== 1) {
      violate(
        commands.length === 0
          ? 'every failover has its command (none lost)'
          : 'exactly one command per failover',
        subject,
        `expected one command of generation ${generation}, found [${commands.map((c) => c.id).join(', ')}]`,
      );
    }
    const command = commands.length === 1 ? commands[0] : commands.find((c) => String(c.id) === wantedId);
    if (command !== undefined) {
      const id = String(command.id);
      if (id !== wantedId) {
        violate(
          'the command id is deterministic per (item, generation) (F4)',
          subject,
          `${id}, not ${wantedId}`,
        );
      }
      const problems = commandProblems(item, command, generation, final);
      if (problems.length > 0)
        violate('the command is the one F4/F5 specify', `${subject} ${id}`, problems.join('; '));
      const delivered = obs.deliveries.get(id) ?? 0;
      if (delivered === 0)
        violate('every command reaches the commands queue', subject, `${id} never delivered`);
      summary.duplicateDeliveries += Math.max(0, delivered - 1);
    }
    for (const c of commands) summary.deliveries += obs.deliveries.get(String(c.id)) ?? 0;
  }

  for (const [id, count] of obs.deliveries) {
    if (!commandIds.has(id)) {
      violate(
        'every delivered command was written first (outbox)',
        id,
        `delivered ${count}x, no command item`,
      );
    }
  }
  for (const body of obs.invalidDeliveries) {
    violate('only valid commands on the commands queue', 'commands queue', body.slice(0, 200));
  }

  // Dead-letter queues: only poison, and every queued poison message is there.
  const poison = new Set([...obs.poisonQueued, ...obs.poisonInvoked]);
  const deadLettered = new Set<string>();
  for (const message of obs.failoverDlq) {
    if (poison.has(message.body)) {
      deadLettered.add(message.body);
      continue;
    }
    violate(
      'nothing but poison in the failover DLQ',
      'failover DLQ',
      `${message.body.slice(0, 300)} (RejectReason ${describe(message.rejectReason)})`,
    );
  }
  summary.poisonDeadLettered = deadLettered.size;
  for (const body of obs.poisonQueued) {
    if (!deadLettered.has(body)) {
      violate(
        'every poison message reaches the DLQ',
        'failover DLQ',
        `missing ${describe(body.slice(0, 120))}`,
      );
    }
  }
  if (obs.commandsDlq > 0) {
    violate('nothing in the commands DLQ', 'commands DLQ', `${obs.commandsDlq} message(s)`);
  }

  // Locks: none held once settled; the fence only grows (no item carries a fence its lock never granted).
  const lockFence = new Map<string, number>();
  for (const lock of obs.locks) {
    if (lock.fence !== undefined) lockFence.set(lock.name, lock.fence);
    if (lock.owner === undefined) continue;
    if ((lock.leaseExpiresAt ?? 0) > obs.checkedAt) {
      violate('no lock held once settled', lock.name, `owner ${lock.owner} until ${lock.leaseExpiresAt}`);
    } else {
      summary.abandonedLocks += 1;
    }
  }
  for (const [id, final] of obs.finalItems) {
    if (typeof final.fenceLock !== 'string' || typeof final.fence !== 'number') continue;
    const granted = lockFence.get(final.fenceLock);
    if (granted !== undefined && final.fence > granted) {
      violate(
        'fences only come from the lock',
        id,
        `fence ${final.fence} > lock ${final.fenceLock} fence ${granted}`,
      );
    }
  }
  return { violations, summary };
}
