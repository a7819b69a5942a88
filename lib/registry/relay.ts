import type { FailoverRequestQueue } from '../failover/ports.ts';
import type { RequestSource } from '../messages.ts';
import {
  type ListingCoverage,
  type MembershipAction,
  type MembershipStore,
  type MirrorRow,
  type PendingRequest,
  planAbsent,
  planPresent,
  planReconcile,
  type ServerObservation,
} from './membership.ts';
import type { RegistryLogger } from './zk-client.ts';

/**
 * Brings the membership mirror in line with a registry listing and relays each removal to the failover
 * queue, exactly once per removed incarnation:
 *
 * 1. the conditional write that flips the row (alive -> removed, or old -> new incarnation) also stores
 *    the request in the row's `pending` map; only the writer whose condition held goes on;
 * 2. it sends the request (FIFO deduplication id fixed by node, czxid, source and kind);
 * 3. it removes the pending entry.
 *
 * A crash or a failed send between 1 and 3 leaves the entry: `resendPending` (the next invocation, or the
 * sweep) sends it again with the same deduplication id. The mirror is always written before the request
 * exists, so the failover function reading the mirror for F3 never sees the removed incarnation as live.
 */

export interface RelayedRemoval {
  readonly id: string;
  readonly request: PendingRequest;
  /** `removed`: the server is gone; `restarted`: a newer incarnation is registered; `resent`: a leftover. */
  readonly cause: 'removed' | 'restarted' | 'resent';
  readonly sentAt: number;
  /** When the watch that led to it fired (event-driven removals only). */
  readonly detectedAt?: number;
}

export interface ReconcileResult {
  readonly relayed: readonly RelayedRemoval[];
  readonly written: number;
  /** Writes that failed for another reason than a lost race (retry later). */
  readonly failed: number;
}

export interface RelayDeps {
  readonly store: MembershipStore;
  readonly queue: FailoverRequestQueue;
  readonly clock: () => number;
  readonly source: RequestSource;
  readonly logger?: RegistryLogger;
}

interface Flipped {
  readonly id: string;
  readonly request: PendingRequest;
  readonly cause: RelayedRemoval['cause'];
}

/** Attempts per server when other writers keep winning the race (each attempt re-reads the row). */
const maxAttemptsPerServer = 4;

export class MembershipRelay {
  readonly #deps: RelayDeps;
  #rows = new Map<string, MirrorRow>();
  /** Flipped but not sent (the send failed): retried in this invocation, else by the next one. */
  readonly #unsent = new Map<string, Flipped>();

  constructor(deps: RelayDeps) {
    this.#deps = deps;
  }

  /** The mirror as last read or written by this relay. */
  get rows(): ReadonlyMap<string, MirrorRow> {
    return this.#rows;
  }

  get unsentCount(): number {
    return this.#unsent.size;
  }

  /** Reads the whole mirror (a fresh start: after connecting, or when a listing starts over). */
  async load(): Promise<void> {
    const rows = await this.#deps.store.scan();
    this.#rows = new Map(rows.map((row) => [row.id, row]));
  }

  /** Plans and writes every change the listing implies, then relays the removals. */
  async reconcile(
    servers: ReadonlyMap<string, ServerObservation>,
    covers: ListingCoverage,
    detectedAt?: number,
  ): Promise<ReconcileResult> {
    const now = this.#deps.clock();
    const actions = planReconcile({ servers, rows: this.#rows, covers, now, source: this.#deps.source });
    if (actions.length === 0) return { relayed: [], written: 0, failed: 0 };
    const outcomes = await Promise.allSettled(
      actions.map((action) => this.#applyWithRetry(action, servers, covers)),
    );
    const flipped: Flipped[] = [];
    let written = 0;
    let failed = 0;
    for (const [index, outcome] of outcomes.entries()) {
      if (outcome.status === 'rejected') {
        failed += 1;
        this.#deps.logger?.error('mirror write failed', {
          id: actions[index]?.kind === 'register' ? actions[index].server.id : actions[index]?.row.id,
          error: describe(outcome.reason),
        });
        continue;
      }
      if (outcome.value.written) written += 1;
      if (outcome.value.flipped !== undefined) flipped.push(outcome.value.flipped);
    }
    const relayed = await this.#send(flipped, detectedAt);
    return { relayed, written, failed };
  }

  /**
   * Sends the pending requests that the mirror holds and nobody confirmed (a writer crashed or its send
   * failed). `minAgeMs` leaves alone the entries a live writer is about to send.
   */
  async resendPending(minAgeMs: number): Promise<RelayedRemoval[]> {
    const now = this.#deps.clock();
    const leftovers: Flipped[] = [];
    for (const row of this.#rows.values()) {
      for (const request of row.pending?.values() ?? []) {
        if (now - request.observedAt >= minAgeMs) leftovers.push({ id: row.id, request, cause: 'resent' });
      }
    }
    if (leftovers.length > 0) {
      this.#deps.logger?.warn('re-sending failover requests left pending', { count: leftovers.length });
    }
    return this.#send(leftovers);
  }

  /** Retries the sends that failed in this invocation. */
  async retryUnsent(): Promise<RelayedRemoval[]> {
    if (this.#unsent.size === 0) return [];
    const retry = [...this.#unsent.values()];
    return this.#send(retry);
  }

  async #applyWithRetry(
    first: MembershipAction,
    servers: ReadonlyMap<string, ServerObservation>,
    covers: ListingCoverage,
  ): Promise<{ written: boolean; flipped?: Flipped }> {
    let action: MembershipAction | null = first;
    const id = first.kind === 'register' ? first.server.id : first.row.id;
    for (let attempt = 1; action !== null && attempt <= maxAttemptsPerServer; attempt += 1) {
      const now = this.#deps.clock();
      const row = await this.#deps.store.apply(action, now);
      if (row !== null) {
        this.#rows.set(id, row);
        if (action.kind === 'remove')
          return { written: true, flipped: { id, request: action.removal, cause: 'removed' } };
        if (action.kind === 'replace' && action.removal !== null) {
          return { written: true, flipped: { id, request: action.removal, cause: 'restarted' } };
        }
        return { written: true };
      }
      // Another writer (an overlapping invocation, the sweep) got there first: re-read and decide again.
      const fresh = await this.#deps.store.get(id);
      if (fresh === undefined) this.#rows.delete(id);
      else this.#rows.set(id, fresh);
      const server = servers.get(id);
      if (server !== undefined) action = planPresent(fresh, server, now, this.#deps.source);
      else action = fresh === undefined ? null : planAbsent(fresh, covers(fresh), now, this.#deps.source);
    }
    if (action !== null)
      this.#deps.logger?.warn('mirror row kept changing, left for the next listing', { id });
    return { written: false };
  }

  async #send(flipped: readonly Flipped[], detectedAt?: number): Promise<RelayedRemoval[]> {
    if (flipped.length === 0) return [];
    try {
      await this.#deps.queue.send(flipped.map((f) => f.request));
    } catch (error: unknown) {
      for (const f of flipped) this.#unsent.set(key(f), f);
      this.#deps.logger?.error('failover request send failed; kept pending in the mirror', {
        count: flipped.length,
        error: describe(error),
      });
      return [];
    }
    const sentAt = this.#deps.clock();
    for (const f of flipped) this.#unsent.delete(key(f));
    await Promise.all(
      flipped.map(async (f) => {
        try {
          await this.#deps.store.clearPending(f.id, f.request.czxid);
          this.#forgetPending(f);
        } catch (error: unknown) {
          // Harmless: the entry is sent again later with the same deduplication id.
          this.#deps.logger?.warn('could not clear a sent pending request', {
            id: f.id,
            error: describe(error),
          });
        }
      }),
    );
    return flipped.map((f) => ({
      id: f.id,
      request: f.request,
      cause: f.cause,
      sentAt,
      ...(detectedAt === undefined ? {} : { detectedAt }),
    }));
  }

  #forgetPending(f: Flipped): void {
    const row = this.#rows.get(f.id);
    if (row?.pending === undefined || !row.pending.has(f.request.czxid)) return;
    const pending = new Map(row.pending);
    pending.delete(f.request.czxid);
    this.#rows.set(f.id, { ...row, pending });
  }
}

function key(f: Flipped): string {
  return `${f.id}#${f.request.czxid}`;
}

function describe(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message}`.slice(0, 500)
    : String(error).slice(0, 500);
}
