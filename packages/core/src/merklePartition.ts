/** Children per node below the partition level. */
export const MERKLE_FANOUT = 4;
/** Levels below the partition level; a leaf's path is `[partition, d1, d2, d3, d4]`. */
export const MERKLE_DEPTH = 4;
/** Leaves under one partition: 4^4 = 256, about 14 keys per leaf at 1 000 000 keys. */
export const LEAVES_PER_PARTITION = MERKLE_FANOUT ** MERKLE_DEPTH;

/** The summary of one Merkle node: its 64-bit hash as two 32-bit lanes, and its item count. */
export interface MerkleNode {
  /** Lane 1 of the hash: the sum modulo 2^32 of lane 1 of every item below the node. */
  readonly hash1: number;
  /** Lane 2 of the hash, likewise. */
  readonly hash2: number;
  /** Number of items (keys) below the node. */
  readonly count: number;
}

/** The summary of a node with no item below it. */
export const EMPTY_NODE: MerkleNode = Object.freeze({ hash1: 0, hash2: 0, count: 0 });

/**
 * Leaves holding items up to which a partition keeps its sums sparse, as a list of leaves;
 * one more and it keeps every node instead. Sparse, a partition costs 32 bytes per leaf
 * with items, and updates and summaries scan that list; dense, 4 KiB whatever it holds, and
 * a write touches the 5 nodes of its path.
 */
export const SPARSE_LEAF_LIMIT = 32;

// Nodes in heap order (children of i are 4i+1..4i+4), 3 words each: lanes 1 and 2, count.
const NODES_PER_PARTITION = (LEAVES_PER_PARTITION * MERKLE_FANOUT - 1) / (MERKLE_FANOUT - 1);
const FIRST_LEAF_NODE = NODES_PER_PARTITION - LEAVES_PER_PARTITION;
const WORDS_PER_NODE = 3;
/** Heap index of the first node of each level: (4^level - 1) / 3. */
const FIRST_NODE_OF_LEVEL = [0, 1, 5, 21, 85];

// Heap estimates for a 64-bit V8 without pointer compression (Node's default build): 8-byte
// fields and array slots. Arrays grow by half again, so a slot costs about 1.25 slots.
/** The partition object and its two (possibly empty) arrays of keys and leaves. */
const PARTITION_BYTES = 112;
/** Per key: its slot in `keys` and in `leaves` (the key's string belongs to the map). */
const KEY_SLOT_BYTES = 20;
/** Per leaf with items, sparse: four array slots. */
const LEAF_SUM_BYTES = 40;
/** The dense node array: 1 023 words outside the heap, and its buffer and view objects. */
const DENSE_BYTES = NODES_PER_PARTITION * WORDS_PER_NODE * 4 + 200;

/**
 * One partition of a Merkle tree: a 4-ary tree of depth {@link MERKLE_DEPTH} over
 * {@link LEAVES_PER_PARTITION} leaves, its keys, and parallel to them their leaves.
 *
 * Its node summaries are kept in one of two forms that give identical summaries. Sparse,
 * while at most {@link SPARSE_LEAF_LIMIT} leaves hold items: per such leaf its index, lanes
 * and count, and an inner node's summary is summed from the leaves below it. Dense, once
 * more leaves hold items: every node's summary. Most maps are small, and a dense partition
 * would make a map of one record cost 4 KiB of nodes; large maps go dense early, where the
 * per-write cost is that of the path. A partition never goes back to sparse: removals only
 * come from pruning, and an empty partition is dropped by its tree.
 */
export class MerklePartition {
  #keyList: string[] = [];
  #leafList: number[] = [];
  /** Sparse form: `[leaf, lane1, lane2, count]` per leaf with items, in no order. */
  #leafSums: number[] = [];
  /** Dense form, once materialized: 3 words per node in heap order. */
  #nodes: Int32Array | undefined;

  /** @param index The partition's index in its tree (0 to 270). */
  constructor(readonly index: number) {}

  /** The partition's keys, in no particular order: a view, valid until the next update. */
  get keys(): readonly string[] {
    return this.#keyList;
  }

  /** The leaf (0 to 255) of each key of {@link keys}, at the same index. */
  get leaves(): readonly number[] {
    return this.#leafList;
  }

  /** Whether the summaries are kept dense (every node) rather than per leaf with items. */
  get isDense(): boolean {
    return this.#nodes !== undefined;
  }

  /** An estimate of the bytes the partition holds (its keys' strings not included). */
  get byteSize(): number {
    return (
      PARTITION_BYTES +
      this.#keyList.length * KEY_SLOT_BYTES +
      (this.#nodes === undefined ? (this.#leafSums.length / 4) * LEAF_SUM_BYTES : DENSE_BYTES)
    );
  }

  /**
   * Applies the change of one item of `key` in `leaf`: lanes `delta1`, `delta2` (signed
   * 32-bit) and `deltaCount` items (1: the key was inserted, -1: removed, 0: its record replaced).
   */
  apply(key: string, leaf: number, delta1: number, delta2: number, deltaCount: number): void {
    if (this.#nodes !== undefined) this.#addDense(leaf, delta1, delta2, deltaCount);
    else this.#addSparse(leaf, delta1, delta2, deltaCount);
    if (deltaCount > 0) {
      // A literal has room for exactly one key; a push onto an empty array would reserve 17.
      if (this.#keyList.length === 0) {
        this.#keyList = [key];
        this.#leafList = [leaf];
      } else {
        this.#keyList.push(key);
        this.#leafList.push(leaf);
      }
    } else if (deltaCount < 0) {
      // Removal only happens when pruning, so a scan is cheaper overall than an index.
      const keys = this.#keyList;
      const leaves = this.#leafList;
      const index = keys.indexOf(key);
      const last = keys.length - 1;
      keys[index] = keys[last]!;
      leaves[index] = leaves[last]!;
      keys.pop();
      leaves.pop();
    }
  }

  /**
   * The summary of the node at `level` (0: the partition, 4: a leaf) and `position` (0 to
   * 4^level - 1, left to right).
   */
  summary(level: number, position: number): MerkleNode {
    const nodes = this.#nodes;
    if (nodes !== undefined) {
      const offset = (FIRST_NODE_OF_LEVEL[level]! + position) * WORDS_PER_NODE;
      return {
        hash1: nodes[offset]! >>> 0,
        hash2: nodes[offset + 1]! >>> 0,
        count: nodes[offset + 2]!,
      };
    }
    // A leaf's ancestor at `level` is its index without the last 2 * (depth - level) bits.
    const shift = 2 * (MERKLE_DEPTH - level);
    const sums = this.#leafSums;
    let hash1 = 0;
    let hash2 = 0;
    let count = 0;
    for (let index = 0; index < sums.length; index += 4) {
      if (sums[index]! >> shift !== position) continue;
      hash1 = (hash1 + sums[index + 1]!) | 0;
      hash2 = (hash2 + sums[index + 2]!) | 0;
      count += sums[index + 3]!;
    }
    return count === 0 ? EMPTY_NODE : { hash1: hash1 >>> 0, hash2: hash2 >>> 0, count };
  }

  #addDense(leaf: number, delta1: number, delta2: number, deltaCount: number): void {
    const nodes = this.#nodes!;
    let node = FIRST_LEAF_NODE + leaf;
    for (;;) {
      const offset = node * WORDS_PER_NODE;
      // Int32 arithmetic wraps modulo 2^32: exactly the sums the hashes are defined as.
      nodes[offset] = (nodes[offset]! + delta1) | 0;
      nodes[offset + 1] = (nodes[offset + 1]! + delta2) | 0;
      nodes[offset + 2] = nodes[offset + 2]! + deltaCount;
      if (node === 0) break;
      node = (node - 1) >> 2;
    }
  }

  #addSparse(leaf: number, delta1: number, delta2: number, deltaCount: number): void {
    const sums = this.#leafSums;
    for (let index = 0; index < sums.length; index += 4) {
      if (sums[index] !== leaf) continue;
      const count = sums[index + 3]! + deltaCount;
      if (count === 0) {
        // The sums over no item are 0: the leaf's entry goes (the last takes its place).
        const last = sums.length - 4;
        for (let word = 0; word < 4; word++) sums[index + word] = sums[last + word]!;
        sums.length = last;
      } else {
        sums[index + 1] = (sums[index + 1]! + delta1) | 0;
        sums[index + 2] = (sums[index + 2]! + delta2) | 0;
        sums[index + 3] = count;
      }
      return;
    }
    if (sums.length === 0) {
      this.#leafSums = [leaf, delta1, delta2, deltaCount];
    } else if (sums.length < SPARSE_LEAF_LIMIT * 4) {
      sums.push(leaf, delta1, delta2, deltaCount);
    } else {
      this.#densify();
      this.#addDense(leaf, delta1, delta2, deltaCount);
    }
  }

  /** Materializes every node's summary from the leaf sums, and switches to the dense form. */
  #densify(): void {
    this.#nodes = new Int32Array(NODES_PER_PARTITION * WORDS_PER_NODE);
    const sums = this.#leafSums;
    for (let index = 0; index < sums.length; index += 4) {
      this.#addDense(sums[index]!, sums[index + 1]!, sums[index + 2]!, sums[index + 3]!);
    }
    this.#leafSums = [];
  }
}
