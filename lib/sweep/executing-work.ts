// The sweep's ports: the read-only questions it asks of the executing work (F1 process instances, F5
// tasks), implemented by each store (lib/store/<store>/executing-work.ts).
import type { NodeType } from '../messages.ts';

export type ProbeResult =
  | { readonly kind: 'found' }
  | { readonly kind: 'clean' }
  /** The time ran out first: resume from `cursor` next time. */
  | { readonly kind: 'unfinished'; readonly cursor: string };

export interface ProbeOptions {
  /** Only work that a live incarnation started at this time cannot own (F3: strictly older). */
  readonly olderThan?: number;
  /** Resume point of an unfinished probe. */
  readonly cursor?: string;
  /** Epoch ms: stop paging then. */
  readonly endAt: number;
}

export interface DiscoveryStep {
  /** Hosts that own at least one executing item in the pages read. */
  readonly hosts: ReadonlyArray<{ readonly nodeType: NodeType; readonly host: string }>;
  /** Per table and segment: resume key, or 'done'. */
  readonly cursors: Readonly<Record<string, string>>;
  readonly done: boolean;
}

/** The sweep's view of executing work. */
export interface ExecutingWork {
  /** Does `host` own executing work (masters: process instances, workers: tasks)? */
  probeHost(nodeType: NodeType, host: string, options: ProbeOptions): Promise<ProbeResult>;
  /** Reads the byHost indexes in parallel segments from `cursors` until `endAt` or the end. */
  discover(cursors: Readonly<Record<string, string>>, endAt: number): Promise<DiscoveryStep>;
}

/** Where the sweep's discovery pass stands (kept between sweeps). */
export interface DiscoveryCheckpoint {
  /** Per table and scan segment: the opaque resume key, or 'done'. */
  readonly cursors: Readonly<Record<string, string>>;
  readonly startedAt: number;
  readonly completedAt?: number;
}

/**
 * A store that lists the hosts of all its executing work in one pass, cheaply enough to do every sweep
 * (DolphinScheduler's database, DESIGN D5): the sweep then needs no probes and no discovery checkpoint.
 */
export interface ExecutingHostScan {
  scanExecutingHosts(): Promise<ExecutingHosts>;
}

export interface ExecutingHosts {
  /** Hosts that own executing work, exact names; unowned markers (SQL NULL, 'NULL') are not hosts. */
  readonly hosts: ReadonlyArray<{
    readonly nodeType: NodeType;
    readonly host: string;
    readonly items: number;
  }>;
  /** What the pass cost, for the sweep's log. */
  readonly cost: { readonly durationMs: number; readonly executingItems: number };
}

export function isHostScan(work: ExecutingWork | ExecutingHostScan): work is ExecutingHostScan {
  return 'scanExecutingHosts' in work;
}
