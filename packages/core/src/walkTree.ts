import { hashString } from './hash.js';
import type { LWWRecord } from './lwwRecord.js';
import { EMPTY_NODE } from './merklePartition.js';
import {
  differingHashes,
  encodeHashes,
  type HashWidth,
  itemHash,
  LEAF_PATH_LENGTH,
  LEAVES_PER_PARTITION,
  MERKLE_FANOUT,
  type MerkleNode,
  type MerkleTree,
  validateMerklePath,
} from './merkleTree.js';
import { PARTITION_COUNT } from './partition.js';

/** What the Merkle walk needs from a replica: its tree and read access to its records. */
export interface SyncReplica<V> {
  readonly merkleTree: MerkleTree;
  getRecord(key: string): LWWRecord<V> | undefined;
}

/**
 * Levels below the tree's leaves that a walk may descend into: each picks 2 more bits of
 * lane 2 of the key's hash (most significant first), so a crowded leaf splits into
 * sub-leaves on bits that the partition and leaf (lane 1) did not use.
 */
export const SUBLEAF_DEPTH = 16;

/** Longest path a walk may name: partition, 4 tree digits, then up to 16 sub-leaf digits. */
export const MAX_WALK_PATH_LENGTH = LEAF_PATH_LENGTH + SUBLEAF_DEPTH;

/**
 * The items of one leaf, sorted by their sub-leaf digits (lane 2 of the key hash), with
 * prefix sums of their hash lanes: any sub-leaf is a contiguous range, summed in O(log n).
 */
interface LeafItems {
  readonly keys: readonly string[];
  /** Lane 2 of each key's hash, unsigned, ascending. */
  readonly deep: Float64Array;
  /** `sum1[i]` is the lane-1 sum (mod 2^32) of the first `i` items; likewise `sum2`. */
  readonly sum1: Int32Array;
  readonly sum2: Int32Array;
}

/**
 * A replica's tree as one walk message sees it: the stored tree down to its leaves, and
 * below them sub-leaves computed on demand from the leaf's items. Items are gathered once
 * per leaf and per message (the replica may change between messages), so a message that
 * names many sub-leaves of a crowded leaf costs one pass over it.
 */
export class WalkTree<V> {
  readonly #leaves = new Map<string, LeafItems>();
  readonly #partitions = new Map<number, ReadonlyArray<readonly string[]>>();
  readonly #replica: SyncReplica<V>;

  constructor(replica: SyncReplica<V>) {
    this.#replica = replica;
  }

  /** How many children the node at `path` has: 271 for the root, 0 at the deepest level, else 4. */
  childCount(path: readonly number[]): number {
    validateMerklePath(path, MAX_WALK_PATH_LENGTH);
    if (path.length === 0) return PARTITION_COUNT;
    return path.length === MAX_WALK_PATH_LENGTH ? 0 : MERKLE_FANOUT;
  }

  /** The summary of the node at `path`. */
  node(path: readonly number[]): MerkleNode {
    validateMerklePath(path, MAX_WALK_PATH_LENGTH);
    if (path.length <= LEAF_PATH_LENGTH) return this.#replica.merkleTree.node(path);
    return this.#subleafNode(path);
  }

  /** Child hashes of the node at `path`, encoded as by `MerkleTree.childHashes`. */
  childHashes(path: readonly number[], width: HashWidth): Uint8Array {
    const children = this.childCount(path);
    if (path.length < LEAF_PATH_LENGTH) return this.#replica.merkleTree.childHashes(path, width);
    return encodeHashes(children, width, (child) => this.#subleafNode([...path, child]));
  }

  /** Indexes of the children of `path` whose hashes differ from the peer's, in order. */
  differingChildren(path: readonly number[], peerHashes: Uint8Array, width: HashWidth): number[] {
    return differingHashes(this.childHashes(path, width), peerHashes, width);
  }

  /** Every key with an item below the node at `path`. */
  *keysUnder(path: readonly number[]): Generator<string> {
    validateMerklePath(path, MAX_WALK_PATH_LENGTH);
    if (path.length <= 1) {
      const tree = this.#replica.merkleTree;
      if (path.length === 1) yield* tree.partitionKeys(path[0]!)?.keys ?? [];
      else for (let p = 0; p < PARTITION_COUNT; p++) yield* tree.partitionKeys(p)?.keys ?? [];
      return;
    }
    if (path.length <= LEAF_PATH_LENGTH) {
      const byLeaf = this.#leavesOf(path[0]!);
      let first = 0;
      let span = LEAVES_PER_PARTITION;
      for (let level = 1; level < path.length; level++) {
        span /= MERKLE_FANOUT;
        first += path[level]! * span;
      }
      for (let leaf = first; leaf < first + span; leaf++) yield* byLeaf[leaf]!;
      return;
    }
    const items = this.#itemsOf(path);
    const [first, end] = rangeOf(items, path);
    for (let index = first; index < end; index++) yield items.keys[index]!;
  }

  #subleafNode(path: readonly number[]): MerkleNode {
    const items = this.#itemsOf(path);
    const [first, end] = rangeOf(items, path);
    if (first === end) return EMPTY_NODE;
    return {
      hash1: (items.sum1[end]! - items.sum1[first]!) >>> 0,
      hash2: (items.sum2[end]! - items.sum2[first]!) >>> 0,
      count: end - first,
    };
  }

  /** The keys of a partition grouped by leaf, gathered once per message. */
  #leavesOf(partition: number): ReadonlyArray<readonly string[]> {
    let byLeaf = this.#partitions.get(partition);
    if (byLeaf === undefined) {
      const groups: string[][] = Array.from({ length: LEAVES_PER_PARTITION }, () => []);
      const entries = this.#replica.merkleTree.partitionKeys(partition);
      if (entries !== undefined) {
        const { keys, leaves } = entries;
        for (let index = 0; index < keys.length; index++)
          groups[leaves[index]!]!.push(keys[index]!);
      }
      byLeaf = groups;
      this.#partitions.set(partition, byLeaf);
    }
    return byLeaf;
  }

  #itemsOf(path: readonly number[]): LeafItems {
    const leafPath = path.slice(0, LEAF_PATH_LENGTH);
    const id = leafPath.join('.');
    let items = this.#leaves.get(id);
    if (items === undefined) {
      const gathered: Array<{ key: string; deep: number; hash1: number; hash2: number }> = [];
      for (const key of this.keysUnder(leafPath)) {
        const record = this.#replica.getRecord(key);
        if (record === undefined) continue;
        const [hash1, hash2] = itemHash(key, record);
        gathered.push({ key, deep: hashString(key)[1], hash1, hash2 });
      }
      gathered.sort((a, b) => a.deep - b.deep);
      const deep = new Float64Array(gathered.length);
      const sum1 = new Int32Array(gathered.length + 1);
      const sum2 = new Int32Array(gathered.length + 1);
      gathered.forEach((item, index) => {
        deep[index] = item.deep;
        sum1[index + 1] = (sum1[index]! + item.hash1) | 0;
        sum2[index + 1] = (sum2[index]! + item.hash2) | 0;
      });
      items = { keys: gathered.map((item) => item.key), deep, sum1, sum2 };
      this.#leaves.set(id, items);
    }
    return items;
  }
}

/** The items of `items` below the sub-leaf at `path`: `[first, end)` by their digits. */
function rangeOf(items: LeafItems, path: readonly number[]): [number, number] {
  // The sub-leaf's digits are the top bits of lane 2: its items have lane 2 in [low, high).
  let low = 0;
  let width = 2 ** 32;
  for (let level = LEAF_PATH_LENGTH; level < path.length; level++) {
    width /= 4;
    low += path[level]! * width;
  }
  return [lowerBound(items.deep, low), lowerBound(items.deep, low + width)];
}

/** The first index of sorted `values` at or above `value`. */
function lowerBound(values: Float64Array, value: number): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (values[middle]! < value) low = middle + 1;
    else high = middle;
  }
  return low;
}
