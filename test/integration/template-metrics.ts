// What the functions' metrics code writes, for the template tests that hold every alarm and dashboard metric
// against it: the metric names (read from the code that adds them) and, per function, the namespace and
// dimensions Powertools Metrics writes under that function's environment from the template (EMF, produced
// by the library itself, not restated here).
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { projectRoot } from '../../lib/local/service.ts';
import { FailoverMetric } from '../../lib/observability.ts';

const sourceFiles = (dir: string): string[] =>
  readdirSync(join(projectRoot, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(projectRoot, join(e.parentPath, e.name)));

const read = (file: string) => readFileSync(join(projectRoot, file), 'utf8');

/** The one place metric names are variables (the MetricSink adapter); everywhere else they are literals. */
const sinkFile = 'lib/observability.ts';

export class MetricsCodeChangedError extends Error {
  constructor(where: string, what: string) {
    super(`${where}: ${what}; teach test/integration/template-metrics.ts how this code writes metrics`);
    this.name = 'MetricsCodeChangedError';
  }
}

/**
 * The metric names each function can write: the literals its handler passes to `addMetric`, and, for a
 * handler that wires the MetricSink (`metricSink(`), every `FailoverMetric` the lib code counts.
 * Fails when metrics are written in a way this reading does not follow (a computed name, an added
 * dimension, a Metrics instance with its own options), so that the comparison cannot silently go stale.
 */
export function emittedMetricNames(functionNames: readonly string[]): Map<string, Set<string>> {
  const files = [...sourceFiles('lib'), ...sourceFiles('functions')];
  const sinkNames = new Set<string>();
  for (const file of files) {
    const text = read(file);
    for (const m of text.matchAll(/addMetric\(\s*([^,\s]+)/g)) {
      if (file !== sinkFile && !/^['"]\w+['"]$/.test(m[1] as string))
        throw new MetricsCodeChangedError(file, `addMetric with a computed name ${m[1]}`);
    }
    for (const m of text.matchAll(/\b(addDimensions?|setDefaultDimensions|singleMetric)\(/g))
      throw new MetricsCodeChangedError(file, `${m[1]} changes the dimensions`);
    for (const m of text.matchAll(/new Metrics\(([^)]*)\)/g))
      if ((m[1] as string).trim() !== '') throw new MetricsCodeChangedError(file, `new Metrics(${m[1]})`);
    if (file === sinkFile) continue;
    for (const m of text.matchAll(/FailoverMetric\.(\w+)/g)) {
      const name = FailoverMetric[m[1] as keyof typeof FailoverMetric];
      if (name === undefined) throw new MetricsCodeChangedError(file, `unknown FailoverMetric.${m[1]}`);
      sinkNames.add(name);
    }
  }
  const out = new Map<string, Set<string>>();
  for (const fn of functionNames) {
    const handler = read(`functions/${fn}/handler.ts`);
    const names = new Set([...handler.matchAll(/addMetric\(\s*['"](\w+)['"]/g)].map((m) => m[1] as string));
    if (handler.includes('metricSink(')) for (const n of sinkNames) names.add(n);
    out.set(fn, names);
  }
  return out;
}

export interface MetricSeries {
  namespace: string;
  /** Dimension name -> value, as written in the EMF record. */
  dimensions: Record<string, string>;
}

/**
 * The namespace and dimensions Powertools Metrics writes (`new Metrics()`, as every handler creates it)
 * under the given function environment.
 */
export function emittedSeries(environment: Readonly<Record<string, string>>): MetricSeries {
  const keys = Object.keys(environment).filter((k) => k.startsWith('POWERTOOLS_'));
  const saved = Object.fromEntries(keys.map((k) => [k, process.env[k]]));
  for (const k of Object.keys(process.env)) if (k.startsWith('POWERTOOLS_')) saved[k] ??= process.env[k];
  try {
    for (const k of Object.keys(saved)) delete process.env[k];
    for (const k of keys) process.env[k] = environment[k];
    const metrics = new Metrics();
    metrics.addMetric('Probe', MetricUnit.Count, 1);
    const emf = metrics.serializeMetrics() as unknown as {
      _aws: { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][] }> };
      [key: string]: unknown;
    };
    const directive = emf._aws.CloudWatchMetrics[0];
    if (directive?.Dimensions.length !== 1)
      throw new MetricsCodeChangedError('Powertools Metrics', 'not exactly one dimension set');
    const dimensions = Object.fromEntries((directive.Dimensions[0] ?? []).map((d) => [d, String(emf[d])]));
    return { namespace: directive.Namespace, dimensions };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
