import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FailoverRequestQueue } from '../../lib/failover/ports.ts';
import type { FailoverRequestInput } from '../../lib/messages.ts';
import {
  compareZxid,
  listingCovers,
  type MembershipAction,
  type MembershipStore,
  type MirrorRow,
  type NodeObservation,
  type ParentListing,
  planAbsent,
  planPresent,
  planReconcile,
  type ServerObservation,
  seenAtRefreshMs,
  serversFromNodes,
} from '../../lib/registry/membership.ts';
import { MembershipRelay } from '../../lib/registry/relay.ts';

const now = 1_750_000_000_000;
const masters = '/ds/nodes/master';
const workers = '/ds/nodes/worker';

const node = (
  overrides: Partial<NodeObservation> & Pick<NodeObservation, 'host' | 'czxid'>,
): NodeObservation => ({
  path: `${overrides.parent ?? masters}/${overrides.host}`,
  parent: masters,
  nodeType: 'master',
  ephemeralOwner: 'a1',
  ctime: now - 1_000,
  startupTime: now - 5_000,
  startupTimeSource: 'heartbeat',
  ...overrides,
});

const server = (overrides: Partial<ServerObservation> = {}): ServerObservation => ({
  id: 'master/10.0.0.1:5678',
  nodeType: 'master',
  host: '10.0.0.1:5678',
  czxid: '100',
  ephemeralOwner: 'a1',
  startupTime: now - 5_000,
  startupTimeSource: 'heartbeat',
  anchor: masters,
  groups: [],
  ...overrides,
});

const row = (overrides: Partial<MirrorRow> = {}): MirrorRow => ({
  id: 'master/10.0.0.1:5678',
  nodeType: 'master',
  host: '10.0.0.1:5678',
  czxid: '100',
  startupTime: now - 5_000,
  startupTimeSource: 'heartbeat',
  alive: true,
  seenAt: now - 1_000,
  ephemeralOwner: 'a1',
  anchor: masters,
  groups: [],
  pending: new Map(),
  ...overrides,
});

const listing = (path: string, pzxid: string, names: string[] = []): ParentListing => ({
  path,
  exists: true,
  pzxid,
  cversion: names.length,
  names,
});

describe('serversFromNodes', () => {
  it('maps one node to one server with its incarnation', () => {
    const servers = serversFromNodes([node({ host: '10.0.0.1:5678', czxid: '100' })]);

    expect([...servers.values()]).toEqual([server()]);
  });

  it('makes one server of a ds-1.3 worker in several groups: oldest node of the newest session', () => {
    const worker = (group: string, czxid: string, owner: string, source: 'heartbeat' | 'ctime' = 'ctime') =>
      node({
        host: '10.0.0.2:1234',
        czxid,
        nodeType: 'worker',
        group,
        parent: `${workers}/${group}`,
        path: `${workers}/${group}/10.0.0.2:1234`,
        ephemeralOwner: owner,
        startupTime: source === 'heartbeat' ? now - 9_000 : now - 1_000,
        startupTimeSource: source,
      });

    const sameSession = serversFromNodes([
      worker('gpu', '20', 's1'),
      worker('default', '21', 's1', 'heartbeat'),
    ]);
    // A restart caught half way: the new session registered one group, the old one still holds another.
    const restarting = serversFromNodes([worker('gpu', '20', 's1'), worker('default', '30', 's2')]);

    expect(sameSession.get('worker/10.0.0.2:1234')).toMatchObject({
      czxid: '20',
      anchor: `${workers}/gpu`,
      groups: ['default', 'gpu'],
      startupTime: now - 9_000,
      startupTimeSource: 'heartbeat',
    });
    expect(restarting.get('worker/10.0.0.2:1234')).toMatchObject({
      czxid: '30',
      ephemeralOwner: 's2',
      groups: ['default'],
    });
  });
});

describe('planPresent', () => {
  it('registers a server the mirror does not know', () => {
    expect(planPresent(undefined, server(), now, 'watcher')).toEqual({ kind: 'register', server: server() });
  });

  it('does nothing for the recorded incarnation, except to refresh what improved', () => {
    expect(planPresent(row(), server(), now, 'watcher')).toBeNull();
    expect(planPresent(row({ startupTimeSource: 'ctime' }), server(), now, 'watcher')?.kind).toBe('refresh');
    expect(planPresent(row({ seenAt: now - seenAtRefreshMs }), server(), now, 'watcher')?.kind).toBe(
      'refresh',
    );
    expect(planPresent(row({ groups: ['a'] }), server(), now, 'watcher')?.kind).toBe('refresh');
  });

  it('records a restart (newer czxid, another session) and reports the removal of the old incarnation', () => {
    const restarted = server({ czxid: '200', ephemeralOwner: 'b2', startupTime: now });

    expect(planPresent(row(), restarted, now, 'watcher')).toEqual({
      kind: 'replace',
      row: row(),
      server: restarted,
      removal: {
        kind: 'NodeRemoved',
        nodeType: 'master',
        host: '10.0.0.1:5678',
        czxid: '100',
        startupTime: now - 5_000,
        observedAt: now,
        source: 'watcher',
      },
    });
  });

  it('records a return after a removal without a second request', () => {
    const returned = server({ czxid: '200', ephemeralOwner: 'b2' });

    expect(planPresent(row({ alive: false }), returned, now, 'watcher')).toMatchObject({
      kind: 'replace',
      removal: null,
    });
  });

  it('treats the same session as the same incarnation, even with a re-created node', () => {
    expect(planPresent(row(), server({ czxid: '150' }), now, 'watcher')).toBeNull();
  });

  it('ignores a stale listing and never revives a removed incarnation', () => {
    expect(planPresent(row({ czxid: '300' }), server({ ephemeralOwner: 'old' }), now, 'watcher')).toBeNull();
    expect(planPresent(row({ alive: false }), server(), now, 'watcher')).toBeNull();
  });
});

describe('planAbsent and listingCovers', () => {
  const covered = (r: MirrorRow, parents: ParentListing[]) =>
    listingCovers(r, new Map(parents.map((p) => [p.path, p])), () => undefined);

  it('removes an alive row only when the listing provably came after its creation', () => {
    expect(planAbsent(row(), true, now, 'sweep')).toMatchObject({
      kind: 'remove',
      removal: { czxid: '100', source: 'sweep', kind: 'NodeRemoved' },
    });
    expect(planAbsent(row(), false, now, 'watcher')).toBeNull();
    expect(planAbsent(row({ alive: false }), true, now, 'watcher')).toBeNull();
  });

  it('compares the anchor directory pzxid with the czxid, exactly beyond 2^53', () => {
    const big = '9007199254740993';

    expect(covered(row(), [listing(masters, '100')])).toBe(true);
    expect(covered(row(), [listing(masters, '99')])).toBe(false);
    expect(covered(row({ czxid: big }), [listing(masters, '9007199254740992')])).toBe(false);
    expect(covered(row({ czxid: big }), [listing(masters, big)])).toBe(true);
    expect(covered(row(), [])).toBe(false);
    expect(compareZxid('10', '9')).toBe(1);
  });

  it('covers a row whose ds-1.3 group directory is gone through the worker directory', () => {
    const r = row({
      id: 'worker/10.0.0.2:1',
      nodeType: 'worker',
      host: '10.0.0.2:1',
      anchor: `${workers}/gpu`,
    });

    expect(covered(r, [listing(workers, '150', ['default'])])).toBe(true);
    expect(covered(r, [listing(workers, '150', ['default', 'gpu'])])).toBe(false);
    expect(covered(r, [listing(workers, '50', ['default'])])).toBe(false);
  });

  it('never plans a removal for an incarnation created after the listing (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            czxid: fc.bigInt({ min: 1n, max: 2n ** 62n }),
            alive: fc.boolean(),
            listed: fc.boolean(),
          }),
          { maxLength: 20 },
        ),
        fc.bigInt({ min: 1n, max: 2n ** 62n }),
        (entries, pzxid) => {
          const rows = new Map<string, MirrorRow>();
          const servers = new Map<string, ServerObservation>();
          entries.forEach((e, i) => {
            const host = `10.0.0.${i + 1}:5678`;
            const r = row({ id: `master/${host}`, host, czxid: String(e.czxid), alive: e.alive });
            rows.set(r.id, r);
            if (e.listed) servers.set(r.id, server({ id: r.id, host, czxid: String(e.czxid) }));
          });
          const parents = new Map([[masters, listing(masters, String(pzxid))]]);
          const actions = planReconcile({
            servers,
            rows,
            covers: (r) => listingCovers(r, parents, () => undefined),
            now,
            source: 'watcher',
          });
          const ids = actions.map((a) => (a.kind === 'register' ? a.server.id : a.row.id));
          expect(new Set(ids).size).toBe(ids.length);
          for (const action of actions) {
            if (action.kind === 'remove') {
              expect(BigInt(action.row.czxid) <= pzxid).toBe(true);
              expect(servers.has(action.row.id)).toBe(false);
              expect(action.removal.czxid).toBe(action.row.czxid);
            }
          }
        },
      ),
    );
  });
});

/** The mirror's conditional writes, in memory (the DynamoDB version is exercised by the integration tests). */
class MemoryStore implements MembershipStore {
  readonly rows = new Map<string, MirrorRow>();
  readonly cleared: string[] = [];

  async scan() {
    return [...this.rows.values()];
  }

  async get(id: string) {
    return this.rows.get(id);
  }

  async apply(action: MembershipAction, at: number): Promise<MirrorRow | null> {
    await Promise.resolve();
    if (action.kind === 'register') {
      if (this.rows.has(action.server.id)) return null;
      const { server: s } = action;
      const written = row({ ...s, id: s.id, alive: true, seenAt: at, pending: new Map() });
      this.rows.set(s.id, written);
      return written;
    }
    const current = this.rows.get(action.row.id);
    if (current === undefined || current.czxid !== action.row.czxid || current.alive !== action.row.alive)
      return null;
    const pending = new Map(current.pending);
    let written: MirrorRow;
    if (action.kind === 'remove') {
      pending.set(action.removal.czxid, action.removal);
      written = { ...current, alive: false, removedAt: at, pending };
    } else if (action.kind === 'replace') {
      if (action.removal !== null) pending.set(action.removal.czxid, action.removal);
      written = {
        ...current,
        czxid: action.server.czxid,
        alive: true,
        startupTime: action.server.startupTime,
        pending,
      };
    } else {
      written = { ...current, seenAt: at };
    }
    this.rows.set(written.id, written);
    return written;
  }

  async clearPending(id: string, czxid: string) {
    this.cleared.push(`${id}#${czxid}`);
    const current = this.rows.get(id);
    if (current?.pending === undefined) return;
    const pending = new Map(current.pending);
    pending.delete(czxid);
    this.rows.set(id, { ...current, pending });
  }
}

class MemoryQueue implements FailoverRequestQueue {
  readonly sent: FailoverRequestInput[] = [];
  failing = false;

  async send(requests: readonly FailoverRequestInput[]) {
    if (this.failing) throw new Error('queue unavailable');
    this.sent.push(...requests);
  }
}

describe('MembershipRelay', () => {
  const gone = new Map<string, ServerObservation>();
  const coversAll = () => true;

  it('lets exactly one of two concurrent relays flip and send a removal', async () => {
    const store = new MemoryStore();
    store.rows.set(row().id, row());
    const queue = new MemoryQueue();
    const relays = [1, 2].map(
      () => new MembershipRelay({ store, queue, clock: () => now, source: 'watcher' }),
    );
    await Promise.all(relays.map((r) => r.load()));

    const results = await Promise.all(relays.map((r) => r.reconcile(gone, coversAll)));

    expect(queue.sent).toHaveLength(1);
    expect(results.map((r) => r.relayed.length).sort()).toEqual([0, 1]);
    expect(store.rows.get(row().id)).toMatchObject({ alive: false, pending: new Map() });
  });

  it('keeps a request whose send failed pending in the mirror, for a retry or the next invocation', async () => {
    const store = new MemoryStore();
    store.rows.set(row().id, row());
    const queue = new MemoryQueue();
    queue.failing = true;
    let clock = now;
    const relay = new MembershipRelay({ store, queue, clock: () => clock, source: 'watcher' });
    await relay.load();

    const result = await relay.reconcile(gone, coversAll);
    const pendingAfterFailure = store.rows.get(row().id)?.pending?.size;
    queue.failing = false;
    clock += 20_000;
    const next = new MembershipRelay({ store, queue, clock: () => clock, source: 'watcher' });
    await next.load();
    const resent = await next.resendPending(15_000);

    expect(result.relayed).toEqual([]);
    expect(relay.unsentCount).toBe(1);
    expect(pendingAfterFailure).toBe(1);
    expect(resent.map((r) => r.cause)).toEqual(['resent']);
    expect(queue.sent).toEqual([expect.objectContaining({ czxid: '100', observedAt: now })]);
    expect(store.rows.get(row().id)?.pending?.size).toBe(0);
  });

  it('re-plans after losing a race: a restart recorded by someone else is not reported again', async () => {
    const store = new MemoryStore();
    store.rows.set(row().id, row());
    const queue = new MemoryQueue();
    const relay = new MembershipRelay({ store, queue, clock: () => now, source: 'watcher' });
    await relay.load();
    const restarted = server({ czxid: '200', ephemeralOwner: 'b2' });
    // Another invocation records the restart first.
    await store.apply({ kind: 'replace', row: row(), server: restarted, removal: null }, now);

    const result = await relay.reconcile(new Map([[restarted.id, restarted]]), coversAll);

    expect(result.relayed).toEqual([]);
    expect(queue.sent).toEqual([]);
    expect(relay.rows.get(row().id)?.czxid).toBe('200');
  });
});
