import { describe, expect, it } from 'vitest';
import { ItemHasher } from '../src/hash.js';
import { hashString, keyHash, leafPathOf, PARTITION_COUNT, partitionOf } from '../src/index.js';
import { fc } from './property.js';

// The test vectors of specifications/merkle-sync.md: a compatible implementation must match.
describe('hash test vectors', () => {
  it.each([
    ['', [0x1aee8d83, 0x488bdcb8]],
    ['a', [0x82c97901, 0x501c2ba7]],
    ['todo-1', [0x661e1259, 0xc23092c7]],
    ['héllo wörld 🚀', [0x547552f7, 0x4ba95361]],
  ] as const)('hashString(%j)', (input, lanes) => {
    expect(hashString(input)).toEqual(lanes);
  });

  // The published cyrb53 values (github.com/bryc/code, jshash/experimental/cyrb53.js) are
  // 2^32 * (lane2 & 0x1fffff) + lane1: an independent check of the construction.
  it.each([
    ['a', 7929297801672961],
    ['b', 8684336938537663],
    ['revenge', 4051478007546757],
    ['revenue', 8309097637345594],
  ] as const)('agrees with published cyrb53(%j)', (input, cyrb53) => {
    const [lane1, lane2] = hashString(input);
    expect(2 ** 32 * (lane2 & 0x1fffff) + lane1).toBe(cyrb53);
  });

  it('keyHash is lane 1 of hashString and partitionOf is keyHash mod 271', () => {
    for (const key of ['a', 'todo-1', 'user/42', '🚀']) {
      expect(keyHash(key)).toBe(hashString(key)[0]);
      expect(partitionOf(key)).toBe(keyHash(key) % PARTITION_COUNT);
    }
  });

  it('item hashes match the spec vectors', () => {
    const hasher = new ItemHasher();
    hasher.beginKey('todo-1');
    hasher.hashItem(1_700_000_000_000, 7, 'node-a');
    expect([hasher.lane1 >>> 0, hasher.lane2 >>> 0]).toEqual([0x861ffe09, 0x0a553a63]);
    hasher.beginKey('a');
    hasher.hashItem(0, 0, 'n');
    expect([hasher.lane1 >>> 0, hasher.lane2 >>> 0]).toEqual([0x367c19e4, 0x639df44d]);
  });

  it('an item hash is the string hash of key, U+0000, millis units, counter, node id', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
        (key, millis, counter, nodeId) => {
          const hasher = new ItemHasher();
          hasher.beginKey(key);
          hasher.hashItem(millis, counter, nodeId);
          const high = Math.floor(millis / 2 ** 32);
          const low = millis % 2 ** 32;
          const units = String.fromCharCode(0, high, low >>> 16, low & 0xffff, counter);
          expect([hasher.lane1 >>> 0, hasher.lane2 >>> 0]).toEqual(
            hashString(key + units + nodeId),
          );
        },
      ),
    );
  });

  it('leaf paths are derived from the key hash', () => {
    expect(partitionOf('todo-1')).toBe(256);
    expect(leafPathOf('todo-1')).toEqual([256, 0, 1, 1, 3]);
    expect(leafPathOf('a')).toEqual([50, 1, 0, 0, 1]);
  });
});

describe('partitionOf', () => {
  it('spreads keys evenly over the 271 partitions', () => {
    const counts = new Array<number>(PARTITION_COUNT).fill(0);
    const total = 271_000;
    for (let i = 0; i < total; i++) counts[partitionOf(`key-${i}`)]!++;
    // 1000 expected per partition; a uniform hash stays within +-20% with overwhelming odds.
    expect(Math.min(...counts)).toBeGreaterThan(800);
    expect(Math.max(...counts)).toBeLessThan(1200);
  });

  it('is an integer in [0, 271) for any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (key) => {
        const partition = partitionOf(key);
        return Number.isInteger(partition) && partition >= 0 && partition < PARTITION_COUNT;
      }),
    );
  });
});
