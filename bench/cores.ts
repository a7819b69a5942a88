// Gives DynamoDB Local a core of its own, and the benchmark (with the SQS emulator, the latency proxies and
// the function containers it starts) the others, as when the service runs on machines of its own. On the
// 2-core development machine, with its threads free to run on both cores next to busy clients, DynamoDB
// Local spent 1,000-1,700 µs of CPU per instance failed over (median about 1,080) and the same work swung
// from run to run by a third; confined to one core it spent 650-880 µs (median about 680) on the same
// requests, and every client ran about 1.7x faster. `--shared-cores` runs the old way, to compare.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface CoreSplit {
  /** CPUs DynamoDB Local may run on. */
  dynamoDbLocal: number[];
  /** CPUs of the benchmark process and every process it starts afterwards (they inherit it). */
  clients: number[];
}

/** The split, or why the cores stay shared (as the results' `machine.cores` records it). */
export type Cores = CoreSplit | { shared: string };

/** One line for the log and the report's heading. */
export function describeCores(cores: Cores): string {
  if ('shared' in cores) return `cores shared by DynamoDB Local and the clients (${cores.shared})`;
  return `DynamoDB Local on CPU ${cores.dynamoDbLocal.join(',')}, the benchmark and its containers on ${cores.clients.join(',')}`;
}

/** Parses a kernel CPU list (`0-3,6,8-9`). */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.trim().split(',')) {
    if (part === '') continue;
    const [from, to] = part.split('-').map((s) => Number.parseInt(s, 10));
    if (from === undefined || !Number.isInteger(from)) throw new Error(`not a CPU list: "${list}"`);
    const last = to === undefined ? from : to;
    if (!Number.isInteger(last) || last < from) throw new Error(`not a CPU list: "${list}"`);
    for (let cpu = from; cpu <= last; cpu += 1) cpus.push(cpu);
  }
  return cpus;
}

/** The CPUs a process may run on (`Cpus_allowed_list` in /proc), or undefined where /proc has none. */
export function allowedCpus(pid: number | 'self' = 'self'): number[] | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(status)?.[1];
    return line === undefined ? undefined : parseCpuList(line);
  } catch {
    return undefined;
  }
}

/** Which CPUs go to the service and which to the clients: the last allowed CPU for the service. */
export function planSplit(cpus: readonly number[]): CoreSplit | undefined {
  if (cpus.length < 2) return undefined;
  const service = cpus[cpus.length - 1] as number;
  return { dynamoDbLocal: [service], clients: cpus.filter((cpu) => cpu !== service) };
}

/**
 * Pins every thread of DynamoDB Local (`dynamoDbPid`) to one core and every thread of this process to the
 * others (`taskset -a`, util-linux). Returns what it did, or the reason it did nothing (one CPU, no
 * taskset, not Linux): the benchmark then runs unpinned and says so.
 */
export function separateServiceCores(dynamoDbPid: number): Cores {
  const cpus = allowedCpus();
  if (cpus === undefined) return { shared: 'no /proc/self/status (not Linux)' };
  const split = planSplit(cpus);
  if (split === undefined) return { shared: `only ${cpus.length} CPU allowed` };
  const pin = (list: readonly number[], pid: number) =>
    execFileSync('taskset', ['-a', '-cp', list.join(','), String(pid)], { stdio: 'ignore' });
  try {
    pin(split.dynamoDbLocal, dynamoDbPid);
    pin(split.clients, process.pid);
  } catch (error: unknown) {
    // Half a split would favour one side: put DynamoDB Local back on every CPU (best effort).
    try {
      pin(cpus, dynamoDbPid);
    } catch {}
    return { shared: `taskset failed: ${error instanceof Error ? error.message : String(error)}` };
  }
  return split;
}

/** The processes whose parent is `pid` (from /proc: a PostgreSQL server's background processes). */
function childProcesses(pid: number): number[] {
  const children: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return children;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/**
 * Puts a database server (every thread of it and of the processes it has started) on the service's core,
 * next to DynamoDB Local, so that it runs as on a machine of its own. Connections opened later inherit it
 * (PostgreSQL forks a backend per connection from the pinned postmaster; MariaDB's threads inherit theirs).
 * Returns what it did, or why the cores stay shared.
 */
export function pinDatabaseServer(pid: number, cores: Cores): Cores {
  if ('shared' in cores) return cores;
  const pin = (target: number) =>
    execFileSync('taskset', ['-a', '-cp', cores.dynamoDbLocal.join(','), String(target)], {
      stdio: 'ignore',
    });
  try {
    pin(pid);
    for (const child of childProcesses(pid)) {
      try {
        pin(child);
      } catch {
        // a background process that just exited
      }
    }
  } catch (error: unknown) {
    return { shared: `taskset failed: ${error instanceof Error ? error.message : String(error)}` };
  }
  return cores;
}
