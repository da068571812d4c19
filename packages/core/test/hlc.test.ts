import { describe, expect, it } from 'vitest';
import {
  ClockDriftError,
  compareTimestamps,
  HLC,
  MAX_COUNTER,
  type Timestamp,
  ValidationError,
} from '../src/index.js';
import { fc } from './property.js';

/** A wall clock the test moves by hand. */
function manualClock(start: number) {
  let time = start;
  return {
    now: () => time,
    set: (next: number) => {
      time = next;
    },
  };
}

describe('HLC.now', () => {
  it('follows physical time when it moves forward', () => {
    const clock = manualClock(1000);
    const hlc = new HLC({ nodeId: 'a', now: clock.now });
    expect(hlc.now()).toEqual({ millis: 1000, counter: 0, nodeId: 'a' });
    expect(hlc.now()).toEqual({ millis: 1000, counter: 1, nodeId: 'a' });
    clock.set(1005);
    expect(hlc.now()).toEqual({ millis: 1005, counter: 0, nodeId: 'a' });
  });

  it('keeps increasing when the wall clock jumps backwards', () => {
    const clock = manualClock(10_000);
    const hlc = new HLC({ nodeId: 'a', now: clock.now });
    const before = hlc.now();
    clock.set(1_000);
    const after = hlc.now();
    expect(after).toEqual({ millis: 10_000, counter: 1, nodeId: 'a' });
    expect(compareTimestamps(after, before)).toBeGreaterThan(0);
  });

  it('is strictly monotonic under any sequence of wall-clock readings', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.constant(5_000)), {
          minLength: 1,
          maxLength: 200,
        }),
        (readings) => {
          let index = 0;
          const hlc = new HLC({ nodeId: 'n', now: () => readings[index]! });
          let previous: Timestamp | undefined;
          for (index = 0; index < readings.length; index++) {
            const next = hlc.now();
            if (previous !== undefined)
              expect(compareTimestamps(next, previous)).toBeGreaterThan(0);
            expect(next.millis).toBeGreaterThanOrEqual(readings[index]!);
            previous = next;
          }
        },
      ),
    );
  });

  it('moves logical time 1 ms forward when the counter would overflow', () => {
    const hlc = new HLC({ nodeId: 'a', now: () => 7 });
    let last = hlc.now();
    for (let i = 0; i < MAX_COUNTER; i++) last = hlc.now();
    expect(last).toEqual({ millis: 7, counter: MAX_COUNTER, nodeId: 'a' });
    expect(hlc.now()).toEqual({ millis: 8, counter: 0, nodeId: 'a' });
    expect(hlc.now()).toEqual({ millis: 8, counter: 1, nodeId: 'a' });
  });

  it('rejects a physical clock that returns garbage', () => {
    const hlc = new HLC({ nodeId: 'a', now: () => Number.NaN });
    expect(() => hlc.now()).toThrow(ValidationError);
  });

  it('rejects malformed node ids and drift bounds', () => {
    expect(() => new HLC({ nodeId: '' })).toThrow(ValidationError);
    expect(() => new HLC({ nodeId: 'has space' })).toThrow(ValidationError);
    expect(() => new HLC({ nodeId: 'a', maxDriftMs: -1 })).toThrow(ValidationError);
  });
});

describe('HLC.update', () => {
  it('follows the receive rule of Kulkarni et al.', () => {
    const clock = manualClock(100);
    const hlc = new HLC({ nodeId: 'b', now: clock.now });
    // Remote ahead of both local clock and physical time: take its millis, counter + 1.
    expect(hlc.update({ millis: 150, counter: 3, nodeId: 'a' })).toEqual({
      millis: 150,
      counter: 4,
      nodeId: 'b',
    });
    // Same millis as local: max(counters) + 1.
    expect(hlc.update({ millis: 150, counter: 9, nodeId: 'a' })).toEqual({
      millis: 150,
      counter: 10,
      nodeId: 'b',
    });
    // Remote behind local: local counter + 1.
    expect(hlc.update({ millis: 120, counter: 50, nodeId: 'a' })).toEqual({
      millis: 150,
      counter: 11,
      nodeId: 'b',
    });
    // Physical time ahead of both: physical time, counter 0.
    clock.set(200);
    expect(hlc.update({ millis: 180, counter: 2, nodeId: 'a' })).toEqual({
      millis: 200,
      counter: 0,
      nodeId: 'b',
    });
  });

  it('issues only timestamps greater than everything received', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            physical: fc.integer({ min: 0, max: 1_000_000 }),
            remote: fc.option(
              fc.record({
                millis: fc.integer({ min: 0, max: 1_000_000 }),
                counter: fc.integer({ min: 0, max: MAX_COUNTER }),
                nodeId: fc.constantFrom('x', 'y'),
              }),
            ),
          }),
          { maxLength: 100 },
        ),
        (events) => {
          const clock = manualClock(0);
          const hlc = new HLC({
            nodeId: 'n',
            now: clock.now,
            maxDriftMs: Number.POSITIVE_INFINITY,
          });
          let highest: Timestamp = { millis: 0, counter: 0, nodeId: '0' };
          for (const event of events) {
            clock.set(event.physical);
            const issued = event.remote === null ? hlc.now() : hlc.update(event.remote);
            expect(compareTimestamps(issued, highest)).toBeGreaterThan(0);
            if (event.remote !== null) {
              expect(compareTimestamps(issued, event.remote)).toBeGreaterThan(0);
            }
            highest = issued;
          }
        },
      ),
    );
  });

  it('rejects a remote timestamp beyond the drift bound and does not move', () => {
    const hlc = new HLC({ nodeId: 'b', now: () => 1_000_000, maxDriftMs: 60_000 });
    const before = hlc.now();
    const remote = { millis: 1_060_001, counter: 0, nodeId: 'a' };
    const error = (() => {
      try {
        hlc.update(remote);
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ClockDriftError);
    expect(error).toMatchObject({ code: 'CLOCK_DRIFT', driftMs: 60_001, maxDriftMs: 60_000 });
    expect(hlc.last).toEqual(before);
    // Exactly at the bound is accepted.
    expect(hlc.update({ millis: 1_060_000, counter: 0, nodeId: 'a' }).millis).toBe(1_060_000);
  });

  it('rejects drift for any remote timestamp past the bound, leaving the clock unchanged', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 10_000 }),
        (excess, bound) => {
          const hlc = new HLC({ nodeId: 'b', now: () => 5_000, maxDriftMs: bound });
          hlc.now();
          const before = hlc.last;
          expect(() =>
            hlc.update({ millis: 5_000 + bound + excess, counter: 0, nodeId: 'a' }),
          ).toThrow(ClockDriftError);
          expect(hlc.last).toEqual(before);
        },
      ),
    );
  });

  it('rejects malformed remote timestamps', () => {
    const hlc = new HLC({ nodeId: 'b', now: () => 5 });
    expect(() => hlc.update({ millis: -1, counter: 0, nodeId: 'a' })).toThrow(ValidationError);
    expect(() => hlc.update(null as unknown as Timestamp)).toThrow(ValidationError);
    expect(hlc.last.millis).toBe(0);
  });
});
