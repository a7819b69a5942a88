// The chaos suite on a fixed set of seeds (a few minutes): together they exercise every fault kind at least
// three times. The full randomized suite runs on demand: `npm run chaos -- --runs 200` (docs/chaos.md).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChaosEnvironment } from './environment.ts';
import { formatViolationReport } from './report.ts';
import { executeRun } from './run.ts';
import { allFaultKinds, faultKindsOf, planRun } from './scenario.ts';

/** Chosen by a greedy cover of seeds 1-3000 (each fault kind three times), plus a few busy ones. */
const ciSeeds = [1613, 1094, 1969, 2513, 1182, 26, 1550, 2900, 22, 115];

let env: ChaosEnvironment | undefined;

beforeAll(async () => {
  env = await ChaosEnvironment.start();
}, 180_000);

afterAll(async () => {
  await env?.stop();
}, 120_000);

describe('chaos on fixed seeds', () => {
  it('the seeds cover every fault kind, and plans name no other kind', () => {
    const kinds = ciSeeds.flatMap((seed) => faultKindsOf(planRun(seed)));
    const known: ReadonlySet<string> = new Set(allFaultKinds);
    expect(allFaultKinds.filter((kind) => !kinds.includes(kind))).toEqual([]);
    expect(kinds.filter((kind) => !known.has(kind))).toEqual([]);
  });

  it('a plan is a pure function of its seed', () => {
    expect(planRun(1613)).toEqual(planRun(1613));
    expect(planRun(1613)).not.toEqual(planRun(1614));
  });

  it.each(ciSeeds.map((seed, slot) => [seed, slot] as const))(
    'seed %i: every invariant holds',
    async (seed, slot) => {
      if (env === undefined) throw new Error('the chaos environment did not start');
      const report = await executeRun(env, planRun(seed), { slot: 10_000 + slot });
      expect(report.violations, formatViolationReport(report, true)).toEqual([]);
      expect(report.summary?.eligible ?? 0).toBeGreaterThan(0);
    },
    300_000,
  );
});
