import { describe, expect, it } from 'vitest';
import type { MirrorRow } from '../../lib/registry/membership.ts';
import { orphanRequest } from '../../lib/sweep/sweep.ts';

const row = (overrides: Partial<MirrorRow>): MirrorRow => ({
  id: 'master/10.0.0.1:5678',
  nodeType: 'master',
  host: '10.0.0.1:5678',
  czxid: '200',
  startupTime: 2_000,
  alive: true,
  seenAt: 0,
  ...overrides,
});

describe('orphanRequest', () => {
  const orphan = { nodeType: 'master', host: '10.0.0.1:5678' } as const;

  it('names the last incarnation of a server that is not live', () => {
    expect(orphanRequest(orphan, row({ alive: false }), 9_000)).toEqual({
      kind: 'Orphaned',
      nodeType: 'master',
      host: '10.0.0.1:5678',
      czxid: '200',
      startupTime: 2_000,
      observedAt: 9_000,
      source: 'sweep',
    });
  });

  it('names the incarnation before the restart of a live server, never the live one', () => {
    expect(
      orphanRequest(orphan, row({ previousCzxid: '100', previousStartupTime: 1_000 }), 9_000),
    ).toMatchObject({
      czxid: '100',
      startupTime: 1_000,
    });
    expect(orphanRequest(orphan, row({}), 9_000)).toMatchObject({ czxid: null, startupTime: null });
  });

  it('has no incarnation for a host the mirror never saw', () => {
    expect(orphanRequest(orphan, undefined, 9_000)).toMatchObject({ czxid: null, startupTime: null });
  });
});
