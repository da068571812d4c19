import { describe, expect, it } from 'vitest';
import { ItemHasher } from '../src/hash.js';
import {
  childCountOf,
  encodeValue,
  hashString,
  itemHash,
  keyHash,
  LEAF_PATH_LENGTH,
  LEAVES_PER_PARTITION,
  type LWWRecord,
  leafPathOf,
  type MerkleNode,
  MerkleTree,
  PARTITION_COUNT,
  rootHashHex,
  ValidationError,
  valueFingerprint,
  WalkTree,
} from '../src/index.js';
import { MerklePartition, SPARSE_LEAF_LIMIT } from '../src/merklePartition.js';
import { differingHashes } from '../src/merkleTree.js';
import { fc } from './property.js';

const at = (millis: number, nodeId = 'n', value: unknown = 'v'): LWWRecord<unknown> => ({
  value,
  timestamp: { millis, counter: 0, nodeId },
});

/** Every key with an item below the node at `path` of `tree`, as a walk reads them. */
function keysUnder(tree: MerkleTree, path: readonly number[]): Iterable<string> {
  return new WalkTree({ merkleTree: tree, getRecord: () => undefined }).keysUnder(path);
}

function treeOf(items: ReadonlyMap<string, LWWRecord<unknown>>): MerkleTree {
  const tree = new MerkleTree();
  for (const [key, record] of items) tree.update(key, undefined, record);
  return tree;
}

describe('MerkleTree', () => {
  it('is all zeros when empty', () => {
    const tree = new MerkleTree();
    expect(tree.root).toEqual({ hash1: 0, hash2: 0, count: 0 });
    expect(rootHashHex(tree)).toBe('0000000000000000');
    expect(tree.node([3, 1, 2])).toEqual({ hash1: 0, hash2: 0, count: 0 });
    expect(tree.childHashes([], 8)).toEqual(new Uint8Array(PARTITION_COUNT * 8));
  });

  it('returns to the empty hash when every item is removed', () => {
    const tree = new MerkleTree();
    for (let i = 0; i < 100; i++) tree.update(`k${i}`, undefined, at(i));
    for (let i = 0; i < 100; i++) tree.update(`k${i}`, at(i), undefined);
    expect(tree.root).toEqual({ hash1: 0, hash2: 0, count: 0 });
    expect([...keysUnder(tree, [])]).toEqual([]);
  });

  it('counts items per node along the key path', () => {
    const tree = new MerkleTree();
    tree.update('todo-1', undefined, at(1));
    const path = leafPathOf('todo-1');
    for (let depth = 0; depth <= path.length; depth++) {
      expect(tree.node(path.slice(0, depth)).count).toBe(1);
    }
    expect([...keysUnder(tree, path)]).toEqual(['todo-1']);
    expect([...keysUnder(tree, path.slice(0, 1))]).toEqual(['todo-1']);
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
      return rootHashHex(tree);
    });
    expect(new Set(roots).size).toBe(4);
  });

  it('an update changes the root; writing the item back restores it', () => {
    const tree = new MerkleTree();
    tree.update('a', undefined, at(1));
    const root = rootHashHex(tree);
    tree.update('a', at(1), at(2));
    expect(rootHashHex(tree)).not.toBe(root);
    tree.update('a', at(2), at(1));
    expect(rootHashHex(tree)).toBe(root);
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
          expect(new Set(keysUnder(incremental, []))).toEqual(new Set(latest.keys()));
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
    const differing = (path: readonly number[], width: 4 | 8) =>
      differingHashes(left.childHashes(path, width), right.childHashes(path, width), width);
    expect(differing([], 8)).toEqual([partition]);
    expect(differing([partition!], 4)).toEqual([rest[0]]);
    expect(differing([1, 2], 8)).toEqual(partition === 1 && rest[0] === 2 ? [rest[1]] : []);
  });

  it('validates paths and encoded hashes from outside', () => {
    const tree = new MerkleTree();
    expect(() => tree.node([271])).toThrow(ValidationError);
    expect(() => tree.node([0, 4])).toThrow(ValidationError);
    expect(() => tree.node([0, 1, 1, 1, 1, 1])).toThrow(ValidationError);
    expect(() => tree.node([0.5])).toThrow(ValidationError);
    expect(() => tree.node('0' as unknown as number[])).toThrow(ValidationError);
    expect(() => differingHashes(tree.childHashes([], 8), new Uint8Array(10), 8)).toThrow(
      ValidationError,
    );
    expect(() => differingHashes(tree.childHashes([0], 4), [1, 2], 4)).toThrow(ValidationError);
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
        const [lane1, lane2] = itemHash(key, record);
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

/** Every node summary of a partition, level by level: 1 + 4 + 16 + 64 + 256 nodes. */
function everySummary(partition: MerklePartition): MerkleNode[] {
  const nodes: MerkleNode[] = [];
  for (let level = 0; level <= 4; level++) {
    for (let position = 0; position < 4 ** level; position++)
      nodes.push(partition.summary(level, position));
  }
  return nodes;
}

interface PartitionItem {
  readonly leaf: number;
  readonly hash1: number;
  readonly hash2: number;
}

/** The same summaries computed from scratch from the items a partition should hold. */
function summariesOf(items: ReadonlyMap<string, PartitionItem>): MerkleNode[] {
  const nodes: MerkleNode[] = [];
  for (let level = 0; level <= 4; level++) {
    for (let position = 0; position < 4 ** level; position++) {
      let hash1 = 0;
      let hash2 = 0;
      let count = 0;
      for (const item of items.values()) {
        if (Math.floor(item.leaf / 4 ** (4 - level)) !== position) continue;
        hash1 = (hash1 + item.hash1) | 0;
        hash2 = (hash2 + item.hash2) | 0;
        count++;
      }
      nodes.push({ hash1: hash1 >>> 0, hash2: hash2 >>> 0, count });
    }
  }
  return nodes;
}

/** A partition already in the dense form: items on more leaves than the limit, since removed. */
function densePartition(): MerklePartition {
  const partition = new MerklePartition(0);
  for (let leaf = 0; leaf <= SPARSE_LEAF_LIMIT; leaf++)
    partition.apply(`filler-${leaf}`, leaf, leaf * 7919, leaf * 104_729, 1);
  for (let leaf = 0; leaf <= SPARSE_LEAF_LIMIT; leaf++)
    partition.apply(`filler-${leaf}`, leaf, -leaf * 7919, -leaf * 104_729, -1);
  return partition;
}

/** Keys whose partition is `partition`, `count` of them. */
function keysOfPartition(partition: number, count: number, prefix: string): string[] {
  const keys: string[] = [];
  for (let index = 0; keys.length < count; index++) {
    if (keyHash(`${prefix}${index}`) % PARTITION_COUNT === partition)
      keys.push(`${prefix}${index}`);
  }
  return keys;
}

describe('MerkleTree: sparse and dense partitions', () => {
  it('gives the same summaries sparse, dense and from scratch, over inserts, updates and removes', () => {
    const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
    const forms = { sparse: 0, dense: 0 };
    fc.assert(
      fc.property(
        // Leaves in [0, spread): a small spread keeps a partition sparse, a large one does not.
        fc.integer({ min: 1, max: LEAVES_PER_PARTITION }),
        fc.array(fc.nat({ max: 255 }), { minLength: 80, maxLength: 80 }),
        fc.array(
          fc.record({
            key: fc.nat({ max: 79 }),
            // One operation in four removes: partitions fill up, and empty again at times.
            remove: fc.nat({ max: 3 }).map((draw) => draw === 0),
            hash1: int32,
            hash2: int32,
          }),
          { maxLength: 300, size: 'max' },
        ),
        (spread, leafSeeds, operations) => {
          const natural = new MerklePartition(0);
          const dense = densePartition();
          const items = new Map<string, PartitionItem>();
          const apply = (key: string, leaf: number, d1: number, d2: number, dc: number) => {
            natural.apply(key, leaf, d1, d2, dc);
            dense.apply(key, leaf, d1, d2, dc);
          };
          operations.forEach(({ key: index, remove, hash1, hash2 }, step) => {
            const key = `key-${index}`;
            const leaf = leafSeeds[index]! % spread;
            const previous = items.get(key);
            if (remove) {
              if (previous === undefined) return;
              apply(key, leaf, -previous.hash1 | 0, -previous.hash2 | 0, -1);
              items.delete(key);
            } else if (previous === undefined) {
              apply(key, leaf, hash1, hash2, 1);
              items.set(key, { leaf, hash1, hash2 });
            } else {
              apply(key, leaf, (hash1 - previous.hash1) | 0, (hash2 - previous.hash2) | 0, 0);
              items.set(key, { leaf, hash1, hash2 });
            }
            if (step % 50 === 49) expect(everySummary(natural)).toEqual(everySummary(dense));
          });
          const expected = summariesOf(items);
          expect(everySummary(natural)).toEqual(expected);
          expect(everySummary(dense)).toEqual(expected);
          expect(new Set(natural.keys)).toEqual(new Set(items.keys()));
          expect(natural.keys.map((key) => items.get(key)!.leaf)).toEqual([...natural.leaves]);
          expect(dense.isDense).toBe(true);
          forms[natural.isDense ? 'dense' : 'sparse']++;
        },
      ),
    );
    // Both forms were exercised, or the comparison above proved nothing about one of them.
    expect(forms.sparse).toBeGreaterThan(0);
    expect(forms.dense).toBeGreaterThan(0);
  });

  it('keeps every node the sum of its items whatever the history (crowded partitions, many partitions)', () => {
    const crowded = keysOfPartition(7, 120, 'crowded-');
    const spread = Array.from({ length: 60 }, (_, index) => `spread-${index}`);
    const pool = [...crowded, ...spread];
    const crowdedForms = { sparse: 0, dense: 0 };
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            key: fc.nat({ max: pool.length - 1 }),
            remove: fc.nat({ max: 3 }).map((draw) => draw === 0),
            millis: fc.nat({ max: 1_000 }),
            value: fc.integer(),
          }),
          { maxLength: 400, size: 'max' },
        ),
        (operations) => {
          const tree = new MerkleTree();
          const items = new Map<string, LWWRecord<unknown>>();
          for (const { key: index, remove, millis, value } of operations) {
            const key = pool[index]!;
            const previous = items.get(key);
            if (remove) {
              if (previous === undefined) continue;
              tree.update(key, previous, undefined);
              items.delete(key);
            } else {
              const record = at(millis, 'n', value);
              tree.update(key, previous, record);
              items.set(key, record);
            }
          }
          const rebuilt = treeOf(new Map([...items].reverse()));
          expect(tree.root).toEqual(rebuilt.root);
          expect(tree.childHashes([], 8)).toEqual(rebuilt.childHashes([], 8));
          const expected = (path: readonly number[]) => {
            let hash1 = 0;
            let hash2 = 0;
            let count = 0;
            for (const [key, record] of items) {
              const leaf = leafPathOf(key);
              if (!path.every((digit, level) => leaf[level] === digit)) continue;
              const [lane1, lane2] = itemHash(key, record);
              hash1 = (hash1 + lane1) | 0;
              hash2 = (hash2 + lane2) | 0;
              count++;
            }
            return { hash1: hash1 >>> 0, hash2: hash2 >>> 0, count };
          };
          // Every node of the crowded partition, and the path of every other key.
          const paths: number[][] = [[7]];
          for (let at = 0; at < paths.length; at++) {
            const path = paths[at]!;
            if (path.length < LEAF_PATH_LENGTH)
              for (let digit = 0; digit < 4; digit++) paths.push([...path, digit]);
          }
          for (const key of spread) paths.push(leafPathOf(key));
          for (const path of paths) {
            expect(tree.node(path)).toEqual(expected(path));
            expect(rebuilt.node(path)).toEqual(expected(path));
            if (path.length < LEAF_PATH_LENGTH)
              expect(tree.childHashes(path, 8)).toEqual(rebuilt.childHashes(path, 8));
          }
          expect(new Set(keysUnder(tree, []))).toEqual(new Set(items.keys()));
          const partition = tree.partitionKeys(7) as MerklePartition | undefined;
          if (partition !== undefined) crowdedForms[partition.isDense ? 'dense' : 'sparse']++;
        },
      ),
      { numRuns: 40 },
    );
    expect(crowdedForms.sparse).toBeGreaterThan(0);
    expect(crowdedForms.dense).toBeGreaterThan(0);
  });

  it('costs a few hundred bytes for one item, and its estimate returns when items leave', () => {
    const empty = new MerkleTree().byteSize;
    const tree = new MerkleTree();
    tree.update('only', undefined, at(1));
    expect(tree.byteSize - empty).toBeLessThan(400);
    const records = Array.from({ length: 20_000 }, (_, index) => at(index, 'n', { index }));
    for (let index = 0; index < records.length; index++)
      tree.update(`k${index}`, undefined, records[index]);
    // Every partition dense: about 4 KiB each, plus the keys' slots.
    const dense = PARTITION_COUNT * 4_000;
    expect(tree.byteSize).toBeGreaterThan(dense);
    expect(tree.byteSize).toBeLessThan(dense * 1.5 + 20_000 * 40);
    for (let index = 0; index < records.length; index++)
      tree.update(`k${index}`, records[index], undefined);
    expect(tree.update('only', at(1), undefined)).toBeUndefined();
    expect(tree.root.count).toBe(0);
    expect(tree.byteSize).toBe(empty);
  });

  it('counts the encoded bytes of its items’ values', () => {
    const tree = new MerkleTree();
    tree.update('a', undefined, at(1, 'n', 'x'.repeat(40)));
    tree.update('b', undefined, at(1, 'n', null));
    expect(tree.valueBytes).toBe(42 + 1);
    tree.update('a', at(1, 'n', 'x'.repeat(40)), at(2, 'n', { n: 1 }));
    expect(tree.valueBytes).toBe(encodeValue({ n: 1 }).length + 1);
    tree.update('b', at(1, 'n', null), undefined);
    expect(tree.valueBytes).toBe(encodeValue({ n: 1 }).length);
  });
});
