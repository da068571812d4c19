import { describe, expect, it } from 'vitest';
import { canonicalSize, HLC, ServerLWWMap, type Value } from '../src/index.js';
import { valueArbitrary } from './arbitraries.js';
import { fc } from './property.js';

describe('ServerLWWMap.prune', () => {
  it('drops tombstones and expired records older than the horizon', () => {
    let time = 1_000;
    const map = new ServerLWWMap<Value>(new HLC({ nodeId: 'a', now: () => time }));
    map.set('kept', { title: 'k', done: false });
    map.delete('old-tombstone');
    map.set('expired', { title: 'e', done: false }, { ttlMs: 10 });
    time += 1_000;
    map.delete('new-tombstone');
    const dropped = map.prune({ millis: 1_500, counter: 0, nodeId: 'a' });
    expect(dropped.sort()).toEqual(['expired', 'old-tombstone']);
    expect(map.recordCount).toBe(2);
    expect(map.getRecord('new-tombstone')).toBeDefined();
    expect(map.merkleTree.root.count).toBe(2);
    expect(map.get('kept')).toBeDefined();
  });
});

describe('ServerLWWMap.byteSize', () => {
  it('follows every kind of change, reports each to its owner, and returns to the empty size', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            kind: fc.constantFrom('set', 'delete', 'merge', 'load', 'restore'),
            key: fc.nat({ max: 40 }).map((index) => `key-${'k'.repeat(index % 5)}${index}`),
            value: valueArbitrary,
            millis: fc.nat({ max: 5_000 }),
          }),
          { maxLength: 120, size: 'max' },
        ),
        (changes) => {
          let time = 10_000;
          let reported = 0;
          const map = new ServerLWWMap<Value>(
            new HLC({ nodeId: 'a', now: () => time, maxDriftMs: Number.POSITIVE_INFINITY }),
            { onByteSizeChange: (delta) => (reported += delta) },
          );
          const empty = map.byteSize;
          for (const { kind, key, value, millis } of changes) {
            time++;
            const record = { value, timestamp: { millis, counter: 0, nodeId: 'r' } };
            if (kind === 'set' && value !== null) map.set(key, value);
            else if (kind === 'set' || kind === 'delete') map.delete(key);
            else if (kind === 'merge') map.merge(key, record);
            else if (kind === 'load') map.loadRecords([[key, record]]);
            else map.restore(key, millis % 2 === 0 ? undefined : record);
          }
          // The values' share is exactly their encoded size, as the tree counted it.
          let encoded = 0;
          for (const [, record] of map.allRecords()) encoded += canonicalSize(record.value);
          expect(map.merkleTree.valueBytes).toBe(encoded);
          expect(empty + reported).toBe(map.byteSize);
          for (const [key] of [...map.allRecords()]) map.restore(key, undefined);
          expect(map.byteSize).toBe(empty);
          expect(reported).toBe(0);
        },
      ),
    );
  });

  it('grows with the keys and values of its records', () => {
    const map = new ServerLWWMap<Value>(new HLC({ nodeId: 'a', now: () => 1_000 }));
    const empty = map.byteSize;
    map.set('k', { title: 'x', done: false });
    const one = map.byteSize - empty;
    map.set('k'.repeat(101), { title: 'x'.repeat(1_001), done: false });
    // 100 more key characters, 1 000 more in the string, and its header of 3 bytes, not 1.
    expect(map.byteSize - empty - 2 * one).toBe(100 + 1_000 + 2);
    map.prune({ millis: 2 ** 48 - 1, counter: 0, nodeId: 'z' });
    expect(map.recordCount).toBe(2); // values are never pruned, only tombstones
    map.delete('k');
    map.delete('k'.repeat(101));
    map.prune({ millis: 2 ** 48 - 1, counter: 0, nodeId: 'z' });
    expect(map.byteSize).toBe(empty);
  });
});
