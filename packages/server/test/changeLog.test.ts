import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChangeLog } from '../src/changeLog.js';

describe('ChangeLog', () => {
  it('answers, for every version it still knows, exactly the keys changed after it', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.array(
            fc.integer({ min: 0, max: 200 }).map((n) => `k${n}`),
            { maxLength: 30 },
          ),
          {
            maxLength: 60,
          },
        ),
        fc.integer({ min: 0, max: 50 }),
        (batches, records) => {
          const log = new ChangeLog(100);
          const history: string[] = [];
          for (const keys of batches) {
            log.append(keys, records);
            history.push(...keys);
          }
          expect(log.version).toBe(history.length);
          let known = 0;
          for (let version = 0; version <= history.length; version++) {
            const since = log.since(version);
            if (since === undefined) continue;
            known++;
            expect(new Set(since)).toEqual(new Set(history.slice(version)));
            expect(since).toHaveLength(new Set(since).size);
          }
          // The latest versions are always known; every version, before the first compaction.
          expect(log.since(history.length)).toEqual([]);
          if (history.length > 0) expect(log.since(history.length - 1)).toBeDefined();
          if (history.length <= 64) expect(known).toBe(history.length + 1);
          expect(log.entries).toBeLessThanOrEqual(100);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps at most its bound, and then no longer resumes from the changes it dropped', () => {
    const log = new ChangeLog(1_000);
    for (let n = 0; n < 5_000; n++) log.append([`k${n}`], 5_000);
    expect(log.entries).toBeLessThanOrEqual(1_000);
    expect(log.since(0)).toBeUndefined();
    expect(log.since(4_600)).toHaveLength(400);
    expect(log.since(4_999)).toEqual(['k4999']);
  });

  it('stays small when few keys change many times', () => {
    const log = new ChangeLog(10_000);
    for (let n = 0; n < 100_000; n++) log.append([`k${n % 10}`], 10);
    // Only the latest change of each key is kept, and still every version resumes.
    expect(log.entries).toBeLessThanOrEqual(64);
    const keys = new Set(Array.from({ length: 10 }, (_, n) => `k${n}`));
    expect(new Set(log.since(0))).toEqual(keys);
    expect(new Set(log.since(99_990))).toEqual(keys);
    expect(log.since(99_995)).toHaveLength(5);
  });

  it('refuses versions it never gave', () => {
    const log = new ChangeLog(100);
    log.append(['a', 'b'], 2);
    for (const version of [-1, 3, 1.5, Number.NaN, Number.POSITIVE_INFINITY])
      expect(log.since(version)).toBeUndefined();
  });
});
