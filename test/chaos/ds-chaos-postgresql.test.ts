// The chaos suite on DolphinScheduler's database, postgresql dialect, in CI (cases: ds-chaos-cases.ts).
import { describe, expect, it } from 'vitest';
import { coverageOf, defineDsChaosTests } from './ds-chaos-cases.ts';
import { planDsRun } from './ds-scenario.ts';

/** A greedy cover of seeds 1-3000 (every fault kind at least once), weighted towards short plans. */
const ciSeeds = [1112, 512, 2392, 788, 756];

describe('the fixed seeds', () => {
  it('cover every fault kind of the DolphinScheduler plans, and name no other', () => {
    expect(coverageOf(ciSeeds)).toEqual({ missing: [], unknown: [] });
  });

  it('a plan is a pure function of its seed', () => {
    expect(planDsRun(1112)).toEqual(planDsRun(1112));
    expect(planDsRun(1112)).not.toEqual(planDsRun(1113));
  });
});

defineDsChaosTests('postgresql', ciSeeds);
