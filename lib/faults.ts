// Failpoints: named places on the failover path where a crash test can kill, fail or stall the process.
// Configured by ZKF_FAILPOINTS, parsed once; when it is absent a failpoint is one map lookup.
//
//   ZKF_FAILPOINTS=after-transaction=3:exit,before-outbox-send=1:throw,after-lock=1+:delay-2000
//
// Each entry is `<name>=<N>[+]:<action>`: fire at the Nth hit of that name in this process (with `+`, at
// every hit from the Nth on). Actions: `exit` = process.exit(137), like a container killed mid-invocation;
// `throw` = a FailpointError; `delay-<ms>` = stall that long (a paused or slow holder, for lease tests).
import { loadConfig } from './config.ts';

export type FailpointAction = { kind: 'exit' } | { kind: 'throw' } | { kind: 'delay'; ms: number };

export interface FailpointSpec {
  hit: number;
  repeat: boolean;
  action: FailpointAction;
}

/** Thrown by a failpoint whose action is `throw`. */
export class FailpointError extends Error {
  constructor(readonly failpoint: string) {
    super(`failpoint ${failpoint} fired`);
    this.name = 'FailpointError';
  }
}

/** ZKF_FAILPOINTS is malformed: fails loudly so a crash test cannot silently run without its faults. */
export class FailpointSyntaxError extends Error {
  constructor(entry: string) {
    super(`invalid ZKF_FAILPOINTS entry ${JSON.stringify(entry)} (expected name=N[+]:exit|throw|delay-MS)`);
    this.name = 'FailpointSyntaxError';
  }
}

const ENTRY = /^([a-z0-9-]+)=([1-9][0-9]*)(\+?):(exit|throw|delay-([0-9]+))$/;

/** Parses a ZKF_FAILPOINTS value; an empty or absent value gives an empty map. */
export function parseFailpoints(text: string | undefined): Map<string, FailpointSpec> {
  const specs = new Map<string, FailpointSpec>();
  for (const raw of (text ?? '').split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const m = ENTRY.exec(entry);
    if (!m) throw new FailpointSyntaxError(entry);
    const [, name = '', hit = '', plus = '', action = '', ms = ''] = m;
    specs.set(name, {
      hit: Number(hit),
      repeat: plus === '+',
      action:
        action === 'exit'
          ? { kind: 'exit' }
          : action === 'throw'
            ? { kind: 'throw' }
            : { kind: 'delay', ms: Number(ms) },
    });
  }
  return specs;
}

let specs: Map<string, FailpointSpec> | undefined;
const hits = new Map<string, number>();

/**
 * Marks a failpoint. Returns undefined (nothing to await) unless a configured `delay` fires; `exit`
 * ends the process at once, without running `finally` blocks, exactly like a killed container.
 */
export function failpoint(name: string): Promise<void> | undefined {
  specs ??= parseFailpoints(loadConfig(['ZKF_FAILPOINTS']).ZKF_FAILPOINTS);
  if (specs.size === 0) return undefined;
  const spec = specs.get(name);
  if (spec === undefined) return undefined;
  const hit = (hits.get(name) ?? 0) + 1;
  hits.set(name, hit);
  if (hit < spec.hit || (hit > spec.hit && !spec.repeat)) return undefined;
  switch (spec.action.kind) {
    case 'exit':
      process.exit(137);
      break;
    case 'throw':
      throw new FailpointError(name);
    case 'delay':
      return new Promise((resolve) => setTimeout(resolve, spec.action.kind === 'delay' ? spec.action.ms : 0));
  }
  return undefined;
}

/** Test hook: use these specs instead of the environment, and reset the hit counters. */
export function configureFailpoints(text: string | undefined): void {
  specs = parseFailpoints(text);
  hits.clear();
}
