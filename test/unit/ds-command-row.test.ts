// The recovery command's `command_param` must be the exact text DolphinScheduler 3.2 writes
// (shared/dolphinscheduler.md section 3): a master reads it back with Jackson, operators diff it against
// what DolphinScheduler's own failover leaves, and key order and value types are part of that text.
import { describe, expect, it } from 'vitest';
import { recoveryCommandParam } from '../../lib/store/dolphinscheduler/command-row.ts';

const shanghai = { timezoneId: 'Asia/Shanghai' };
const startParams = '{"dt":"2024-03-10","region":"eu-west-1"}';
const withStartParams = JSON.stringify({ StartParams: startParams });

describe('recoveryCommandParam without a schedule', () => {
  it('is only the instance id, as a number, when the instance has no command_param', () => {
    // Act
    const param = recoveryCommandParam(123, null, null);

    // Assert
    expect(param).toBe('{"ProcessInstanceId":123}');
  });

  it('is only the instance id when the command_param has no StartParams', () => {
    const param = recoveryCommandParam(123, '{"complementStartDate":"2024-01-01"}', null);

    expect(param).toBe('{"ProcessInstanceId":123}');
  });

  it('puts a StartParams string first, then the id (the HashMap order DolphinScheduler serialises)', () => {
    const param = recoveryCommandParam(123, withStartParams, null);

    expect(param).toBe(`{"StartParams":${JSON.stringify(startParams)},"ProcessInstanceId":123}`);
    expect(param).toBe(
      '{"StartParams":"{\\"dt\\":\\"2024-03-10\\",\\"region\\":\\"eu-west-1\\"}","ProcessInstanceId":123}',
    );
  });

  it('keeps a StartParams object as an object (DolphinScheduler reads the map as Map<String, Object>)', () => {
    const param = recoveryCommandParam(7, '{"StartParams":{"dt":"2024-03-10","n":2}}', null);

    expect(param).toBe('{"StartParams":{"dt":"2024-03-10","n":2},"ProcessInstanceId":7}');
  });

  it('copies only StartParams, none of the instance command_param other keys', () => {
    const stored = JSON.stringify({
      ProcessInstanceId: 999,
      StartParams: 'a=1',
      schedule_timezone: 'Europe/Berlin',
      complementStartDate: '2024-01-01',
      startNodeIdList: '1,2',
    });

    const param = recoveryCommandParam(123, stored, null);

    expect(param).toBe('{"StartParams":"a=1","ProcessInstanceId":123}');
  });

  it.each([
    ['SQL NULL', null],
    ['an empty string', ''],
    ['blanks', '   '],
    ['invalid JSON', '{"StartParams":"a=1"'],
    ['a JSON array', '[{"StartParams":"a=1"}]'],
    ['a JSON string', '"StartParams"'],
    ['a JSON number', '42'],
    ['JSON null', 'null'],
    ['StartParams null', '{"StartParams":null}'],
  ])('has no StartParams when the stored command_param is %s', (_name, stored) => {
    const param = recoveryCommandParam(123, stored, null);

    expect(param).toBe('{"ProcessInstanceId":123}');
  });

  it('keeps an empty StartParams string (present, not null)', () => {
    const param = recoveryCommandParam(5, '{"StartParams":""}', null);

    expect(param).toBe('{"StartParams":"","ProcessInstanceId":5}');
  });

  it('writes large ids as plain integers', () => {
    const param = recoveryCommandParam(2_147_483_647, null, null);

    expect(param).toBe('{"ProcessInstanceId":2147483647}');
  });
});

describe('recoveryCommandParam with a schedule (3.2 re-reads the map as strings and appends the zone)', () => {
  it('writes the id as a string and appends schedule_timezone', () => {
    const param = recoveryCommandParam(123, null, shanghai);

    expect(param).toBe('{"ProcessInstanceId":"123","schedule_timezone":"Asia/Shanghai"}');
  });

  it('keeps StartParams first, then the id as a string, then the zone', () => {
    const param = recoveryCommandParam(123, withStartParams, shanghai);

    expect(param).toBe(
      `{"StartParams":${JSON.stringify(startParams)},"ProcessInstanceId":"123","schedule_timezone":"Asia/Shanghai"}`,
    );
  });

  it('writes schedule_timezone null when the schedule has no timezone_id', () => {
    const param = recoveryCommandParam(123, null, { timezoneId: null });

    expect(param).toBe('{"ProcessInstanceId":"123","schedule_timezone":null}');
  });

  it('has no StartParams when the stored command_param is invalid JSON', () => {
    const param = recoveryCommandParam(123, 'not json', shanghai);

    expect(param).toBe('{"ProcessInstanceId":"123","schedule_timezone":"Asia/Shanghai"}');
  });

  it('turns a StartParams object into its JSON text (the string map cannot hold an object)', () => {
    const param = recoveryCommandParam(9, '{"StartParams":{"dt":"2024-03-10"}}', shanghai);

    expect(param).toBe(
      '{"StartParams":"{\\"dt\\":\\"2024-03-10\\"}","ProcessInstanceId":"9","schedule_timezone":"Asia/Shanghai"}',
    );
    expect(JSON.parse(param)).toEqual({
      StartParams: '{"dt":"2024-03-10"}',
      ProcessInstanceId: '9',
      schedule_timezone: 'Asia/Shanghai',
    });
  });

  it("does not copy the instance's own schedule_timezone or other keys", () => {
    const stored = JSON.stringify({ schedule_timezone: 'Europe/Berlin', StartParams: 'x', other: 1 });

    const param = recoveryCommandParam(4, stored, shanghai);

    expect(param).toBe('{"StartParams":"x","ProcessInstanceId":"4","schedule_timezone":"Asia/Shanghai"}');
  });
});

describe('recoveryCommandParam text survives unicode, quotes and escapes', () => {
  it.each([
    [null, '调度 "每日" \\ 备份\n'],
    [shanghai, '调度 "每日" \\ 备份\n'],
    [null, 'emoji 🚀 and \u2028 separator'],
    [shanghai, 'tab\tand </script>'],
  ])('round-trips StartParams %# through JSON exactly', (schedule, value) => {
    const stored = JSON.stringify({ StartParams: value });

    const param = recoveryCommandParam(77, stored, schedule);
    const parsed = JSON.parse(param) as { StartParams: unknown; ProcessInstanceId: unknown };

    expect(parsed.StartParams).toBe(value);
    expect(parsed.ProcessInstanceId).toBe(schedule === null ? 77 : '77');
    expect(Object.keys(parsed)[0]).toBe('StartParams');
  });

  it('writes non-ASCII characters as themselves, not \\u escapes (as Jackson does)', () => {
    const param = recoveryCommandParam(1, JSON.stringify({ StartParams: 'é中' }), null);

    expect(param).toBe('{"StartParams":"é中","ProcessInstanceId":1}');
  });
});
