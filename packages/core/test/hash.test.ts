import { describe, expect, it } from 'vitest';
import { ValueHasher } from '../src/canonicalValue.js';
import { ItemHasher } from '../src/hash.js';
import {
  canonicalSize,
  EMPTY_WRITE_TIMESTAMP,
  encodeValue,
  hashString,
  itemHash,
  keyHash,
  leafPathOf,
  PARTITION_COUNT,
  partitionOf,
  type Value,
  valueFingerprint,
  withFieldWrites,
} from '../src/index.js';
import { fc } from './property.js';

/** The size the value hasher reports for `value`: the bytes it fed to the hash. */
function hashedSize(value: unknown): number {
  const hasher = new ValueHasher();
  hasher.hash(value);
  return hasher.size;
}

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
    const [a1, a2] = valueFingerprint({ title: 'x', done: false });
    hasher.beginKey('todo-1');
    hasher.hashItem(1_700_000_000_000, 7, 'node-a', a1, a2, 0);
    expect([hasher.lane1 >>> 0, hasher.lane2 >>> 0]).toEqual(ITEM_VECTORS[0]);
    const [b1, b2] = valueFingerprint(null);
    hasher.beginKey('a');
    hasher.hashItem(0, 0, 'n', b1, b2, 0);
    expect([hasher.lane1 >>> 0, hasher.lane2 >>> 0]).toEqual(ITEM_VECTORS[1]);
    const [c1, c2] = valueFingerprint(42);
    hasher.beginKey('a');
    hasher.hashItem(0, 0, 'n', c1, c2, 60_000);
    expect([hasher.lane1 >>> 0, hasher.lane2 >>> 0]).toEqual(ITEM_VECTORS[2]);
  });

  it('item hashes of records with field writes match the spec vectors and their definition', () => {
    const edited = withFieldWrites<Value>(
      {
        value: { title: 'x', done: false },
        timestamp: { millis: 1_700_000_000_000, counter: 7, nodeId: 'node-a' },
      },
      {
        done: {
          timestamp: { millis: 1_700_000_000_001, counter: 0, nodeId: 'node-b' },
          value: true,
        },
      },
    );
    const patch = withFieldWrites<Value>(
      { value: null, timestamp: EMPTY_WRITE_TIMESTAMP },
      { tag: { timestamp: { millis: 5, counter: 0, nodeId: 'n' } } },
    );
    expect(itemHash('todo-1', edited).map((lane) => lane >>> 0)).toEqual(ITEM_VECTORS[3]);
    expect(itemHash('a', patch).map((lane) => lane >>> 0)).toEqual(ITEM_VECTORS[4]);
    // The definition: the fingerprint of [base, [name, millis, counter, nodeId, value?]…],
    // with 0x8000 in the TTL's first unit.
    const hasher = new ItemHasher();
    const [e1, e2] = valueFingerprint([
      { title: 'x', done: false },
      ['done', 1_700_000_000_001, 0, 'node-b', true],
    ]);
    hasher.beginKey('todo-1');
    hasher.hashItem(1_700_000_000_000, 7, 'node-a', e1, e2, 0, true);
    expect([hasher.lane1 >>> 0, hasher.lane2 >>> 0]).toEqual(ITEM_VECTORS[3]);
    const [p1, p2] = valueFingerprint([null, ['tag', 5, 0, 'n']]);
    hasher.beginKey('a');
    hasher.hashItem(0, 0, '', p1, p2, 0, true);
    expect([hasher.lane1 >>> 0, hasher.lane2 >>> 0]).toEqual(ITEM_VECTORS[4]);
  });

  it('value fingerprints match the spec vectors', () => {
    expect(valueFingerprint(null)).toEqual(FINGERPRINT_VECTORS[0]);
    expect(valueFingerprint({ title: 'x', done: false })).toEqual(FINGERPRINT_VECTORS[1]);
    expect(valueFingerprint(42)).toEqual(FINGERPRINT_VECTORS[2]);
  });

  it('a value fingerprint is the hash of the bytes of its canonical encoding', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (candidate) => {
        const value = JSON.parse(JSON.stringify(candidate)) as Value;
        if (value === null) return;
        const bytes = encodeValue(value);
        expect(valueFingerprint(value)).toEqual(hashString(String.fromCharCode(...bytes)));
        expect(canonicalSize(value)).toBe(bytes.length);
        expect(hashedSize(value)).toBe(bytes.length);
      }),
      { numRuns: 500 },
    );
    for (const value of [
      -0,
      127,
      128,
      255,
      256,
      65535,
      65536,
      2 ** 32 - 1,
      2 ** 32,
      -32,
      -33,
      -128,
      -129,
      -32768,
      -32769,
      -(2 ** 31),
      -(2 ** 31) - 1,
      1.5,
      2 ** 53 - 1,
      'é',
      '🚀',
      'x'.repeat(31),
      'x'.repeat(32),
      'x'.repeat(256),
      'x'.repeat(70_000),
      Array(15).fill(1),
      Array(16).fill(1),
      Array(70_000).fill(0),
      Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`f${i}`, i])),
    ] as Value[]) {
      const bytes = encodeValue(value);
      expect(valueFingerprint(value)).toEqual(hashString(String.fromCharCode(...bytes)));
      expect(canonicalSize(value)).toBe(bytes.length);
      expect(hashedSize(value)).toBe(bytes.length);
    }
    // A string that turns out not to be ASCII is hashed again as UTF-8: counted once.
    expect(hashedSize({ a: 'abc', b: 'abcé', c: '🚀x' })).toBe(
      encodeValue({ a: 'abc', b: 'abcé', c: '🚀x' }).length,
    );
    expect(hashedSize(null)).toBe(1);
  });

  it('an item hash is the string hash of key, U+0000, millis, counter, node id, fingerprint, TTL', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
        fc.tuple(
          fc.integer({ min: 0, max: 2 ** 32 - 1 }),
          fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        ),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        (key, millis, counter, nodeId, [fingerprint1, fingerprint2], ttl) => {
          const hasher = new ItemHasher();
          hasher.beginKey(key);
          hasher.hashItem(millis, counter, nodeId, fingerprint1, fingerprint2, ttl);
          const high = Math.floor(millis / 2 ** 32);
          const low = millis % 2 ** 32;
          const units = String.fromCharCode(0, high, low >>> 16, low & 0xffff, counter);
          const ttlHigh = Math.floor(ttl / 2 ** 32);
          const ttlLow = ttl % 2 ** 32;
          const tail = String.fromCharCode(
            fingerprint1 >>> 16,
            fingerprint1 & 0xffff,
            fingerprint2 >>> 16,
            fingerprint2 & 0xffff,
            ttlHigh >>> 16,
            ttlHigh & 0xffff,
            ttlLow >>> 16,
            ttlLow & 0xffff,
          );
          expect([hasher.lane1 >>> 0, hasher.lane2 >>> 0]).toEqual(
            hashString(key + units + nodeId + tail),
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
    // About 1 s alone; several times that while the other packages' suites run beside it.
  }, 30_000);
});

// The vectors of specifications/merkle-sync.md.
const FINGERPRINT_VECTORS: ReadonlyArray<readonly [number, number]> = [
  [0x04a1b41c, 0x1145ef80],
  [0xca8d9375, 0xdbb4cf6f],
  [0xa76382fb, 0x7ecb4f38],
];
const ITEM_VECTORS: ReadonlyArray<readonly [number, number]> = [
  [0xb74cfef0, 0x55ad9bed],
  [0x25e62250, 0xd4ae38c2],
  [0xe0a42800, 0x0933c037],
  [0x5f93eacd, 0x43445e56],
  [0x0ebdd44b, 0xc57b438c],
];
