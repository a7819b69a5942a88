// Plain-text tables and HTML escaping for the benchmark's reports.

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

/** A table of aligned columns: the first left-aligned, the others right-aligned. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? pad(c, widths[i] ?? 0) : lpad(c, widths[i] ?? 0))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const escapeHtml = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

/** Cumulative distribution of the detection delays (and of the raw watch's own delay). */
export function detectionChart(
  d: { samples?: ReadonlyArray<{ rawMs: number; detectionMs: number }> },
  label = 'watcher request on the queue, after the raw watch',
): string {
  const width = 640;
  const height = 300;
  const m = { left: 50, right: 20, top: 20, bottom: 40 };
  const samples = d.samples ?? [];
  const series = [
    {
      name: label,
      color: '#1f77b4',
      values: samples.map((s) => s.detectionMs),
    },
    { name: 'raw watch, after the delete call', color: '#ff7f0e', values: samples.map((s) => s.rawMs) },
  ];
  const maxX = Math.max(260, ...samples.flatMap((s) => [s.detectionMs, s.rawMs]));
  const x = (v: number) => m.left + (v / maxX) * (width - m.left - m.right);
  const y = (p: number) => height - m.bottom - p * (height - m.top - m.bottom);
  const lines = series.map((s) => {
    const sorted = [...s.values].sort((a, b) => a - b);
    const points = sorted.map((v, i) => `${x(v).toFixed(1)},${y((i + 1) / sorted.length).toFixed(1)}`);
    return `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${x(0)},${y(0)} ${points.join(' ')}"/>`;
  });
  const ticks = Array.from({ length: 6 }, (_, i) => Math.round((maxX / 5) * i));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="detection delay CDF">
  <rect width="${width}" height="${height}" fill="white"/>
  <line x1="${m.left}" y1="${y(0)}" x2="${width - m.right}" y2="${y(0)}" stroke="#333"/>
  <line x1="${m.left}" y1="${y(0)}" x2="${m.left}" y2="${y(1)}" stroke="#333"/>
  ${ticks.map((t) => `<text x="${x(t)}" y="${y(0) + 16}" font-size="11" text-anchor="middle">${t}</text>`).join('')}
  ${[0, 0.5, 0.99].map((p) => `<text x="${m.left - 6}" y="${y(p) + 4}" font-size="11" text-anchor="end">${p * 100}%</text><line x1="${m.left}" x2="${width - m.right}" y1="${y(p)}" y2="${y(p)}" stroke="#eee"/>`).join('')}
  <line x1="${x(250)}" x2="${x(250)}" y1="${y(0)}" y2="${y(1)}" stroke="#d62728" stroke-dasharray="4 3"/>
  <text x="${x(250) + 4}" y="${y(1) + 12}" font-size="11" fill="#d62728">target 250 ms</text>
  ${lines.join('\n  ')}
  <text x="${(width + m.left) / 2}" y="${height - 6}" font-size="12" text-anchor="middle">delay (ms)</text>
  ${series.map((s, i) => `<rect x="${m.left + 10}" y="${m.top + 4 + i * 16}" width="10" height="10" fill="${s.color}"/><text x="${m.left + 26}" y="${m.top + 13 + i * 16}" font-size="11">${escapeHtml(s.name)}</text>`).join('')}
</svg>`;
}

/** One target of DESIGN section 8 or an issue, as measured. */
export interface TargetCheck {
  name: string;
  target: string;
  value: string;
  holds: boolean;
  /** Why a missed target cannot be met on this service, when a measurement shows it. */
  note?: string;
}

/** One group of a grouped bar chart: a value per bar, and two caption lines under it. */
export interface BarGroup {
  values: readonly number[];
  caption: string;
  note: string;
}

/** Grouped bars (instances a second) with a legend: the benchmark's throughput comparisons. */
export function groupedBarChart(options: {
  label: string;
  bars: ReadonlyArray<{ name: string; color: string }>;
  groups: readonly BarGroup[];
  /** Width of one group, px. */
  groupWidth: number;
  /** Legend spacing, px per entry. */
  legendStep: number;
}): string {
  const { bars, groups } = options;
  const width = Math.max(660, options.groupWidth * Math.max(1, groups.length) + 80);
  const height = 320;
  const m = { left: 60, right: 20, top: 30, bottom: 50 };
  const maxY = Math.max(1, ...groups.flatMap((g) => g.values));
  const plotH = height - m.top - m.bottom;
  const groupW = (width - m.left - m.right) / Math.max(1, groups.length);
  const barW = (groupW - 20) / bars.length;
  const drawn = groups.map((group, g) => {
    const x0 = m.left + g * groupW + 10;
    const rects = bars.map((b, i) => {
      const v = group.values[i] ?? 0;
      const h = (v / maxY) * plotH;
      const x = x0 + i * barW;
      return `<rect x="${x.toFixed(1)}" y="${(height - m.bottom - h).toFixed(1)}" width="${(barW - 3).toFixed(1)}" height="${h.toFixed(1)}" fill="${b.color}"/><text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(height - m.bottom - h - 4).toFixed(1)}" font-size="9" text-anchor="middle">${Math.round(v)}</text>`;
    });
    const cx = (x0 + (groupW - 20) / 2).toFixed(1);
    return `${rects.join('')}<text x="${cx}" y="${height - m.bottom + 14}" font-size="10" text-anchor="middle">${escapeHtml(group.caption)}</text><text x="${cx}" y="${height - m.bottom + 27}" font-size="9" text-anchor="middle">${escapeHtml(group.note)}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(options.label)}">
  <rect width="${width}" height="${height}" fill="white"/>
  <line x1="${m.left}" y1="${height - m.bottom}" x2="${width - m.right}" y2="${height - m.bottom}" stroke="#333"/>
  <text x="14" y="${m.top + plotH / 2}" font-size="12" transform="rotate(-90 14 ${m.top + plotH / 2})" text-anchor="middle">instances / s</text>
  ${drawn.join('\n  ')}
  ${bars.map((b, i) => `<rect x="${m.left + i * options.legendStep}" y="8" width="10" height="10" fill="${b.color}"/><text x="${m.left + 16 + i * options.legendStep}" y="17" font-size="11">${escapeHtml(b.name)}</text>`).join('')}
</svg>`;
}
