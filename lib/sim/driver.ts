// The store-dependent half of the demo scenario (lib/sim/scenario.ts), as the scenario drives it: the
// DynamoDB contract's driver lives beside the scenario, DolphinScheduler's in ds-scenario.ts.
import type { RegisterOptions } from './cluster.ts';
import type { Check } from './invariants.ts';
import type { DemoMonitor, DemoStore } from './monitor.ts';
import type { SimServer } from './options.ts';

/** What the seeding gave the scenario. */
export interface SeedSummary {
  /** Executing items per server as seeded: process instances (masters), tasks (workers). */
  executing: Map<string, number>;
  /** Seeded owner per instance id and per task id (the timelines follow the masters' reports by them). */
  instanceHosts: Map<string, string>;
  taskHosts: Map<string, string>;
  /** The event line that says what was seeded. */
  text: string;
}

/** What the verdict is given. */
export interface VerdictInput {
  servers: readonly SimServer[];
  killed: readonly SimServer[];
  disturbed: ReadonlyMap<string, { startupTime: number }>;
  monitor: DemoMonitor;
}

/** The store-dependent half of the scenario. */
export interface StoreDriver {
  readonly store: DemoStore;
  /** The stack-ready event line. */
  stackLine(): string;
  /** The registered event's description of the heartbeats and what the masters consume. */
  readonly serversLine: string;
  /** What the simulated servers need besides the session settings (DolphinScheduler: heartbeats, database). */
  readonly register: Partial<RegisterOptions>;
  /** Seeds the work (while the servers register). */
  seed(servers: readonly SimServer[], now: number): Promise<SeedSummary>;
  /** Executing items per server now, into the monitor (`which`: the servers to count). */
  poll(monitor: DemoMonitor, which: readonly SimServer[]): Promise<void>;
  verdict(input: VerdictInput): Promise<Check[]>;
  /** The READY JSON `--keep` prints and leaves in .local/demo-ready.json. */
  ready(): Record<string, unknown>;
  close(): Promise<void>;
}
