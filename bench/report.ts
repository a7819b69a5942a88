// The benchmark's outputs: the JSON document, a plain-text table, and an HTML page with two inline SVG
// charts (detection delay distribution, throughput comparison). No network, no dependencies.
import { type Cores, describeCores } from './cores.ts';
import type { DetectionResult } from './detection.ts';
import { dsCharts, formatDsText } from './dolphinscheduler/report.ts';
import type { DolphinSchedulerResults } from './dolphinscheduler/run.ts';
import { detectionChart, escapeHtml, groupedBarChart, type TargetCheck, table } from './format.ts';

import type { ScaleResult } from './scale.ts';
import type { FloorConfig, ThroughputResult } from './throughput.ts';

export interface BenchResults {
  mode: 'full' | 'quick';
  startedAt: string;
  durationSeconds: number;
  machine: {
    cpus: number;
    model: string;
    memoryGb: number;
    platform: string;
    loadAverage: number[];
    /** DynamoDB Local on cores of its own (bench/cores.ts), or why not. Older results have none. */
    cores?: Cores;
  };
  commit: string;
  /** Uncommitted changes in the working tree when it ran. */
  dirty: boolean;
  node: string;
  settings: { failoverBatchSize: number; failoverConcurrency: number };
  detection: Omit<DetectionResult, 'samples'> & { samples?: DetectionResult['samples'] };
  throughput: ThroughputResult[];
  floorSearch: Array<{ latencyMs: number; instances: number; results: FloorConfig[] }>;
  scale: ScaleResult;
  cost: {
    writeUnitsPer1000: number;
    sqsRequestsPer1000: number;
    dynamodbRequestsPer1000: number;
    /** Same figures for the alternatives, by the same rules. */
    floorWriteUnitsPer1000: number;
    baselineWriteUnitsPer1000: number;
    basis: {
      instances: number;
      dynamodbOperations: Record<string, number>;
      itemsWritten: Record<string, number>;
      sqsOperations: Record<string, number>;
      itemBytes: { instanceAfterUpdate: number; command: number };
    };
  };
  /** The DolphinScheduler part (issue 16), when it ran. */
  dolphinscheduler?: DolphinSchedulerResults;
  targets: TargetCheck[];
}

/** How the cores were shared, for the heading line. */
function coresNote(r: BenchResults): string {
  return r.machine.cores === undefined ? '' : `; ${describeCores(r.machine.cores)}`;
}

export function formatText(r: BenchResults): string {
  const d = r.detection;
  const parts = [
    `zk-failover benchmark (${r.mode}) — ${r.startedAt}, ${r.durationSeconds} s, commit ${r.commit.slice(0, 10)}${r.dirty ? '+dirty' : ''}, node ${r.node}, ${r.machine.cpus} x ${r.machine.model}${coresNote(r)}`,
  ];
  // Only the phases that ran (`--only`).
  if (d.removals > 0) {
    parts.push(
      '',
      `Detection (${d.relayed}/${d.removals} removals relayed; delay from the raw watch seeing a removal to the request on the failover queue)`,
      table(
        ['', 'p50 ms', 'p99 ms', 'max ms'],
        [
          ['watcher, after the raw watch', String(d.p50Ms), String(d.p99Ms), String(d.maxMs)],
          ['raw watch, after the delete call', String(d.rawP50Ms), String(d.rawP99Ms), ''],
          ['end to end (delete -> queue)', '', String(d.endToEndP99Ms), ''],
        ],
      ),
    );
  }
  if (r.throughput.length > 0) {
    parts.push(
      '',
      `Throughput (instances/s; failover function at batch ${r.settings.failoverBatchSize} x ${r.settings.failoverConcurrency}; floor at the best searched batch x concurrency)`,
      table(
        [
          'N',
          'latency',
          'function',
          'floor',
          'contract floor',
          'floor cfg',
          'sequential',
          'vs floor',
          'vs contract floor',
          'vs sequential',
          'floor vs seq',
          'DDB cores fn/floor/seq',
          'DDB CPU µs/inst fn/floor/contract',
        ],
        r.throughput.map((t) => [
          String(t.instances),
          `${t.latencyMs} ms`,
          String(t.perSecond),
          String(t.floorPerSecond),
          String(t.contractFloorPerSecond),
          `${t.floorConfig.batchSize}x${t.floorConfig.concurrency}`,
          String(t.baselinePerSecond),
          t.vsFloor.toFixed(2),
          t.vsContractFloor.toFixed(2),
          `${t.vsBaseline.toFixed(1)}x`,
          `${t.floorVsBaseline.toFixed(1)}x`,
          `${t.dynamoCores.function}/${t.dynamoCores.floor}/${t.dynamoCores.baseline}`,
          `${t.dynamoCpuUsPerInstance.function}/${t.dynamoCpuUsPerInstance.floor}/${t.dynamoCpuUsPerInstance.contractFloor}`,
        ]),
      ),
    );
  }
  if (r.scale.instances > 0) {
    parts.push(
      '',
      'Scale (local runtime, SQS event source, continuations)',
      table(
        [
          'instances',
          'invocations',
          'seconds',
          'per s',
          'duplicates',
          'missing',
          'pending',
          'peak RSS MB',
          'live heap MB (first, last)',
        ],
        [
          [
            String(r.scale.instances),
            `${r.scale.invocations} (${r.scale.functionTimeoutMs / 1000} s timeout)`,
            String(r.scale.seconds),
            String(r.scale.perSecond),
            String(r.scale.duplicates),
            String(r.scale.missing),
            String(r.scale.check.pending),
            String(r.scale.peakRssMb),
            (r.scale.liveHeapAfterInvocationMb ?? []).length === 0
              ? '-'
              : `${r.scale.liveHeapAfterInvocationMb[0]}, ${r.scale.liveHeapAfterInvocationMb.at(-1)}`,
          ],
        ],
      ),
    );
  }
  if (r.throughput.length > 0) {
    parts.push(
      '',
      'Cost per 1,000 instances failed over (DynamoDB capacity rules; counted requests)',
      table(
        ['', 'write units', 'DynamoDB requests', 'SQS requests'],
        [
          [
            'failover function',
            String(r.cost.writeUnitsPer1000),
            String(r.cost.dynamodbRequestsPer1000),
            String(r.cost.sqsRequestsPer1000),
          ],
          ['floor (transactions only)', String(r.cost.floorWriteUnitsPer1000), '', ''],
          ['sequential (no transactions, no outbox)', String(r.cost.baselineWriteUnitsPer1000), '', ''],
        ],
      ),
    );
  }
  if (r.dolphinscheduler !== undefined) parts.push(...formatDsText(r.dolphinscheduler));
  parts.push(
    '',
    'Targets (DESIGN.md section 8; DS: issue 16)',
    table(
      ['target', 'wanted', 'measured', '', ''],
      r.targets.map((t) => [t.name, t.target, t.value, t.holds ? 'holds' : 'MISSED', t.note ?? '']),
    ),
  );
  return `${parts.join('\n')}\n`;
}

/** Grouped bars: sequential, failover function, floor, per (N, latency). */
function throughputChart(rows: ThroughputResult[]): string {
  return groupedBarChart({
    label: 'throughput comparison',
    bars: [
      { name: 'sequential', color: '#999' },
      { name: 'failover function', color: '#1f77b4' },
      { name: 'contract floor', color: '#98df8a' },
      { name: 'write floor', color: '#2ca02c' },
    ],
    groups: rows.map((r) => ({
      values: [r.baselinePerSecond, r.perSecond, r.contractFloorPerSecond, r.floorPerSecond],
      caption: `N=${r.instances}, ${r.latencyMs} ms`,
      note: `${r.vsFloor.toFixed(2)} of floor, ${r.vsBaseline.toFixed(1)}x seq.`,
    })),
    groupWidth: 190,
    legendStep: 140,
  });
}

export function formatHtml(r: BenchResults): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zk-failover benchmark</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:72em}pre{background:#f6f6f6;padding:1em;overflow:auto}</style>
</head><body>
<h1>zk-failover benchmark (${r.mode})</h1>
<p>${escapeHtml(r.startedAt)} · commit <code>${escapeHtml(r.commit)}</code>${r.dirty ? ' (with uncommitted changes)' : ''} · Node ${escapeHtml(r.node)} · ${r.machine.cpus} × ${escapeHtml(r.machine.model)}, ${r.machine.memoryGb} GB${escapeHtml(coresNote(r))}</p>
${
  r.detection.removals > 0
    ? `<h2>Detection delay</h2>
<p>Cumulative distribution over ${r.detection.relayed} removals: p50 ${r.detection.p50Ms} ms, p99 ${r.detection.p99Ms} ms after the raw watch (raw watch p99 ${r.detection.rawP99Ms} ms after the delete call).</p>
${detectionChart(r.detection)}`
    : ''
}
${r.throughput.length > 0 ? `<h2>Throughput</h2>\n${throughputChart(r.throughput)}` : ''}
${r.dolphinscheduler === undefined ? '' : dsCharts(r.dolphinscheduler)}
<h2>All figures</h2>
<pre>${escapeHtml(formatText(r))}</pre>
</body></html>
`;
}
