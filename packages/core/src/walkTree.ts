import { ValidationError } from './errors.js';
import { hashString } from './hash.js';
import type { LWWRecord } from './lwwRecord.js';
import {
  type HashWidth,
  LEAF_PATH_LENGTH,
  LEAVES_PER_PARTITION,
  MERKLE_FANOUT,
  type MerkleNode,
  type MerkleTree,
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

interface LeafItem {
  readonly key: string;
  /** Lane 2 of the key's hash: its sub-leaf digits. */
  readonly deep: number;
  readonly hash1: number;
  readonly hash2: number;
}

const EMPTY: MerkleNode = Object.freeze({ hash1: 0, hash2: 0, count: 0 });

/**
 * A replica's tree as one walk message sees it: the stored tree down to its leaves, and
 * below them sub-leaves computed on demand from the leaf's items. Items are gathered once
 * per leaf and per message (the replica may change between messages), so a message that
 * names many sub-leaves of a crowded leaf costs one pass over it.
 */
export class WalkTree<V> {
  private readonly leaves = new Map<string, readonly LeafItem[]>();
  private readonly partitions = new Map<number, ReadonlyArray<readonly string[]>>();

  constructor(private readonly replica: SyncReplica<V>) {}

  /** How many children the node at `path` has: 271 for the root, 0 at the deepest level, else 4. */
  childCount(path: readonly number[]): number {
    validateWalkPath(path);
    if (path.length === 0) return PARTITION_COUNT;
    return path.length === MAX_WALK_PATH_LENGTH ? 0 : MERKLE_FANOUT;
  }

  /** The summary of the node at `path`. */
  node(path: readonly number[]): MerkleNode {
    validateWalkPath(path);
    if (path.length <= LEAF_PATH_LENGTH) return this.replica.merkleTree.node(path);
    return this.subleafNode(path);
  }

  /** Child hashes of the node at `path`, encoded as by `MerkleTree.childHashes`. */
  childHashes(path: readonly number[], width: HashWidth): Uint8Array {
    const children = this.childCount(path);
    if (path.length < LEAF_PATH_LENGTH) return this.replica.merkleTree.childHashes(path, width);
    const bytes = new Uint8Array(children * width);
    const view = new DataView(bytes.buffer);
    for (let child = 0; child < children; child++) {
      const { hash1, hash2 } = this.subleafNode([...path, child]);
      view.setUint32(child * width, hash1);
      if (width === 8) view.setUint32(child * width + 4, hash2);
    }
    return bytes;
  }

  /** Indexes of the children of `path` whose hashes differ from the peer's, in order. */
  differingChildren(path: readonly number[], peerHashes: Uint8Array, width: HashWidth): number[] {
    if (path.length < LEAF_PATH_LENGTH) {
      return this.replica.merkleTree.differingChildren(path, peerHashes, width);
    }
    const own = this.childHashes(path, width);
    if (!(peerHashes instanceof Uint8Array) || peerHashes.length !== own.length) {
      throw new ValidationError('hashes', `expected ${own.length} bytes`);
    }
    const differing: number[] = [];
    for (let child = 0; child * width < own.length; child++) {
      for (let index = child * width; index < (child + 1) * width; index++) {
        if (own[index] !== peerHashes[index]) {
          differing.push(child);
          break;
        }
      }
    }
    return differing;
  }

  /** Every key with an item below the node at `path`. */
  *keysUnder(path: readonly number[]): Generator<string> {
    validateWalkPath(path);
    if (path.length <= 1) {
      yield* this.replica.merkleTree.keysUnder(path);
      return;
    }
    if (path.length <= LEAF_PATH_LENGTH) {
      const byLeaf = this.leavesOf(path[0]!);
      let first = 0;
      let span = LEAVES_PER_PARTITION;
      for (let level = 1; level < path.length; level++) {
        span /= MERKLE_FANOUT;
        first += path[level]! * span;
      }
      for (let leaf = first; leaf < first + span; leaf++) yield* byLeaf[leaf]!;
      return;
    }
    for (const item of this.itemsOf(path)) {
      if (isUnder(item.deep, path)) yield item.key;
    }
  }

  private subleafNode(path: readonly number[]): MerkleNode {
    let hash1 = 0;
    let hash2 = 0;
    let count = 0;
    for (const item of this.itemsOf(path)) {
      if (!isUnder(item.deep, path)) continue;
      hash1 = (hash1 + item.hash1) | 0;
      hash2 = (hash2 + item.hash2) | 0;
      count++;
    }
    return count === 0 ? EMPTY : { hash1: hash1 >>> 0, hash2: hash2 >>> 0, count };
  }

  /** The keys of a partition grouped by leaf, gathered once per message. */
  private leavesOf(partition: number): ReadonlyArray<readonly string[]> {
    let byLeaf = this.partitions.get(partition);
    if (byLeaf === undefined) {
      const groups: string[][] = Array.from({ length: LEAVES_PER_PARTITION }, () => []);
      const entries = this.replica.merkleTree.partitionKeys(partition);
      if (entries !== undefined) {
        const { keys, leaves } = entries;
        for (let index = 0; index < keys.length; index++)
          groups[leaves[index]!]!.push(keys[index]!);
      }
      byLeaf = groups;
      this.partitions.set(partition, byLeaf);
    }
    return byLeaf;
  }

  private itemsOf(path: readonly number[]): readonly LeafItem[] {
    const leafPath = path.slice(0, LEAF_PATH_LENGTH);
    const id = leafPath.join('.');
    let items = this.leaves.get(id);
    if (items === undefined) {
      const tree = this.replica.merkleTree;
      const gathered: LeafItem[] = [];
      for (const key of this.keysUnder(leafPath)) {
        const record = this.replica.getRecord(key);
        if (record === undefined) continue;
        const [hash1, hash2] = tree.itemHash(key, record);
        gathered.push({ key, deep: hashString(key)[1], hash1, hash2 });
      }
      items = gathered;
      this.leaves.set(id, items);
    }
    return items;
  }
}

/** Whether a key whose sub-leaf digits are `deep` lies below the sub-leaf node at `path`. */
function isUnder(deep: number, path: readonly number[]): boolean {
  for (let level = LEAF_PATH_LENGTH; level < path.length; level++) {
    const digit = (deep >>> (30 - 2 * (level - LEAF_PATH_LENGTH))) & 3;
    if (digit !== path[level]) return false;
  }
  return true;
}

/**
 * Checks a walk path from outside.
 * @throws {ValidationError} unless it is an array of at most 21 integers, the first in
 *   [0, 271) and the rest in [0, 4).
 */
export function validateWalkPath(path: unknown): asserts path is readonly number[] {
  if (!Array.isArray(path) || path.length > MAX_WALK_PATH_LENGTH) {
    throw new ValidationError(
      'path',
      `expected an array of at most ${MAX_WALK_PATH_LENGTH} digits`,
    );
  }
  for (let level = 0; level < path.length; level++) {
    const digit: unknown = path[level];
    const limit = level === 0 ? PARTITION_COUNT : MERKLE_FANOUT;
    if (typeof digit !== 'number' || !Number.isInteger(digit) || digit < 0 || digit >= limit) {
      throw new ValidationError(`path[${level}]`, `expected an integer in [0, ${limit})`);
    }
  }
}
