import { afterEach, describe, expect, it } from 'vitest';
import {
  configureFailpoints,
  FailpointError,
  FailpointSyntaxError,
  failpoint,
  parseFailpoints,
} from '../../lib/faults.ts';

afterEach(() => configureFailpoints(undefined));

describe('parseFailpoints', () => {
  it('parses every action, single and repeated hits', () => {
    const specs = parseFailpoints(
      'after-transaction=3:exit, before-outbox-send=1+:throw,after-lock=2:delay-1500',
    );

    expect(Object.fromEntries(specs)).toEqual({
      'after-transaction': { hit: 3, repeat: false, action: { kind: 'exit' } },
      'before-outbox-send': { hit: 1, repeat: true, action: { kind: 'throw' } },
      'after-lock': { hit: 2, repeat: false, action: { kind: 'delay', ms: 1500 } },
    });
  });

  it('treats an absent or empty value as no failpoints', () => {
    expect(parseFailpoints(undefined).size).toBe(0);
    expect(parseFailpoints(' , ').size).toBe(0);
  });

  it.each(['after-lock', 'after-lock=0:exit', 'after-lock=1:explode', 'After-Lock=1:exit', 'x=1:delay-'])(
    'rejects %s loudly',
    (text) => {
      expect(() => parseFailpoints(text)).toThrow(FailpointSyntaxError);
    },
  );
});

describe('failpoint', () => {
  it('does nothing when no failpoint is configured', () => {
    configureFailpoints(undefined);

    expect(failpoint('after-lock')).toBeUndefined();
  });

  it('fires at the Nth hit only', () => {
    configureFailpoints('after-transaction=3:throw');

    expect(failpoint('after-transaction')).toBeUndefined();
    expect(failpoint('after-transaction')).toBeUndefined();
    expect(() => failpoint('after-transaction')).toThrow(FailpointError);
    expect(failpoint('after-transaction')).toBeUndefined();
    expect(failpoint('after-lock')).toBeUndefined();
  });

  it('fires at every hit from the Nth with +', () => {
    configureFailpoints('after-page-read=2+:throw');

    expect(failpoint('after-page-read')).toBeUndefined();
    expect(() => failpoint('after-page-read')).toThrow(FailpointError);
    expect(() => failpoint('after-page-read')).toThrow(FailpointError);
  });

  it('stalls for the configured delay', async () => {
    configureFailpoints('after-lock=1:delay-120');
    const started = Date.now();

    await failpoint('after-lock');

    expect(Date.now() - started).toBeGreaterThanOrEqual(110);
  });
});
