// The demo's verdict on DolphinScheduler's database (`npm start -- --store postgresql|mysql`): the
// exactly-once invariants checked against the tables themselves (every row before and after), the run
// journal where each failover recorded which command it wrote for which instance (DESIGN D6), and what the
// simulated 3.2 masters report having consumed. Pure: the caller reads the state.
import type { RunRecord } from '../failover/ports.ts';
import { WorkflowState } from '../store/dolphinscheduler/codes.ts';
import { WallClock } from '../store/dolphinscheduler/wall-time.ts';
import { isExecutingState } from './ds-seed.ts';
import type { Check } from './invariants.ts';
import type { SimServer } from './options.ts';

type Row = Record<string, unknown>;

export interface DsFinalState {
  instances: readonly Row[];
  tasks: readonly Row[];
  /** Rows left in t_ds_command and t_ds_error_command. */
  commands: readonly Row[];
  errorCommands: readonly Row[];
  /** Messages (visible + in flight + delayed) of the failover queue and its DLQ. */
  queues: { failover: number; failoverDlq: number };
}

export interface DsCheckInput {
  servers: readonly SimServer[];
  killed: readonly SimServer[];
  /** When each killed server was killed (epoch ms). */
  killedAt: ReadonlyMap<string, number>;
  /** Servers that lost their session without being killed. */
  disturbed: ReadonlyMap<string, { startupTime: number }>;
  /** DolphinScheduler's time zone: how its stored times read as instants. */
  timeZone: string;
  /** Both tables as they were right after seeding. */
  before: { instances: readonly Row[]; tasks: readonly Row[] };
  final: DsFinalState;
  /** The run journal of each killed master (`failover/master/<host>`). */
  journal: ReadonlyMap<string, readonly RunRecord[]>;
  /** Per instance id, the command of each takeover the masters reported, and the master. */
  takeovers: ReadonlyMap<string, ReadonlyArray<{ commandId: string; master: string }>>;
  /** Killed workers whose removal the failover function acknowledged (D4). */
  acknowledged: ReadonlySet<string>;
}

const MAX_DETAILS = 5;
const RECOVERY = 'RECOVER_TOLERANCE_FAULT_PROCESS';

function check(text: string, problems: string[]): Check {
  return { ok: problems.length === 0, text, details: problems.slice(0, MAX_DETAILS) };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const same = (a: Row | undefined, b: Row | undefined) => JSON.stringify(a) === JSON.stringify(b);
const num = (value: unknown) => (value === null || value === undefined ? 0 : Number(value));

export function checkDsInvariants(input: DsCheckInput): Check[] {
  const { servers, killed, disturbed, before, final, journal, takeovers } = input;
  const clock = new WallClock(input.timeZone);
  const byId = (rows: readonly Row[]) => new Map(rows.map((r) => [String(r.id), r]));
  const instancesNow = byId(final.instances);
  const tasksNow = byId(final.tasks);
  const killedHosts = new Set(killed.map((s) => s.host));
  const nameOf = new Map(servers.map((s) => [s.host, s.name]));
  const liveMasters = new Set(
    servers.filter((s) => s.nodeType === 'master' && !killedHosts.has(s.host)).map((s) => s.host),
  );
  const checks: Check[] = [];
  const failedOver = new Set<string>();
  let journalled = 0;

  for (const master of killed.filter((s) => s.nodeType === 'master')) {
    const owned = before.instances.filter((r) => r.host === master.host && isExecutingState(Number(r.state)));
    for (const r of owned) failedOver.add(String(r.id));
    const runs = journal.get(master.host) ?? [];
    const commandOf = new Map<string, string[]>();
    const commandIds = new Set<string>();
    const once: string[] = [];
    for (const run of runs) {
      for (const receipt of run.receipts) {
        commandOf.set(receipt.itemId, [...(commandOf.get(receipt.itemId) ?? []), receipt.commandId]);
        if (commandIds.has(receipt.commandId)) once.push(`command ${receipt.commandId} journalled twice`);
        commandIds.add(receipt.commandId);
        journalled += 1;
      }
    }
    const ownedIds = new Set(owned.map((r) => String(r.id)));
    for (const id of commandOf.keys()) {
      if (!ownedIds.has(id))
        once.push(`instance ${id}: a command, but it was not an executing instance of ${master.name}`);
    }
    const takers = new Map<string, number>();
    const taken: string[] = [];
    const killedAt = input.killedAt.get(master.host) ?? 0;
    for (const seed of owned) {
      const id = String(seed.id);
      const now = instancesNow.get(id);
      const commands = commandOf.get(id) ?? [];
      const applied = takeovers.get(id) ?? [];
      if (commands.length !== 1) once.push(`${id}: ${commands.length} recovery commands written`);
      else if (applied.length === 1 && applied[0]?.commandId !== commands[0])
        once.push(`${id}: took over with command ${applied[0]?.commandId}, ours was ${commands[0]}`);
      // Each takeover adds one run and one entry to the history: exactly one command was consumed.
      const history = String(now?.history_cmd ?? '');
      const recoveries = history.split(',').filter((c) => c === RECOVERY).length;
      const recoveriesBefore = String(seed.history_cmd ?? '')
        .split(',')
        .filter((c) => c === RECOVERY).length;
      if (now === undefined) {
        taken.push(`${id}: missing`);
        continue;
      }
      if (recoveries - recoveriesBefore !== 1 || num(now.run_times) !== num(seed.run_times) + 1)
        once.push(
          `${id}: run_times ${num(seed.run_times)} -> ${num(now.run_times)}, ${recoveries - recoveriesBefore} recoveries in history_cmd`,
        );
      const host = now.host === null || now.host === undefined ? null : String(now.host);
      const expectedState =
        num(seed.state) === WorkflowState.READY_PAUSE || num(seed.state) === WorkflowState.READY_STOP
          ? WorkflowState.RUNNING_EXECUTION
          : num(seed.state);
      const restart = typeof now.restart_time === 'string' ? clock.parse(now.restart_time) : Number.NaN;
      if (applied.length !== 1) taken.push(`${id}: taken over ${applied.length} times`);
      else if (host === null || !liveMasters.has(host)) taken.push(`${id}: host now ${host ?? 'SQL NULL'}`);
      else if (applied[0]?.master !== host)
        taken.push(`${id}: host ${host}, taken over by ${applied[0]?.master}`);
      else if (num(now.recovery) !== 1) taken.push(`${id}: recovery ${String(now.recovery)}`);
      // MySQL keeps whole seconds.
      else if (!(restart >= killedAt - 1_000))
        taken.push(`${id}: restart_time ${String(now.restart_time)} not after the kill`);
      else if (num(now.state) !== expectedState)
        taken.push(`${id}: state ${num(seed.state)} -> ${num(now.state)}`);
      if (host !== null) takers.set(host, (takers.get(host) ?? 0) + 1);
    }
    const fences = [...new Set(runs.map((r) => r.fence))].join(', ');
    checks.push(
      check(
        `every executing instance of ${master.name} (${plural(owned.length, 'instance')}) failed over exactly once: host 'NULL' and one t_ds_command row each, written in the same transaction (journal: fence ${fences || '-'}, ${plural(commandIds.size, 'command')})`,
        once,
      ),
    );
    const by = [...takers.entries()].map(([h, n]) => `${nameOf.get(h) ?? h} ${n}`).join(', ');
    checks.push(
      check(
        `each of them taken over exactly once by a live 3.2 master consuming t_ds_command (${by || 'none'}): host, restart_time, recovery 1, run_times + 1`,
        taken,
      ),
    );
  }

  for (const worker of killed.filter((s) => s.nodeType === 'worker')) {
    const owned = before.tasks.filter((t) => t.host === worker.host);
    const problems: string[] = [];
    if (!input.acknowledged.has(worker.host))
      problems.push('the failover function never acknowledged its removal');
    for (const seed of owned) {
      if (!same(seed, tasksNow.get(String(seed.id)))) problems.push(`task ${String(seed.id)}: changed`);
    }
    const executing = owned.filter((t) => [0, 17, 1, 12].includes(num(t.state))).length;
    checks.push(
      check(
        `${worker.name}: removal acknowledged, none of its ${plural(owned.length, 'task instance')} (${executing} executing) written: DolphinScheduler's live masters fail them over (D4)`,
        problems,
      ),
    );
  }

  // Nothing else changed: every other instance and every task instance is exactly as seeded.
  const untouched: string[] = [];
  let others = 0;
  for (const seed of before.instances) {
    const id = String(seed.id);
    if (failedOver.has(id)) continue;
    if (typeof seed.host === 'string' && disturbed.has(seed.host)) continue;
    others += 1;
    const now = instancesNow.get(id);
    if (!same(seed, now))
      untouched.push(
        `instance ${id} (${String(seed.host)}, state ${num(seed.state)}): now host ${String(now?.host)}, state ${num(now?.state)}`,
      );
  }
  for (const seed of before.tasks) {
    if (!same(seed, tasksNow.get(String(seed.id)))) untouched.push(`task ${String(seed.id)}: changed`);
  }
  if (final.instances.length !== before.instances.length)
    untouched.push(`${final.instances.length} instances now, ${before.instances.length} seeded`);
  checks.push(
    check(
      `nothing of a live master touched, nor finished work: ${plural(others, 'other instance')} and ${plural(before.tasks.length, 'task instance')} exactly as seeded (every column)`,
      untouched,
    ),
  );

  for (const host of disturbed.keys()) {
    checks.push(
      check(
        `${nameOf.get(host) ?? host} was not killed, yet lost its ZooKeeper session (the machine too loaded for the session timeout?) and registered again: its work was failed over as a restarted server's; rerun, or raise --session-timeout`,
        ['the simulation was disturbed; this run proves nothing either way'],
      ),
    );
  }

  const executing = final.instances.filter((r) => isExecutingState(num(r.state)));
  const sqlNull = executing.filter((r) => r.host === null || r.host === undefined);
  const marker = executing.filter((r) => r.host === 'NULL');
  const problems = [
    ...sqlNull.slice(0, MAX_DETAILS).map((r) => `instance ${String(r.id)}: host is SQL NULL`),
    ...marker.slice(0, MAX_DETAILS).map((r) => `instance ${String(r.id)}: still at host 'NULL'`),
    ...final.commands
      .slice(0, MAX_DETAILS)
      .map((c) => `t_ds_command ${String(c.id)} (instance ${String(c.process_instance_id)}) never consumed`),
    ...final.errorCommands
      .slice(0, MAX_DETAILS)
      .map((c) => `t_ds_error_command ${String(c.id)}: ${String(c.message)}`),
    ...Object.entries(final.queues)
      .filter(([, n]) => n > 0)
      .map(([queue, n]) => `${queue} queue holds ${n} messages`),
  ];
  if (disturbed.size === 0 && journalled !== failedOver.size)
    problems.push(`${journalled} commands journalled, ${failedOver.size} instances failed over`);
  checks.push(
    check(
      `no SQL NULL host, no instance left at 'NULL'; ${plural(journalled, 'command')} written in all${disturbed.size === 0 ? ' (one per failed-over instance)' : ''}, each consumed: t_ds_command and t_ds_error_command empty; failover queue and its DLQ drained`,
      problems,
    ),
  );
  return checks;
}
