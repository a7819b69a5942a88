// Output helpers of `zkf`: aligned tables, times, and progress on stderr for long operations.

export interface Stream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export interface CliIo {
  stdout: Stream;
  stderr: Stream;
  /** Epoch ms (tests may pin it). */
  now(): number;
  /** The environment (bin/zkf.ts passes process.env): ZK_DIGEST for registry listings. */
  env: Readonly<Record<string, string | undefined>>;
}

/** A plain text table: a header row, then rows, columns padded to their widest cell. */
export function table(
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  indent = '  ',
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `${indent}${cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()}`;
  return [line(header), ...rows.map(line)].join('\n');
}

/** ISO time without milliseconds, UTC. */
export function isoTime(ms: number | undefined | null): string {
  if (ms === undefined || ms === null || !Number.isFinite(ms)) return '-';
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `3m12s ago`, `in 25s`. */
export function relative(ms: number | undefined | null, now: number): string {
  if (ms === undefined || ms === null || !Number.isFinite(ms)) return '-';
  const delta = ms - now;
  const text = duration(Math.abs(delta));
  return delta >= 0 ? `in ${text}` : `${text} ago`;
}

export function duration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/**
 * Progress of a long operation on stderr: a line rewritten in place on a terminal; otherwise a line at
 * most every 2 s (and the last one), so logs stay readable.
 */
export class Progress {
  /** Not before 2 s: quick operations print no progress at all. */
  private lastWrite = Date.now();
  private shown = false;
  private printed = false;

  constructor(
    private readonly stderr: Stream,
    private readonly label: string,
  ) {}

  update(text: string, force = false): void {
    const now = Date.now();
    if (this.stderr.isTTY === true) {
      this.stderr.write(`\r\x1b[K${this.label}: ${text}`);
      this.shown = true;
      return;
    }
    if (!force && now - this.lastWrite < 2_000) return;
    this.lastWrite = now;
    this.printed = true;
    this.stderr.write(`${this.label}: ${text}\n`);
  }

  /** The closing line: always on a terminal, otherwise only after progress lines were printed. */
  done(text: string): void {
    if (this.stderr.isTTY === true) {
      this.stderr.write(`\r\x1b[K${this.label}: ${text}\n`);
      this.shown = false;
      return;
    }
    if (this.printed) this.stderr.write(`${this.label}: ${text}\n`);
  }

  /** Clears an in-place line (terminal) before other output. */
  clear(): void {
    if (this.shown && this.stderr.isTTY === true) this.stderr.write('\r\x1b[K');
    this.shown = false;
  }
}
