// Property-based fuzzing of everything that parses input from outside: queue messages, heartbeats, znode
// names and items other systems write. The parsers must be total (never throw, whatever arrives), accept
// only what round-trips, and give reasons that are safe to log and to put in an SQS message attribute.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FailoverRequestSchema,
  failoverRequestDedupId,
  failoverRequestGroupId,
  isFifoSafeId,
  isHostPort,
  MAX_JSON_DEPTH,
  MAX_MESSAGE_BYTES,
  MAX_REASON_CHARS,
  parseCommandMessage,
  parseFailoverRequest,
  toFifoSafeId,
} from '../../lib/messages.ts';
import { maxHeartbeatBytes, parseHeartbeat } from '../../lib/registry/heartbeat.ts';
import {
  createLayout,
  isValidGroupName,
  parseDeadServerName,
  parseServerName,
} from '../../lib/registry/layout.ts';
import type { Item } from '../../lib/store/dynamodb/attributes.ts';
import { parseProcessInstance } from '../../lib/store/dynamodb/instances.ts';
import { parseTaskInstance } from '../../lib/store/dynamodb/tasks.ts';
import { hostileBodies } from '../chaos/hostile-bodies.ts';

const runs = { numRuns: 400 };

const valid = {
  kind: 'NodeRemoved',
  nodeType: 'worker',
  host: '10.1.2.3:1234',
  czxid: '4294967296',
  startupTime: 1_700_000_000_000,
  observedAt: 1_700_000_100_000,
  source: 'watcher',
  attempt: 0,
};
const validBody = JSON.stringify(valid);

/** A reason that can go into a log line and an SQS message attribute as is. */
function expectSafeReason(reason: string): void {
  expect(reason.length).toBeGreaterThan(0);
  expect(reason.length).toBeLessThanOrEqual(MAX_REASON_CHARS);
  expect(reason).toMatch(/^[\x20-\x7e]*$/);
}

/** Text edits: insert, delete or replace a character at a position (a corrupted or tampered body). */
const edit = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('insert', 'delete', 'replace'),
  char: fc.oneof(
    fc.constantFrom(
      '"',
      '{',
      '}',
      '[',
      ']',
      ',',
      ':',
      '\\',
      '\u0000',
      '\u2028',
      '\ud800',
      ' ',
      '0',
      '-',
      'e',
    ),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  ),
});

function applyEdits(text: string, edits: ReadonlyArray<{ at: number; kind: string; char: string }>): string {
  let out = text;
  for (const e of edits) {
    const i = out.length === 0 ? 0 : e.at % (out.length + 1);
    if (e.kind === 'insert') out = out.slice(0, i) + e.char + out.slice(i);
    else if (e.kind === 'delete') out = out.slice(0, i) + out.slice(i + 1);
    else out = out.slice(0, i) + e.char + out.slice(i + 1);
  }
  return out;
}

/** Deeply nested JSON values, well beyond MAX_JSON_DEPTH. */
const deepJson = fc
  .tuple(fc.integer({ min: 1, max: 400 }), fc.constantFrom('[', '{"a":'), fc.jsonValue({ maxDepth: 2 }))
  .map(([depth, open, leaf]) => {
    const close = open === '[' ? ']' : '}';
    return `${open.repeat(depth)}${JSON.stringify(leaf) ?? 'null'}${close.repeat(depth)}`;
  });

const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((p) => p.join('.'));
const port = fc.integer({ min: 1, max: 65_535 });
const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/);
const hostname = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 4 }), fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/))
  .map(([labels, tld]) => [...labels, tld].join('.'));
const serverName = fc.tuple(fc.oneof(ipv4, hostname), port).map(([h, p]) => `${h}:${p}`);

describe('failover request parsing under fuzzing', () => {
  it('never throws on corrupted valid bodies, and whatever it accepts is a valid request', () => {
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 6 }), (edits) => {
        const result = parseFailoverRequest(applyEdits(validBody, edits));
        if (!result.ok) {
          expectSafeReason(result.reason);
          return;
        }
        expect(FailoverRequestSchema.parse(JSON.parse(JSON.stringify(result.value)))).toEqual(result.value);
        expect(isHostPort(result.value.host)).toBe(true);
      }),
      runs,
    );
  });

  it('refuses deep nesting without overflowing the stack', () => {
    fc.assert(
      fc.property(deepJson, (text) => {
        const result = parseFailoverRequest(text);
        expect(result.ok).toBe(false);
        if (!result.ok && text.startsWith('['.repeat(MAX_JSON_DEPTH + 1))) {
          expect(result.reason).toContain('nested');
        }
      }),
      runs,
    );
  });

  it('never throws when any field holds any value (wrong types, unicode, huge numbers)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(valid), '__proto__', 'constructor', 'toString'),
        fc.anything({ withBigInt: false, withMap: false, withSet: false, withTypedArray: false }),
        (key, value) => {
          let text: string;
          try {
            text = JSON.stringify({ ...valid, [key]: value }) ?? 'null';
          } catch {
            return; // not serializable (cycles are not generated, but symbols may throw)
          }
          const result = parseFailoverRequest(text);
          if (!result.ok) expectSafeReason(result.reason);
        },
      ),
      runs,
    );
  });

  it('rejects hosts that are not exactly ip:port or hostname:port, whatever is injected', () => {
    const injected = fc
      .tuple(
        serverName,
        fc.nat(),
        fc.constantFrom(
          ' ',
          '\n',
          '/',
          '\\',
          "'",
          ';',
          '$',
          '*',
          '%',
          '\u0000',
          '\u200b',
          'а',
          '１',
          '[',
          '@',
        ),
      )
      .map(([name, at, c]) => {
        const i = at % (name.length + 1);
        return name.slice(0, i) + c + name.slice(i);
      });
    fc.assert(
      fc.property(injected, (host) => {
        const result = parseFailoverRequest(JSON.stringify({ ...valid, host }));
        expect(result.ok).toBe(false);
      }),
      runs,
    );
  });

  it('accepts every well-formed host and derives FIFO-safe ids for it', () => {
    fc.assert(
      fc.property(serverName, fc.constantFrom('master' as const, 'worker' as const), (host, nodeType) => {
        const result = parseFailoverRequest(JSON.stringify({ ...valid, host, nodeType }));
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(isFifoSafeId(failoverRequestDedupId(result.value))).toBe(true);
        expect(isFifoSafeId(failoverRequestGroupId(result.value))).toBe(true);
      }),
      runs,
    );
  });

  it('measures the size limit in UTF-8 bytes, before parsing', () => {
    fc.assert(
      fc.property(fc.integer({ min: -8, max: 8 }), fc.constantFrom('a', 'é', '€', '😀'), (delta, unit) => {
        // Pad a valid request with trailing whitespace-free JSON: a string field that is not allowed.
        const prefix = `${validBody.slice(0, -1)},"pad":"`;
        const bytesPerUnit = Buffer.byteLength(unit, 'utf8');
        const room = MAX_MESSAGE_BYTES + delta - Buffer.byteLength(`${prefix}"}`, 'utf8');
        const text = `${prefix}${unit.repeat(Math.max(0, Math.floor(room / bytesPerUnit)))}"}`;
        const result = parseFailoverRequest(text);
        expect(result.ok).toBe(false);
        if (!result.ok) {
          const over = Buffer.byteLength(text, 'utf8') > MAX_MESSAGE_BYTES;
          expect(result.reason.includes('exceeds')).toBe(over);
        }
      }),
      runs,
    );
  });

  it('rejects the whole hostile corpus of the chaos suite, each with a safe reason', () => {
    for (const { label: what, body } of hostileBodies()) {
      const result = parseFailoverRequest(body);
      expect(result.ok, what).toBe(false);
      if (!result.ok) expectSafeReason(result.reason);
    }
  });

  it('parses commands totally too', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 200 }),
          deepJson,
          fc.jsonValue().map((v) => JSON.stringify(v) ?? ''),
        ),
        (text) => {
          const result = parseCommandMessage(text);
          if (!result.ok) expectSafeReason(result.reason);
        },
      ),
      runs,
    );
  });
});

describe('FIFO ids under fuzzing', () => {
  it('are always valid, deterministic and distinct for distinct inputs', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.string({ unit: 'binary', maxLength: 300 }),
        (a, b) => {
          const idA = toFifoSafeId(a);
          expect(isFifoSafeId(idA)).toBe(true);
          expect(toFifoSafeId(a)).toBe(idA);
          if (a !== b) expect(toFifoSafeId(b)).not.toBe(idA);
        },
      ),
      runs,
    );
  });
});

describe('heartbeat parsing under fuzzing', () => {
  const layouts = fc.constantFrom('ds-3' as const, 'ds-1.3' as const);
  const ctime = fc.integer({ min: 1, max: 4_102_444_800_000 });
  const anyData = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc.jsonValue().map((v) => JSON.stringify(v) ?? ''),
    fc.constant(null),
    fc.constant(undefined),
  );

  const expectTotal = (h: ReturnType<typeof parseHeartbeat>, ctimeValue: number) => {
    if (h.startupTimeSource === 'ctime') {
      expect(h.startupTime).toBe(ctimeValue);
      expect(typeof h.problem).toBe('string');
    } else {
      expect(Number.isSafeInteger(h.startupTime)).toBe(true);
      expect(h.startupTime).toBeGreaterThan(0);
      expect(h.problem).toBeUndefined();
    }
  };

  it('never throws, for any data, layout, ctime and time zone', () => {
    fc.assert(
      fc.property(anyData, layouts, ctime, fc.integer({ min: -2_000, max: 2_000 }), (data, layout, c, tz) => {
        expectTotal(parseHeartbeat(layout, data, { ctime: c, timeZoneOffsetMinutes: tz }), c);
      }),
      runs,
    );
  });

  it('never throws on corrupted real heartbeats of either layout', () => {
    const ds3 = JSON.stringify({
      startupTime: 1_700_000_000_000,
      reportTime: 1_700_000_010_000,
      host: 'x',
      port: 1,
    });
    const ds13 = '0.1,0.5,1.2,3.5,10.0,0.3,2024-05-01 00:00:00,2024-05-01 00:00:10,0,4242';
    fc.assert(
      fc.property(
        fc.constantFrom(ds3, ds13),
        fc.array(edit, { minLength: 1, maxLength: 5 }),
        layouts,
        ctime,
        (base, edits, layout, c) => {
          expectTotal(parseHeartbeat(layout, applyEdits(base, edits), { ctime: c }), c);
        },
      ),
      runs,
    );
  });

  it('round-trips a ds-3 startupTime whatever else the heartbeat holds', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 253_402_300_799_999 }),
        fc.dictionary(
          fc.string({ maxLength: 10 }).filter((k) => k !== 'startupTime' && k !== '__proto__'),
          fc.jsonValue({ maxDepth: 2 }),
        ),
        fc.constantFrom('', ' ', '\n', '\ufeff'),
        (startupTime, extra, pad) => {
          const h = parseHeartbeat(
            'ds-3',
            `${pad}${JSON.stringify({ ...extra, startupTime })}${pad.trim()}`,
            { ctime: 5 },
          );
          expect(h).toEqual({ startupTime, startupTimeSource: 'heartbeat' });
        },
      ),
      runs,
    );
  });

  it('refuses anything larger than the heartbeat limit without parsing it', () => {
    const h = parseHeartbeat('ds-3', `{"startupTime":1,"x":"${'a'.repeat(maxHeartbeatBytes)}"}`, {
      ctime: 9,
    });
    expect(h.startupTimeSource).toBe('ctime');
    expect(h.startupTime).toBe(9);
  });
});

describe('znode names under fuzzing', () => {
  it('parseServerName is total and only accepts a single safe path segment that it keeps exactly', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 80 }),
          serverName,
          fc.string({ unit: 'grapheme', maxLength: 40 }),
        ),
        (name) => {
          const parsed = parseServerName(name);
          if (parsed === null) return;
          expect(parsed.host).toBe(name);
          // biome-ignore lint/suspicious/noControlCharactersInRegex: accepted names must not contain control characters
          expect(name).not.toMatch(/[\s/\u0000-\u001f\u007f]/);
          expect(parsed.port).toBeGreaterThanOrEqual(1);
          expect(parsed.port).toBeLessThanOrEqual(65_535);
          expect(`${parsed.address}:${parsed.port}`).toBe(name);
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it('rejects a valid name with any forbidden character injected', () => {
    fc.assert(
      fc.property(
        serverName,
        fc.nat(),
        fc.constantFrom(' ', '/', '\n', '\t', '\u0000', '%', '\\', '*', '\u200b', '１', '?', '#'),
        (name, at, c) => {
          const i = at % (name.length + 1);
          expect(parseServerName(name.slice(0, i) + c + name.slice(i))).toBeNull();
        },
      ),
      runs,
    );
  });

  it('everything the watcher accepts (except documented [ipv6] and _ names) can be named in a failover request', () => {
    const layout = createLayout({ name: 'ds-3', root: '/fuzz' });
    fc.assert(
      fc.property(
        fc.oneof(serverName, fc.string({ unit: 'binary', maxLength: 40 })),
        fc.constantFrom('master' as const, 'worker' as const),
        (name, nodeType) => {
          const parsed = parseServerName(name);
          if (parsed === null || name.includes('[') || name.includes('_')) return;
          expect(isHostPort(name)).toBe(true);
          expect(layout.serverPath(nodeType, name)).toBe(`/fuzz/nodes/${nodeType}/${name}`);
          const request = FailoverRequestSchema.safeParse({ ...valid, nodeType, host: name });
          expect(request.success).toBe(true);
        },
      ),
      runs,
    );
  });

  it('dead-server marker names and group names are parsed totally', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 60 }),
          serverName.map((n) => `master_${n}`),
          serverName.map((n) => `worker_${n}`),
        ),
        (name) => {
          const dead = parseDeadServerName(name);
          if (dead !== null) expect(`${dead.nodeType}_${dead.server.host}`).toBe(name);
          if (isValidGroupName(name)) {
            // biome-ignore lint/suspicious/noControlCharactersInRegex: accepted groups must not contain control characters
            expect(name).not.toMatch(/[/\u0000-\u001f\u007f]/);
            expect(name.trim()).toBe(name);
          }
        },
      ),
      runs,
    );
  });
});

describe('items written by other systems under fuzzing', () => {
  const attributeValue = fc.oneof(
    fc.record({ S: fc.string({ unit: 'binary', maxLength: 30 }) }),
    fc.record({
      N: fc.oneof(
        fc.double().map(String),
        fc.string({ maxLength: 10 }),
        fc.constant('NaN'),
        fc.constant('1e400'),
      ),
    }),
    fc.record({ BOOL: fc.boolean() }),
    fc.record({ NULL: fc.constant(true) }),
    fc.record({ L: fc.constant([]) }),
  );
  const keys = fc.constantFrom(
    'id',
    'host',
    'state',
    'priority',
    'processDefinitionCode',
    'processDefinitionVersion',
    'executorId',
    'startTime',
    'restartTime',
    'commandParam',
    'failoverCount',
    'fence',
    'fenceLock',
    'lastHost',
    'processInstanceId',
    'submitTime',
  );
  const item = fc.dictionary(keys, attributeValue) as fc.Arbitrary<Item>;

  it('never throw, and only accept items whose typed fields hold their types', () => {
    fc.assert(
      fc.property(item, (raw) => {
        for (const parsed of [parseProcessInstance(raw), parseTaskInstance(raw)]) {
          if (!parsed.ok) {
            expect(typeof parsed.problem).toBe('string');
            continue;
          }
          expect(typeof parsed.value.id).toBe('string');
          expect(parsed.value.id.length).toBeGreaterThan(0);
          for (const [k, v] of Object.entries(parsed.value)) {
            if (typeof v === 'number') expect(Number.isFinite(v), k).toBe(true);
          }
        }
      }),
      { numRuns: 1_000 },
    );
  });
});
