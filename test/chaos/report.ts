// Human-readable output of chaos runs: one line per run, and for a violation everything needed to
// reproduce and understand it (seed, plan, the fault schedule as planned and as it happened, the diff).
import type { ServiceFaults } from './fault-proxy.ts';
import type { RunReport } from './run.ts';
import { faultKindsOf, type RunPlan } from './scenario.ts';

function faults(f: ServiceFaults | null): string {
  if (f === null) return 'none';
  const kinds = Object.entries(f.kinds)
    .map(([k, w]) => `${k}:${w}`)
    .join(' ');
  return `${Math.round(f.rate * 100)}% of calls (${kinds}; hold ${f.holdMs[0]}-${f.holdMs[1]} ms)`;
}

export function formatPlan(plan: RunPlan, hosts: Readonly<Record<string, string>>): string {
  const lines: string[] = [];
  lines.push(`  zookeeper: ${plan.ensemble ? '3-node ensemble' : 'standalone'}`);
  lines.push(
    `  servers: ${plan.servers.map((s) => `${s.name}=${hosts[s.name] ?? '?'} ${s.nodeType} ${s.fate}`).join(', ')}`,
  );
  const instances = plan.items.filter((i) => i.type === 'instance').length;
  lines.push(
    `  workload: ${instances} process instances, ${plan.items.length - instances} task instances, ` +
      `${plan.staleHosts} stale host(s)`,
  );
  lines.push(
    plan.faulty === null
      ? '  faulty runtime: none'
      : `  faulty runtime: ZKF_FAILPOINTS=${plan.faulty.failpoints} lease ${plan.faulty.leaseMs} ms, ` +
          `batch ${plan.faulty.batchSize} x ${plan.faulty.concurrency}, timeout ${plan.faulty.timeoutMs} ms, ` +
          `margin ${plan.faulty.deadlineMarginMs} ms, ${plan.faulty.eventSource ? 'consumes the queue' : 'direct invocations only'}`,
  );
  lines.push(`  dynamodb faults: ${faults(plan.proxy.dynamodb)}`);
  lines.push(`  sqs faults: ${faults(plan.proxy.sqs)}`);
  lines.push(`  fault schedule (${plan.chaosMs} ms):`);
  for (const action of plan.actions) {
    const { at, kind, ...rest } = action;
    lines.push(`    +${at} ms ${kind} ${JSON.stringify(rest)}`);
  }
  return lines.join('\n');
}

export function formatRunLine(report: RunReport, index: number, total: number): string {
  const s = report.summary;
  const seconds = ((report.durations.total ?? 0) / 1000).toFixed(1);
  const status = report.violations.length === 0 ? 'ok' : `VIOLATIONS ${report.violations.length}`;
  const proxyFaults = (p: RunReport['proxy']['dynamodb']) =>
    Object.values(p.faults).reduce((sum, n) => sum + n, 0);
  const crashes =
    (report.invocations.healthy?.crash ?? 0) +
    (report.invocations.faulty?.crash ?? 0) +
    (report.invocations.healthy?.timeout ?? 0) +
    (report.invocations.faulty?.timeout ?? 0);
  const parts = s
    ? [
        `eligible ${s.eligible}/${s.instances + s.tasks}`,
        `commands ${s.commandsWritten}`,
        `dup deliveries ${s.duplicateDeliveries}`,
      ]
    : [];
  parts.push(
    `faults ddb ${proxyFaults(report.proxy.dynamodb)} sqs ${proxyFaults(report.proxy.sqs)}`,
    `crashes ${crashes}`,
    `zombies ${
      (report.logMessages['lock lost mid-run; the newer holder continues'] ?? 0) +
      (report.logMessages['lock was taken over before release'] ?? 0)
    }`,
  );
  const d = report.durations;
  const phases = ['setup', 'chaos', 'settle', 'check', 'cleanup']
    .map((p) => `${p} ${((d[p] ?? 0) / 1000).toFixed(1)}`)
    .join(' ');
  return `run ${index + 1}/${total} seed ${report.seed} ${status} ${seconds}s (${phases}) [${parts.join(', ')}]`;
}

export function formatViolationReport(report: RunReport, verbose: boolean): string {
  const lines: string[] = [];
  lines.push(`=== seed ${report.seed}: ${report.violations.length} violation(s) ===`);
  lines.push(`reproduce: node --import tsx bin/chaos.ts --runs 1 --seed ${report.seed} --verbose`);
  lines.push(`fault kinds: ${faultKindsOf(report.plan).join(', ')}`);
  lines.push(formatPlan(report.plan, report.hosts));
  lines.push('  as it happened:');
  for (const e of report.events) lines.push(`    ${e.t >= 0 ? '+' : ''}${e.t} ms ${e.what}`);
  lines.push(`  proxy: dynamodb ${JSON.stringify(report.proxy.dynamodb)}`);
  lines.push(`  proxy: sqs ${JSON.stringify(report.proxy.sqs)}`);
  lines.push(`  invocations: ${JSON.stringify(report.invocations)}`);
  lines.push(`  function log messages: ${JSON.stringify(report.logMessages)}`);
  lines.push('  violations:');
  const shown = report.violations.slice(0, 40);
  for (const v of shown) {
    lines.push(`    - [${v.invariant}] ${v.subject}`);
    lines.push(`        ${v.detail}`);
  }
  if (report.violations.length > shown.length)
    lines.push(`    ... and ${report.violations.length - shown.length} more`);
  for (const [host, diag] of Object.entries(report.diagnostics)) {
    lines.push(`  ${host}:`);
    for (const line of diag) lines.push(`    ${line}`);
  }
  if (verbose) {
    lines.push('  last log lines:');
    for (const line of report.logTail.slice(-80)) lines.push(`    ${line}`);
  }
  return lines.join('\n');
}
