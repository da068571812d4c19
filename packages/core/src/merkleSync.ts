import { ValidationError } from './errors.js';
import type { LWWRecord } from './lwwRecord.js';
import { childCountOf, type HashWidth, LEAF_PATH_LENGTH, type MerkleTree } from './merkleTree.js';
import { compareTimestamps, isValidNodeId, type Timestamp } from './timestamp.js';

/** What the Merkle walk needs from a replica: its tree and read access to its records. */
export interface SyncReplica<V> {
  readonly merkleTree: MerkleTree;
  getRecord(key: string): LWWRecord<V> | undefined;
}

/** A child the peer probed and this side found equal (or is sending in bulk). */
export const MARK_SAME = 0;
/** A child that differs; this side's hashes of its children follow in `hashes`. */
export const MARK_PROBE = 1;
/** A child that differs; this side's digest of its items follows. */
export const MARK_DIGEST = 2;
/** A child that differs and below which this side holds nothing: send every record there. */
export const MARK_SEND_ALL = 3;

/** Bytes per digest entry in `digestStamps`: millis (6), counter (2), node id index (2). */
export const DIGEST_STAMP_BYTES = 10;

/**
 * The most items a node may hold to be answered with a digest rather than its children's
 * hashes: small nodes end the walk early, larger ones are cheaper to descend.
 */
export const DIGEST_THRESHOLD = 2;

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
  /** Timestamps of all digest entries, {@link DIGEST_STAMP_BYTES} bytes each. */
  readonly digestStamps: Uint8Array;
  /** The node ids that `digestStamps` refer to by index. */
  readonly nodeIds: readonly string[];
  /** One bit per digest entry the receiver sent last (first entry in the high bit): 1 = send it. */
  readonly wants: Uint8Array;
  /** Records for the receiver to merge. */
  readonly records: ReadonlyArray<readonly [key: string, record: LWWRecord<V>]>;
}

/** What {@link SyncSession.receive} produced. */
export interface SyncAnswer<V> {
  /** The message to send back, or `undefined` when this side has nothing left to say. */
  readonly message: SyncMessage<V> | undefined;
  /**
   * Subtrees whose records the peer lacks entirely: send the records of {@link recordsUnder}
   * each path (in bounded chunks) after the message.
   */
  readonly bulkPaths: ReadonlyArray<readonly number[]>;
}

/** Options of {@link SyncSession}. */
export interface SyncSessionOptions {
  /**
   * Bytes per compared hash below the root, for a session that opens the walk: 4 compares
   * lane 1 only (half the bytes; the 64-bit root still decides convergence), 8 both lanes.
   * Walk again with 8 when a width-4 walk ended without converging. Default: 4.
   */
  readonly width?: HashWidth;
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
  private width: HashWidth;
  private started = false;
  private probed: Array<readonly number[]> = [];
  private digestKeysSent: readonly string[] = [];
  private peerRoot: Uint8Array | undefined;

  constructor(
    private readonly replica: SyncReplica<V>,
    options: SyncSessionOptions = {},
  ) {
    this.width = options.width ?? 4;
  }

  /** The opening message: this side's hashes of the 271 partitions (none when it is empty). */
  open(): SyncMessage<V> {
    if (this.started) throw new ValidationError('session', 'already started');
    this.started = true;
    const tree = this.replica.merkleTree;
    const empty = tree.root.count === 0;
    this.probed = empty ? [] : [[]];
    return {
      ...emptyMessage<V>(this.width, rootBytes(tree)),
      hashes: empty ? new Uint8Array(0) : tree.childHashes([], this.width),
    };
  }

  /**
   * Whether the last message received announced the same 64-bit root as this replica's:
   * true once a walk has ended means both hold the same items (error probability 2^-64).
   */
  get converged(): boolean {
    const own = rootBytes(this.replica.merkleTree);
    return (
      this.peerRoot !== undefined && own.every((byte, index) => byte === this.peerRoot![index])
    );
  }

  /**
   * Computes the answer to the peer's message.
   * @throws {ValidationError} when the message is malformed or does not fit the session.
   */
  receive(message: SyncMessage<V>): SyncAnswer<V> {
    const tree = this.replica.merkleTree;
    const opening = !this.started;
    if (opening) {
      this.started = true;
      if (message.width !== 4 && message.width !== 8) {
        throw new ValidationError('width', 'expected 4 or 8');
      }
      this.width = message.width;
    } else if (message.width !== this.width) {
      throw new ValidationError('width', `expected ${this.width}, the width of this walk`);
    }
    if (!(message.root instanceof Uint8Array) || message.root.length !== 8) {
      throw new ValidationError('root', 'expected 8 bytes');
    }
    this.peerRoot = message.root;
    const width = this.width;
    const reply = new ReplyBuilder<V>(this.replica, width);

    // 1. Wanted records from the digest entries this side sent last.
    const wanted = readBits(message.wants, this.digestKeysSent.length, 'wants');
    wanted.forEach((want, index) => {
      if (want) reply.addRecord(this.digestKeysSent[index]!);
    });

    // 2. The nodes whose children the peer hashed: its opening probes the root.
    let probedByPeer: Array<readonly number[]>;
    const digestsFromPeer: Array<readonly number[]> = [];
    if (opening) {
      if (message.marks.length !== 0) throw new ValidationError('marks', 'an opening has no marks');
      if (message.hashes.length === 0) {
        reply.bulk([]);
        probedByPeer = [];
      } else {
        probedByPeer = [[]];
      }
    } else {
      probedByPeer = [];
      const childCounts = this.probed.map((path) => childCountOf(path));
      const total = childCounts.reduce((sum, count) => sum + count, 0);
      const marks = readMarks(message.marks, total);
      let position = 0;
      this.probed.forEach((path) => {
        for (let child = 0; child < childCountOf(path); child++) {
          const mark = marks[position++]!;
          const childPath = [...path, child];
          if (mark === MARK_PROBE) {
            if (childPath.length === LEAF_PATH_LENGTH) {
              throw new ValidationError('marks', 'a leaf cannot be probed');
            }
            probedByPeer.push(childPath);
          } else if (mark === MARK_DIGEST) digestsFromPeer.push(childPath);
          else if (mark === MARK_SEND_ALL) reply.bulk(childPath);
        }
      });
    }

    // 3. Compare the peer's child hashes with ours and mark every child.
    const expectedHashBytes = probedByPeer.reduce(
      (sum, path) => sum + childCountOf(path) * width,
      0,
    );
    if (!(message.hashes instanceof Uint8Array) || message.hashes.length !== expectedHashBytes) {
      throw new ValidationError('hashes', `expected ${expectedHashBytes} bytes`);
    }
    let offset = 0;
    for (const path of probedByPeer) {
      const size = childCountOf(path) * width;
      const theirs = message.hashes.subarray(offset, offset + size);
      offset += size;
      const differing = new Set(tree.differingChildren(path, theirs, width));
      for (let child = 0; child < childCountOf(path); child++) {
        if (!differing.has(child)) {
          reply.mark(MARK_SAME);
          continue;
        }
        const childPath = [...path, child];
        const own = tree.node(childPath);
        if (own.count === 0) {
          reply.mark(MARK_SEND_ALL);
        } else if (isZero(theirs, child, width)) {
          reply.mark(MARK_SAME);
          reply.bulk(childPath);
        } else if (childPath.length === LEAF_PATH_LENGTH || own.count <= DIGEST_THRESHOLD) {
          reply.mark(MARK_DIGEST);
          reply.digest(childPath);
        } else {
          reply.mark(MARK_PROBE);
          reply.probe(childPath);
        }
      }
    }

    // 4. Compare the peer's digests with our items.
    compareDigests(this.replica, message, digestsFromPeer, reply);

    this.probed = reply.probed;
    this.digestKeysSent = reply.digestKeys;
    return reply.build(rootBytes(tree));
  }
}

/** The 8-byte root hash of a tree (lane 1 then lane 2, big-endian). */
export function rootBytes(tree: MerkleTree): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  const root = tree.root;
  view.setUint32(0, root.hash1);
  view.setUint32(4, root.hash2);
  return bytes;
}

/** Every stored record below `path` (tombstones included), to answer bulk requests. */
export function* recordsUnder<V>(
  replica: SyncReplica<V>,
  path: readonly number[],
): Generator<readonly [string, LWWRecord<V>]> {
  for (const key of replica.merkleTree.keysUnder(path)) {
    const record = replica.getRecord(key);
    if (record !== undefined) yield [key, record];
  }
}

function emptyMessage<V>(width: HashWidth, root: Uint8Array): SyncMessage<V> {
  return {
    width,
    root,
    marks: new Uint8Array(0),
    hashes: new Uint8Array(0),
    digestSizes: [],
    digestKeys: [],
    digestStamps: new Uint8Array(0),
    nodeIds: [],
    wants: new Uint8Array(0),
    records: [],
  };
}

/** Accumulates one reply. */
class ReplyBuilder<V> {
  readonly probed: Array<readonly number[]> = [];
  readonly digestKeys: string[] = [];
  private readonly marks: number[] = [];
  private readonly hashChunks: Uint8Array[] = [];
  private readonly digestSizes: number[] = [];
  private readonly stamps: Timestamp[] = [];
  private readonly wantBits: boolean[] = [];
  private readonly records: Array<readonly [string, LWWRecord<V>]> = [];
  private readonly bulkPaths: Array<readonly number[]> = [];

  constructor(
    private readonly replica: SyncReplica<V>,
    private readonly width: HashWidth,
  ) {}

  mark(mark: number): void {
    this.marks.push(mark);
  }

  probe(path: readonly number[]): void {
    this.probed.push(path);
    this.hashChunks.push(this.replica.merkleTree.childHashes(path, this.width));
  }

  digest(path: readonly number[]): void {
    let size = 0;
    for (const [key, record] of recordsUnder(this.replica, path)) {
      this.digestKeys.push(key);
      this.stamps.push(record.timestamp);
      size++;
    }
    this.digestSizes.push(size);
  }

  bulk(path: readonly number[]): void {
    this.bulkPaths.push(path);
  }

  want(yes: boolean): void {
    this.wantBits.push(yes);
  }

  addRecord(key: string): void {
    const record = this.replica.getRecord(key);
    if (record !== undefined) this.records.push([key, record]);
  }

  addEntry(entry: readonly [string, LWWRecord<V>]): void {
    this.records.push(entry);
  }

  build(root: Uint8Array): SyncAnswer<V> {
    const says =
      this.marks.some((mark) => mark !== MARK_SAME) ||
      this.wantBits.includes(true) ||
      this.records.length > 0 ||
      this.bulkPaths.length > 0;
    if (!says) return { message: undefined, bulkPaths: [] };
    const { stamps, nodeIds } = encodeStamps(this.stamps);
    return {
      message: {
        width: this.width,
        root,
        marks: packMarks(this.marks),
        hashes: concat(this.hashChunks),
        digestSizes: this.digestSizes,
        digestKeys: this.digestKeys,
        digestStamps: stamps,
        nodeIds,
        wants: packBits(this.wantBits),
        records: this.records,
      },
      bulkPaths: this.bulkPaths,
    };
  }
}

function compareDigests<V>(
  replica: SyncReplica<V>,
  message: SyncMessage<V>,
  paths: ReadonlyArray<readonly number[]>,
  reply: ReplyBuilder<V>,
): void {
  const { digestSizes, digestKeys } = message;
  if (!Array.isArray(digestSizes) || digestSizes.length !== paths.length) {
    throw new ValidationError('digestSizes', `expected ${paths.length} sizes, one per digest mark`);
  }
  const total = digestSizes.reduce((sum: number, size: unknown) => {
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
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
      listed.add(key);
      const own = replica.getRecord(key);
      const order = own === undefined ? 1 : compareTimestamps(stamps[entry]!, own.timestamp);
      reply.want(order > 0);
      if (order < 0) reply.addEntry([key, own!]);
    }
    for (const ownEntry of recordsUnder(replica, path)) {
      if (!listed.has(ownEntry[0])) reply.addEntry(ownEntry);
    }
  });
}

function encodeStamps(timestamps: readonly Timestamp[]): { stamps: Uint8Array; nodeIds: string[] } {
  const nodeIds: string[] = [];
  const indexes = new Map<string, number>();
  const stamps = new Uint8Array(timestamps.length * DIGEST_STAMP_BYTES);
  const view = new DataView(stamps.buffer);
  timestamps.forEach((timestamp, entry) => {
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
    view.setUint16(offset + 8, index);
  });
  return { stamps, nodeIds };
}

function decodeStamps(stamps: unknown, nodeIds: unknown, count: number): Timestamp[] {
  if (!(stamps instanceof Uint8Array) || stamps.length !== count * DIGEST_STAMP_BYTES) {
    throw new ValidationError('digestStamps', `expected ${count * DIGEST_STAMP_BYTES} bytes`);
  }
  if (!Array.isArray(nodeIds) || nodeIds.length > 65_536 || !nodeIds.every(isValidNodeId)) {
    throw new ValidationError('nodeIds', 'expected at most 65 536 valid node ids');
  }
  const view = new DataView(stamps.buffer, stamps.byteOffset, stamps.byteLength);
  const result: Timestamp[] = [];
  for (let entry = 0; entry < count; entry++) {
    const offset = entry * DIGEST_STAMP_BYTES;
    const nodeId = nodeIds[view.getUint16(offset + 8)] as string | undefined;
    if (nodeId === undefined) {
      throw new ValidationError(`digestStamps[${entry}]`, 'node id index out of range');
    }
    result.push({
      millis: view.getUint16(offset) * 2 ** 32 + view.getUint32(offset + 2),
      counter: view.getUint16(offset + 6),
      nodeId,
    });
  }
  return result;
}

function packMarks(marks: readonly number[]): Uint8Array {
  const bytes = new Uint8Array(Math.ceil(marks.length / 4));
  marks.forEach((mark, index) => {
    bytes[index >> 2]! |= mark << (6 - 2 * (index & 3));
  });
  return bytes;
}

function readMarks(bytes: unknown, count: number): number[] {
  if (!(bytes instanceof Uint8Array) || bytes.length !== Math.ceil(count / 4)) {
    throw new ValidationError('marks', `expected ${Math.ceil(count / 4)} bytes for ${count} marks`);
  }
  const marks: number[] = [];
  for (let index = 0; index < count; index++) {
    marks.push((bytes[index >> 2]! >> (6 - 2 * (index & 3))) & 3);
  }
  return marks;
}

function packBits(bits: readonly boolean[]): Uint8Array {
  const bytes = new Uint8Array(Math.ceil(bits.length / 8));
  bits.forEach((bit, index) => {
    if (bit) bytes[index >> 3]! |= 0x80 >> (index & 7);
  });
  return bytes;
}

function readBits(bytes: unknown, count: number, field: string): boolean[] {
  if (!(bytes instanceof Uint8Array) || bytes.length !== Math.ceil(count / 8)) {
    throw new ValidationError(field, `expected ${Math.ceil(count / 8)} bytes for ${count} bits`);
  }
  const bits: boolean[] = [];
  for (let index = 0; index < count; index++)
    bits.push((bytes[index >> 3]! & (0x80 >> (index & 7))) !== 0);
  return bits;
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
