import { ValueHasher } from './canonicalValue.js';
import { describeValue } from './describeValue.js';
import { ValidationError } from './errors.js';
import { ItemHasher, keyHash } from './hash.js';
import type { LWWRecord } from './lwwRecord.js';
import { PARTITION_COUNT } from './partition.js';

/** Children per node below the partition level. */
export const MERKLE_FANOUT = 4;
/** Levels below the partition level; a leaf's path is `[partition, d1, d2, d3, d4]`. */
export const MERKLE_DEPTH = 4;
/** Leaves under one partition: 4^4 = 256, about 14 keys per leaf at 1 000 000 keys. */
export const LEAVES_PER_PARTITION = MERKLE_FANOUT ** MERKLE_DEPTH;
/** Length of the path of a leaf. */
export const LEAF_PATH_LENGTH = MERKLE_DEPTH + 1;

/** Bytes per hash in an encoded hash list: lane 1 only (4) or both lanes (8). */
export type HashWidth = 4 | 8;

// Per partition, nodes in heap order (children of i are 4i+1..4i+4), 3 words each.
const NODES_PER_PARTITION = (LEAVES_PER_PARTITION * MERKLE_FANOUT - 1) / (MERKLE_FANOUT - 1);
const FIRST_LEAF_NODE = NODES_PER_PARTITION - LEAVES_PER_PARTITION;
const WORDS_PER_NODE = 3;

/** The summary of one Merkle node: its 64-bit hash as two 32-bit lanes, and its item count. */
export interface MerkleNode {
  /** Lane 1 of the hash: the sum modulo 2^32 of lane 1 of every item below the node. */
  readonly hash1: number;
  /** Lane 2 of the hash, likewise. */
  readonly hash2: number;
  /** Number of items (keys) below the node. */
  readonly count: number;
}

interface Partition {
  readonly words: Int32Array;
  /** The partition's keys, and parallel to them their leaves: flat arrays, no per-leaf objects. */
  readonly keys: string[];
  readonly leaves: number[];
}

/**
 * The Merkle tree of one map: a root over {@link PARTITION_COUNT} partitions, each the root
 * of a 4-ary tree of depth {@link MERKLE_DEPTH}. An item is a key with its current record; it
 * lives in the leaf given by its key hash. A node's hash is the lane-wise sum modulo 2^32 of
 * its items' 64-bit hashes, so a write updates the 6 nodes on one path without reading any
 * sibling, and an empty node hashes to 0. Specified in `specifications/merkle-sync.md`.
 */
export class MerkleTree {
  private readonly partitions: Array<Partition | undefined> = new Array(PARTITION_COUNT).fill(
    undefined,
  );
  private readonly hasher = new ItemHasher();
  private readonly values = new ValueHasher();
  private rootHash1 = 0;
  private rootHash2 = 0;
  private rootCount = 0;

  /**
   * Moves `key` from its item for record `previous` to its item for record `next`. Pass
   * `previous` undefined to insert, `next` undefined to remove. Runs in O(depth) plus the
   * size of the two values, which are fingerprinted.
   */
  update(
    key: string,
    previous: LWWRecord<unknown> | undefined,
    next: LWWRecord<unknown> | undefined,
  ): void {
    if (previous === undefined && next === undefined) return;
    const hasher = this.hasher;
    const hashOfKey = hasher.beginKey(key);
    const partitionIndex = hashOfKey % PARTITION_COUNT;
    const leaf = leafOfKeyHash(hashOfKey);
    let delta1 = 0;
    let delta2 = 0;
    let deltaCount = 0;
    if (previous !== undefined) {
      this.hashItem(previous);
      delta1 = (delta1 - hasher.lane1) | 0;
      delta2 = (delta2 - hasher.lane2) | 0;
      deltaCount--;
    }
    if (next !== undefined) {
      this.hashItem(next);
      delta1 = (delta1 + hasher.lane1) | 0;
      delta2 = (delta2 + hasher.lane2) | 0;
      deltaCount++;
    }
    const partition = this.partitions[partitionIndex] ?? this.createPartition(partitionIndex);
    const words = partition.words;
    let node = FIRST_LEAF_NODE + leaf;
    for (;;) {
      const offset = node * WORDS_PER_NODE;
      // Int32 arithmetic wraps modulo 2^32: exactly the sums the hashes are defined as.
      words[offset] = (words[offset]! + delta1) | 0;
      words[offset + 1] = (words[offset + 1]! + delta2) | 0;
      words[offset + 2] = words[offset + 2]! + deltaCount;
      if (node === 0) break;
      node = (node - 1) >> 2;
    }
    this.rootHash1 = (this.rootHash1 + delta1) | 0;
    this.rootHash2 = (this.rootHash2 + delta2) | 0;
    this.rootCount += deltaCount;
    if (deltaCount > 0) {
      partition.keys.push(key);
      partition.leaves.push(leaf);
    } else if (deltaCount < 0) {
      // Removal only happens when pruning, so a scan is cheaper overall than an index.
      const { keys, leaves } = partition;
      const index = keys.indexOf(key);
      const last = keys.length - 1;
      keys[index] = keys[last]!;
      leaves[index] = leaves[last]!;
      keys.pop();
      leaves.pop();
    }
  }

  /** The hash of the item of `key` for `record`, as `[lane1, lane2]` (signed 32-bit). */
  itemHash(key: string, record: LWWRecord<unknown>): [number, number] {
    this.hasher.beginKey(key);
    this.hashItem(record);
    return [this.hasher.lane1, this.hasher.lane2];
  }

  /**
   * The keys of partition `partition` and, parallel to them, their leaves (0 to 255): a view
   * to scan, valid until the next update.
   */
  partitionKeys(
    partition: number,
  ): { readonly keys: readonly string[]; readonly leaves: readonly number[] } | undefined {
    return this.partitions[partition];
  }

  /** Hashes the current key's item for `record` into the item hasher's lanes. */
  private hashItem(record: LWWRecord<unknown>): void {
    const { millis, counter, nodeId } = record.timestamp;
    this.values.hash(record.value);
    this.hasher.hashItem(
      millis,
      counter,
      nodeId,
      this.values.lane1,
      this.values.lane2,
      record.ttlMs ?? 0,
    );
  }

  /** The root summary. Two trees with equal roots hold the same items with probability 1 - 2^-64. */
  get root(): MerkleNode {
    return { hash1: this.rootHash1 >>> 0, hash2: this.rootHash2 >>> 0, count: this.rootCount };
  }

  /** The root hash as 16 lowercase hex digits (lane 1, then lane 2). */
  rootHashHex(): string {
    return (
      (this.rootHash1 >>> 0).toString(16).padStart(8, '0') +
      (this.rootHash2 >>> 0).toString(16).padStart(8, '0')
    );
  }

  /**
   * The summary of the node at `path`: `[]` is the root, `[p]` partition `p`, and up to four
   * more digits in 0..3 descend to a leaf.
   * @throws {ValidationError} when the path is malformed.
   */
  node(path: readonly number[]): MerkleNode {
    validateMerklePath(path);
    if (path.length === 0) return this.root;
    const words = this.partitions[path[0]!]?.words;
    if (words === undefined) return { hash1: 0, hash2: 0, count: 0 };
    const offset = nodeIndex(path) * WORDS_PER_NODE;
    return summaryAt(words, offset);
  }

  /**
   * The hashes of the children of the node at `path`, concatenated in child order:
   * per child, lane 1 as 4 big-endian bytes, then (width 8) lane 2.
   * A leaf has no children: its list is empty.
   * @throws {ValidationError} when the path is malformed.
   */
  childHashes(path: readonly number[], width: HashWidth): Uint8Array {
    const children = childCountOf(path);
    const bytes = new Uint8Array(children * width);
    const view = new DataView(bytes.buffer);
    for (let child = 0; child < children; child++) {
      const { hash1, hash2 } = this.childNode(path, child);
      view.setUint32(child * width, hash1);
      if (width === 8) view.setUint32(child * width + 4, hash2);
    }
    return bytes;
  }

  /**
   * Compares a peer's child hashes of the node at `path` (encoded as by {@link childHashes})
   * with this tree's and returns the indexes of the children that differ, in order.
   * @throws {ValidationError} when the path or the encoded hashes are malformed.
   */
  differingChildren(path: readonly number[], peerHashes: Uint8Array, width: HashWidth): number[] {
    const children = childCountOf(path);
    if (!(peerHashes instanceof Uint8Array) || peerHashes.length !== children * width) {
      throw new ValidationError(
        'hashes',
        `expected ${children * width} bytes for ${children} children of width ${width}`,
      );
    }
    const view = new DataView(peerHashes.buffer, peerHashes.byteOffset, peerHashes.byteLength);
    const differing: number[] = [];
    for (let child = 0; child < children; child++) {
      const own = this.childNode(path, child);
      const differs =
        own.hash1 !== view.getUint32(child * width) ||
        (width === 8 && own.hash2 !== view.getUint32(child * width + 4));
      if (differs) differing.push(child);
    }
    return differing;
  }

  /** Every key with an item below the node at `path` (in no particular order). */
  *keysUnder(path: readonly number[]): Generator<string> {
    validateMerklePath(path);
    if (path.length === 0) {
      for (let p = 0; p < PARTITION_COUNT; p++) yield* this.keysUnder([p]);
      return;
    }
    const partition = this.partitions[path[0]!];
    if (partition === undefined) return;
    let first = 0;
    let span = LEAVES_PER_PARTITION;
    for (let level = 1; level < path.length; level++) {
      span /= MERKLE_FANOUT;
      first += path[level]! * span;
    }
    const { keys, leaves } = partition;
    const end = first + span;
    for (let index = 0; index < keys.length; index++) {
      const leaf = leaves[index]!;
      if (leaf >= first && leaf < end) yield keys[index]!;
    }
  }

  private childNode(path: readonly number[], child: number): MerkleNode {
    if (path.length === 0) {
      const words = this.partitions[child]?.words;
      return words === undefined ? EMPTY_NODE : summaryAt(words, 0);
    }
    const words = this.partitions[path[0]!]?.words;
    if (words === undefined) return EMPTY_NODE;
    const offset = (nodeIndex(path) * MERKLE_FANOUT + 1 + child) * WORDS_PER_NODE;
    return summaryAt(words, offset);
  }

  private createPartition(index: number): Partition {
    const partition: Partition = {
      words: new Int32Array(NODES_PER_PARTITION * WORDS_PER_NODE),
      keys: [],
      leaves: [],
    };
    this.partitions[index] = partition;
    return partition;
  }
}

function summaryAt(words: Int32Array, offset: number): MerkleNode {
  return {
    hash1: words[offset]! >>> 0,
    hash2: words[offset + 1]! >>> 0,
    count: words[offset + 2]!,
  };
}

const EMPTY_NODE: MerkleNode = Object.freeze({ hash1: 0, hash2: 0, count: 0 });

/** The leaf path `[partition, d1, d2, d3, d4]` holding `key`. */
export function leafPathOf(key: string): number[] {
  const hashOfKey = keyHash(key);
  const leaf = leafOfKeyHash(hashOfKey);
  return [hashOfKey % PARTITION_COUNT, (leaf >> 6) & 3, (leaf >> 4) & 3, (leaf >> 2) & 3, leaf & 3];
}

/** How many children the node at `path` has: 271 for the root, 4 inside, 0 for a leaf. */
export function childCountOf(path: readonly number[]): number {
  validateMerklePath(path);
  if (path.length === 0) return PARTITION_COUNT;
  return path.length === LEAF_PATH_LENGTH ? 0 : MERKLE_FANOUT;
}

/**
 * Checks a Merkle path from outside.
 * @throws {ValidationError} unless it is an array of at most 5 integers, the first in
 *   [0, 271) and the rest in [0, 4).
 */
export function validateMerklePath(path: unknown): asserts path is readonly number[] {
  if (!Array.isArray(path) || path.length > LEAF_PATH_LENGTH) {
    throw new ValidationError(
      'path',
      `expected an array of at most 5 integers, got ${describeValue(path)}`,
    );
  }
  for (let level = 0; level < path.length; level++) {
    const digit: unknown = path[level];
    const limit = level === 0 ? PARTITION_COUNT : MERKLE_FANOUT;
    if (typeof digit !== 'number' || !Number.isInteger(digit) || digit < 0 || digit >= limit) {
      throw new ValidationError(
        `path[${level}]`,
        `expected an integer in [0, ${limit}), got ${describeValue(digit)}`,
      );
    }
  }
}

/** A key's leaf within its partition: the quotient of its key hash by 271, modulo 256. */
function leafOfKeyHash(hashOfKey: number): number {
  return Math.floor(hashOfKey / PARTITION_COUNT) % LEAVES_PER_PARTITION;
}

function nodeIndex(path: readonly number[]): number {
  let index = 0;
  for (let level = 1; level < path.length; level++)
    index = index * MERKLE_FANOUT + 1 + path[level]!;
  return index;
}
