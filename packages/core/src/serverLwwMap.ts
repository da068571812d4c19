import { latestTimestamp } from './fieldWrites.js';
import type { HLC } from './hlc.js';
import { LWWMap } from './lwwMap.js';
import type { LWWRecord } from './lwwRecord.js';
import { compareTimestamps, type Timestamp, validateTimestamp } from './timestamp.js';

/** Options of {@link ServerLWWMap}. */
export interface ServerLWWMapOptions {
  /**
   * Called with the change of {@link ServerLWWMap.byteSize} whenever a change of records (any
   * of them: set, delete, merge, bulk load, prune, restore) changes it, before the change's
   * listeners. For an owner that keeps many maps within a memory budget. Default: none.
   */
  readonly onByteSizeChange?: (delta: number) => void;
}

// Heap estimates for a 64-bit V8 without pointer compression (Node's default build).
/** The map object and its empty record table (the tree counts itself). */
const MAP_BYTES = 240;
/**
 * Per record, besides its key's characters and its value's encoded bytes (about what a value
 * takes beyond its object headers): the table entry, the key's string header, the record and
 * timestamp objects, the millis as a heap number, the node id's string, a value's headers.
 */
const RECORD_BYTES = 245;

/**
 * An {@link LWWMap} as a server keeps it: with an estimate of the memory it holds, for a grid
 * of many maps within a budget, and with tombstone pruning. Kept apart so that a client, which
 * needs neither, does not carry them in its bundle.
 */
export class ServerLWWMap<V> extends LWWMap<V> {
  // Its size needs the tree's figures at once: every change goes through `replace`.
  protected override readonly defersHashing = false;
  readonly #onByteSizeChange: ((delta: number) => void) | undefined;
  #keyChars = 0;
  #recordListeners: Set<RecordListener<V>> | undefined;

  /**
   * @param hlc The clock that stamps local writes and absorbs merged timestamps.
   * @param options See {@link ServerLWWMapOptions}; default: none.
   */
  constructor(hlc: HLC, options: ServerLWWMapOptions = {}) {
    super(hlc);
    this.#onByteSizeChange = options.onByteSizeChange;
  }

  /**
   * An estimate of the bytes of memory the map holds: its records, their keys and values,
   * and its Merkle tree (for a 64-bit V8; a value counts as its encoded size plus a fixed
   * overhead per record). O(1): kept up to date by every change of a record.
   */
  get byteSize(): number {
    return (
      MAP_BYTES +
      this.recordCount * RECORD_BYTES +
      this.#keyChars +
      this.merkleTree.valueBytes +
      this.merkleTree.byteSize
    );
  }

  /**
   * Drops tombstones, and records that expired, before `olderThan` (a tombstone-pruning
   * horizon). Replicas that still hold a pruned tombstone must not send it back as news:
   * see the reset rule in `specifications/merkle-sync.md`.
   * @returns the keys whose records were dropped.
   */
  prune(olderThan: Timestamp): string[] {
    validateTimestamp(olderThan, 'olderThan');
    const dropped: string[] = [];
    for (const [key, record] of this.allRecords()) {
      const prunable =
        record.value === null
          ? compareTimestamps(latestTimestamp(record), olderThan) < 0
          : record.ttlMs !== undefined && record.timestamp.millis + record.ttlMs < olderThan.millis;
      if (!prunable) continue;
      this.replace(key, undefined, record);
      dropped.push(key);
    }
    return dropped;
  }

  /**
   * Calls `listener` with every change of a record from now on, as it is stored: the record
   * before and after (`undefined`: none), whatever made it (merge, bulk load, prune, restore),
   * tombstones and expired records included. Returns a function that removes the listener.
   */
  onRecordChange(listener: RecordListener<V>): () => void {
    this.#recordListeners ??= new Set();
    this.#recordListeners.add(listener);
    return () => this.#recordListeners?.delete(listener);
  }

  protected override replace(
    key: string,
    record: LWWRecord<V> | undefined,
    previous: LWWRecord<V> | undefined,
  ): void {
    const onByteSizeChange = this.#onByteSizeChange;
    const bytesBefore = onByteSizeChange === undefined ? 0 : this.byteSize;
    super.replace(key, record, previous);
    if (record === undefined) {
      if (previous !== undefined) this.#keyChars -= key.length;
    } else if (previous === undefined) {
      this.#keyChars += key.length;
    }
    if (onByteSizeChange !== undefined) {
      const delta = this.byteSize - bytesBefore;
      if (delta !== 0) onByteSizeChange(delta);
    }
    if (this.#recordListeners !== undefined)
      for (const listener of this.#recordListeners) listener(key, record, previous);
  }
}

/** Receives every change of a record of a {@link ServerLWWMap}, as it is stored. */
export type RecordListener<V> = (
  key: string,
  record: LWWRecord<V> | undefined,
  previous: LWWRecord<V> | undefined,
) => void;
