// The ports of the failover core (DESIGN section 11): what the use case needs from the world, owned here
// and implemented by the store adapters (lib/store/<store>/), the queue adapters (lib/queue/) and the
// registry (lib/registry/). Nothing in this file knows a technology.
import type { CommandMessage, FailoverRequestInput, NodeType } from '../messages.ts';
import type { LiveIncarnation } from './rules.ts';

// --- the host's work ---------------------------------------------------------------------------------

/** Items of one host, one page at a time. `malformed` are items that break the data contract (skipped). */
export interface Page<T> {
  items: T[];
  malformed: Array<{ id: string; problem: string }>;
  /** Absent on the last page. */
  cursor?: string;
}

/** Who writes: the lock's fence and name, stamped on every item written, and the write time. */
export interface FenceStamp {
  host: string;
  fence: number;
  lockName: string;
  now: number;
  /**
   * F3 as a bound for stores whose write condition cannot pin what was read: an item started or restarted
   * at or after this time (epoch ms) is not written. The earlier of the live incarnation's startup and the
   * request's observation; absent when neither is known.
   */
  startedBefore?: number;
}

/** A command as the store itself identifies it (for stores that number their commands, such as a database). */
export interface CommandReceipt {
  itemId: string;
  commandId: string;
}

/** One item to fail over, the failover generation it gets, and the command written with it. */
export interface FailoverWrite<T, M extends CommandMessage> {
  item: T;
  generation: number;
  message: M;
}

export type TransactOutcome =
  /**
   * The batch is written: every item's failover and its command, in one transaction. `outboxId`: the
   * record that lists the commands, when the store keeps one. `notWritten`: ids (a subset of the batch)
   * whose condition no longer held at write time, so neither they nor their commands were written; stores
   * that write "exactly the rows that still match" report them here instead of cancelling the batch.
   */
  | { status: 'committed'; outboxId?: string; notWritten?: string[]; receipts?: CommandReceipt[] }
  /**
   * Nothing was written. `conditionFailed`: items (by id) that no longer match what was read.
   * `retryable`: the rest failed for transient reasons (conflict, throttling) and should be retried after
   * a backoff; when false, the rest can be retried at once.
   */
  | { status: 'cancelled'; conditionFailed: string[]; retryable: boolean; reasons: string[] }
  /** The store refused the request itself (for example an item too large): split it, or skip a single item. */
  | { status: 'invalid'; reason: string };

/** The port the failover use case needs for one kind of item (process instances or task instances). */
export interface HostItemStore<T extends { id: string }, M extends CommandMessage> {
  pageByHost(host: string, limit: number, cursor?: string): Promise<Page<T>>;
  /** Strongly consistent reads; ids that do not exist are absent from the map. */
  getMany(ids: readonly string[]): Promise<Map<string, T>>;
  /** One transaction: every item updated and its command written, or nothing (see TransactOutcome). */
  failOver(
    writes: ReadonlyArray<FailoverWrite<T, M>>,
    stamp: FenceStamp,
    options?: WriteOptions,
  ): Promise<TransactOutcome>;
}

export interface WriteOptions {
  /**
   * Called after the transaction's writes and before its commit, in the transaction: a throw rolls it back
   * (and is thrown). Stores whose transaction is a single request have no such moment and may ignore it.
   */
  beforeCommit?: () => void;
}

// --- the lease lock ----------------------------------------------------------------------------------

export interface Lease {
  readonly name: string;
  readonly owner: string;
  /** Monotonic fencing token of this holding: strictly greater than any earlier holder's. */
  readonly fence: number;
  readonly expiresAt: number;
}

/**
 * Progress left on the lock by a run that stopped early for a continuation: where the next run of the
 * same chain (`key`) resumes paging. Only a hint; a run that does not find its key starts over.
 */
export interface Checkpoint {
  key: string;
  cursor: string;
}

export type AcquireResult =
  | { acquired: true; lease: Lease; checkpoint?: Checkpoint }
  /** Held by someone else until `heldUntil` (epoch ms, by their clock). */
  | { acquired: false; heldUntil: number; holder?: string; fence?: number };

export interface LockStore {
  /** Free or expired -> ours, with the next fence. Held by a live owner -> not acquired. Never waits. */
  acquire(name: string, owner: string, leaseMs: number, now: number): Promise<AcquireResult>;
  /** Extends our lease; throws LockLostError when the lock is no longer ours (expired and taken). */
  renew(lease: Lease, leaseMs: number, now: number): Promise<Lease>;
  /**
   * Gives the lock up if it is still ours; false when it was not (already taken over). Leaves `checkpoint`
   * for the next holder, or clears any earlier one.
   */
  release(lease: Lease, checkpoint?: Checkpoint): Promise<boolean>;
}

/** The lease was taken over by another holder: stop writing, the newer holder owns the work. */
export class LockLostError extends Error {
  constructor(
    readonly lease: Lease,
    options?: { cause?: unknown },
  ) {
    super(`lock ${lease.name} (fence ${lease.fence}) is no longer held by ${lease.owner}`, options);
    this.name = 'LockLostError';
  }
}

/** The lock name of a host's failover: exact `ip:port`, never a prefix (#18197: release what you took). */
export function failoverLockName(nodeType: string, host: string): string {
  return `failover/${nodeType}/${host}`;
}

// --- the scheduler's own lock (DESIGN D3) --------------------------------------------------------------

/**
 * A lock the scheduler itself takes before it fails a host over (DolphinScheduler's failover mutex in
 * ZooKeeper). Held while the store is written, so the scheduler's own failover of the same host runs
 * before or after ours, never at the same time. Never waited for.
 */
export interface HostGuard {
  /** Takes the lock for this host if it is free at once; null when someone else holds it. */
  tryAcquire(nodeType: NodeType, host: string): Promise<GuardHold | null>;
}

export interface GuardHold {
  /** Throws GuardLostError once the lock can no longer be trusted to be ours (session lost). */
  assertHeld(): void;
  /** Gives the lock up (idempotent; never throws for a lock already lost). */
  release(): Promise<void>;
}

/** The scheduler's lock was lost while we held it (its ZooKeeper session ended): stop writing. */
export class GuardLostError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GuardLostError';
  }
}

// --- liveness, delivery, requests ----------------------------------------------------------------------

export interface LivenessSource {
  /** The incarnation registered for this server now (F3), or null when it is not registered. */
  liveIncarnation(type: NodeType, host: string): Promise<LiveIncarnation>;
}

/** The commands one committed transaction wrote. */
export interface OutboxBatch {
  /**
   * The outbox record's id. Absent: commands found written after a transaction reported failure, whose
   * record is not known yet.
   */
  outboxId?: string;
  commands: CommandMessage[];
  /** Listed commands that are missing or not valid commands: never sent, kept pending for an operator. */
  unsendable?: string[];
  /** The store's own ids of the commands, when it numbers them. */
  receipts?: CommandReceipt[];
  /** Who wrote the batch (absent for commands found pending from an earlier run). */
  stamp?: FenceStamp;
}

export interface PendingFilter {
  /** Only commands of this failed host. */
  failedHost?: string;
  /** Only this kind of command. */
  type?: CommandMessage['type'];
  /** Only commands created before this time (epoch ms). */
  createdBefore?: number;
}

export interface PendingDelivery {
  enqueued: number;
  failed: ReadonlyArray<{ id: string; reason: string }>;
}

/**
 * Gets written commands to the scheduler. For a queue: send them, then mark them sent (outbox). For a store
 * the scheduler polls itself, the write is the delivery and this only records the outcome.
 */
export interface CommandDelivery {
  /**
   * Committed batches whose delivery may still be under way before new transactions wait for it (bounds
   * what is held in memory; default: the transactions' concurrency).
   */
  readonly backlog?: number;
  /** Delivers one committed batch; returns how many commands are now delivered. Throws CommandSendError. */
  deliver(batch: OutboxBatch, now: () => number): Promise<number>;
  /** Delivers what earlier runs wrote and did not deliver. */
  deliverPending(filter: PendingFilter, now: () => number): Promise<PendingDelivery>;
}

/** Some commands could not be delivered; they stay pending (the retry or the sweep delivers them). */
export class CommandSendError extends Error {
  constructor(readonly failed: ReadonlyArray<{ id: string; reason: string }>) {
    super(`${failed.length} command(s) could not be enqueued: ${failed[0]?.reason ?? ''}`);
    this.name = 'CommandSendError';
  }
}

/** One committed failover batch, as recorded for operators (DESIGN D6). */
export interface RunRecord {
  /** The lease lock the batch was written under (`failover/<type>/<host>`). */
  lockName: string;
  host: string;
  fence: number;
  /** Items failed over by this batch, and the commands written for them (the store's ids). */
  receipts: CommandReceipt[];
  writtenAt: number;
}

/** Where committed failovers are recorded when the write itself is the delivery (DESIGN D6). */
export interface RunJournal {
  record(entry: RunRecord): Promise<void>;
}

/** Where failover requests go (the FIFO failover queue). */
export interface FailoverRequestQueue {
  /** Sends every request or throws; duplicates are dropped by FIFO deduplication (same id within 5 minutes). */
  send(requests: readonly FailoverRequestInput[]): Promise<void>;
}

/** A failover request record that is rejected as poison. */
export interface RejectedRecord {
  messageId: string;
  body: string;
  groupId?: string;
  receiveCount?: string;
}

/** What the failover function does to its own request records besides reporting them failed. */
export interface FailoverRecordControl {
  /** Sends the record's body to the dead-letter queue with `RejectReason`; throws when it cannot. */
  deadLetter(record: RejectedRecord, reason: string): Promise<void>;
  /** Makes a failed record visible again in `seconds` (0-43200). */
  retryAfter(receiptHandle: string, seconds: number): Promise<void>;
}
