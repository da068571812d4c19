import { expect, it } from 'vitest';
import type { LWWMap, LWWRecord } from '../src/index.js';
import { fc } from './property.js';

type Write<V> = readonly [key: string, record: LWWRecord<V>];

/**
 * The laws of a state-based CRDT merge, as property tests: any order of the same writes, any
 * grouping of merged states, and merging again all give the same state.
 * @param writeArbitrary One write (a key and a record to merge).
 * @param merged A fresh map that merged `writes` in order.
 * @param stateOf Everything a map stores (records and root), for comparing states exactly.
 */
export function itObeysTheMergeLaws<V>(
  writeArbitrary: fc.Arbitrary<Write<V>>,
  merged: (writes: ReadonlyArray<Write<V>>) => LWWMap<V>,
  stateOf: (map: LWWMap<V>) => unknown,
): void {
  it('is commutative: any order of the same writes gives the same state', () => {
    fc.assert(
      fc.property(
        fc
          .array(writeArbitrary, { maxLength: 25 })
          .chain((writes) =>
            fc.tuple(
              fc.constant(writes),
              fc.shuffledSubarray(writes, { minLength: writes.length }),
            ),
          ),
        ([writes, shuffled]) => {
          expect(stateOf(merged(shuffled))).toEqual(stateOf(merged(writes)));
        },
      ),
    );
  });

  it('is associative: merging merged states equals merging everything', () => {
    fc.assert(
      fc.property(
        fc.array(writeArbitrary, { maxLength: 12 }),
        fc.array(writeArbitrary, { maxLength: 12 }),
        fc.array(writeArbitrary, { maxLength: 12 }),
        (a, b, c) => {
          const into = (target: LWWMap<V>, source: LWWMap<V>) => {
            for (const [key, record] of source.allRecords()) target.merge(key, record);
            return target;
          };
          const left = into(into(merged(a), merged(b)), merged(c));
          const right = into(merged(a), into(merged(b), merged(c)));
          expect(stateOf(left)).toEqual(stateOf(right));
          expect(stateOf(left)).toEqual(stateOf(merged([...a, ...b, ...c])));
        },
      ),
    );
  });

  it('is idempotent: merging any write or stored record again changes nothing and says so', () => {
    fc.assert(
      fc.property(fc.array(writeArbitrary, { maxLength: 25 }), (writes) => {
        const map = merged(writes);
        const before = stateOf(map);
        for (const [key, record] of writes) expect(map.merge(key, record)).toBe(false);
        for (const [key, record] of [...map.allRecords()])
          expect(map.merge(key, { ...record })).toBe(false);
        expect(stateOf(map)).toEqual(before);
      }),
    );
  });
}
