import { randomUUID } from 'node:crypto';
import { ZkNoNodeError, type ZkSession, ZkSessionLostError } from './zk-client.ts';

/**
 * A ZooKeeper mutex in the node layout of Apache Curator's `InterProcessMutex`, so that it excludes (and
 * is excluded by) DolphinScheduler's own failover lock (shared/dolphinscheduler.md section 1):
 *
 * - each contender creates an EPHEMERAL_SEQUENTIAL child `_c_<uuid>-lock-` under the lock path (persistent
 *   parents created as needed); ZooKeeper appends a 10-digit sequence number;
 * - the holder is the child with the lowest sequence number (the digits after the last `lock-`); children
 *   of any other shape take no part;
 * - a waiter watches the child just before its own and looks again when it goes.
 *
 * The node is ephemeral: it goes with the session, so a hold is only as good as the session it was taken
 * with (`isHeld`).
 */

export interface MutexHold {
  /** Full path of our lock node (`<lock path>/_c_<uuid>-lock-0000000042`). */
  readonly path: string;
  /** The lock path (the parent of `path`). */
  readonly lockPath: string;
  /** False once released, or once the session it was taken with is lost or closed. */
  isHeld(): boolean;
  /** Deletes our node. Idempotent; a lost session needs no delete (the node goes with it). */
  release(): Promise<void>;
}

export interface LockMutexOptions {
  /** How long to wait for the lock; on timeout our node is deleted and the result is null. */
  timeoutMs: number;
}

/** Our lock node was deleted while we waited, by someone else (the session is still alive). */
export class MutexNodeGoneError extends Error {
  override readonly name = 'MutexNodeGoneError';
  constructor(readonly path: string) {
    super(`lock node ${path} was deleted while waiting for the lock`);
  }
}

const lockName = 'lock-';
const sequencePattern = /^[0-9]{10}$/;
/** A lock path whose parents are deleted while we create (a container removed by the server) is retried. */
const createAttempts = 3;

/** The sequence number of a lock node name, or null for a child that is not a lock node. */
export function lockSequence(name: string): number | null {
  const at = name.lastIndexOf(lockName);
  if (at < 0) return null;
  const digits = name.slice(at + lockName.length);
  return sequencePattern.test(digits) ? Number(digits) : null;
}

/** Lock node names among `children`, holder first. */
export function contendersInOrder(children: readonly string[]): string[] {
  return children
    .map((name) => ({ name, sequence: lockSequence(name) }))
    .filter((child): child is { name: string; sequence: number } => child.sequence !== null)
    .sort((a, b) => a.sequence - b.sequence)
    .map((child) => child.name);
}

/**
 * Takes the mutex if it is free now; never waits. Creates our node, lists the contenders, and keeps the
 * node only when it is the lowest; otherwise deletes it at once and returns null.
 */
export async function tryLockMutex(session: ZkSession, lockPath: string): Promise<MutexHold | null> {
  const ours = await createContender(session, lockPath);
  try {
    const order = contendersInOrder(await session.children(lockPath));
    if (order[0] === nameOf(ours)) return new SessionMutexHold(session, lockPath, ours);
  } catch (error: unknown) {
    await removeQuietly(session, ours).catch(() => undefined);
    throw error;
  }
  await removeQuietly(session, ours);
  return null;
}

/**
 * Takes the mutex, waiting as Curator does: while a lower node exists, watch the one just before ours.
 * Null when `timeoutMs` passes first (our node is deleted); ZkSessionLostError when the session is lost.
 */
export async function lockMutex(
  session: ZkSession,
  lockPath: string,
  options: LockMutexOptions,
): Promise<MutexHold | null> {
  const deadline = Date.now() + options.timeoutMs;
  const ours = await createContender(session, lockPath);
  const name = nameOf(ours);
  try {
    for (;;) {
      const order = contendersInOrder(await session.children(lockPath));
      const index = order.indexOf(name);
      if (index < 0) throw new MutexNodeGoneError(ours);
      if (index === 0) return new SessionMutexHold(session, lockPath, ours);
      const predecessor = `${lockPath}/${order[index - 1]}`;
      const outcome = await waitForDeletion(session, predecessor, deadline);
      if (outcome === 'timeout') {
        await removeQuietly(session, ours);
        return null;
      }
    }
  } catch (error: unknown) {
    await removeQuietly(session, ours).catch(() => undefined);
    throw error;
  }
}

class SessionMutexHold implements MutexHold {
  readonly #session: ZkSession;
  #release: Promise<void> | undefined;

  constructor(
    session: ZkSession,
    readonly lockPath: string,
    readonly path: string,
  ) {
    this.#session = session;
  }

  isHeld(): boolean {
    return this.#release === undefined && !this.#session.isLost;
  }

  release(): Promise<void> {
    this.#release ??= removeQuietly(this.#session, this.path);
    return this.#release;
  }
}

async function createContender(session: ZkSession, lockPath: string): Promise<string> {
  const node = `${lockPath}/_c_${randomUUID()}-${lockName}`;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await session.create(node, '', { ephemeral: true, sequential: true });
    } catch (error: unknown) {
      // create() makes the parents and tries once more; a parent deleted again meanwhile lands here.
      if (!(error instanceof ZkNoNodeError) || attempt >= createAttempts) throw error;
    }
  }
}

/** Resolves when `path` is deleted (or absent already), or with 'timeout' at the deadline. */
async function waitForDeletion(
  session: ZkSession,
  path: string,
  deadline: number,
): Promise<'deleted' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  let changed!: () => void;
  const change = new Promise<'deleted'>((resolve) => {
    changed = () => resolve('deleted');
  });
  // Any event on the predecessor (its deletion, or a change to its data) means: list the children again.
  if ((await session.exists(path, changed)) === null) return 'deleted';
  try {
    const outcome = await Promise.race([
      change,
      session.lost,
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now()));
      }),
    ]);
    if (typeof outcome === 'object') throw new ZkSessionLostError(outcome, 'lock', path);
    return outcome;
  } finally {
    clearTimeout(timer);
  }
}

/** Deletes a node of ours; a lost session already took it (or will, when the server expires it). */
async function removeQuietly(session: ZkSession, path: string): Promise<void> {
  if (session.isLost) return;
  try {
    await session.remove(path);
  } catch (error: unknown) {
    if (!(error instanceof ZkSessionLostError)) throw error;
  }
}

function nameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
