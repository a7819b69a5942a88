// The benchmark harness in its quick mode (what CI runs): it completes, and its JSON holds every figure the
// issues ask for (6: DynamoDB; 16: DolphinScheduler's database, both dialects), with no duplicate and no
// missing command in any run. Timings are not asserted: the machine is shared.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatSummary, summarize } from '../../bench/summarize.ts';

const root = join(import.meta.dirname, '..', '..');
const out = mkdtempSync(join(tmpdir(), 'zkf-bench-'));

afterAll(() => {
  rmSync(out, { recursive: true, force: true });
});

function runQuickBench(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', join(root, 'bench', 'run.ts'), '--quick', '--out', out],
      { cwd: root, timeout: 420_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error ? (child.exitCode ?? 1) : 0, stdout, stderr }),
    );
  });
}

const finiteNumber = expect.any(Number);

describe('bench --quick', () => {
  it('runs every phase and writes the results with all required fields', async () => {
    // Act
    const run = await runQuickBench();

    // Assert
    expect(run.code, run.stderr.slice(-4_000)).toBe(0);
    expect(run.stdout).toContain('Throughput');
    const results = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as Record<string, unknown>;
    expect(results).toMatchObject({
      mode: 'quick',
      commit: expect.stringMatching(/^[0-9a-f]{40}$/),
      node: expect.stringMatching(/^v22\./),
      machine: {
        cpus: finiteNumber,
        model: expect.any(String),
        memoryGb: finiteNumber,
        // DynamoDB Local on a core of its own where there are two or more (bench/cores.ts).
        cores:
          os.availableParallelism() >= 2
            ? { dynamoDbLocal: [expect.any(Number)], clients: expect.arrayContaining([expect.any(Number)]) }
            : { shared: expect.any(String) },
      },
      detection: { p50Ms: finiteNumber, p99Ms: finiteNumber, rawP99Ms: finiteNumber },
      scale: {
        instances: finiteNumber,
        invocations: finiteNumber,
        seconds: finiteNumber,
        duplicates: 0,
        missing: 0,
        peakRssMb: finiteNumber,
      },
      cost: { writeUnitsPer1000: finiteNumber, sqsRequestsPer1000: finiteNumber },
    });
    const detection = results.detection as { removals: number; relayed: number };
    expect(detection.relayed).toBe(detection.removals);
    const throughput = results.throughput as Array<Record<string, number>>;
    expect(new Set(throughput.map((t) => t.latencyMs))).toEqual(new Set([0, 10]));
    for (const t of throughput) {
      expect(t).toMatchObject({
        instances: finiteNumber,
        latencyMs: finiteNumber,
        perSecond: finiteNumber,
        baselinePerSecond: finiteNumber,
        floorPerSecond: finiteNumber,
        vsBaseline: finiteNumber,
        vsFloor: finiteNumber,
        contractFloorPerSecond: finiteNumber,
        vsContractFloor: finiteNumber,
        floorVsBaseline: finiteNumber,
        dynamoCores: { function: finiteNumber, floor: finiteNumber, baseline: finiteNumber },
      });
    }
    // The median summary of runs (here one, twice) carries each run's figures.
    const file = join(out, 'latest.json');
    const summary = summarize([file, file]);
    expect(summary.throughput.map((t) => t.perSecond.runs)).toEqual(
      throughput.map((t) => [t.perSecond, t.perSecond]),
    );
    expect(summary.scale.duplicates.median).toBe((results.scale as { duplicates: number }).duplicates);
    expect(formatSummary(summary)).toContain('| detection p99, after the raw watch |');
    const scale = results.scale as {
      invocations: number;
      timedOut: number;
      liveHeapAfterInvocationMb: number[];
    };
    expect(scale.invocations).toBeGreaterThan(1);
    // Every invocation that ended reported its live heap (after a full collection), a positive size.
    expect(scale.liveHeapAfterInvocationMb).toHaveLength(scale.invocations - scale.timedOut);
    expect(scale.liveHeapAfterInvocationMb.every((mb) => mb > 0)).toBe(true);
    const html = readFileSync(join(out, 'latest.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain("DolphinScheduler's database: throughput");
  }, 450_000);

  it('covers DolphinScheduler on both dialects: every figure present, every run read back exactly once', () => {
    // Arrange: the JSON the run above wrote.
    const results = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as {
      dolphinscheduler: Record<string, unknown> & {
        throughput: Array<Record<string, unknown>>;
        scale: Array<Record<string, unknown> & { liveHeapAfterInvocationMb: number[] }>;
        cost: Array<Record<string, unknown>>;
        sweep: Array<Record<string, unknown>>;
      };
      targets: Array<{ name: string; holds: boolean }>;
    };
    const ds = results.dolphinscheduler;

    // Assert: throughput per dialect, plain and with the simulated round trip.
    expect(ds).toMatchObject({
      dialects: ['postgresql', 'mysql'],
      // Every throughput run (function, DolphinScheduler's routine, floors) read back from the tables.
      checks: { runs: expect.any(Number), duplicates: 0, missing: 0, leftovers: 0 },
      detection: {
        p50Ms: finiteNumber,
        p99Ms: finiteNumber,
        rawP99Ms: finiteNumber,
        removals: finiteNumber,
        relayed: finiteNumber,
      },
    });
    expect((ds.checks as { runs: number }).runs).toBeGreaterThan(0);
    const detection = ds.detection as { removals: number; relayed: number };
    expect(detection.relayed).toBe(detection.removals);
    expect(new Set(ds.throughput.map((t) => `${t.dialect} ${t.latencyMs}`))).toEqual(
      new Set(['postgresql 0', 'postgresql 1', 'mysql 0', 'mysql 1']),
    );
    for (const t of ds.throughput) {
      expect(t).toMatchObject({
        dialect: expect.stringMatching(/^(postgresql|mysql)$/),
        instances: finiteNumber,
        latencyMs: finiteNumber,
        perSecond: finiteNumber,
        dsRoutinePerSecond: finiteNumber,
        floorPerSecond: finiteNumber,
        contractFloorPerSecond: finiteNumber,
        vsDsRoutine: finiteNumber,
        vsFloor: finiteNumber,
        measuredRoundTripMs: finiteNumber,
        duplicates: 0,
        missing: 0,
        leftovers: 0,
      });
    }
    // Scale: without and with the index, on each dialect, through several invocations; checked from the tables.
    expect(new Set(ds.scale.map((s) => `${s.dialect} ${s.indexed}`))).toEqual(
      new Set(['postgresql false', 'postgresql true', 'mysql false', 'mysql true']),
    );
    for (const s of ds.scale) {
      expect(s).toMatchObject({
        instances: finiteNumber,
        finishedRows: finiteNumber,
        duplicates: 0,
        missing: 0,
        leftovers: 0,
        seconds: finiteNumber,
        peakRssMb: finiteNumber,
      });
      const invocations = s.invocations as number;
      expect(invocations).toBeGreaterThan(1);
      expect(s.liveHeapAfterInvocationMb).toHaveLength(invocations - (s.timedOut as number));
    }
    // Database cost per 1,000 instances, for the function and DolphinScheduler's routine; the sweep's listing.
    expect(ds.cost.map((c) => c.dialect)).toEqual(['postgresql', 'mysql']);
    for (const c of ds.cost) {
      for (const who of ['function', 'dsRoutine']) {
        expect(c[who]).toMatchObject({
          statementsPer1000: finiteNumber,
          roundTripsPer1000: finiteNumber,
          rowsReadPer1000: finiteNumber,
        });
        expect((c[who] as { statementsPer1000: number }).statementsPer1000).toBeGreaterThan(0);
      }
    }
    // Before and after each scale run: the hosts listing and the unowned instances, with their cost.
    expect(ds.sweep).toHaveLength(8);
    for (const w of ds.sweep) {
      expect(w).toMatchObject({
        listing: { ms: finiteNumber, counters: { rowsRead: finiteNumber } },
        unowned: { ms: finiteNumber, counters: { rowsRead: finiteNumber } },
      });
    }
    // The targets are in the targets list, with the correctness ones holding.
    const names = results.targets.map((t) => t.name);
    expect(names.some((n) => n.startsWith('DS postgresql N='))).toBe(true);
    expect(names.some((n) => n.startsWith('DS mysql N='))).toBe(true);
    // Memory is judged for every scale run: a run too short to tell says so rather than drop the target.
    expect(names.filter((n) => n.startsWith('DS ') && n.includes('live heap'))).toHaveLength(ds.scale.length);
    expect(
      results.targets.filter((t) => t.name.includes('duplicates / missing') || t.name.includes('read back')),
    ).toSatisfy((list: Array<{ holds: boolean }>) => list.length > 0 && list.every((t) => t.holds));
    const summary = summarize([join(out, 'latest.json')]);
    expect(summary.dolphinscheduler?.throughput).toHaveLength(ds.throughput.length);
  });
});
