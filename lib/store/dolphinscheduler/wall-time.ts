// DolphinScheduler stores times as wall-clock values with no zone (PostgreSQL `timestamp`, MySQL
// `datetime`), written in its JVM's time zone (DS_TIME_ZONE). These convert between such values and epoch
// milliseconds for one IANA zone. Around a daylight-saving fall-back the same wall time names two instants:
// the later one is taken, so an instance of that hour looks newer, which F3 treats as the safe side
// (never fail over work a restarted master may own).

export class InvalidWallTimeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidWallTimeError';
  }
}

const wallTimePattern = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$/;

/** A validated IANA time zone (throws RangeError for an unknown one). */
/** Wall-clock minutes whose offset a clock keeps (a few MB at most). */
const MAX_CACHED_MINUTES = 50_000;

export class WallClock {
  readonly #format: Intl.DateTimeFormat;
  readonly #offsets = new Map<number, number>();

  constructor(readonly timeZone: string) {
    this.#format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
  }

  /** `yyyy-MM-dd HH:mm:ss.SSS` (or whole seconds) of an instant in this zone. */
  format(epochMs: number, precision: 'ms' | 's' = 'ms'): string {
    const whole = Math.floor(epochMs / 1000) * 1000;
    const parts = Object.fromEntries(this.#format.formatToParts(whole).map((p) => [p.type, p.value]));
    const text = `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
    return precision === 's' ? text : `${text}.${String(epochMs - whole).padStart(3, '0')}`;
  }

  /** The instant a stored wall time names in this zone (the later one in a fall-back hour). */
  parse(text: string): number {
    const match = wallTimePattern.exec(text.trim());
    if (match === null) throw new InvalidWallTimeError(`not a wall-clock time: ${JSON.stringify(text)}`);
    const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const ms = Math.floor(Number(`0.${match[7] ?? '0'}`) * 1000);
    const asUtc = utcOf(year, month, day, hour, minute, second, ms);
    if (asUtc === undefined) throw new InvalidWallTimeError(`not a wall-clock time: ${JSON.stringify(text)}`);
    // Offsets change on whole minutes: every wall time of one minute reads with the same offset, so it is
    // worked out once per minute (a page of rows mostly shares a few minutes).
    const wallMinute = asUtc - second * 1000 - ms;
    let offset = this.#offsets.get(wallMinute);
    if (offset === undefined) {
      offset = this.#offsetOfWallMinute(wallMinute);
      if (this.#offsets.size >= MAX_CACHED_MINUTES) this.#offsets.clear();
      this.#offsets.set(wallMinute, offset);
    }
    return asUtc - offset;
  }

  /** The offset a wall-clock minute (given as if it were UTC) reads with; the later instant in a fold. */
  #offsetOfWallMinute(asUtc: number): number {
    // The zone's offset is at most a day: try the offsets in force a day either side and keep the latest
    // instant that formats back to the same wall time.
    const candidates = new Set([
      this.offsetAt(asUtc - 86_400_000),
      this.offsetAt(asUtc),
      this.offsetAt(asUtc + 86_400_000),
    ]);
    let best: number | undefined;
    for (const offset of candidates) {
      const instant = asUtc - offset;
      if (this.offsetAt(instant) === offset && (best === undefined || offset < best)) best = offset;
    }
    // In a spring-forward gap the wall time never happened: read it with the offset before the gap.
    return best ?? this.offsetAt(asUtc - 86_400_000);
  }

  /** Milliseconds east of UTC in force at an instant. */
  offsetAt(epochMs: number): number {
    const whole = Math.floor(epochMs / 1000) * 1000;
    const parts = Object.fromEntries(this.#format.formatToParts(whole).map((p) => [p.type, p.value]));
    const asUtc = fieldsAsUtc(
      Number(parts.year),
      Number(parts.month),
      Number(parts.day),
      Number(parts.hour),
      Number(parts.minute),
      Number(parts.second),
      0,
    );
    return asUtc.getTime() - whole;
  }
}

/**
 * The fields read as if in UTC, or undefined when one is out of range: Date.UTC alone would roll
 * `2024-02-30` over to 1 March, read MySQL's zero date `0000-00-00` as 1899, and years below 100 as 19xx.
 * Year 0 (1 BC) is refused: no DolphinScheduler time is that old, and Intl would format it as year 1.
 */
function utcOf(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  ms: number,
): number | undefined {
  const date = fieldsAsUtc(year, month, day, hour, minute, second, ms);
  const exact =
    year >= 1 &&
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    date.getUTCHours() === hour &&
    date.getUTCMinutes() === minute &&
    date.getUTCSeconds() === second;
  return exact ? date.getTime() : undefined;
}

/** Like Date.UTC (month 1-12), but a year below 100 is that year, not 1900 + year. */
function fieldsAsUtc(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  ms: number,
): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, ms);
  return date;
}
