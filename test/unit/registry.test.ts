import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { maxHeartbeatBytes, parseHeartbeat } from '../../lib/registry/heartbeat.ts';
import {
  createLayout,
  InvalidLayoutError,
  isValidGroupName,
  parseDeadServerName,
  parseServerName,
} from '../../lib/registry/layout.ts';

const ctime = Date.UTC(2024, 4, 1, 12, 0, 0);

describe('registry layouts', () => {
  it('builds ds-3 paths under the default root', () => {
    const layout = createLayout();

    expect(layout.name).toBe('ds-3');
    expect(layout.root).toBe('/dolphinscheduler');
    expect(layout.workersHaveGroups).toBe(false);
    expect(layout.parentPath('master')).toBe('/dolphinscheduler/nodes/master');
    expect(layout.parentPath('worker')).toBe('/dolphinscheduler/nodes/worker');
    expect(layout.serverPath('master', '10.0.0.1:5678')).toBe('/dolphinscheduler/nodes/master/10.0.0.1:5678');
    expect(layout.serverPath('worker', '10.0.0.2:1234')).toBe('/dolphinscheduler/nodes/worker/10.0.0.2:1234');
    expect(layout.deadServersPath).toBe('/dolphinscheduler/dead-servers');
    expect(layout.deadServerPath('worker', '10.0.0.2:1234')).toBe(
      '/dolphinscheduler/dead-servers/worker_10.0.0.2:1234',
    );
  });

  it('builds ds-1.3 worker paths under their group, with a configurable root', () => {
    const layout = createLayout({ name: 'ds-1.3', root: '/ds/prod/' });

    expect(layout.root).toBe('/ds/prod');
    expect(layout.workersHaveGroups).toBe(true);
    expect(layout.serverPath('master', '10.0.0.1:5678')).toBe('/ds/prod/nodes/master/10.0.0.1:5678');
    expect(layout.workerGroupPath('default')).toBe('/ds/prod/nodes/worker/default');
    expect(layout.serverPath('worker', '10.0.0.2:1234', 'gpu')).toBe(
      '/ds/prod/nodes/worker/gpu/10.0.0.2:1234',
    );
    expect(layout.deadServerPath('master', '10.0.0.1:5678')).toBe(
      '/ds/prod/dead-servers/master_10.0.0.1:5678',
    );
  });

  it('accepts / as root without doubling slashes', () => {
    expect(createLayout({ root: '/' }).parentPath('master')).toBe('/nodes/master');
  });

  it('rejects bad configuration and bad arguments with InvalidLayoutError', () => {
    for (const root of ['', 'dolphinscheduler', '/a//b', '/a/../b', '/zookeeper', '/a b ', '/a/\u0000']) {
      expect(() => createLayout({ root }), root).toThrow(InvalidLayoutError);
    }
    expect(() => createLayout({ name: 'ds-2' as never })).toThrow(InvalidLayoutError);
    const ds3 = createLayout();
    const ds13 = createLayout({ name: 'ds-1.3' });
    expect(() => ds3.serverPath('master', '../../zookeeper:1')).toThrow(InvalidLayoutError);
    expect(() => ds3.serverPath('worker', '10.0.0.1:1', 'default')).toThrow(InvalidLayoutError);
    expect(() => ds3.workerGroupPath('default')).toThrow(InvalidLayoutError);
    expect(() => ds13.serverPath('worker', '10.0.0.1:1')).toThrow(InvalidLayoutError);
    expect(() => ds13.serverPath('worker', '10.0.0.1:1', '..')).toThrow(InvalidLayoutError);
    expect(() => ds13.deadServerPath('master', '10.0.0.1')).toThrow(InvalidLayoutError);
  });

  it('validates worker group names as single printable segments', () => {
    expect(isValidGroupName('default')).toBe(true);
    expect(isValidGroupName('gpu-群组')).toBe(true);
    for (const bad of ['', '.', '..', 'a/b', ' a', 'a\n', 'x'.repeat(256)]) {
      expect(isValidGroupName(bad), JSON.stringify(bad)).toBe(false);
    }
  });

  it('parses dead-server marker names', () => {
    expect(parseDeadServerName('master_10.0.0.1:5678')).toEqual({
      nodeType: 'master',
      server: { host: '10.0.0.1:5678', address: '10.0.0.1', port: 5678 },
    });
    expect(parseDeadServerName('worker_my_host:1')?.server.host).toBe('my_host:1');
    for (const bad of ['', 'master', 'master_', 'api_10.0.0.1:1', '_10.0.0.1:1', 'master_10.0.0.1']) {
      expect(parseDeadServerName(bad), bad).toBeNull();
    }
  });
});

describe('parseServerName', () => {
  it('accepts ip:port, hostname:port and [ipv6]:port, keeping the exact name', () => {
    expect(parseServerName('10.0.0.1:5678')).toEqual({
      host: '10.0.0.1:5678',
      address: '10.0.0.1',
      port: 5678,
    });
    expect(parseServerName('0.0.0.0:1')?.port).toBe(1);
    expect(parseServerName('255.255.255.255:65535')?.port).toBe(65_535);
    expect(parseServerName('localhost:1234')?.address).toBe('localhost');
    expect(parseServerName('ds-worker-0.ds-worker-headless.default.svc.cluster.local:1234')?.port).toBe(1234);
    expect(parseServerName('compose_worker_1:1234')?.address).toBe('compose_worker_1');
    expect(parseServerName('[::1]:5678')).toEqual({ host: '[::1]:5678', address: '[::1]', port: 5678 });
    expect(parseServerName('[fe80::1ff:fe23:4567:890a]:80')?.port).toBe(80);
  });

  it('returns null for odd names', () => {
    const odd = [
      '',
      '10.0.0.1',
      '10.0.0.1:',
      ':5678',
      '10.0.0.1:0',
      '10.0.0.1:65536',
      '10.0.0.1:99999999999999999999',
      '10.0.0.1:05678',
      '10.0.0.1:+1',
      '10.0.0.1:1e3',
      '10.0.0.1:0x10',
      '10.0.0.1: 5678',
      ' 10.0.0.1:5678',
      '10.0.0.1:5678 ',
      '10.0.0.1:5678\n',
      'host name:1',
      '..:1',
      '.:1',
      '../etc:1',
      'a..b:1',
      '.a:1',
      'a.:1',
      'a/b:1',
      'host\n:1',
      'host\u0000:1',
      'host\u007f:1',
      'hôst:1',
      '256.0.0.1:1',
      '010.0.0.1:1',
      '1.2.3:1',
      '1.2.3.4.5:1',
      '::1:5678',
      '[::1]',
      '[::1:5678',
      '[zz]:1',
      '[10.0.0.1]:1',
      '-a:1',
      'a-:1',
      `${'a'.repeat(64)}:1`,
      `${'a.'.repeat(200)}a:1`,
      '10.0.0.1:5678:1',
      'master_10.0.0.1:1',
    ];
    for (const name of odd) {
      expect(parseServerName(name), JSON.stringify(name)).toBeNull();
    }
  });

  it('never throws, and whatever it accepts is a single safe path segment with a valid port', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme-ascii' })),
        (name) => {
          const parsed = parseServerName(name);
          if (parsed !== null) {
            expect(parsed.host).toBe(name);
            expect(name).not.toMatch(/[/\s]|\.\./);
            expect(parsed.port).toBeGreaterThanOrEqual(1);
            expect(parsed.port).toBeLessThanOrEqual(65_535);
          }
        },
      ),
      { numRuns: 2_000 },
    );
    expect(parseServerName(undefined as never)).toBeNull();
    expect(parseServerName(42 as never)).toBeNull();
  });

  it('accepts every canonical IPv4 address with every valid port, exactly', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 1, max: 65_535 }), (ip, port) => {
        const name = `${ip}:${port}`;
        expect(parseServerName(name)).toEqual({ host: name, address: ip, port });
      }),
    );
  });
});

const ds3Heartbeat = (fields: Record<string, unknown>) =>
  JSON.stringify({ reportTime: ctime + 5_000, host: '10.0.0.1', port: 5678, processId: 42, ...fields });

describe('parseHeartbeat ds-3 (JSON)', () => {
  it('reads startupTime (epoch ms) from a full heartbeat, string or Buffer', () => {
    const json = ds3Heartbeat({ startupTime: 1_714_560_000_000, cpuUsage: 0.2, serverStatus: 'NORMAL' });

    expect(parseHeartbeat('ds-3', json, { ctime })).toEqual({
      startupTime: 1_714_560_000_000,
      startupTimeSource: 'heartbeat',
    });
    expect(parseHeartbeat(createLayout(), Buffer.from(`\uFEFF ${json}\n`), { ctime }).startupTime).toBe(
      1_714_560_000_000,
    );
    expect(
      parseHeartbeat('ds-3', ds3Heartbeat({ startupTime: '1714560000000' }), { ctime }).startupTime,
    ).toBe(1_714_560_000_000);
  });

  it('falls back to ctime, saying why, for empty, missing or unusable heartbeats', () => {
    const cases: Array<[Buffer | string | null, RegExp]> = [
      [null, /no heartbeat/],
      ['', /empty/],
      [Buffer.alloc(0), /empty/],
      ['   \n', /empty/],
      ['{"startupTime":', /not valid JSON/],
      ['{}', /no startupTime/],
      ['[1,2]', /not a JSON object/],
      ['null', /not a JSON object/],
      ['42', /not a JSON object/],
      [ds3Heartbeat({ startupTime: null }), /startupTime/],
      [ds3Heartbeat({ startupTime: -1 }), /startupTime/],
      [ds3Heartbeat({ startupTime: 0 }), /startupTime/],
      [ds3Heartbeat({ startupTime: 1.5 }), /startupTime/],
      [ds3Heartbeat({ startupTime: 1e300 }), /startupTime/],
      [ds3Heartbeat({ startupTime: '2024-05-01' }), /startupTime/],
      [ds3Heartbeat({ startupTime: { $gt: 0 } }), /startupTime/],
      ['{"__proto__":{"startupTime":1714560000000}}', /no startupTime/],
      ['0.1,0.2,0.3,1,1,1,2024-05-01 00:00:00,2024-05-01 00:00:10,0,42', /ds-1.3/],
      [Buffer.from([0xff, 0xfe, 0x00, 0x7b]), /not a JSON object/],
    ];
    for (const [data, problem] of cases) {
      const result = parseHeartbeat('ds-3', data, { ctime });
      expect(result.startupTime, String(data)).toBe(ctime);
      expect(result.startupTimeSource).toBe('ctime');
      expect(result.problem).toMatch(problem);
    }
  });

  it('refuses huge input without parsing it', () => {
    const huge = `{"startupTime":1714560000000,"pad":"${'x'.repeat(maxHeartbeatBytes)}"}`;
    const result = parseHeartbeat('ds-3', Buffer.from(huge), { ctime });

    expect(result).toMatchObject({ startupTime: ctime, startupTimeSource: 'ctime' });
    expect(result.problem).toMatch(/too large/);
    expect(parseHeartbeat('ds-3', '['.repeat(60_000), { ctime }).startupTimeSource).toBe('ctime');
  });
});

describe('parseHeartbeat ds-1.3 (CSV)', () => {
  const csv = (startTime: string) => `0.12,0.5,1.25,3.5,10.0,0.3,${startTime},2024-05-01 20:00:10,0,4242`;

  it('reads startTime (field 7) as UTC by default and in the configured offset', () => {
    expect(parseHeartbeat('ds-1.3', csv('2024-05-01 20:00:00'), { ctime })).toEqual({
      startupTime: Date.UTC(2024, 4, 1, 20, 0, 0),
      startupTimeSource: 'heartbeat',
    });
    // Asia/Shanghai (UTC+8): 20:00 local is 12:00 UTC.
    expect(
      parseHeartbeat(createLayout({ name: 'ds-1.3' }), Buffer.from(csv('2024-05-01 20:00:00')), {
        ctime,
        timeZoneOffsetMinutes: 480,
      }).startupTime,
    ).toBe(Date.UTC(2024, 4, 1, 12, 0, 0));
    expect(
      parseHeartbeat('ds-1.3', csv('2024-05-01 20:00:00'), { ctime, timeZoneOffsetMinutes: -300 })
        .startupTime,
    ).toBe(Date.UTC(2024, 5 - 1, 2, 1, 0, 0));
  });

  it('treats the first empty heartbeat as startup time unknown', () => {
    expect(parseHeartbeat('ds-1.3', '', { ctime })).toEqual({
      startupTime: ctime,
      startupTimeSource: 'ctime',
      problem: 'empty heartbeat (server just registered)',
    });
  });

  it('falls back to ctime for partial, garbage or impossible CSV', () => {
    const cases: Array<[string, RegExp]> = [
      ['0.1,0.2,0.3', /3 field\(s\)/],
      ['0.1,0.2,0.3,1,1,1', /6 field\(s\)/],
      ['garbage', /1 field\(s\)/],
      [csv('2024-02-30 00:00:00'), /yyyy-MM-dd/],
      [csv('2023-02-29 00:00:00'), /yyyy-MM-dd/],
      [csv('2024-13-01 00:00:00'), /yyyy-MM-dd/],
      [csv('2024-05-01 24:00:00'), /yyyy-MM-dd/],
      [csv('2024-05-01T20:00:00'), /yyyy-MM-dd/],
      [csv('2024-05-01 20:00'), /yyyy-MM-dd/],
      [csv('1969-12-31 23:59:59'), /yyyy-MM-dd/],
      [csv(''), /yyyy-MM-dd/],
      ['{"startupTime":1714560000000}', /JSON/],
    ];
    for (const [data, problem] of cases) {
      const result = parseHeartbeat('ds-1.3', data, { ctime });
      expect(result, data).toMatchObject({ startupTime: ctime, startupTimeSource: 'ctime' });
      expect(result.problem).toMatch(problem);
    }
    expect(parseHeartbeat('ds-1.3', csv('2024-02-29 00:00:00'), { ctime }).startupTimeSource).toBe(
      'heartbeat',
    );
    expect(
      parseHeartbeat('ds-1.3', csv('2024-05-01 20:00:00'), { ctime, timeZoneOffsetMinutes: Number.NaN })
        .problem,
    ).toMatch(/timeZoneOffsetMinutes/);
    expect(
      parseHeartbeat('ds-1.3', `${csv('2024-05-01 20:00:00')},${'9'.repeat(maxHeartbeatBytes)}`, { ctime })
        .problem,
    ).toMatch(/too large/);
  });

  it('round-trips any in-range time and offset', () => {
    fc.assert(
      fc.property(
        fc.date({
          min: new Date('1971-01-01T00:00:00Z'),
          max: new Date('9998-12-31T00:00:00Z'),
          noInvalidDate: true,
        }),
        fc.integer({ min: -14 * 60, max: 14 * 60 }),
        (date, offset) => {
          const local = new Date(Math.floor(date.getTime() / 1000) * 1000 + offset * 60_000);
          const text = local.toISOString().slice(0, 19).replace('T', ' ');
          const result = parseHeartbeat('ds-1.3', csv(text), { ctime, timeZoneOffsetMinutes: offset });
          expect(result).toEqual({
            startupTime: local.getTime() - offset * 60_000,
            startupTimeSource: 'heartbeat',
          });
        },
      ),
    );
  });
});

describe('parseHeartbeat never throws', () => {
  it('for any bytes, text, layout and options', () => {
    const data = fc.oneof(
      fc.constant(null),
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
      fc.json(),
      fc
        .array(
          fc.oneof(
            fc.string(),
            fc.double().map(String),
            fc.date().map((d) => String(d)),
          ),
          { maxLength: 12 },
        )
        .map((fields) => fields.join(',')),
    );
    const layout = fc.constantFrom('ds-3', 'ds-1.3', 'ds-9', '', undefined, null);
    fc.assert(
      fc.property(
        data,
        layout,
        fc.option(fc.integer({ min: -2_000, max: 2_000 })),
        (input, layoutName, offset) => {
          const result = parseHeartbeat(layoutName as never, input, {
            ctime,
            timeZoneOffsetMinutes: offset ?? undefined,
          });
          expect(['heartbeat', 'ctime']).toContain(result.startupTimeSource);
          expect(Number.isSafeInteger(result.startupTime)).toBe(true);
          expect(result.problem === undefined).toBe(result.startupTimeSource === 'heartbeat');
          if (result.startupTimeSource === 'ctime') expect(result.startupTime).toBe(ctime);
        },
      ),
      { numRuns: 3_000 },
    );
  });

  it('even for values outside the types', () => {
    const hostile = [42, {}, [], Symbol('x'), Object.create(null), new Uint8Array([1, 2])];
    for (const value of hostile) {
      expect(() => parseHeartbeat('ds-3', value as never, { ctime })).not.toThrow();
      expect(parseHeartbeat('ds-1.3', value as never, { ctime }).startupTimeSource).toBe('ctime');
    }
    expect(parseHeartbeat('ds-3', '{"startupTime":1}', undefined as never).startupTimeSource).toBe(
      'heartbeat',
    );
    expect(() => parseHeartbeat({ name: 'ds-3' } as never, '{}', null as never)).not.toThrow();
  });
});
