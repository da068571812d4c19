import { canonicalSize } from './canonicalValue.js';
import { ValidationError } from './errors.js';
import { latestTimestamp } from './fieldWrites.js';
import { isIntegerIn } from './isIntegerIn.js';
import type { LWWRecord } from './lwwRecord.js';
import {
  encodeHashes,
  type HashWidth,
  itemHash,
  LEAF_PATH_LENGTH,
  type MerkleTree,
} from './merkleTree.js';
import { PARTITION_COUNT } from './partition.js';
import { toWireEntry } from './protocol/wireRecords.js';
import { compareTimestamps, isValidNodeId, type Timestamp } from './timestamp.js';
import { utf8Bytes } from './utf8Bytes.js';
import { MAX_WALK_PATH_LENGTH, type SyncReplica, WalkTree } from './walkTree.js';

/** A child the peer probed and this side found equal (or is sending in bulk, or left for a later walk). */
export const MARK_SAME = 0;
/** A child that differs; this side's hashes of its children follow in `hashes`. */
export const MARK_PROBE = 1;
/** A child that differs; this side's digest of its items follows. */
export const MARK_DIGEST = 2;
/** A child that differs: send every record below it (this side holds nothing there). */
export const MARK_SEND_ALL = 3;

/**
 * Bytes per digest entry in `digestStamps`: the record's latest timestamp as millis (6),
 * counter (2) and node id index (2, its top bit set when the record has field writes), and
 * both lanes of the item's hash (8), which tell records with equal timestamps apart: one lane
 * alone could be matched by a writer trying 2^32 values.
 */
export const DIGEST_STAMP_BYTES = 18;

/**
 * The most items a node may hold to be answered with a digest rather than its children's
 * hashes: small nodes end the walk early, larger ones are cheaper to descend.
 */
export const DIGEST_THRESHOLD = 2;

/**
 * The most items a leaf (or sub-leaf) may hold to be answered with a digest; a more crowded
 * one is probed into its sub-leaves, so that no digest grows with a leaf that many keys
 * share, whoever chose those keys.
 */
export const LEAF_DIGEST_MAX = 32;

/** The default byte budget of one walk message (see {@link SyncSessionOptions}). */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024;

/**
 * The default work budget of answering one walk message, in items visited (see
 * {@link SyncSessionOptions}): a few milliseconds, whatever the peer asks.
 */
export const DEFAULT_MAX_MESSAGE_WORK = 5_000;

/**
 * One message of the Merkle walk between two replicas of one map. Paths are implicit: marks
 * refer, in order, to the children of the nodes whose hashes the receiver sent last; hashes
 * and digests follow the marks in the same order. See `specifications/merkle-sync.md`.
 */
export interface SyncMessage<V> {
  /** Bytes per compared hash in this walk: 4 (lane 1) or 8 (both lanes). Fixed per walk. */
  readonly width: HashWidth;
  /** The sender's 64-bit root hash (8 bytes): equal roots end the walk. */
  readonly root: Uint8Array;
  /** Two bits per child of each node the receiver probed last (first child in the high bits). */
  readonly marks: Uint8Array;
  /** The sender's child hashes of every node marked {@link MARK_PROBE}, in order. */
  readonly hashes: Uint8Array;
  /** Number of entries of each digest (one per child marked {@link MARK_DIGEST}). */
  readonly digestSizes: readonly number[];
  /** Keys of all digest entries, in order. */
  readonly digestKeys: readonly string[];
  /** Stamps of all digest entries, {@link DIGEST_STAMP_BYTES} bytes each. */
  readonly digestStamps: Uint8Array;
  /** The node ids that `digestStamps` refer to by index. */
  readonly nodeIds: readonly string[];
  /** One bit per digest entry the receiver sent last (first entry in the high bit): 1 = send it. */
  readonly wants: Uint8Array;
  /** Records for the receiver to merge. */
  readonly records: ReadonlyArray<readonly [key: string, record: LWWRecord<V>]>;
}

/** Records to send in bulk after a message: a subtree (less some keys), or one record. */
export type BulkItem =
  | { readonly path: readonly number[]; readonly except?: ReadonlySet<string> }
  | { readonly key: string };

/** What {@link SyncSession.receive} produced. */
export interface SyncAnswer<V> {
  /** The message to send back, or `undefined` when this side has nothing left to say. */
  readonly message: SyncMessage<V> | undefined;
  /**
   * Records the peer lacks or needs that did not fit in the message: send them
   * ({@link bulkRecords}) in bounded chunks after it.
   */
  readonly bulk: readonly BulkItem[];
  /**
   * Whether differing nodes were left out (marked SAME) to keep the message within its byte
   * budget: the walk then ends without converging, and the next walk continues from there.
   */
  readonly truncated: boolean;
}

/** Options of {@link SyncSession}. */
export interface SyncSessionOptions {
  /**
   * Bytes per compared hash below the root, for a session that opens the walk: 4 compares
   * lane 1 only (half the bytes; the 64-bit root still decides convergence), 8 both lanes.
   * Walk again with 8 when a width-4 walk ended without converging. Default: 4.
   */
  readonly width?: HashWidth;
  /**
   * The most bytes this side's messages may take (estimated before encoding): hashes,
   * digests and records beyond it are left for a later walk or sent in bulk, so that no
   * message outgrows what the peer accepts, however large or crowded the replicas are.
   * Default: {@link DEFAULT_MAX_MESSAGE_BYTES}.
   */
  readonly maxMessageBytes?: number;
  /**
   * The most items (keys, digest entries, records, sub-leaf nodes) answering one message may
   * visit: beyond it, what is left is left for a later walk, as with the byte budget, so no
   * message costs the receiver more than a bounded slice of time. Default:
   * {@link DEFAULT_MAX_MESSAGE_WORK}.
   */
  readonly maxMessageWork?: number;
}

/**
 * One side of a Merkle walk over one map. The initiator calls {@link open} and sends the
 * result; each side then feeds every message it receives to {@link receive} and sends back
 * the answer, until an answer is `undefined`. Merge the records of a message into the
 * replica before passing the message to `receive`, which only reads the replica.
 *
 * A session remembers which nodes it probed and which digest entries it sent in its last
 * message, since the peer's answer refers to them by position. It lives as long as one walk.
 */
export class SyncSession<V> {
  #width: HashWidth;
  readonly #maxMessageBytes: number;
  readonly #maxMessageWork: number;
  /** The tree as the last message saw it, shared with the bulk transfer that follows. */
  #tree: WalkTree<V>;
  #started = false;
  #probed: Array<readonly number[]> = [];
  #digestKeysSent: readonly string[] = [];
  #wasTruncated = false;

  readonly #replica: SyncReplica<V>;

  constructor(replica: SyncReplica<V>, options: SyncSessionOptions = {}) {
    this.#replica = replica;
    this.#width = options.width ?? 4;
    this.#maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxMessageWork = options.maxMessageWork ?? DEFAULT_MAX_MESSAGE_WORK;
    this.#tree = new WalkTree(replica);
  }

  /** The records of a bulk transfer of the last answer, read from the replica as they are sent. */
  bulkRecords(bulk: readonly BulkItem[]): Generator<readonly [string, LWWRecord<V>]> {
    return bulkRecords(this.#replica, bulk, this.#tree);
  }

  /** The opening message: this side's hashes of the 271 partitions (none when it is empty). */
  open(): SyncMessage<V> {
    if (this.#started) throw new ValidationError('session', 'already started');
    this.#started = true;
    const tree = this.#replica.merkleTree;
    // Without budgets: the root's children always go (an empty replica sends none).
    const reply = new ReplyBuilder<V>(
      this.#replica,
      this.#tree,
      this.#width,
      Number.POSITIVE_INFINITY,
      Number.POSITIVE_INFINITY,
    );
    if (tree.root.count > 0) reply.probe([], PARTITION_COUNT);
    this.#probed = reply.probed;
    return reply.message(rootBytes(tree));
  }

  /** Whether any answer of this session left differing nodes for a later walk. */
  get truncated(): boolean {
    return this.#wasTruncated;
  }

  /**
   * Computes the answer to the peer's message.
   * @throws {ValidationError} when the message is malformed or does not fit the session.
   */
  receive(message: SyncMessage<V>): SyncAnswer<V> {
    const opening = !this.#started;
    if (opening) {
      this.#started = true;
      if (message.width !== 4 && message.width !== 8) {
        throw new ValidationError('width', 'expected 4 or 8');
      }
      this.#width = message.width;
    } else if (message.width !== this.#width) {
      throw new ValidationError('width', `expected ${this.#width}, the width of this walk`);
    }
    if (!(message.root instanceof Uint8Array) || message.root.length !== 8) {
      throw new ValidationError('root', 'expected 8 bytes');
    }
    const width = this.#width;
    const tree = new WalkTree(this.#replica);
    this.#tree = tree;
    const reply = new ReplyBuilder<V>(
      this.#replica,
      tree,
      width,
      this.#maxMessageBytes,
      this.#maxMessageWork,
    );

    // 1. Wanted records from the digest entries this side sent last.
    const wanted = readBits(message.wants, this.#digestKeysSent.length, 1, 'wants');
    wanted.forEach((want, index) => {
      if (want) reply.addRecord(this.#digestKeysSent[index]!);
    });

    // 2. The nodes whose children the peer hashed: its opening probes the root.
    let probedByPeer: Array<readonly number[]>;
    const digestsFromPeer: Array<readonly number[]> = [];
    if (opening) {
      if (message.marks.length !== 0) throw new ValidationError('marks', 'an opening has no marks');
      if (message.hashes.length === 0) {
        // An empty opening gets every record; with none, there is nothing to say.
        if (this.#replica.merkleTree.root.count > 0) reply.bulk([]);
        probedByPeer = [];
      } else {
        probedByPeer = [[]];
      }
    } else {
      probedByPeer = [];
      const total = this.#probed.reduce((sum, path) => sum + tree.childCount(path), 0);
      const marks = readBits(message.marks, total, 2, 'marks');
      let position = 0;
      for (const path of this.#probed) {
        const children = tree.childCount(path);
        for (let child = 0; child < children; child++) {
          const mark = marks[position++]!;
          const childPath = [...path, child];
          if (mark === MARK_PROBE) {
            if (childPath.length === MAX_WALK_PATH_LENGTH) {
              throw new ValidationError('marks', 'a node at the deepest level cannot be probed');
            }
            probedByPeer.push(childPath);
          } else if (mark === MARK_DIGEST) digestsFromPeer.push(childPath);
          else if (mark === MARK_SEND_ALL) reply.bulk(childPath);
        }
      }
    }

    // 3. Compare the peer's child hashes with ours and mark every child.
    const expectedHashBytes = probedByPeer.reduce(
      (sum, path) => sum + tree.childCount(path) * width,
      0,
    );
    if (!(message.hashes instanceof Uint8Array) || message.hashes.length !== expectedHashBytes) {
      throw new ValidationError('hashes', `expected ${expectedHashBytes} bytes`);
    }
    let offset = 0;
    for (const path of probedByPeer) {
      const children = tree.childCount(path);
      const size = children * width;
      const theirs = message.hashes.subarray(offset, offset + size);
      offset += size;
      const differing = new Set(tree.differingChildren(path, theirs, width));
      for (let child = 0; child < children; child++) {
        if (!differing.has(child)) {
          reply.mark(MARK_SAME);
          continue;
        }
        const childPath = [...path, child];
        if (!reply.spend(1)) {
          reply.mark(MARK_SAME);
          continue;
        }
        const own = tree.node(childPath);
        if (own.count === 0) {
          reply.mark(MARK_SEND_ALL);
        } else if (isZero(theirs, child, width)) {
          reply.mark(MARK_SAME);
          reply.bulk(childPath);
        } else if (childPath.length === MAX_WALK_PATH_LENGTH && own.count > LEAF_DIGEST_MAX) {
          // Only keys whose whole 64-bit hash collides get here: both sides send all they
          // hold below it, in bulk, rather than a digest of unbounded size.
          reply.mark(MARK_SEND_ALL);
          reply.bulk(childPath);
        } else if (isDigestible(childPath, own.count)) {
          if (reply.digest(childPath, own.count)) reply.mark(MARK_DIGEST);
          else reply.mark(MARK_SAME);
        } else if (reply.probe(childPath, tree.childCount(childPath))) {
          reply.mark(MARK_PROBE);
        } else {
          reply.mark(MARK_SAME);
        }
      }
    }

    // 4. Compare the peer's digests with our items.
    compareDigests(this.#replica, tree, message, digestsFromPeer, reply);

    this.#probed = reply.probed;
    this.#digestKeysSent = reply.digestKeys;
    const answer = reply.build(rootBytes(this.#replica.merkleTree));
    if (answer.truncated) this.#wasTruncated = true;
    return answer;
  }
}

/** Whether a differing node is answered with its digest rather than probed further. */
function isDigestible(path: readonly number[], count: number): boolean {
  // At the deepest level only counts within LEAF_DIGEST_MAX get here (larger go SEND_ALL).
  return count <= DIGEST_THRESHOLD || (path.length >= LEAF_PATH_LENGTH && count <= LEAF_DIGEST_MAX);
}

/** The 8-byte root hash of a tree (lane 1 then lane 2, big-endian). */
export function rootBytes(tree: MerkleTree): Uint8Array {
  return encodeHashes(1, 8, () => tree.root);
}

/**
 * The records of a bulk transfer ({@link SyncAnswer.bulk}), tombstones included, read from the
 * replica as they are sent.
 */
function* bulkRecords<V>(
  replica: SyncReplica<V>,
  bulk: readonly BulkItem[],
  tree: WalkTree<V>,
): Generator<readonly [string, LWWRecord<V>]> {
  for (const item of bulk) {
    const keys = 'key' in item ? [item.key] : tree.keysUnder(item.path);
    const except = 'key' in item ? undefined : item.except;
    for (const key of keys) {
      if (except?.has(key)) continue;
      const record = replica.getRecord(key);
      if (record !== undefined) yield [key, record];
    }
  }
}

/**
 * How many records a bulk transfer ({@link SyncAnswer.bulk}) holds at most, for progress
 * reports: count them before the replica changes.
 */
export function bulkSize<V>(replica: SyncReplica<V>, bulk: readonly BulkItem[]): number {
  const tree = new WalkTree(replica);
  let size = 0;
  for (const item of bulk) size += 'key' in item ? 1 : tree.node(item.path).count;
  return size;
}

/** A digest entry: the item's latest timestamp, whether it has field writes, and its hash. */
interface DigestStamp {
  readonly timestamp: Timestamp;
  readonly withFieldWrites: boolean;
  readonly itemHash: readonly [number, number];
}

/**
 * Top bit of a digest entry's node id index: the record has field writes. The other 15 bits
 * index the node ids, of which a message may therefore name this many.
 */
const FIELD_WRITES_BIT = 0x8000;

/** Encoded bytes, beyond the record itself, of one record in `records` (key, array, timestamp). */
const RECORD_OVERHEAD_BYTES = 40;
/** Encoded bytes, beyond the key, of one digest entry. */
const DIGEST_ENTRY_BYTES = DIGEST_STAMP_BYTES + 5;

/** Accumulates one reply within a byte budget. */
class ReplyBuilder<V> {
  readonly probed: Array<readonly number[]> = [];
  readonly digestKeys: string[] = [];
  readonly #marks: number[] = [];
  readonly #hashChunks: Uint8Array[] = [];
  readonly #digestSizes: number[] = [];
  readonly #stamps: DigestStamp[] = [];
  /** 1 per digest entry to send, else 0. */
  readonly #wantBits: number[] = [];
  readonly #records: Array<readonly [string, LWWRecord<V>]> = [];
  readonly #bulkItems: BulkItem[] = [];
  /** Estimated encoded size so far: fields, marks and want bits included. */
  #bytes = 128;
  #truncated = false;

  readonly #replica: SyncReplica<V>;
  readonly #tree: WalkTree<V>;
  readonly #width: HashWidth;
  readonly #budget: number;
  /** Items this answer may still visit. */
  #work: number;

  constructor(
    replica: SyncReplica<V>,
    tree: WalkTree<V>,
    width: HashWidth,
    budget: number,
    work: number,
  ) {
    this.#replica = replica;
    this.#tree = tree;
    this.#width = width;
    this.#budget = budget;
    this.#work = work;
  }

  /** Takes `items` of the work budget; false (and the answer truncated) when it is spent. */
  spend(items: number): boolean {
    if (this.#work < items) {
      this.#work = 0;
      this.#truncated = true;
      return false;
    }
    this.#work -= items;
    return true;
  }

  mark(mark: number): void {
    this.#marks.push(mark);
    this.#bytes += 0.25;
  }

  /** Adds the child hashes of `path` if they fit; otherwise the node is left for a later walk. */
  probe(path: readonly number[], children: number): boolean {
    if (!this.#fits(children * this.#width) || !this.spend(children)) return false;
    this.probed.push(path);
    this.#hashChunks.push(this.#tree.childHashes(path, this.#width));
    return true;
  }

  /** Adds the digest of `path` (holding `count` items) if it fits. */
  digest(path: readonly number[], count: number): boolean {
    if (!this.spend(count)) return false;
    const entries: Array<[string, LWWRecord<V>]> = [];
    let bytes = 0;
    for (const key of this.#tree.keysUnder(path)) {
      const record = this.#replica.getRecord(key);
      if (record === undefined) continue;
      entries.push([key, record]);
      bytes += utf8Bytes(key) + DIGEST_ENTRY_BYTES;
    }
    if (!this.#fits(bytes)) return false;
    for (const [key, record] of entries) {
      this.digestKeys.push(key);
      this.#stamps.push({
        timestamp: latestTimestamp(record),
        withFieldWrites: record.fields !== undefined,
        itemHash: itemHash(key, record),
      });
    }
    this.#digestSizes.push(entries.length);
    return true;
  }

  bulk(path: readonly number[], except?: ReadonlySet<string>): void {
    this.#bulkItems.push(except === undefined ? { path } : { path, except });
  }

  want(yes: boolean): void {
    this.#wantBits.push(yes ? 1 : 0);
    this.#bytes += 0.125;
  }

  addRecord(key: string): void {
    const record = this.#replica.getRecord(key);
    if (record !== undefined) this.addEntry([key, record]);
  }

  /**
   * Adds a record to the message, or to the bulk transfer when the message is full (or its
   * size is not worth measuring: the work budget is spent).
   */
  addEntry(entry: readonly [string, LWWRecord<V>]): void {
    if (!this.spend(1)) {
      this.#bulkItems.push({ key: entry[0] });
      return;
    }
    const [key, record] = entry;
    const size =
      utf8Bytes(key) +
      record.timestamp.nodeId.length +
      RECORD_OVERHEAD_BYTES +
      // A record with field writes goes as its whole write and each field write.
      canonicalSize(record.fields === undefined ? record.value : toWireEntry(key, record));
    if (this.#bytes + size <= this.#budget) {
      this.#bytes += size;
      this.#records.push(entry);
    } else {
      this.#bulkItems.push({ key: entry[0] });
    }
  }

  build(root: Uint8Array): SyncAnswer<V> {
    const says =
      this.#marks.some((mark) => mark !== MARK_SAME) ||
      this.#wantBits.includes(1) ||
      this.#records.length > 0 ||
      this.#bulkItems.length > 0;
    return {
      message: says ? this.message(root) : undefined,
      bulk: this.#bulkItems,
      truncated: this.#truncated,
    };
  }

  /** The message as built so far, whatever it says. */
  message(root: Uint8Array): SyncMessage<V> {
    const { stamps, nodeIds } = encodeStamps(this.#stamps);
    return {
      width: this.#width,
      root,
      marks: packBits(this.#marks, 2),
      hashes: concat(this.#hashChunks),
      digestSizes: this.#digestSizes,
      digestKeys: this.digestKeys,
      digestStamps: stamps,
      nodeIds,
      wants: packBits(this.#wantBits, 1),
      records: this.#records,
    };
  }

  #fits(bytes: number): boolean {
    if (this.#bytes + bytes <= this.#budget) {
      this.#bytes += bytes;
      return true;
    }
    this.#truncated = true;
    return false;
  }
}

function compareDigests<V>(
  replica: SyncReplica<V>,
  tree: WalkTree<V>,
  message: SyncMessage<V>,
  paths: ReadonlyArray<readonly number[]>,
  reply: ReplyBuilder<V>,
): void {
  const { digestSizes, digestKeys } = message;
  if (!Array.isArray(digestSizes) || digestSizes.length !== paths.length) {
    throw new ValidationError('digestSizes', `expected ${paths.length} sizes, one per digest mark`);
  }
  const total = digestSizes.reduce((sum: number, size: unknown) => {
    if (!isIntegerIn(size, 0, Number.POSITIVE_INFINITY)) {
      throw new ValidationError('digestSizes', 'expected non-negative integers');
    }
    return sum + size;
  }, 0);
  if (!Array.isArray(digestKeys) || digestKeys.length !== total) {
    throw new ValidationError('digestKeys', `expected ${total} keys`);
  }
  const stamps = decodeStamps(message.digestStamps, message.nodeIds, total);
  let entry = 0;
  paths.forEach((path, index) => {
    const listed = new Set<string>();
    for (let i = 0; i < digestSizes[index]!; i++, entry++) {
      const key = digestKeys[entry]!;
      if (typeof key !== 'string')
        throw new ValidationError(`digestKeys[${entry}]`, 'expected a string');
      // Past the work budget every entry still gets its bit, all unset: a later walk asks.
      if (!reply.spend(1)) {
        reply.want(false);
        continue;
      }
      listed.add(key);
      const own = replica.getRecord(key);
      const theirs = stamps[entry]!;
      if (own === undefined) {
        reply.want(true);
        continue;
      }
      const ownLatest = latestTimestamp(own);
      const order = compareTimestamps(theirs.timestamp, ownLatest);
      if (order === 0 && sameItemHash(itemHash(key, own), theirs.itemHash)) {
        reply.want(false);
        continue;
      }
      // Different records. Theirs holds nothing ours lacks when our whole write is later than
      // its latest write; ours holds nothing theirs lacks when theirs has no field writes and
      // its (whole) write is later than our latest. Equal timestamps, different records (a
      // tie): each side sends its own and both keep the winner of the tie rule.
      reply.want(compareTimestamps(theirs.timestamp, own.timestamp) >= 0);
      if (theirs.withFieldWrites || order <= 0) reply.addEntry([key, own]);
    }
    // Our items below the node that the peer's digest does not list: few unless the node is
    // crowded here, in which case they are read lazily as the bulk transfer is sent.
    if (!reply.spend(1)) return;
    if (tree.node(path).count <= LEAF_DIGEST_MAX * 2) {
      for (const key of tree.keysUnder(path)) if (!listed.has(key)) reply.addRecord(key);
    } else {
      reply.bulk(path, listed);
    }
  });
}

function encodeStamps(entries: readonly DigestStamp[]): { stamps: Uint8Array; nodeIds: string[] } {
  const nodeIds: string[] = [];
  const indexes = new Map<string, number>();
  const stamps = new Uint8Array(entries.length * DIGEST_STAMP_BYTES);
  const view = new DataView(stamps.buffer);
  entries.forEach(({ timestamp, withFieldWrites, itemHash }, entry) => {
    let index = indexes.get(timestamp.nodeId);
    if (index === undefined) {
      index = nodeIds.length;
      indexes.set(timestamp.nodeId, index);
      nodeIds.push(timestamp.nodeId);
    }
    const offset = entry * DIGEST_STAMP_BYTES;
    view.setUint16(offset, Math.floor(timestamp.millis / 2 ** 32));
    view.setUint32(offset + 2, timestamp.millis >>> 0);
    view.setUint16(offset + 6, timestamp.counter);
    view.setUint16(offset + 8, index | (withFieldWrites ? FIELD_WRITES_BIT : 0));
    view.setUint32(offset + 10, itemHash[0] >>> 0);
    view.setUint32(offset + 14, itemHash[1] >>> 0);
  });
  return { stamps, nodeIds };
}

function decodeStamps(stamps: unknown, nodeIds: unknown, count: number): DigestStamp[] {
  if (!(stamps instanceof Uint8Array) || stamps.length !== count * DIGEST_STAMP_BYTES) {
    throw new ValidationError('digestStamps', `expected ${count * DIGEST_STAMP_BYTES} bytes`);
  }
  if (
    !Array.isArray(nodeIds) ||
    nodeIds.length > FIELD_WRITES_BIT ||
    !nodeIds.every(isValidNodeId)
  ) {
    throw new ValidationError('nodeIds', `expected at most ${FIELD_WRITES_BIT} valid node ids`);
  }
  const view = new DataView(stamps.buffer, stamps.byteOffset, stamps.byteLength);
  const result: DigestStamp[] = [];
  for (let entry = 0; entry < count; entry++) {
    const offset = entry * DIGEST_STAMP_BYTES;
    const indexAndBit = view.getUint16(offset + 8);
    const nodeId = nodeIds[indexAndBit & ~FIELD_WRITES_BIT] as string | undefined;
    if (nodeId === undefined) {
      throw new ValidationError(`digestStamps[${entry}]`, 'node id index out of range');
    }
    result.push({
      timestamp: {
        millis: view.getUint16(offset) * 2 ** 32 + view.getUint32(offset + 2),
        counter: view.getUint16(offset + 6),
        nodeId,
      },
      withFieldWrites: (indexAndBit & FIELD_WRITES_BIT) !== 0,
      itemHash: [view.getUint32(offset + 10), view.getUint32(offset + 14)],
    });
  }
  return result;
}

function sameItemHash(a: readonly [number, number], b: readonly [number, number]): boolean {
  return a[0] >>> 0 === b[0] >>> 0 && a[1] >>> 0 === b[1] >>> 0;
}

/** Packs values of `bits` bits each (1 or 2), the first in the high bits of the first byte. */
function packBits(values: readonly number[], bits: 1 | 2): Uint8Array {
  const perByte = 8 / bits;
  const bytes = new Uint8Array(Math.ceil(values.length / perByte));
  values.forEach((value, index) => {
    bytes[Math.floor(index / perByte)]! |= value << (8 - bits * ((index % perByte) + 1));
  });
  return bytes;
}

/** The `count` values of `bits` bits each that {@link packBits} packed into `bytes`. */
function readBits(bytes: unknown, count: number, bits: 1 | 2, field: string): number[] {
  const perByte = 8 / bits;
  const length = Math.ceil(count / perByte);
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new ValidationError(
      field,
      `expected ${length} bytes for ${count} values of ${bits} bits`,
    );
  }
  const values: number[] = [];
  for (let index = 0; index < count; index++) {
    const byte = bytes[Math.floor(index / perByte)]!;
    values.push((byte >> (8 - bits * ((index % perByte) + 1))) & (bits === 1 ? 1 : 3));
  }
  return values;
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

function isZero(hashes: Uint8Array, child: number, width: HashWidth): boolean {
  for (let i = child * width; i < (child + 1) * width; i++) if (hashes[i] !== 0) return false;
  return true;
}
