import { ValueHasher } from './canonicalValue.js';
import { describeValue } from './describeValue.js';
import { ValidationError } from './errors.js';
import type { FieldWrites } from './fieldWrites.js';
import { ItemHasher, keyHash } from './hash.js';
import { isIntegerIn } from './isIntegerIn.js';
import type { LWWRecord } from './lwwRecord.js';
import {
  EMPTY_NODE,
  LEAVES_PER_PARTITION,
  MERKLE_DEPTH,
  MERKLE_FANOUT,
  type MerkleNode,
  MerklePartition,
} from './merklePartition.js';
import { PARTITION_COUNT } from './partition.js';

export { LEAVES_PER_PARTITION, MERKLE_DEPTH, MERKLE_FANOUT, type MerkleNode };

/** Length of the path of a leaf. */
export const LEAF_PATH_LENGTH = MERKLE_DEPTH + 1;

/** Bytes per hash in an encoded hash list: lane 1 only (4) or both lanes (8). */
export type HashWidth = 4 | 8;

/**
 * Partitions a tree keeps in a list, found by scanning it; with more, it keeps a table of
 * all 271 (2 KiB, more than a map of a few records costs in all).
 */
const LISTED_PARTITIONS = 32;
/** The tree object and its empty list (heap estimate, 64-bit V8, 8-byte slots). */
const TREE_BYTES = 96;
/** The table of partitions, once a tree has one. */
const TABLE_BYTES = PARTITION_COUNT * 8 + 16;

// Shared by every tree: an update hashes synchronously and keeps no state across calls.
const itemHasher = new ItemHasher();
const valueHasher = new ValueHasher();

/**
 * The Merkle tree of one map: a root over {@link PARTITION_COUNT} partitions, each the root
 * of a 4-ary tree of depth {@link MERKLE_DEPTH}. An item is a key with its current record; it
 * lives in the leaf given by its key hash. A node's hash is the lane-wise sum modulo 2^32 of
 * its items' 64-bit hashes, so a write updates the 6 nodes on one path without reading any
 * sibling, and an empty node hashes to 0. Specified in `specifications/merkle-sync.md`.
 *
 * Only partitions with items take memory, and a partition with items in few leaves keeps
 * only those (see {@link MerklePartition}): a small map costs a few hundred bytes of tree.
 */
export class MerkleTree {
  /** Partitions with items while there are at most {@link LISTED_PARTITIONS}. */
  #listed: MerklePartition[] = [];
  /** Partitions with items by index, once there were more. */
  #table: Array<MerklePartition | undefined> | undefined;
  #rootHash1 = 0;
  #rootHash2 = 0;
  #rootCount = 0;
  #partitionBytes = 0;
  #encodedBytes = 0;

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
    const hashOfKey = itemHasher.beginKey(key);
    const partitionIndex = hashOfKey % PARTITION_COUNT;
    const leaf = leafOfKeyHash(hashOfKey);
    let delta1 = 0;
    let delta2 = 0;
    let deltaCount = 0;
    if (previous !== undefined) {
      hashItem(previous);
      delta1 = (delta1 - itemHasher.lane1) | 0;
      delta2 = (delta2 - itemHasher.lane2) | 0;
      deltaCount--;
      this.#encodedBytes -= valueHasher.size;
    }
    if (next !== undefined) {
      hashItem(next);
      delta1 = (delta1 + itemHasher.lane1) | 0;
      delta2 = (delta2 + itemHasher.lane2) | 0;
      deltaCount++;
      this.#encodedBytes += valueHasher.size;
    }
    const existing = this.#partitionAt(partitionIndex);
    const bytesBefore = existing?.byteSize ?? 0;
    const partition = existing ?? this.#addPartition(partitionIndex);
    partition.apply(key, leaf, delta1, delta2, deltaCount);
    this.#rootHash1 = (this.#rootHash1 + delta1) | 0;
    this.#rootHash2 = (this.#rootHash2 + delta2) | 0;
    this.#rootCount += deltaCount;
    if (partition.keys.length === 0) {
      this.#removePartition(partition);
      this.#partitionBytes -= bytesBefore;
      // An empty tree gives its table back: it costs more than a small map in all.
      if (this.#rootCount === 0) this.#table = undefined;
    } else {
      this.#partitionBytes += partition.byteSize - bytesBefore;
    }
  }

  /**
   * An estimate of the bytes of memory the tree holds, its keys' strings not included (they
   * are the map's). Kept up to date by every update.
   */
  get byteSize(): number {
    return (
      TREE_BYTES +
      (this.#table === undefined ? this.#listed.length * 8 : TABLE_BYTES) +
      this.#partitionBytes
    );
  }

  /**
   * The sum of the sizes of the canonical encodings of the items' values (a tombstone's
   * counts 1 byte). The values are walked to fingerprint them anyway: a replica estimating
   * its memory takes their size from here instead of walking them again.
   */
  get valueBytes(): number {
    return this.#encodedBytes;
  }

  /**
   * The keys of partition `partition` and, parallel to them, their leaves (0 to 255): a view
   * to scan, valid until the next update.
   */
  partitionKeys(
    partition: number,
  ): { readonly keys: readonly string[]; readonly leaves: readonly number[] } | undefined {
    return this.#partitionAt(partition);
  }

  /** The root summary. Two trees with equal roots hold the same items with probability 1 - 2^-64. */
  get root(): MerkleNode {
    return { hash1: this.#rootHash1 >>> 0, hash2: this.#rootHash2 >>> 0, count: this.#rootCount };
  }

  /**
   * The summary of the node at `path`: `[]` is the root, `[p]` partition `p`, and up to four
   * more digits in 0..3 descend to a leaf.
   * @throws {ValidationError} when the path is malformed.
   */
  node(path: readonly number[]): MerkleNode {
    validateMerklePath(path);
    if (path.length === 0) return this.root;
    const partition = this.#partitionAt(path[0]!);
    if (partition === undefined) return EMPTY_NODE;
    return partition.summary(path.length - 1, positionOf(path));
  }

  /**
   * The hashes of the children of the node at `path`, concatenated in child order:
   * per child, lane 1 as 4 big-endian bytes, then (width 8) lane 2.
   * A leaf has no children: its list is empty.
   * @throws {ValidationError} when the path is malformed.
   */
  childHashes(path: readonly number[], width: HashWidth): Uint8Array {
    return encodeHashes(childCountOf(path), width, (child) => this.#childNode(path, child));
  }

  #childNode(path: readonly number[], child: number): MerkleNode {
    if (path.length === 0) return this.#partitionAt(child)?.summary(0, 0) ?? EMPTY_NODE;
    const partition = this.#partitionAt(path[0]!);
    if (partition === undefined) return EMPTY_NODE;
    return partition.summary(path.length, positionOf(path) * MERKLE_FANOUT + child);
  }

  #partitionAt(index: number): MerklePartition | undefined {
    const table = this.#table;
    if (table !== undefined) return table[index];
    const listed = this.#listed;
    for (let position = 0; position < listed.length; position++) {
      if (listed[position]!.index === index) return listed[position];
    }
    return undefined;
  }

  #addPartition(index: number): MerklePartition {
    const partition = new MerklePartition(index);
    const listed = this.#listed;
    if (this.#table !== undefined) {
      this.#table[index] = partition;
    } else if (listed.length === 0) {
      // A literal has room for exactly one; a push onto an empty array would reserve 17.
      this.#listed = [partition];
    } else if (listed.length < LISTED_PARTITIONS) {
      listed.push(partition);
    } else {
      const table = new Array<MerklePartition | undefined>(PARTITION_COUNT).fill(undefined);
      for (const other of listed) table[other.index] = other;
      table[index] = partition;
      this.#table = table;
      this.#listed = [];
    }
    return partition;
  }

  #removePartition(partition: MerklePartition): void {
    if (this.#table !== undefined) {
      this.#table[partition.index] = undefined;
      return;
    }
    const listed = this.#listed;
    const position = listed.indexOf(partition);
    listed[position] = listed[listed.length - 1]!;
    listed.pop();
  }
}

/** The root hash of `tree` as 16 lowercase hex digits (lane 1, then lane 2). */
export function rootHashHex(tree: MerkleTree): string {
  const { hash1, hash2 } = tree.root;
  return hash1.toString(16).padStart(8, '0') + hash2.toString(16).padStart(8, '0');
}

/**
 * The hash of the item of `key` for `record` (`specifications/merkle-sync.md`, "Item hash"),
 * as `[lane1, lane2]` (signed 32-bit).
 */
export function itemHash(key: string, record: LWWRecord<unknown>): [number, number] {
  itemHasher.beginKey(key);
  hashItem(record);
  return [itemHasher.lane1, itemHasher.lane2];
}

/** Hashes the current key's item for `record` into the item hasher's lanes. */
function hashItem(record: LWWRecord<unknown>): void {
  const { millis, counter, nodeId } = record.timestamp;
  const fields = record.fields;
  valueHasher.hash(fields === undefined ? record.value : fieldedState(record.base ?? null, fields));
  itemHasher.hashItem(
    millis,
    counter,
    nodeId,
    valueHasher.lane1,
    valueHasher.lane2,
    record.ttlMs ?? 0,
    fields !== undefined,
  );
}

/**
 * What a record with field writes is fingerprinted as: `[whole write's value, …field writes]`,
 * each field write `[name, millis, counter, nodeId, value]` (without `value` for a removal),
 * in the order of their names.
 */
function fieldedState(base: unknown, fields: FieldWrites): unknown[] {
  const state: unknown[] = [base];
  for (const name of Object.keys(fields).sort()) {
    const { timestamp, value } = fields[name]!;
    const { millis, counter, nodeId } = timestamp;
    state.push(
      value === undefined
        ? [name, millis, counter, nodeId]
        : [name, millis, counter, nodeId, value],
    );
  }
  return state;
}

/**
 * The hashes of `count` nodes, `nodeAt(0)` first, as {@link MerkleTree.childHashes} encodes
 * them: per node, lane 1 as 4 big-endian bytes, then (width 8) lane 2.
 */
export function encodeHashes(
  count: number,
  width: HashWidth,
  nodeAt: (index: number) => MerkleNode,
): Uint8Array {
  const bytes = new Uint8Array(count * width);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < count; index++) {
    const { hash1, hash2 } = nodeAt(index);
    view.setUint32(index * width, hash1);
    if (width === 8) view.setUint32(index * width + 4, hash2);
  }
  return bytes;
}

/**
 * The indexes of the nodes whose hashes differ, in order, between this side's encoded hashes
 * (`own`) and a peer's.
 * @throws {ValidationError} unless `peer` is as many bytes as `own`.
 */
export function differingHashes(own: Uint8Array, peer: unknown, width: HashWidth): number[] {
  if (!(peer instanceof Uint8Array) || peer.length !== own.length) {
    throw new ValidationError('hashes', `expected ${own.length} bytes`);
  }
  const differing: number[] = [];
  for (let child = 0; child * width < own.length; child++) {
    for (let index = child * width; index < (child + 1) * width; index++) {
      if (own[index] !== peer[index]) {
        differing.push(child);
        break;
      }
    }
  }
  return differing;
}

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
 * @param maxLength The longest path accepted. Default: a leaf's, {@link LEAF_PATH_LENGTH}
 *   (a walk's paths go on below the leaves).
 * @throws {ValidationError} unless it is an array of at most `maxLength` integers, the first
 *   in [0, 271) and the rest in [0, 4).
 */
export function validateMerklePath(
  path: unknown,
  maxLength = LEAF_PATH_LENGTH,
): asserts path is readonly number[] {
  if (!Array.isArray(path) || path.length > maxLength) {
    throw new ValidationError(
      'path',
      `expected an array of at most ${maxLength} integers, got ${describeValue(path)}`,
    );
  }
  for (let level = 0; level < path.length; level++) {
    const digit: unknown = path[level];
    const limit = level === 0 ? PARTITION_COUNT : MERKLE_FANOUT;
    if (!isIntegerIn(digit, 0, limit - 1)) {
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

/** The position of the node at `path` among the nodes of its level, left to right. */
function positionOf(path: readonly number[]): number {
  let position = 0;
  for (let level = 1; level < path.length; level++)
    position = position * MERKLE_FANOUT + path[level]!;
  return position;
}
