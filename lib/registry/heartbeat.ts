import type { LayoutName, RegistryLayout } from './layout.ts';

/**
 * Heartbeat parsing (DESIGN.md section 3). Pure and total: whatever a znode holds, the result is a
 * startup time. An empty or unusable heartbeat means "startup time unknown": the node counts as live and
 * its `ctime` stands in for the startup time, with `problem` saying why.
 */

export interface Heartbeat {
  /** Epoch milliseconds of the server's start (its incarnation, F3). */
  readonly startupTime: number;
  readonly startupTimeSource: 'heartbeat' | 'ctime';
  /** Why the heartbeat could not be used (set exactly when `startupTimeSource` is `ctime`). */
  readonly problem?: string;
}

export interface ParseHeartbeatOptions {
  /** The znode's creation time (epoch ms), the fallback startup time. */
  ctime: number;
  /**
   * ds-1.3 writes `yyyy-MM-dd HH:mm:ss` in the server's local time zone: minutes east of UTC
   * (Asia/Shanghai = 480). Default 0 (UTC). A fixed offset: DST changes are not modelled.
   */
  timeZoneOffsetMinutes?: number;
}

/** Real heartbeats are a few hundred bytes; anything this large is not one (and is not parsed). */
export const maxHeartbeatBytes = 64 * 1024;

const maxEpochMs = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
const maxOffsetMinutes = 18 * 60;
const csvStartTimeColumn = 6;
const javaDateTimePattern = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;
const epochMsTextPattern = /^[1-9][0-9]{0,15}$/;

/** Parses a znode's heartbeat data for the given layout. Never throws. */
export function parseHeartbeat(
  layout: RegistryLayout | LayoutName,
  data: Buffer | string | null | undefined,
  options: ParseHeartbeatOptions,
): Heartbeat {
  const ctime = options?.ctime;
  const fallback = (problem: string): Heartbeat => ({
    startupTime: ctime,
    startupTimeSource: 'ctime',
    problem,
  });
  try {
    const layoutName = typeof layout === 'string' ? layout : layout?.name;
    const text = decode(data);
    if (text === null) return fallback('no heartbeat data (null)');
    if (typeof text !== 'string') return fallback(text.problem);
    if (text.length === 0) return fallback('empty heartbeat (server just registered)');
    if (layoutName === 'ds-3') return fromResult(parseJsonHeartbeat(text), fallback);
    if (layoutName === 'ds-1.3')
      return fromResult(parseCsvHeartbeat(text, options?.timeZoneOffsetMinutes), fallback);
    return fallback(`unknown registry layout ${describe(layoutName)}`);
  } catch (error: unknown) {
    // Defensive only: nothing above is expected to throw.
    return fallback(`heartbeat parser failed: ${error instanceof Error ? error.message : describe(error)}`);
  }
}

type ParseResult = { ok: true; startupTime: number } | { ok: false; problem: string };

function fromResult(result: ParseResult, fallback: (problem: string) => Heartbeat): Heartbeat {
  return result.ok
    ? { startupTime: result.startupTime, startupTimeSource: 'heartbeat' }
    : fallback(result.problem);
}

function decode(data: Buffer | string | null | undefined): string | null | { problem: string } {
  if (data === null || data === undefined) return null;
  if (typeof data !== 'string' && !Buffer.isBuffer(data)) {
    return { problem: `heartbeat data is neither a string nor a Buffer (${typeof data})` };
  }
  if (data.length > maxHeartbeatBytes) return { problem: `heartbeat too large (${data.length} bytes)` };
  const text = typeof data === 'string' ? data : data.toString('utf8');
  return text.replace(/^\uFEFF/, '').trim();
}

function parseJsonHeartbeat(text: string): ParseResult {
  if (!text.startsWith('{')) {
    const hint = text.includes(',') && !text.startsWith('[') ? ' (looks like a ds-1.3 CSV heartbeat)' : '';
    return { ok: false, problem: `heartbeat is not a JSON object${hint}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'heartbeat is not valid JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { ok: false, problem: 'heartbeat is not a JSON object' };
  }
  if (!Object.hasOwn(parsed, 'startupTime')) return { ok: false, problem: 'heartbeat has no startupTime' };
  const value: unknown = (parsed as Record<string, unknown>).startupTime;
  const startupTime =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && epochMsTextPattern.test(value)
        ? Number(value)
        : NaN;
  if (!Number.isSafeInteger(startupTime) || startupTime <= 0 || startupTime > maxEpochMs) {
    return {
      ok: false,
      problem: `heartbeat startupTime is not an epoch-millisecond time: ${describe(value)}`,
    };
  }
  return { ok: true, startupTime };
}

function parseCsvHeartbeat(text: string, offsetMinutes: number | undefined): ParseResult {
  const offset = offsetMinutes ?? 0;
  if (!Number.isInteger(offset) || Math.abs(offset) > maxOffsetMinutes) {
    return { ok: false, problem: `invalid timeZoneOffsetMinutes ${describe(offsetMinutes)}` };
  }
  if (text.startsWith('{'))
    return { ok: false, problem: 'heartbeat is JSON, expected ds-1.3 CSV (layout ds-3?)' };
  const fields = text.split(',');
  const startTime = fields[csvStartTimeColumn];
  if (startTime === undefined) {
    return {
      ok: false,
      problem: `heartbeat CSV has ${fields.length} field(s), startTime is field ${csvStartTimeColumn + 1}`,
    };
  }
  const local = parseJavaDateTime(startTime.trim());
  if (local === null)
    return { ok: false, problem: `heartbeat startTime is not yyyy-MM-dd HH:mm:ss: ${describe(startTime)}` };
  const startupTime = local - offset * 60_000;
  if (startupTime <= 0 || startupTime > maxEpochMs) {
    return { ok: false, problem: `heartbeat startTime out of range: ${describe(startTime)}` };
  }
  return { ok: true, startupTime };
}

/** `yyyy-MM-dd HH:mm:ss` as if it were UTC, or null unless every field is in range. */
function parseJavaDateTime(text: string): number | null {
  const match = javaDateTimePattern.exec(text);
  if (match === null) return null;
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (year < 1970 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59)
    return null;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day > daysInMonth) return null;
  return Date.UTC(year, month - 1, day, hour, minute, second);
}

function describe(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    text = typeof value;
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
