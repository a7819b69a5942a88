// The DolphinScheduler part of the report: plain-text tables, and the HTML charts (throughput against
// DolphinScheduler's routine and the floors, live heap per scale invocation, detection to command rows).
import { detectionChart, escapeHtml, groupedBarChart, table } from '../format.ts';
import type { DolphinSchedulerResults } from './run.ts';

const fixed = (v: number, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : '-');

export function formatDsText(ds: DolphinSchedulerResults): string[] {
  const s = ds.settings;
  const added = (dialect: string, latencyMs: number) =>
    ds.roundTrips.find((r) => r.dialect === dialect && r.latencyMs === latencyMs)?.addedMs;
  const parts = [
    '',
    `DolphinScheduler's database (${ds.dialects.join(', ')}; DS ${ds.version}, times in ${ds.timeZone}; function at batch ${s.failoverBatchSize} x ${s.failoverConcurrency}, scan span ${s.scanSpan}, pool ${s.poolMax}; ${ds.cores}; ${ds.durationSeconds} s)`,
    '',
    'Throughput (instances/s; N executing instances of the dead master among 10 x N finished ones, no index on host; latency: simulated round trip, measured addition in brackets)',
    table(
      [
        'dialect',
        'N',
        'latency',
        'function',
        "DS's routine",
        'floor',
        'contract floor',
        'floor cfg',
        'vs routine',
        'vs floor',
        'vs contract floor',
        'floor vs routine',
        'routine on',
      ],
      ds.throughput.map((t) => [
        t.dialect,
        String(t.instances),
        `${t.latencyMs} ms (+${added(t.dialect, t.latencyMs) ?? '?'})`,
        String(t.perSecond),
        String(t.dsRoutinePerSecond),
        String(t.floorPerSecond),
        String(t.contractFloorPerSecond),
        `${t.floorConfig.batchSize}x${t.floorConfig.concurrency}`,
        `${fixed(t.vsDsRoutine, 1)}x`,
        fixed(t.vsFloor),
        fixed(t.vsContractFloor),
        `${fixed(t.floorVsDsRoutine, 1)}x`,
        String(t.dsRoutineSampled),
      ]),
    ),
    `Every run read back from the tables (${ds.checks.runs} runs): ${ds.checks.duplicates} duplicate, ${ds.checks.missing} missing command rows, ${ds.checks.leftovers} instances left on the dead host.`,
  ];
  if (ds.cost.length > 0) {
    parts.push(
      '',
      "Database cost per 1,000 instances (the database's own statistics; round trips through a counting proxy)",
      table(
        [
          'dialect',
          '',
          'statements',
          'round trips',
          'rows read',
          'rows updated',
          'rows inserted',
          'measured on',
        ],
        ds.cost.flatMap((c) =>
          (
            [
              ['function', c.function],
              ["DS's routine", c.dsRoutine],
            ] as const
          ).map(([who, f]) => [
            c.dialect,
            who,
            String(f.statementsPer1000),
            String(f.roundTripsPer1000),
            String(f.rowsReadPer1000),
            String(f.rowsUpdatedPer1000),
            String(f.rowsInsertedPer1000),
            `${f.instances} of ${f.tableRows} rows, ${f.basis.connections} conn.`,
          ]),
        ),
      ),
    );
  }
  if (ds.scale.length > 0) {
    parts.push(
      '',
      'Scale (one dead master; local runtime, SQS event source, continuations)',
      table(
        [
          'dialect',
          'instances',
          'finished',
          'index',
          'seconds',
          'per s',
          'invocations',
          'dup.',
          'missing',
          'left',
          'peak RSS MB',
          'live heap MB (first, last)',
        ],
        ds.scale.map((r) => [
          r.dialect,
          String(r.instances),
          String(r.finishedRows),
          r.indexed ? 'yes' : 'no',
          String(r.seconds),
          String(r.perSecond),
          `${r.invocations} (${r.functionTimeoutMs / 1000} s timeout)`,
          String(r.duplicates),
          String(r.missing),
          String(r.leftovers),
          String(r.peakRssMb),
          r.liveHeapAfterInvocationMb.length === 0
            ? '-'
            : `${r.liveHeapAfterInvocationMb[0]}, ${r.liveHeapAfterInvocationMb.at(-1)}`,
        ]),
      ),
    );
  }
  if (ds.sweep.length > 0) {
    parts.push(
      '',
      "One sweep's reads (DESIGN D5, the store's statements), each alone on the large table: the hosts of executing instances, the unowned ones",
      table(
        [
          'dialect',
          'table rows',
          'index',
          'when',
          'commands',
          'hosts ms',
          'hosts rows read',
          'unowned ms',
          'unowned rows read',
        ],
        ds.sweep.map((w) => [
          w.dialect,
          String(w.tableRows),
          w.indexed ? 'yes' : 'no',
          w.moment,
          String(w.commandRows),
          String(w.listing.ms),
          String(w.listing.counters.rowsRead),
          String(w.unowned.ms),
          String(w.unowned.counters.rowsRead),
        ]),
      ),
      `Index (the scale runs' "yes"): ${Object.entries(ds.hostIndex)
        .map(([dialect, ddl]) => `${dialect}: ${ddl}`)
        .join('; ')}`,
    );
  }
  const d = ds.detection;
  if (d.removals > 0) {
    parts.push(
      '',
      `Detection to command rows (${d.dialect}; ${d.relayed}/${d.removals} masters removed, ${d.instancesPerMaster} instances each; t_ds_command polled every ${d.pollMs} ms)`,
      table(
        ['', 'p50 ms', 'p99 ms', 'max ms'],
        [
          ['command rows, after the raw watch', String(d.p50Ms), String(d.p99Ms), String(d.maxMs)],
          ['raw watch, after the delete call', String(d.rawP50Ms), String(d.rawP99Ms), ''],
          ['end to end (delete -> command rows)', '', String(d.endToEndP99Ms), ''],
        ],
      ),
    );
  }
  return parts;
}

/** Grouped bars per (dialect, N, latency): DolphinScheduler's routine, function, contract floor, floor. */
function throughputChart(ds: DolphinSchedulerResults): string {
  return groupedBarChart({
    label: 'DolphinScheduler throughput comparison',
    bars: [
      { name: "DolphinScheduler's routine", color: '#999' },
      { name: 'failover function', color: '#1f77b4' },
      { name: 'contract floor', color: '#98df8a' },
      { name: 'write floor', color: '#2ca02c' },
    ],
    groups: ds.throughput.map((r) => ({
      values: [r.dsRoutinePerSecond, r.perSecond, r.contractFloorPerSecond, r.floorPerSecond],
      caption: `${r.dialect === 'postgresql' ? 'PG' : 'MariaDB'} N=${r.instances}, ${r.latencyMs} ms`,
      note: `${fixed(r.vsDsRoutine, 1)}x routine, ${fixed(r.vsFloor)} of floor`,
    })),
    groupWidth: 150,
    legendStep: 170,
  });
}

/** Live heap at the end of each scale invocation, one line per run (flat = nothing held per instance). */
function scaleChart(ds: DolphinSchedulerResults): string {
  const width = 640;
  const height = 280;
  const m = { left: 50, right: 20, top: 20, bottom: 40 };
  const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728'];
  const series = ds.scale.map((s, i) => ({
    name: `${s.dialect}${s.indexed ? ', indexed' : ''}: ${s.seconds} s, ${s.invocations} invocations`,
    color: colors[i % colors.length] as string,
    values: s.liveHeapAfterInvocationMb,
  }));
  const maxX = Math.max(2, ...series.map((s) => s.values.length));
  const maxY = Math.max(1, ...series.flatMap((s) => s.values)) * 1.2;
  const x = (i: number) => m.left + (i / (maxX - 1)) * (width - m.left - m.right);
  const y = (v: number) => height - m.bottom - (v / maxY) * (height - m.top - m.bottom);
  const lines = series.map(
    (s) =>
      `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`,
  );
  const ticks = [0, maxY / 2, maxY].map((v) => Math.round(v));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="live heap per scale invocation">
  <rect width="${width}" height="${height}" fill="white"/>
  <line x1="${m.left}" y1="${y(0)}" x2="${width - m.right}" y2="${y(0)}" stroke="#333"/>
  <line x1="${m.left}" y1="${y(0)}" x2="${m.left}" y2="${m.top}" stroke="#333"/>
  ${ticks.map((t) => `<text x="${m.left - 6}" y="${y(t) + 4}" font-size="11" text-anchor="end">${t}</text>`).join('')}
  ${lines.join('\n  ')}
  <text x="${(width + m.left) / 2}" y="${height - 8}" font-size="12" text-anchor="middle">invocation</text>
  <text x="14" y="${height / 2}" font-size="12" transform="rotate(-90 14 ${height / 2})" text-anchor="middle">live heap MB</text>
  ${series.map((s, i) => `<rect x="${m.left + 10}" y="${m.top + 4 + i * 16}" width="10" height="10" fill="${s.color}"/><text x="${m.left + 26}" y="${m.top + 13 + i * 16}" font-size="11">${escapeHtml(s.name)}</text>`).join('')}
</svg>`;
}

export function dsCharts(ds: DolphinSchedulerResults): string {
  const d = ds.detection;
  return `<h2>DolphinScheduler's database: throughput</h2>
<p>One dead master with N executing instances among 10 x N finished ones (no index on host), per dialect, plain and with a simulated round trip to the database.</p>
${throughputChart(ds)}
${
  ds.scale.length > 0
    ? `<h2>DolphinScheduler's database: scale</h2>
<p>Live heap at the end of each invocation (after a full collection), without and with the index on host.</p>
${scaleChart(ds)}`
    : ''
}
${
  d.removals > 0
    ? `<h2>DolphinScheduler's database: detection to command rows</h2>
<p>${escapeHtml(d.dialect)}, ${d.relayed} removals: p50 ${d.p50Ms} ms, p99 ${d.p99Ms} ms after the raw watch (raw watch p99 ${d.rawP99Ms} ms after the delete call).</p>
${detectionChart(
  { samples: d.samples.map((s) => ({ rawMs: s.rawMs, detectionMs: s.commandMs })) },
  'command rows committed, after the raw watch',
)}`
    : ''
}`;
}
