import { describe, expect, it } from 'vitest';
import {
  compareTimestamps,
  formatTimestamp,
  parseTimestamp,
  type Timestamp,
  ValidationError,
  validateTimestamp,
} from '../src/index.js';
import { fc } from './property.js';

const timestampArbitrary = fc.record({
  millis: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
  counter: fc.integer({ min: 0, max: 0xffff }),
  nodeId: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
});

describe('timestamp serialization', () => {
  it('has the documented compact form', () => {
    expect(formatTimestamp({ millis: 1_700_000_000_000, counter: 1, nodeId: 'a' })).toBe(
      '018bcfe568000001a',
    );
    expect(parseTimestamp('018bcfe568000001a')).toEqual({
      millis: 1_700_000_000_000,
      counter: 1,
      nodeId: 'a',
    });
  });

  it('round-trips every valid timestamp', () => {
    fc.assert(
      fc.property(timestampArbitrary, (timestamp) => {
        expect(parseTimestamp(formatTimestamp(timestamp))).toEqual(timestamp);
      }),
    );
  });

  it('orders strings exactly as timestamps', () => {
    fc.assert(
      fc.property(timestampArbitrary, timestampArbitrary, (a, b) => {
        const byString = Math.sign(
          formatTimestamp(a) < formatTimestamp(b)
            ? -1
            : formatTimestamp(a) > formatTimestamp(b)
              ? 1
              : 0,
        );
        expect(byString).toBe(Math.sign(compareTimestamps(a, b)));
      }),
    );
  });

  it.each([
    ['', 'empty'],
    ['018bcfe5680000', 'too short, no node id'],
    ['018BCFE568000001a', 'uppercase hex'],
    ['018bcfe568000001a b', 'space in node id'],
    ['018bcfe56800000!a', 'non-hex counter'],
    [`018bcfe568000001${'x'.repeat(65)}`, 'node id too long'],
    [42, 'a number'],
    [null, 'null'],
  ] as Array<[unknown, string]>)('rejects %j (%s)', (text) => {
    expect(() => parseTimestamp(text)).toThrow(ValidationError);
  });
});

describe('validateTimestamp', () => {
  it('accepts a well-formed timestamp', () => {
    const timestamp: Timestamp = { millis: 5, counter: 0, nodeId: 'n1' };
    expect(validateTimestamp(timestamp)).toBe(timestamp);
  });

  it.each([
    [{ millis: -1, counter: 0, nodeId: 'a' }, 'timestamp.millis'],
    [{ millis: 1.5, counter: 0, nodeId: 'a' }, 'timestamp.millis'],
    [{ millis: 2 ** 48, counter: 0, nodeId: 'a' }, 'timestamp.millis'],
    [{ millis: '1', counter: 0, nodeId: 'a' }, 'timestamp.millis'],
    [{ millis: 1, counter: 65536, nodeId: 'a' }, 'timestamp.counter'],
    [{ millis: 1, counter: Number.NaN, nodeId: 'a' }, 'timestamp.counter'],
    [{ millis: 1, counter: 0, nodeId: '' }, 'timestamp.nodeId'],
    [{ millis: 1, counter: 0, nodeId: 'a/b' }, 'timestamp.nodeId'],
    [{ millis: 1, counter: 0 }, 'timestamp.nodeId'],
    ['018bcfe568000001a', 'timestamp'],
  ])('rejects %j at %s', (value, path) => {
    expect(() => validateTimestamp(value)).toThrow(expect.objectContaining({ path }));
  });
});

describe('compareTimestamps', () => {
  it('orders by millis, then counter, then node id', () => {
    const ordered: Timestamp[] = [
      { millis: 1, counter: 5, nodeId: 'z' },
      { millis: 2, counter: 0, nodeId: 'z' },
      { millis: 2, counter: 1, nodeId: 'A' },
      { millis: 2, counter: 1, nodeId: 'a' },
      { millis: 2, counter: 1, nodeId: 'b' },
    ];
    for (let i = 0; i + 1 < ordered.length; i++) {
      expect(compareTimestamps(ordered[i]!, ordered[i + 1]!)).toBeLessThan(0);
      expect(compareTimestamps(ordered[i + 1]!, ordered[i]!)).toBeGreaterThan(0);
    }
    expect(compareTimestamps(ordered[2]!, { ...ordered[2]! })).toBe(0);
  });
});
