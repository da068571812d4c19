import { describe, expect, it } from 'vitest';
import { ItemHasher } from '../src/hash.js';
import {
  childCountOf,
  hashString,
  keyHash,
  type LWWRecord,
  leafPathOf,
  MerkleTree,
  PARTITION_COUNT,
  ValidationError,
  valueFingerprint,
  WalkTree,
} from '../src/index.js';
import { fc } from './property.js';

const at = (millis: number, nodeId = 'n', value: unknown = 'v'): LWWRecord<unknown> => ({
  value,
  timestamp: { millis, counter: 0, nodeId },
});

function treeOf(items: ReadonlyMap<string, LWWRecord<unknown>>): MerkleTree {
  const tree = new MerkleTree();
  for (const [key, record] of items) tree.update(key, undefined, record);
  return tree;
}

describe('MerkleTree', () => {
  it('is all zeros when empty', () => {
    const tree = new MerkleTree();
    expect(tree.root).toEqual({ hash1: 0, hash2: 0, count: 0 });
    expect(tree.rootHashHex()).toBe('0000000000000000');
    expect(tree.node([3, 1, 2])).toEqual({ hash1: 0, hash2: 0, count: 0 });
    expect(tree.childHashes([], 8)).toEqual(new Uint8Array(PARTITION_COUNT * 8));
  });

  it('returns to the empty hash when every item is removed', () => {
    const tree = new MerkleTree();
    for (let i = 0; i < 100; i++) tree.update(`k${i}`, undefined, at(i));
    for (let i = 0; i < 100; i++) tree.update(`k${i}`, at(i), undefined);
    expect(tree.root).toEqual({ hash1: 0, hash2: 0, count: 0 });
    expect([...tree.keysUnder([])]).toEqual([]);
  });

  it('counts items per node along the key path', () => {
    const tree = new MerkleTree();
    tree.update('todo-1', undefined, at(1));
    const path = leafPathOf('todo-1');
    for (let depth = 0; depth <= path.length; depth++) {
      expect(tree.node(path.slice(0, depth)).count).toBe(1);
    }
    expect([...tree.keysUnder(path)]).toEqual(['todo-1']);
    expect([...tree.keysUnder(path.slice(0, 1))]).toEqual(['todo-1']);
  });

  it('tells apart records with equal timestamps and different values or TTLs', () => {
    const roots = [
      at(1, 'n', 'a'),
      at(1, 'n', 'b'),
      at(1, 'n', null),
      { ...at(1, 'n', 'a'), ttlMs: 5 },
    ].map((record) => {
      const tree = new MerkleTree();
      tree.update('k', undefined, record);
      return tree.rootHashHex();
    });
    expect(new Set(roots).size).toBe(4);
  });

  it('an update changes the root; writing the item back restores it', () => {
    const tree = new MerkleTree();
    tree.update('a', undefined, at(1));
    const root = tree.rootHashHex();
    tree.update('a', at(1), at(2));
    expect(tree.rootHashHex()).not.toBe(root);
    tree.update('a', at(2), at(1));
    expect(tree.rootHashHex()).toBe(root);
  });

  it('depends only on the set of items, not on the order of updates', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 50 })),
          {
            maxLength: 60,
          },
        ),
        (writes) => {
          const incremental = new MerkleTree();
          const latest = new Map<string, LWWRecord<unknown>>();
          for (const [key, millis] of writes) {
            incremental.update(key, latest.get(key), at(millis));
            latest.set(key, at(millis));
          }
          const rebuilt = treeOf(new Map([...latest].reverse()));
          expect(incremental.root).toEqual(rebuilt.root);
          expect(incremental.childHashes([], 8)).toEqual(rebuilt.childHashes([], 8));
          expect(new Set(incremental.keysUnder([]))).toEqual(new Set(latest.keys()));
        },
      ),
    );
  });

  it('reports exactly the children that differ', () => {
    const left = new MerkleTree();
    const right = new MerkleTree();
    for (let i = 0; i < 500; i++) {
      left.update(`k${i}`, undefined, at(i));
      right.update(`k${i}`, undefined, at(i));
    }
    right.update('k7', at(7), at(1_000));
    const [partition, ...rest] = leafPathOf('k7');
    expect(left.differingChildren([], right.childHashes([], 8), 8)).toEqual([partition]);
    expect(left.differingChildren([partition!], right.childHashes([partition!], 4), 4)).toEqual([
      rest[0],
    ]);
    expect(left.differingChildren([1, 2], right.childHashes([1, 2], 8), 8)).toEqual(
      partition === 1 && rest[0] === 2 ? [rest[1]] : [],
    );
  });

  it('validates paths and encoded hashes from outside', () => {
    const tree = new MerkleTree();
    expect(() => tree.node([271])).toThrow(ValidationError);
    expect(() => tree.node([0, 4])).toThrow(ValidationError);
    expect(() => tree.node([0, 1, 1, 1, 1, 1])).toThrow(ValidationError);
    expect(() => tree.node([0.5])).toThrow(ValidationError);
    expect(() => tree.node('0' as unknown as number[])).toThrow(ValidationError);
    expect(() => tree.differingChildren([], new Uint8Array(10), 8)).toThrow(ValidationError);
    expect(() => tree.differingChildren([0], [1, 2] as unknown as Uint8Array, 4)).toThrow(
      ValidationError,
    );
    expect(childCountOf([])).toBe(271);
    expect(childCountOf([0])).toBe(4);
    expect(childCountOf([0, 1, 2, 3, 0])).toBe(0);
  });

  it('gives every node the sum of the item hashes below it (checked by brute force)', () => {
    const items = new Map<string, LWWRecord<unknown>>();
    for (let i = 0; i < 3_000; i++) items.set(`key-${i}`, at(i, `n${i % 3}`, { i }));
    const tree = treeOf(items);
    const hasher = new ItemHasher();
    const expected = (path: readonly number[]) => {
      let hash1 = 0;
      let hash2 = 0;
      let count = 0;
      for (const [key, { timestamp, value }] of items) {
        const leaf = leafPathOf(key);
        if (!path.every((digit, level) => leaf[level] === digit)) continue;
        const [fingerprint1, fingerprint2] = valueFingerprint(value);
        hasher.beginKey(key);
        hasher.hashItem(
          timestamp.millis,
          timestamp.counter,
          timestamp.nodeId,
          fingerprint1,
          fingerprint2,
          0,
        );
        hash1 = (hash1 + hasher.lane1) | 0;
        hash2 = (hash2 + hasher.lane2) | 0;
        count++;
      }
      return { hash1: hash1 >>> 0, hash2: hash2 >>> 0, count };
    };
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 270 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }),
        (partition, digits) => {
          const path = [partition, ...digits];
          expect(tree.node(path)).toEqual(expected(path));
          if (path.length < 5) {
            const children = tree.childHashes(path, 8);
            const view = new DataView(children.buffer);
            for (let child = 0; child < 4; child++) {
              const { hash1, hash2 } = expected([...path, child]);
              expect([view.getUint32(child * 8), view.getUint32(child * 8 + 4)]).toEqual([
                hash1,
                hash2,
              ]);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps a few keys per leaf at 1,000,000 keys', () => {
    // 271 partitions x 256 leaves = 69 376 leaves: about 14 keys per leaf.
    const perLeaf = new Map<string, number>();
    for (let i = 0; i < 100_000; i++) {
      const leaf = leafPathOf(`key-${i}`).join('.');
      perLeaf.set(leaf, (perLeaf.get(leaf) ?? 0) + 1);
    }
    const average = 100_000 / perLeaf.size;
    expect(average).toBeLessThan(2);
    expect(Math.max(...perLeaf.values())).toBeLessThan(12);
  });
});

describe('WalkTree (sub-leaves of crowded leaves)', () => {
  it('gives every sub-leaf the sum of the item hashes of the keys whose lane-2 digits lead there', () => {
    const target = keyHash('target') % (PARTITION_COUNT * 256);
    const items = new Map<string, LWWRecord<unknown>>();
    for (let i = 0; items.size < 120; i++) {
      if (keyHash(`s${i}`) % (PARTITION_COUNT * 256) === target)
        items.set(`s${i}`, at(i, 'n', { i }));
    }
    const tree = treeOf(items);
    const replica = { merkleTree: tree, getRecord: (key: string) => items.get(key) };
    const walkTree = new WalkTree(replica);
    const leaf = leafPathOf('target');
    const expected = (path: readonly number[]) => {
      let hash1 = 0;
      let hash2 = 0;
      let count = 0;
      for (const [key, record] of items) {
        const deep = hashString(key)[1];
        const digits = Array.from({ length: 16 }, (_, level) => (deep >>> (30 - 2 * level)) & 3);
        if (!path.slice(5).every((digit, level) => digits[level] === digit)) continue;
        const [lane1, lane2] = tree.itemHash(key, record);
        hash1 = (hash1 + lane1) | 0;
        hash2 = (hash2 + lane2) | 0;
        count++;
      }
      return count === 0
        ? { hash1: 0, hash2: 0, count: 0 }
        : { hash1: hash1 >>> 0, hash2: hash2 >>> 0, count };
    };
    expect(walkTree.node(leaf)).toEqual(expected(leaf));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }), (digits) => {
        const path = [...leaf, ...digits];
        expect(walkTree.node(path)).toEqual(expected(path));
        expect(new Set(walkTree.keysUnder(path)).size).toBe(expected(path).count);
        const children = new DataView(walkTree.childHashes(path, 8).buffer);
        for (let child = 0; child < 4; child++) {
          const { hash1, hash2 } = expected([...path, child]);
          expect([children.getUint32(child * 8), children.getUint32(child * 8 + 4)]).toEqual([
            hash1,
            hash2,
          ]);
        }
      }),
      { numRuns: 60 },
    );
    expect(walkTree.childCount(Array(21).fill(0))).toBe(0);
    expect(() => walkTree.node(Array(22).fill(0))).toThrow(ValidationError);
  });
});
