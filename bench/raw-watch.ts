// The detection phases' reference: a raw ZooKeeper child watch, in a session of its own, on a registry
// parent, re-armed each time it fires; a child is seen removed when the watch that reports it fires.
import type { ZkSession } from '../lib/registry/zk-client.ts';

/** When each child of `parent` was seen removed (epoch ms), filled in as the watch fires. */
export async function watchRemovals(
  session: ZkSession,
  parent: string,
): Promise<ReadonlyMap<string, number>> {
  const seen = new Map<string, number>();
  const onChange = (): void => {
    const firedAt = Date.now();
    session.children(parent, onChange).then(
      (children) => {
        const now = new Set(children);
        for (const child of known) if (!now.has(child) && !seen.has(child)) seen.set(child, firedAt);
        known = now;
      },
      () => undefined,
    );
  };
  let known = new Set(await session.children(parent, onChange));
  return seen;
}
