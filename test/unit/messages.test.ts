import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  commandDedupId,
  commandGroupId,
  type FailoverRequest,
  type FailoverRequestInput,
  failoverRequestDedupId,
  failoverRequestGroupId,
  isFifoSafeId,
  isHostPort,
  MAX_JSON_DEPTH,
  MAX_MESSAGE_BYTES,
  MAX_REASON_CHARS,
  parseCommandMessage,
  parseFailoverRequest,
  type RecoveryCommand,
  type TaskFailoverNotice,
} from '../../lib/messages.ts';
import { parseServerName } from '../../lib/registry/layout.ts';

const GOOD: FailoverRequestInput = {
  kind: 'NodeRemoved',
  nodeType: 'master',
  host: '10.0.0.1:5678',
  czxid: '4294967296',
  startupTime: 1_700_000_000_000,
  observedAt: 1_700_000_100_000,
  source: 'watcher',
};

function body(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...GOOD, ...overrides });
}

function rejectionOf(text: string): string {
  const result = parseFailoverRequest(text);
  if (result.ok) throw new Error(`expected a rejection of ${text}`);
  return result.reason;
}

describe('parseFailoverRequest: accepted messages', () => {
  it('accepts a watcher request and defaults attempt to 0', () => {
    const result = parseFailoverRequest(body());

    expect(result).toEqual({ ok: true, value: { ...GOOD, attempt: 0 } });
  });

  it('accepts nulls for czxid and startupTime (sweep orphans)', () => {
    const result = parseFailoverRequest(
      body({ kind: 'Orphaned', source: 'sweep', czxid: null, startupTime: null, nodeType: 'worker' }),
    );

    expect(result.ok).toBe(true);
  });

  it('accepts a continuation with its attempt counter', () => {
    const result = parseFailoverRequest(body({ source: 'continuation', attempt: 3 }));

    expect(result.ok && result.value.attempt).toBe(3);
  });

  it.each([
    '0.0.0.0:1',
    '255.255.255.255:65535',
    '192.168.1.10:5678',
    'master-1.dolphin.svc.cluster.local:5678',
    'worker1:1234',
    'a:1',
  ])('accepts the host %s', (host) => {
    expect(parseFailoverRequest(body({ host })).ok).toBe(true);
  });

  it('accepts a body of exactly MAX_MESSAGE_BYTES bytes (trailing whitespace is valid JSON)', () => {
    // Arrange: a valid message padded with spaces to exactly the limit
    const text = body().padEnd(MAX_MESSAGE_BYTES, ' ');

    // Act
    const result = parseFailoverRequest(text);

    // Assert
    expect(Buffer.byteLength(text, 'utf8')).toBe(MAX_MESSAGE_BYTES);
    expect(result.ok).toBe(true);
  });
});

describe('parseFailoverRequest: hostile and malformed host strings', () => {
  it.each([
    ['10.0.0.1:5678; DROP'],
    ['*'],
    ['*:5678'],
    [''],
    [' '],
    ['10.0.0.1'],
    ['10.0.0.1:'],
    [':5678'],
    ['10.0.0.1:0'],
    ['10.0.0.1:70000'],
    ['10.0.0.1:65536'],
    ['10.0.0.1:05678'],
    ['10.0.0.1:+5678'],
    ['../x:1'],
    ['x/y:1'],
    ['256.0.0.1:5678'],
    ['999.1.1.1:5678'],
    ['1.2.3:5678'],
    ['010.0.0.1:5678'],
    [' 10.0.0.1:5678'],
    ['10.0.0.1:5678 '],
    ['10.0.0.1:5678\n'],
    ['10.0.0.1:5678:1'],
    ['::1:5678'],
    ['[::1:5678'],
    ['[not-ipv6]:5678'],
    ['[::1]'],
    ['-host:1'],
    ['host-:1'],
    ['a..b:1'],
    ['host.:1'],
    ['_.:1'],
    ['mäster:5678'],
    ['１０.0.0.1:5678'],
    ['10.0.0.1：5678'],
    ["x' OR '1'='1:1"],
    ['%:1'],
    [`${'a'.repeat(64)}:1`],
    [`${Array.from({ length: 64 }, () => 'abc').join('.')}:1`],
  ])('rejects host %j and names the field', (host) => {
    const reason = rejectionOf(body({ host }));

    expect(reason).toMatch(/^host: /);
  });

  it.each([
    ['[::1]:5678'],
    ['[fe80::1ff:fe23:4567:890a]:80'],
    ['compose_worker_1:1234'],
    ['ds-worker-0.ds-worker-headless.default.svc.cluster.local:1234'],
  ])('accepts host %j, as the registry does: whatever can register can be failed over', (host) => {
    expect(parseServerName(host)).not.toBeNull();
    expect(parseFailoverRequest(JSON.stringify({ ...GOOD, host })).ok).toBe(true);
  });

  it.each([[null], [0], [['10.0.0.1:5678']], [{}]])('rejects a non-string host %j', (host) => {
    expect(rejectionOf(body({ host }))).toMatch(/^host: /);
  });

  it('rejects a request without a host', () => {
    const { host: _omitted, ...rest } = GOOD;

    expect(rejectionOf(JSON.stringify(rest))).toMatch(/^host: /);
  });

  it('accepts the longest legal hostname', () => {
    // 4 labels of 63 chars = 255 chars with dots; trim one label to reach 253.
    const host = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.');

    expect(host.length).toBe(253);
    expect(parseFailoverRequest(body({ host: `${host}:5678` })).ok).toBe(true);
    expect(parseFailoverRequest(body({ host: `${host}e:5678` })).ok).toBe(false);
  });
});

describe('parseFailoverRequest: malformed messages', () => {
  it.each([
    ['kind', 'NodeAdded'],
    ['kind', 'noderemoved'],
    ['nodeType', 'alert'],
    ['source', 'someone'],
    ['czxid', 123],
    ['czxid', '12a'],
    ['czxid', ''],
    ['czxid', '-1'],
    ['czxid', '12345678901234567890'],
    ['startupTime', -1],
    ['startupTime', 1.5],
    ['startupTime', '1700000000000'],
    ['observedAt', null],
    ['observedAt', 1e300],
    ['attempt', -1],
    ['attempt', 0.5],
  ])('rejects %s = %j, naming the field', (field, value) => {
    const reason = rejectionOf(body({ [field]: value }));

    expect(reason.startsWith(`${field}: `)).toBe(true);
  });

  it('rejects unknown keys without echoing a long key', () => {
    const key = `k${'x'.repeat(1000)}`;

    const reason = rejectionOf(body({ [key]: 1 }));

    expect(reason).toContain('unknown key');
    expect(reason.length).toBeLessThan(100);
  });

  it('rejects a __proto__ key instead of letting it through', () => {
    const text = `{"__proto__":{"polluted":true},${body().slice(1)}`;

    expect(rejectionOf(text)).toContain('__proto__');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([['not json'], ['{"kind":'], [''], ['undefined'], ["{'kind':'NodeRemoved'}"]])(
    'rejects non-JSON %j',
    (text) => {
      expect(rejectionOf(text)).toMatch(/not valid JSON/);
    },
  );

  it.each([['null'], ['[]'], ['"NodeRemoved"'], ['42'], ['true']])(
    'rejects the non-object JSON %s',
    (text) => {
      expect(rejectionOf(text)).toMatch(/^\(root\): /);
    },
  );

  it('rejects an oversized body before parsing it, measured in UTF-8 bytes', () => {
    // Arrange: under the limit in UTF-16 units, over it in UTF-8 bytes
    const text = body({ pad: '€'.repeat(6000) });

    // Act
    const reason = rejectionOf(text);

    // Assert
    expect(text.length).toBeLessThan(MAX_MESSAGE_BYTES);
    expect(reason).toMatch(/exceeds 16384 bytes/);
  });

  it('rejects a body one byte over the limit', () => {
    const text = body().padEnd(MAX_MESSAGE_BYTES + 1, ' ');

    expect(rejectionOf(text)).toMatch(/exceeds/);
  });

  it('rejects deeply nested JSON without blowing the stack', () => {
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;

    expect(rejectionOf(deep)).toMatch(/nested deeper/);
    expect(
      rejectionOf(body({ host: JSON.parse(`${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`) })),
    ).toMatch(/nested deeper/);
  });

  it('does not count brackets inside strings as nesting', () => {
    const result = parseFailoverRequest(body({ source: '[[[[[[[[[[[[[[[[[[[[' }));

    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/^source: /);
  });

  it('never throws on a non-string body', () => {
    expect(parseFailoverRequest(undefined as unknown as string)).toEqual({
      ok: false,
      reason: 'body must be a string, got undefined',
    });
    expect(parseFailoverRequest({} as unknown as string).ok).toBe(false);
  });

  it('keeps reasons short, printable ASCII and free of the raw body', () => {
    const hostile = `\u001b[31m\n${'<script>'.repeat(1000)}`;

    const reason = rejectionOf(hostile);

    expect(reason.length).toBeLessThanOrEqual(MAX_REASON_CHARS);
    expect(reason).toMatch(/^[\x20-\x7e]*$/);
    expect(reason.split('<script>').length).toBeLessThan(10);
  });
});

describe('parseFailoverRequest: properties', () => {
  it('never throws and always returns a bounded reason on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (text) => {
        const result = parseFailoverRequest(text);
        if (!result.ok) expect(result.reason.length).toBeLessThanOrEqual(MAX_REASON_CHARS);
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const result = parseFailoverRequest(JSON.stringify(value) ?? 'null');
        expect(typeof result.ok).toBe('boolean');
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on near-valid requests with arbitrary field values', () => {
    const field = fc.constantFrom(...Object.keys(GOOD), 'attempt', 'extra');
    fc.assert(
      fc.property(field, fc.jsonValue(), (key, value) => {
        const result = parseFailoverRequest(body({ [key]: value }));
        expect(typeof result.ok).toBe('boolean');
      }),
      { numRuns: 1000 },
    );
  });

  const octet = fc.integer({ min: 0, max: 255 });
  const ipv4 = fc.tuple(octet, octet, octet, octet).map((parts) => parts.join('.'));
  const hostname = fc.domain();
  const hostPort = fc
    .tuple(fc.oneof(ipv4, hostname), fc.integer({ min: 1, max: 65_535 }))
    .map(([host, port]) => `${host}:${port}`);
  const request = fc.record(
    {
      kind: fc.constantFrom('NodeRemoved' as const, 'Orphaned' as const),
      nodeType: fc.constantFrom('master' as const, 'worker' as const),
      host: hostPort,
      czxid: fc.option(fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }).map(String), { nil: null }),
      startupTime: fc.option(fc.nat({ max: Number.MAX_SAFE_INTEGER }), { nil: null }),
      observedAt: fc.maxSafeInteger(),
      source: fc.constantFrom(
        'watcher' as const,
        'sweep' as const,
        'operator' as const,
        'continuation' as const,
      ),
      attempt: fc.nat(),
    },
    { requiredKeys: ['kind', 'nodeType', 'host', 'czxid', 'startupTime', 'observedAt', 'source'] },
  );

  it('accepts every well-formed request, and every accepted request round-trips through JSON', () => {
    fc.assert(
      fc.property(request, (input) => {
        const first = parseFailoverRequest(JSON.stringify(input));
        expect(first.ok).toBe(true);
        if (!first.ok) return;
        const second = parseFailoverRequest(JSON.stringify(first.value));
        expect(second).toEqual(first);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips whatever it accepts from arbitrary records', () => {
    const loose = fc.dictionary(
      fc.constantFrom(...Object.keys(GOOD), 'attempt'),
      fc.oneof(fc.jsonValue(), hostPort, fc.constantFrom('NodeRemoved', 'master', 'watcher')),
    );
    fc.assert(
      fc.property(loose, (value) => {
        const first = parseFailoverRequest(JSON.stringify(value));
        if (!first.ok) return;
        expect(parseFailoverRequest(JSON.stringify(first.value))).toEqual(first);
      }),
      { numRuns: 500 },
    );
  });

  it('derives FIFO-safe, deterministic dedup and group ids for every accepted request', () => {
    fc.assert(
      fc.property(request, (input) => {
        const parsed = parseFailoverRequest(JSON.stringify(input));
        if (!parsed.ok) throw new Error(parsed.reason);
        const dedupId = failoverRequestDedupId(parsed.value);
        const groupId = failoverRequestGroupId(parsed.value);
        expect(isFifoSafeId(dedupId)).toBe(true);
        expect(isFifoSafeId(groupId)).toBe(true);
        expect(failoverRequestDedupId({ ...parsed.value })).toBe(dedupId);
      }),
      { numRuns: 300 },
    );
  });
});

describe('isHostPort', () => {
  it('uses whole-string matching (no trailing newline loophole)', () => {
    expect(isHostPort('10.0.0.1:5678')).toBe(true);
    expect(isHostPort('10.0.0.1:5678\n')).toBe(false);
    expect(isHostPort('x\n10.0.0.1:5678')).toBe(false);
  });
});

describe('failover request ids', () => {
  const request: FailoverRequest = { ...GOOD, attempt: 0 } as FailoverRequest;

  it('builds a readable dedup id from node, incarnation, source-kind and attempt', () => {
    expect(failoverRequestDedupId(request)).toBe('master/10.0.0.1:5678/z4294967296/watcher-NodeRemoved/0');
  });

  it('falls back to startupTime, then observedAt, when czxid is null', () => {
    expect(failoverRequestDedupId({ ...request, czxid: null })).toBe(
      'master/10.0.0.1:5678/s1700000000000/watcher-NodeRemoved/0',
    );
    expect(failoverRequestDedupId({ ...request, czxid: null, startupTime: null })).toBe(
      'master/10.0.0.1:5678/o1700000100000/watcher-NodeRemoved/0',
    );
  });

  it('is the same for a duplicate and differs per incarnation, source, kind, attempt and node type', () => {
    const id = failoverRequestDedupId(request);

    expect(failoverRequestDedupId({ ...request, observedAt: request.observedAt + 5 })).toBe(id);
    expect(failoverRequestDedupId({ ...request, czxid: '4294967297' })).not.toBe(id);
    expect(failoverRequestDedupId({ ...request, source: 'sweep' })).not.toBe(id);
    expect(failoverRequestDedupId({ ...request, kind: 'Orphaned' })).not.toBe(id);
    expect(failoverRequestDedupId({ ...request, attempt: 1 })).not.toBe(id);
    expect(failoverRequestDedupId({ ...request, nodeType: 'worker' })).not.toBe(id);
  });

  it('treats a missing attempt as 0', () => {
    const { attempt: _omitted, ...input } = request;

    expect(failoverRequestDedupId(input)).toBe(failoverRequestDedupId(request));
  });

  it('hashes ids that would exceed 128 characters', () => {
    const host = `${['a'.repeat(63), 'b'.repeat(63)].join('.')}:5678`;

    const id = failoverRequestDedupId({ ...request, host });

    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(failoverRequestDedupId({ ...request, host })).toBe(id);
    expect(failoverRequestDedupId({ ...request, host, attempt: 1 })).not.toBe(id);
  });

  it('groups by node type and host', () => {
    expect(failoverRequestGroupId(request)).toBe('master/10.0.0.1:5678');
    expect(failoverRequestGroupId({ ...request, nodeType: 'worker' })).toBe('worker/10.0.0.1:5678');
  });
});

describe('parseCommandMessage', () => {
  const recovery: RecoveryCommand = {
    type: 'RecoveryCommand',
    id: 'recover/42/1',
    commandType: 'RECOVER_TOLERANCE_FAULT_PROCESS',
    processInstanceId: '42',
    processDefinitionCode: 123_456_789_012,
    processDefinitionVersion: 1,
    executorId: 1,
    priority: 'MEDIUM',
    commandParam: '{"ProcessInstanceId":42}',
    failedHost: '10.0.0.1:5678',
    generation: 1,
    fence: 1,
    createdAt: 1_700_000_000_000,
  };
  const notice: TaskFailoverNotice = {
    type: 'TaskFailover',
    id: 'task-failover/7/1',
    taskInstanceId: '7',
    processInstanceId: '42',
    failedHost: '10.0.0.2:1234',
    fence: 2,
    createdAt: 1_700_000_000_000,
  };

  it('accepts a recovery command and a task notice', () => {
    expect(parseCommandMessage(JSON.stringify(recovery))).toEqual({ ok: true, value: recovery });
    expect(parseCommandMessage(JSON.stringify(notice))).toEqual({ ok: true, value: notice });
  });

  it('derives group and dedup ids from the message', () => {
    expect(commandGroupId(recovery)).toBe('42');
    expect(commandDedupId(recovery)).toBe('recover/42/1');
    expect(commandGroupId(notice)).toBe('42');
  });

  it.each([
    [{ type: 'Other' }, /^type: /],
    [{ commandType: 'START_PROCESS' }, /^commandType: /],
    [{ commandParam: 'not json' }, /^commandParam: /],
    [{ commandParam: '[1]' }, /^commandParam: /],
    [{ failedHost: '*' }, /^failedHost: /],
    [{ generation: 0 }, /^generation: /],
    [{ id: 'has space' }, /^id: /],
    [{ id: 'x'.repeat(129) }, /^id: /],
    [{ processInstanceId: '' }, /^processInstanceId: /],
    [{ extra: true }, /unknown key "extra"/],
  ])('rejects a recovery command with %j', (overrides, expected) => {
    const result = parseCommandMessage(JSON.stringify({ ...recovery, ...overrides }));

    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(expected);
  });

  it('rejects oversized, nested and non-JSON bodies without throwing', () => {
    expect(parseCommandMessage('x'.repeat(MAX_MESSAGE_BYTES + 1)).ok).toBe(false);
    expect(parseCommandMessage('{'.repeat(100)).ok).toBe(false);
    expect(parseCommandMessage('}{').ok).toBe(false);
  });

  it('never throws on arbitrary strings or JSON', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'),
        ),
        (text) => {
          expect(typeof parseCommandMessage(text).ok).toBe('boolean');
        },
      ),
      { numRuns: 500 },
    );
  });
});
