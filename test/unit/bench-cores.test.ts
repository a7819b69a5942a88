import { describe, expect, it } from 'vitest';
import { allowedCpus, parseCpuList, planSplit } from '../../bench/cores.ts';

describe('bench core split', () => {
  it('parses kernel CPU lists', () => {
    expect(parseCpuList('0-1')).toEqual([0, 1]);
    expect(parseCpuList('0,2-4,7\n')).toEqual([0, 2, 3, 4, 7]);
    expect(parseCpuList('5')).toEqual([5]);
    expect(() => parseCpuList('a-b')).toThrow(/not a CPU list/);
    expect(() => parseCpuList('3-1')).toThrow(/not a CPU list/);
  });

  it('gives DynamoDB Local the last allowed CPU and the clients the rest', () => {
    expect(planSplit([0, 1])).toEqual({ dynamoDbLocal: [1], clients: [0] });
    expect(planSplit([0, 2, 3, 4, 7])).toEqual({ dynamoDbLocal: [7], clients: [0, 2, 3, 4] });
  });

  it('does not split a single CPU', () => {
    expect(planSplit([3])).toBeUndefined();
    expect(planSplit([])).toBeUndefined();
  });

  it('reads this process’s allowed CPUs from /proc', () => {
    const cpus = allowedCpus();
    expect(cpus?.length).toBeGreaterThan(0);
  });
});
