// Human-readable output of chaos runs on DolphinScheduler's database: one line per run, and for a violation
// everything needed to reproduce and understand it (seed, dialect, plan, schedule as planned and as it
// happened, the diff, each named instance's history from the audit log).

import type { DsRunReport } from './ds-run.ts';
import { type DsRunPlan, dsFaultKindsOf } from './ds-scenario.ts';
import type { ServiceFaults } from './fault-proxy.ts';

function faults(f: ServiceFaults | null): string {
  if (f === null) return 'none';
  const kinds = Object.entries(f.kinds)
    .map(([k, w]) => `${k}:${w}`)
    .join(' ');
  return `${Math.round(f.rate * 100)}% of calls (${kinds}; hold ${f.holdMs[0]}-${f.holdMs[1]} ms)`;
}

export function formatDsPlan(plan: DsRunPlan, hosts: Readonly<Record<string, string>>): string {
  const lines: string[] = [];
  lines.push(`  time zone: ${plan.timeZone}`);
  lines.push(
    `  servers: ${plan.servers.map((s) => `${s.name}=${hosts[s.name] ?? '?'} ${s.nodeType} ${s.fate}`).join(', ')}`,
  );
  const executing = plan.instances.filter((i) => [0, 1, 2, 4, 12].includes(i.state)).length;
  lines.push(
    `  workload: ${plan.instances.length} instances (${executing} executing), ${plan.tasks.length} task rows, ` +
      `${plan.staleHosts} stale host(s)${plan.instances.some((i) => i.scheduled) ? ', scheduled workflows' : ''}`,
  );
  const f = plan.functions;
  lines.push(
    `  functions: ZooKeeper session ${f.zkSessionTimeoutMs} ms, scan span ${f.scanSpan}, healthy batch ${f.batchSize} x ${f.concurrency}`,
  );
  lines.push(
    plan.faulty === null
      ? '  faulty runtime: none'
      : `  faulty runtime: ZKF_FAILPOINTS=${plan.faulty.failpoints} lease ${plan.faulty.leaseMs} ms, ` +
          `batch ${plan.faulty.batchSize} x ${plan.faulty.concurrency}, timeout ${plan.faulty.timeoutMs} ms, ` +
          `margin ${plan.faulty.deadlineMarginMs} ms, ${plan.faulty.eventSource ? 'consumes the queue' : 'direct invocations only'}`,
  );
  lines.push(`  dynamodb faults: ${faults(plan.proxy.dynamodb)}; sqs faults: ${faults(plan.proxy.sqs)}`);
  lines.push(`  database round trip: ${plan.databaseRoundTripMs} ms`);
  lines.push(
    `  dolphinscheduler masters: ${
      plan.ds.onRemovalDelayMs === null
        ? 'no failover on removal'
        : `fail a removed master over after ${plan.ds.onRemovalDelayMs} ms`
    }, ${plan.ds.consumeEveryMs === null ? 'no consumers' : `consume every ${plan.ds.consumeEveryMs} ms`}`,
  );
  lines.push(`  fault schedule (${plan.chaosMs} ms):`);
  for (const action of plan.actions) {
    const { at, kind, ...rest } = action;
    lines.push(`    +${at} ms ${kind} ${JSON.stringify(rest)}`);
  }
  return lines.join('\n');
}

export function formatDsRunLine(report: DsRunReport, index: number, total: number): string {
  const s = report.summary;
  const seconds = ((report.durations.total ?? 0) / 1000).toFixed(1);
  const status = report.violations.length === 0 ? 'ok' : `VIOLATIONS ${report.violations.length}`;
  const crashes =
    (report.invocations.healthy?.crash ?? 0) +
    (report.invocations.faulty?.crash ?? 0) +
    (report.invocations.healthy?.timeout ?? 0) +
    (report.invocations.faulty?.timeout ?? 0);
  const parts = s
    ? [
        `eligible ${s.eligible}/${s.instances}`,
        `by function ${s.byFunction}, by dolphinscheduler ${s.byDolphinScheduler}`,
        `consumed ${s.consumed}, pending ${s.pending}`,
        ...(s.repaired > 0 ? [`repaired by the sweep ${s.repaired}`] : []),
      ]
    : [];
  const f = report.faults;
  parts.push(
    `db kills ${f['db connections killed'] ?? 0} cancels ${f['db statements cancelled'] ?? 0} cuts ${f['db connections cut'] ?? 0} restarts ${f['db restarts'] ?? 0} lock holds ${f['db lock holds'] ?? 0}`,
    `zk cuts ${f['function zookeeper connections cut'] ?? 0}`,
    `crashes ${crashes}`,
  );
  if (report.dolphinScheduler.length > 0)
    parts.push(`dolphinscheduler's own ${report.dolphinScheduler.length}`);
  if (report.deadLettered > 0) parts.push(`dead-lettered ${report.deadLettered}`);
  const d = report.durations;
  const phases = ['setup', 'chaos', 'settle', 'check', 'cleanup']
    .map((p) => `${p} ${((d[p] ?? 0) / 1000).toFixed(1)}`)
    .join(' ');
  return `run ${index + 1}/${total} ${report.dialect} seed ${report.seed} ${status} ${seconds}s (${phases}) [${parts.join(', ')}]`;
}

export function formatDsViolationReport(
  report: DsRunReport,
  verbose: boolean,
  entries = report.violations,
): string {
  const lines: string[] = [];
  lines.push(
    `=== ${report.dialect} seed ${report.seed}: ${entries.length} ${entries === report.violations ? 'violation(s)' : "finding(s) of DolphinScheduler's own routine"} ===`,
  );
  lines.push(
    `reproduce: node --import tsx bin/chaos.ts --store ${report.dialect} --runs 1 --seed ${report.seed} --verbose`,
  );
  lines.push(`fault kinds: ${dsFaultKindsOf(report.plan).join(', ')}`);
  lines.push(formatDsPlan(report.plan, report.hosts));
  lines.push('  as it happened:');
  for (const e of report.events) lines.push(`    ${e.t >= 0 ? '+' : ''}${e.t} ms ${e.what}`);
  lines.push(`  invocations: ${JSON.stringify(report.invocations)}`);
  lines.push(`  faults applied: ${JSON.stringify(report.faults)}`);
  lines.push(`  function log messages: ${JSON.stringify(report.logMessages)}`);
  lines.push('  entries:');
  const shown = entries.slice(0, 40);
  for (const v of shown) {
    lines.push(`    - [${v.invariant}] ${v.subject}`);
    lines.push(`        ${v.detail}`);
  }
  if (entries.length > shown.length) lines.push(`    ... and ${entries.length - shown.length} more`);
  for (const [subject, diag] of Object.entries(report.diagnostics)) {
    lines.push(`  ${subject}:`);
    for (const line of diag) lines.push(`    ${line}`);
  }
  if (verbose) {
    lines.push('  last log lines:');
    for (const line of report.logTail.slice(-80)) lines.push(`    ${line}`);
  }
  return lines.join('\n');
}
