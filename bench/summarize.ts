// The median of several benchmark runs (the figures the issue notes and bench/README.md quote), per field,
// with the spread: each run's JSON (`--out DIR` of bench/run.ts) in, one table and one JSON out.
//
//   node --import tsx bench/summarize.ts [--json FILE] RUN.json RUN.json RUN.json
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { BenchResults } from './report.ts';
import { median, round } from './support.ts';

interface Figure {
  median: number;
  runs: number[];
}

export interface BenchSummary {
  runs: Array<{ file: string; startedAt: string; commit: string; dirty: boolean; loadAverage: number[] }>;
  /** The runs measured the DynamoDB part (not only `--only dolphinscheduler`). */
  dynamodb: boolean;
  detection: Record<'p50Ms' | 'p99Ms' | 'rawP99Ms', Figure>;
  throughput: Array<
    { instances: number; latencyMs: number } & Record<
      | 'perSecond'
      | 'baselinePerSecond'
      | 'floorPerSecond'
      | 'contractFloorPerSecond'
      | 'vsBaseline'
      | 'vsFloor',
      Figure
    > & { floorVsBaseline: Figure; contractFloorVsFloor: Figure; contractFloorVsBaseline: Figure }
  >;
  scale: Record<
    'seconds' | 'invocations' | 'duplicates' | 'missing' | 'peakRssMb' | 'firstLiveHeapMb' | 'lastLiveHeapMb',
    Figure
  >;
  cost: Record<'writeUnitsPer1000' | 'sqsRequestsPer1000', Figure>;
  /** The DolphinScheduler part, when the runs have it. */
  dolphinscheduler?: DsSummary;
}

export interface DsSummary {
  throughput: Array<
    { dialect: string; instances: number; latencyMs: number } & Record<
      | 'perSecond'
      | 'dsRoutinePerSecond'
      | 'floorPerSecond'
      | 'contractFloorPerSecond'
      | 'vsDsRoutine'
      | 'vsFloor'
      | 'vsContractFloor'
      | 'measuredRoundTripMs',
      Figure
    >
  >;
  scale: Array<
    { dialect: string; indexed: boolean } & Record<
      | 'seconds'
      | 'invocations'
      | 'duplicates'
      | 'missing'
      | 'peakRssMb'
      | 'firstLiveHeapMb'
      | 'lastLiveHeapMb',
      Figure
    >
  >;
  detection: Record<'p50Ms' | 'p99Ms' | 'rawP99Ms', Figure>;
  cost: Array<
    { dialect: string; who: 'function' | 'dsRoutine' } & Record<
      'statementsPer1000' | 'roundTripsPer1000' | 'rowsReadPer1000',
      Figure
    >
  >;
  sweep: Array<
    { dialect: string; indexed: boolean; moment: string } & Record<
      'listingMs' | 'listingRowsRead' | 'unownedMs' | 'unownedRowsRead',
      Figure
    >
  >;
}

const figure = (values: number[], digits = 2): Figure => ({
  median: round(median(values), digits),
  runs: values.map((v) => round(v, digits)),
});

export function summarize(files: string[]): BenchSummary {
  const results = files.map((file) => JSON.parse(readFileSync(file, 'utf8')) as BenchResults);
  const first = results[0];
  if (first === undefined) throw new Error('no result files given');
  const rowsOf = (r: BenchResults, instances: number, latencyMs: number) => {
    const row = r.throughput.find((t) => t.instances === instances && t.latencyMs === latencyMs);
    if (row === undefined) throw new Error(`a run has no throughput row N=${instances}, ${latencyMs} ms`);
    return row;
  };
  /** One figure across the runs. */
  const across = (pick: (r: BenchResults) => number, digits?: number) => figure(results.map(pick), digits);
  return {
    runs: results.map((r, i) => ({
      file: files[i] ?? '',
      startedAt: r.startedAt,
      commit: r.commit,
      dirty: r.dirty,
      loadAverage: r.machine.loadAverage,
    })),
    dynamodb:
      first.throughput.length > 0 || first.scale.instances > 0 || (first.detection.samples?.length ?? 0) > 0,
    detection: {
      p50Ms: across((r) => r.detection.p50Ms, 1),
      p99Ms: across((r) => r.detection.p99Ms, 1),
      rawP99Ms: across((r) => r.detection.rawP99Ms, 1),
    },
    throughput: first.throughput.map(({ instances, latencyMs }) => {
      const rows = results.map((r) => rowsOf(r, instances, latencyMs));
      const pick = (f: (t: (typeof rows)[number]) => number, digits = 2) => figure(rows.map(f), digits);
      return {
        instances,
        latencyMs,
        perSecond: pick((t) => t.perSecond, 0),
        baselinePerSecond: pick((t) => t.baselinePerSecond, 1),
        floorPerSecond: pick((t) => t.floorPerSecond, 0),
        contractFloorPerSecond: pick((t) => t.contractFloorPerSecond ?? Number.NaN, 0),
        vsBaseline: pick((t) => t.vsBaseline),
        vsFloor: pick((t) => t.vsFloor),
        floorVsBaseline: pick((t) => t.floorPerSecond / t.baselinePerSecond),
        contractFloorVsFloor: pick((t) => (t.contractFloorPerSecond ?? Number.NaN) / t.floorPerSecond),
        contractFloorVsBaseline: pick((t) => (t.contractFloorPerSecond ?? Number.NaN) / t.baselinePerSecond),
      };
    }),
    scale: {
      seconds: across((r) => r.scale.seconds, 1),
      invocations: across((r) => r.scale.invocations, 0),
      duplicates: across((r) => r.scale.duplicates, 0),
      missing: across((r) => r.scale.missing, 0),
      peakRssMb: across((r) => r.scale.peakRssMb, 1),
      firstLiveHeapMb: across((r) => r.scale.liveHeapAfterInvocationMb?.[0] ?? Number.NaN, 1),
      lastLiveHeapMb: across((r) => r.scale.liveHeapAfterInvocationMb?.at(-1) ?? Number.NaN, 1),
    },
    cost: {
      writeUnitsPer1000: across((r) => r.cost.writeUnitsPer1000, 1),
      sqsRequestsPer1000: across((r) => r.cost.sqsRequestsPer1000, 1),
    },
    ...(first.dolphinscheduler === undefined ? {} : { dolphinscheduler: summarizeDs(results) }),
  };
}

function summarizeDs(results: BenchResults[]): DsSummary {
  const parts = results.map((r) => {
    if (r.dolphinscheduler === undefined) throw new Error('a run has no dolphinscheduler section');
    return r.dolphinscheduler;
  });
  const first = parts[0] as NonNullable<BenchResults['dolphinscheduler']>;
  /** The row of every run that matches `key`, or an error naming what is missing. */
  const each = <T>(list: (p: (typeof parts)[number]) => T[], match: (row: T) => boolean, what: string) =>
    parts.map((p) => {
      const row = list(p).find(match);
      if (row === undefined) throw new Error(`a run has no dolphinscheduler ${what}`);
      return row;
    });
  const pick = <T>(rows: T[], f: (row: T) => number, digits = 2) => figure(rows.map(f), digits);
  return {
    throughput: first.throughput.map(({ dialect, instances, latencyMs }) => {
      const rows = each(
        (p) => p.throughput,
        (t) => t.dialect === dialect && t.instances === instances && t.latencyMs === latencyMs,
        `throughput row ${dialect} N=${instances}, ${latencyMs} ms`,
      );
      return {
        dialect,
        instances,
        latencyMs,
        perSecond: pick(rows, (t) => t.perSecond, 0),
        dsRoutinePerSecond: pick(rows, (t) => t.dsRoutinePerSecond, 1),
        floorPerSecond: pick(rows, (t) => t.floorPerSecond, 0),
        contractFloorPerSecond: pick(rows, (t) => t.contractFloorPerSecond, 0),
        vsDsRoutine: pick(rows, (t) => t.vsDsRoutine, 1),
        vsFloor: pick(rows, (t) => t.vsFloor),
        vsContractFloor: pick(rows, (t) => t.vsContractFloor),
        measuredRoundTripMs: pick(rows, (t) => t.measuredRoundTripMs),
      };
    }),
    scale: first.scale.map(({ dialect, indexed }) => {
      const rows = each(
        (p) => p.scale,
        (x) => x.dialect === dialect && x.indexed === indexed,
        `scale run ${dialect}${indexed ? ' indexed' : ''}`,
      );
      return {
        dialect,
        indexed,
        seconds: pick(rows, (x) => x.seconds, 1),
        invocations: pick(rows, (x) => x.invocations, 0),
        duplicates: pick(rows, (x) => x.duplicates, 0),
        missing: pick(rows, (x) => x.missing, 0),
        peakRssMb: pick(rows, (x) => x.peakRssMb, 1),
        firstLiveHeapMb: pick(rows, (x) => x.liveHeapAfterInvocationMb[0] ?? Number.NaN, 1),
        lastLiveHeapMb: pick(rows, (x) => x.liveHeapAfterInvocationMb.at(-1) ?? Number.NaN, 1),
      };
    }),
    detection: {
      p50Ms: pick(parts, (p) => p.detection.p50Ms, 1),
      p99Ms: pick(parts, (p) => p.detection.p99Ms, 1),
      rawP99Ms: pick(parts, (p) => p.detection.rawP99Ms, 1),
    },
    cost: first.cost.flatMap(({ dialect }) => {
      const rows = each(
        (p) => p.cost,
        (c) => c.dialect === dialect,
        `cost of ${dialect}`,
      );
      return (['function', 'dsRoutine'] as const).map((who) => ({
        dialect,
        who,
        statementsPer1000: pick(rows, (c) => c[who].statementsPer1000, 1),
        roundTripsPer1000: pick(rows, (c) => c[who].roundTripsPer1000, 1),
        rowsReadPer1000: pick(rows, (c) => c[who].rowsReadPer1000, 0),
      }));
    }),
    sweep: first.sweep.map(({ dialect, indexed, moment }) => {
      const rows = each(
        (p) => p.sweep,
        (w) => w.dialect === dialect && w.indexed === indexed && w.moment === moment,
        `sweep ${dialect}${indexed ? ' indexed' : ''} ${moment}`,
      );
      return {
        dialect,
        indexed,
        moment,
        listingMs: pick(rows, (w) => w.listing.ms, 1),
        listingRowsRead: pick(rows, (w) => w.listing.counters.rowsRead, 0),
        unownedMs: pick(rows, (w) => w.unowned.ms, 1),
        unownedRowsRead: pick(rows, (w) => w.unowned.counters.rowsRead, 0),
      };
    }),
  };
}

/** Markdown, for bench/README.md: each figure as `median (run, run, run)`. */
export function formatSummary(s: BenchSummary): string {
  const f = (x: Figure, suffix = '') => `${x.median}${suffix} (${x.runs.join(', ')})`;
  const lines = [
    `Median of ${s.runs.length} runs (each run's value in brackets); commits ${[...new Set(s.runs.map((r) => r.commit.slice(0, 10) + (r.dirty ? '+dirty' : '')))].join(', ')}.`,
    // The DynamoDB part, unless the runs were `--only dolphinscheduler`.
    ...(s.dynamodb ? dynamoDbLines(s, f) : []),
  ];
  return [...lines, ...(s.dolphinscheduler ? dsLines(s.dolphinscheduler, f) : [])].join('\n');
}

type FormatFigure = (x: Figure, suffix?: string) => string;

function dynamoDbLines(s: BenchSummary, f: FormatFigure): string[] {
  return [
    '',
    '| figure | median (runs) |',
    '| --- | --- |',
    `| detection p50, after the raw watch | ${f(s.detection.p50Ms, ' ms')} |`,
    `| detection p99, after the raw watch | ${f(s.detection.p99Ms, ' ms')} |`,
    `| raw watch p99, after the delete | ${f(s.detection.rawP99Ms, ' ms')} |`,
    '',
    '| N | latency | function /s | floor /s | contract floor /s | sequential /s | vs floor | vs sequential | floor vs sequential | contract floor vs floor | contract floor vs sequential |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...s.throughput.map(
      (t) =>
        `| ${t.instances} | ${t.latencyMs} ms | ${f(t.perSecond)} | ${f(t.floorPerSecond)} | ${f(t.contractFloorPerSecond)} | ${f(t.baselinePerSecond)} | ${f(t.vsFloor)} | ${f(t.vsBaseline, 'x')} | ${f(t.floorVsBaseline, 'x')} | ${f(t.contractFloorVsFloor)} | ${f(t.contractFloorVsBaseline, 'x')} |`,
    ),
    '',
    '| scale | median (runs) |',
    '| --- | --- |',
    `| seconds | ${f(s.scale.seconds)} |`,
    `| invocations | ${f(s.scale.invocations)} |`,
    `| duplicates / missing | ${f(s.scale.duplicates)} / ${f(s.scale.missing)} |`,
    `| peak RSS | ${f(s.scale.peakRssMb, ' MB')} |`,
    `| live heap after the first / last invocation | ${f(s.scale.firstLiveHeapMb, ' MB')} / ${f(s.scale.lastLiveHeapMb, ' MB')} |`,
    `| write units per 1,000 | ${f(s.cost.writeUnitsPer1000)} |`,
    `| SQS requests per 1,000 | ${f(s.cost.sqsRequestsPer1000)} |`,
  ];
}

function dsLines(ds: DsSummary, f: FormatFigure): string[] {
  const dialect = (d: string) => (d === 'postgresql' ? 'PostgreSQL' : 'MariaDB');
  return [
    '',
    "DolphinScheduler's database:",
    '',
    "| dialect | N | latency (measured) | function /s | DS's routine /s | floor /s | contract floor /s | vs routine | vs floor | vs contract floor |",
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...ds.throughput.map(
      (t) =>
        `| ${dialect(t.dialect)} | ${t.instances} | ${t.latencyMs} ms (+${t.measuredRoundTripMs.median} ms) | ${f(t.perSecond)} | ${f(t.dsRoutinePerSecond)} | ${f(t.floorPerSecond)} | ${f(t.contractFloorPerSecond)} | ${f(t.vsDsRoutine, 'x')} | ${f(t.vsFloor)} | ${f(t.vsContractFloor)} |`,
    ),
    '',
    '| scale | index | seconds | invocations | duplicates / missing | peak RSS | live heap first / last |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...ds.scale.map(
      (x) =>
        `| ${dialect(x.dialect)} | ${x.indexed ? 'yes' : 'no'} | ${f(x.seconds)} | ${f(x.invocations)} | ${f(x.duplicates)} / ${f(x.missing)} | ${f(x.peakRssMb, ' MB')} | ${f(x.firstLiveHeapMb, ' MB')} / ${f(x.lastLiveHeapMb, ' MB')} |`,
    ),
    '',
    '| per 1,000 instances | statements | round trips | rows read |',
    '| --- | --- | --- | --- |',
    ...ds.cost.map(
      (c) =>
        `| ${dialect(c.dialect)}, ${c.who === 'function' ? 'function' : "DS's routine"} | ${f(c.statementsPer1000)} | ${f(c.roundTripsPer1000)} | ${f(c.rowsReadPer1000)} |`,
    ),
    '',
    '| sweep | index | when | hosts ms | hosts rows read | unowned ms | unowned rows read |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...ds.sweep.map(
      (w) =>
        `| ${dialect(w.dialect)} | ${w.indexed ? 'yes' : 'no'} | ${w.moment} | ${f(w.listingMs)} | ${f(w.listingRowsRead)} | ${f(w.unownedMs)} | ${f(w.unownedRowsRead)} |`,
    ),
    '',
    '| detection to command rows | median (runs) |',
    '| --- | --- |',
    `| p50, after the raw watch | ${f(ds.detection.p50Ms, ' ms')} |`,
    `| p99, after the raw watch | ${f(ds.detection.p99Ms, ' ms')} |`,
    `| raw watch p99, after the delete | ${f(ds.detection.rawP99Ms, ' ms')} |`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    options: { json: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals.length === 0) {
    console.error('usage: node --import tsx bench/summarize.ts [--json FILE] RUN.json [RUN.json ...]');
    process.exit(2);
  }
  const summary = summarize(positionals);
  if (values.json) writeFileSync(values.json, `${JSON.stringify(summary, null, 2)}\n`);
  console.log(formatSummary(summary));
}
