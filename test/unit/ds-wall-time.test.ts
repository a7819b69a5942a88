// WallClock converts DolphinScheduler's zone-less stored times (PostgreSQL `timestamp`, MySQL `datetime`,
// written in DS_TIME_ZONE) to and from epoch milliseconds. F3 compares those instants with a restarted
// master's startupTime, so a wrong hour here fails over work a live master owns.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidWallTimeError, WallClock } from '../../lib/store/dolphinscheduler/wall-time.ts';

const HOUR = 3_600_000;
const utc = (...parts: [number, number, number, number?, number?, number?, number?]): number =>
  Date.UTC(...parts);

describe('WallClock in UTC', () => {
  const clock = new WallClock('UTC');

  it('formats an instant with milliseconds by default', () => {
    // Arrange
    const instant = utc(2024, 2, 10, 12, 0, 0, 7);

    // Act
    const text = clock.format(instant);

    // Assert
    expect(text).toBe('2024-03-10 12:00:00.007');
  });

  it('parses what it formats back to the same instant', () => {
    const instant = utc(2024, 1, 29, 23, 59, 59, 999);

    const text = clock.format(instant, 'ms');
    const parsed = clock.parse(text);

    expect(text).toBe('2024-02-29 23:59:59.999');
    expect(parsed).toBe(instant);
  });

  it('formats instants before 1970 (negative epochs) on the right side of the second', () => {
    expect(clock.format(-1, 'ms')).toBe('1969-12-31 23:59:59.999');
    expect(clock.format(-1, 's')).toBe('1969-12-31 23:59:59');
    expect(clock.parse('1969-12-31 23:59:59.999')).toBe(-1);
  });

  it('has no offset', () => {
    expect(clock.offsetAt(utc(2024, 6, 1))).toBe(0);
  });
});

describe('WallClock in Asia/Shanghai (+8, no daylight saving)', () => {
  const clock = new WallClock('Asia/Shanghai');

  it('formats an instant eight hours ahead of UTC, crossing midnight', () => {
    const instant = utc(2024, 11, 31, 16, 30, 0, 250);

    const text = clock.format(instant);

    expect(text).toBe('2025-01-01 00:30:00.250');
  });

  it('parses a stored wall time eight hours back', () => {
    const parsed = clock.parse('2024-07-01 08:00:00');

    expect(parsed).toBe(utc(2024, 6, 1, 0, 0, 0));
  });

  it('keeps +8 all year', () => {
    expect(clock.offsetAt(utc(2024, 0, 15))).toBe(8 * HOUR);
    expect(clock.offsetAt(utc(2024, 6, 15))).toBe(8 * HOUR);
  });
});

describe('WallClock precision', () => {
  const clock = new WallClock('UTC');

  it("'s' truncates to the second, never rounds up", () => {
    const instant = utc(2024, 0, 1, 12, 0, 0, 999);

    expect(clock.format(instant, 's')).toBe('2024-01-01 12:00:00');
    expect(clock.format(instant, 'ms')).toBe('2024-01-01 12:00:00.999');
  });

  it("'s' on the last millisecond of a day stays on that day", () => {
    const instant = utc(2023, 11, 31, 23, 59, 59, 999);

    expect(clock.format(instant, 's')).toBe('2023-12-31 23:59:59');
  });

  it.each([
    ['2024-03-10 12:00:00', 0],
    ['2024-03-10 12:00:00.1', 100],
    ['2024-03-10 12:00:00.12', 120],
    ['2024-03-10 12:00:00.123', 123],
    ['2024-03-10 12:00:00.1234', 123],
    ['2024-03-10 12:00:00.12345', 123],
    ['2024-03-10 12:00:00.123456', 123],
    ['2024-03-10 12:00:00.000999', 0],
    ['2024-03-10 12:00:00.999999', 999],
    ['2024-03-10 12:00:00.5', 500],
    ['2024-03-10 12:00:00.05', 50],
    ['2024-03-10 12:00:00.999999999', 999],
  ])('reads the fraction of %s as %i ms (truncated)', (text, ms) => {
    const parsed = clock.parse(text);

    expect(parsed).toBe(utc(2024, 2, 10, 12, 0, 0, ms));
  });

  it('reads every millisecond, and the microseconds at its edges, exactly (no floating-point loss)', () => {
    const base = utc(2024, 2, 10, 12, 0, 0);
    const wrong: string[] = [];

    for (let ms = 0; ms < 1000; ms++) {
      const three = String(ms).padStart(3, '0');
      if (clock.parse(`2024-03-10 12:00:00.${three}`) !== base + ms) wrong.push(three);
      // The microseconds at both ends of the millisecond, where a lossy product would round across it.
      for (const micros of ['000', '999']) {
        if (clock.parse(`2024-03-10 12:00:00.${three}${micros}`) !== base + ms) wrong.push(three + micros);
      }
    }

    expect(wrong).toEqual([]);
  });

  it("accepts ISO's T separator and surrounding blanks (drivers differ)", () => {
    expect(clock.parse(' 2024-03-10T12:00:00.5 ')).toBe(utc(2024, 2, 10, 12, 0, 0, 500));
  });
});

describe('WallClock across daylight-saving transitions', () => {
  describe('America/New_York (2024: forward 10 March 02:00 EST, back 3 November 02:00 EDT)', () => {
    const clock = new WallClock('America/New_York');

    it('formats both sides of the spring-forward jump', () => {
      expect(clock.format(utc(2024, 2, 10, 6, 59, 59, 999))).toBe('2024-03-10 01:59:59.999');
      expect(clock.format(utc(2024, 2, 10, 7, 0, 0, 0))).toBe('2024-03-10 03:00:00.000');
    });

    it('parses the unambiguous times either side of the gap', () => {
      expect(clock.parse('2024-03-10 01:59:59.999')).toBe(utc(2024, 2, 10, 6, 59, 59, 999));
      expect(clock.parse('2024-03-10 03:00:00')).toBe(utc(2024, 2, 10, 7, 0, 0));
    });

    it('reads a wall time in the spring-forward gap with the offset before the gap', () => {
      // 02:30 never happened on 10 March 2024 in New York.
      const parsed = clock.parse('2024-03-10 02:30:00');

      expect(parsed).toBe(utc(2024, 2, 10, 7, 30));
      expect(clock.format(parsed, 's')).toBe('2024-03-10 03:30:00');
    });

    it('no instant of that day formats as a wall time of the gap', () => {
      const gapTexts = new Set<string>();

      for (let t = utc(2024, 2, 10, 0); t < utc(2024, 2, 11, 0); t += 60_000) {
        const text = clock.format(t, 's');
        if (text.startsWith('2024-03-10 02:')) gapTexts.add(text);
      }

      expect([...gapTexts]).toEqual([]);
    });

    it('reads the ambiguous fall-back hour as the LATER instant (EST)', () => {
      // 01:30 happened twice: 05:30Z (EDT) and 06:30Z (EST).
      const earlier = utc(2024, 10, 3, 5, 30);
      const later = utc(2024, 10, 3, 6, 30);

      const parsed = clock.parse('2024-11-03 01:30:00');

      expect(clock.format(earlier, 's')).toBe('2024-11-03 01:30:00');
      expect(clock.format(later, 's')).toBe('2024-11-03 01:30:00');
      expect(parsed).toBe(later);
    });

    it('takes the later instant at both edges of the repeated hour, and nothing outside it', () => {
      expect(clock.parse('2024-11-03 00:59:59.999')).toBe(utc(2024, 10, 3, 4, 59, 59, 999));
      expect(clock.parse('2024-11-03 01:00:00')).toBe(utc(2024, 10, 3, 6, 0, 0));
      expect(clock.parse('2024-11-03 01:59:59.999')).toBe(utc(2024, 10, 3, 6, 59, 59, 999));
      expect(clock.parse('2024-11-03 02:00:00')).toBe(utc(2024, 10, 3, 7, 0, 0));
    });

    it('has EST and EDT offsets', () => {
      expect(clock.offsetAt(utc(2024, 0, 15))).toBe(-5 * HOUR);
      expect(clock.offsetAt(utc(2024, 6, 15))).toBe(-4 * HOUR);
    });
  });

  describe('Europe/Berlin (2024: forward 31 March 02:00 CET, back 27 October 03:00 CEST)', () => {
    const clock = new WallClock('Europe/Berlin');

    it('round-trips summer and winter times', () => {
      const summer = utc(2024, 6, 1, 10, 0, 0, 123);
      const winter = utc(2024, 0, 1, 10, 0, 0, 123);

      expect(clock.format(summer)).toBe('2024-07-01 12:00:00.123');
      expect(clock.format(winter)).toBe('2024-01-01 11:00:00.123');
      expect(clock.parse('2024-07-01 12:00:00.123')).toBe(summer);
      expect(clock.parse('2024-01-01 11:00:00.123')).toBe(winter);
    });

    it('reads a wall time in the spring-forward gap with the offset before the gap (CET)', () => {
      const parsed = clock.parse('2024-03-31 02:30:00');

      expect(parsed).toBe(utc(2024, 2, 31, 1, 30));
      expect(clock.format(parsed, 's')).toBe('2024-03-31 03:30:00');
    });

    it('reads the ambiguous fall-back hour as the LATER instant (CET)', () => {
      // 02:30 happened twice: 00:30Z (CEST) and 01:30Z (CET).
      const parsed = clock.parse('2024-10-27 02:30:00.500');

      expect(clock.format(utc(2024, 9, 27, 0, 30, 0, 500))).toBe('2024-10-27 02:30:00.500');
      expect(parsed).toBe(utc(2024, 9, 27, 1, 30, 0, 500));
    });

    it('leaves the hours around the repeated one unambiguous', () => {
      expect(clock.parse('2024-10-27 01:59:59')).toBe(utc(2024, 9, 26, 23, 59, 59));
      expect(clock.parse('2024-10-27 03:00:00')).toBe(utc(2024, 9, 27, 2, 0, 0));
    });
  });
});

describe('WallClock refuses what is not a wall time', () => {
  const clock = new WallClock('UTC');

  it.each([
    '',
    'yesterday',
    '2024-03-10',
    '2024-03-10 12:00',
    '2024/03/10 12:00:00',
    '2024-3-10 12:00:00',
    '2024-03-10 12:00:00.',
    '2024-03-10 12:00:00.1234567890',
    '2024-03-10 12:00:00+08',
    '2024-03-10 12:00:00 BC',
    '12024-03-10 12:00:00',
    'infinity',
    '1710072000000',
  ])('throws InvalidWallTimeError for %j', (text) => {
    expect(() => clock.parse(text)).toThrow(InvalidWallTimeError);
  });

  it.each([
    // MySQL's zero date (NO_ZERO_DATE off): no instant at all.
    '0000-00-00 00:00:00',
    '0000-01-01 00:00:00',
    '2024-00-10 12:00:00',
    '2024-13-01 12:00:00',
    '2024-01-00 12:00:00',
    '2024-02-30 12:00:00',
    '2023-02-29 12:00:00',
    '2024-04-31 12:00:00',
    '2024-01-01 24:00:00',
    '2024-01-01 23:60:00',
    '2024-01-01 23:59:60',
  ])('throws InvalidWallTimeError for the out-of-range %j instead of rolling it over', (text) => {
    expect(() => clock.parse(text)).toThrow(InvalidWallTimeError);
  });

  it('names the offending text in the error', () => {
    expect(() => clock.parse('2024-02-30 12:00:00')).toThrow(/2024-02-30 12:00:00/);
  });

  it('accepts a leap day', () => {
    expect(clock.parse('2024-02-29 12:00:00')).toBe(utc(2024, 1, 29, 12));
  });

  it('reads a year below 100 as that year, not 19xx', () => {
    const expected = new Date(0);
    expected.setUTCFullYear(99, 5, 15);

    const parsed = clock.parse('0099-06-15 00:00:00');

    expect(parsed).toBe(expected.getTime());
    expect(new Date(parsed).getUTCFullYear()).toBe(99);
  });

  it('applies the zone offset to a year below 100 too', () => {
    const plusEight = new WallClock('Etc/GMT-8');
    const midnightUtc = new Date(0);
    midnightUtc.setUTCFullYear(99, 5, 15);

    const parsed = plusEight.parse('0099-06-15 08:00:00');

    expect(plusEight.offsetAt(midnightUtc.getTime())).toBe(8 * HOUR);
    expect(parsed).toBe(midnightUtc.getTime());
  });

  it('throws RangeError for an unknown time zone', () => {
    expect(() => new WallClock('Mars/Olympus_Mons')).toThrow(RangeError);
  });
});

describe('WallClock round trip (property)', () => {
  const zones = [
    'UTC',
    'Asia/Shanghai',
    'America/New_York',
    'Europe/Berlin',
    'Australia/Lord_Howe', // 30-minute daylight saving
    'Pacific/Apia', // skipped 30 December 2011 entirely (-10 -> +14)
  ];
  const clocks = new Map(zones.map((z) => [z, new WallClock(z)]));
  const instant = fc.integer({ min: utc(1971, 0, 1), max: utc(2101, 0, 1) - 1 });

  /** parse(format(t)) is t, or, in a fall-back hour, the same wall time one shift later. */
  function checkRoundTrip(zone: string, t: number, precision: 'ms' | 's'): void {
    const clock = clocks.get(zone) as WallClock;
    const expected = precision === 'ms' ? t : Math.floor(t / 1000) * 1000;
    const text = clock.format(t, precision);

    const parsed = clock.parse(text);

    expect(parsed).toBeGreaterThanOrEqual(expected);
    if (parsed !== expected) {
      // Only a repeated wall time may read later, and then by exactly the offset it fell back by.
      expect(clock.format(parsed, precision)).toBe(text);
      expect(parsed - expected).toBe(clock.offsetAt(expected) - clock.offsetAt(parsed));
    }
  }

  it("parse(format(t, 'ms')) === t for 1971..2100, except within a fall-back hour where it is >= t", () => {
    fc.assert(
      fc.property(fc.constantFrom(...zones), instant, (zone, t) => checkRoundTrip(zone, t, 'ms')),
      { numRuns: 3000 },
    );
  });

  it("parse(format(t, 's')) is t cut to its second, with the same fall-back exception", () => {
    fc.assert(
      fc.property(fc.constantFrom(...zones), instant, (zone, t) => checkRoundTrip(zone, t, 's')),
      { numRuns: 1000 },
    );
  });

  it('holds within two hours of each 2024 transition (and Apia 2011), where it is most likely to break', () => {
    const transitions: Array<[string, number]> = [
      ['America/New_York', utc(2024, 2, 10, 7)],
      ['America/New_York', utc(2024, 10, 3, 6)],
      ['Europe/Berlin', utc(2024, 2, 31, 1)],
      ['Europe/Berlin', utc(2024, 9, 27, 1)],
      ['Australia/Lord_Howe', utc(2024, 3, 6, 15)],
      ['Australia/Lord_Howe', utc(2024, 9, 5, 15, 30)],
      ['Pacific/Apia', utc(2011, 11, 30, 10)],
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...transitions),
        fc.integer({ min: -2 * HOUR, max: 2 * HOUR }),
        ([zone, at], delta) => checkRoundTrip(zone, at + delta, 'ms'),
      ),
      { numRuns: 3000 },
    );
  });

  it('reads later than the instant only in a fall-back hour, and there always', () => {
    const clock = clocks.get('America/New_York') as WallClock;
    const readLater: number[] = [];

    for (let t = utc(2024, 10, 3, 4); t < utc(2024, 10, 3, 8); t += 60_000) {
      if (clock.parse(clock.format(t)) !== t) readLater.push(t);
    }

    // Exactly the 60 minutes of the earlier (EDT) 01:xx.
    expect(readLater).toHaveLength(60);
    expect(readLater[0]).toBe(utc(2024, 10, 3, 5, 0));
    expect(readLater.at(-1)).toBe(utc(2024, 10, 3, 5, 59));
  });
});
