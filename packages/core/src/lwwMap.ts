import {
  EMPTY_WRITE_TIMESTAMP,
  type FieldWrite,
  isObject,
  latestTimestamp,
  withFieldWrites,
  withTtl,
} from './fieldWrites.js';
import type { HLC } from './hlc.js';
import {
  isRecordAbsent,
  type LWWRecord,
  mergeRecords,
  validateRecord,
  validateTtl,
} from './lwwRecord.js';
import { MerkleTree } from './merkleTree.js';
import { validateKey } from './recordKey.js';
import { reportListenerError } from './reportListenerError.js';
import { compareTimestamps, type Timestamp } from './timestamp.js';
import { type Value, validateValue } from './value.js';

/** A change of the visible state of one key, as delivered to {@link LWWMap.subscribe} listeners. */
export interface MapChange<V> {
  /** The key that changed. */
  readonly key: string;
  /** The visible value after the change; `undefined` when the key is now absent. */
  readonly value: V | undefined;
  /** The visible value before the change; `undefined` when the key was absent. */
  readonly previous: V | undefined;
  /** The record now stored for the key (a tombstone when the key was deleted). */
  readonly record: LWWRecord<V>;
  /** The record stored before, expired or not; `undefined` when there was none. */
  readonly previousRecord: LWWRecord<V> | undefined;
}

/** Receives {@link MapChange}s. */
export type MapChangeListener<V> = (change: MapChange<V>) => void;

/** Options of {@link LWWMap.set}. */
export interface SetOptions {
  /** Time to live in milliseconds; the record reads as absent afterwards. Default: no expiry. */
  readonly ttlMs?: number;
}

/**
 * A Last-Write-Wins map: a state-based CRDT whose replicas converge to the same visible
 * state whatever order, and however many times, they receive each other's records.
 * Every key holds its latest {@link LWWRecord}; deletes leave tombstones so that they win
 * over older writes arriving later. A {@link MerkleTree} over (key, timestamp) is kept up to
 * date on every change, so replicas can find their differences cheaply.
 *
 * Values are treated as immutable: do not mutate an object after passing it to `set`.
 */
export class LWWMap<V> {
  readonly #tree = new MerkleTree();
  /**
   * Keys loaded in bulk whose items the tree does not have yet: fingerprinting every value is
   * most of a load's cost, and a replica that just started needs its records (to show them)
   * before its tree (to sync).
   */
  #unhashed: string[] | undefined;
  readonly #records = new Map<string, LWWRecord<V>>();
  // Created on first subscription: most maps of a server's grid never have listeners.
  #listeners: Set<MapChangeListener<V>> | undefined;
  #bulkListeners: Set<() => void> | undefined;
  #liveCount = 0;
  #expiringCount = 0;

  /**
   * Whether {@link loadRecords} may leave hashing the keys it adds until the tree is first
   * read. A subclass that measures the map turns it off: it needs the tree's figures at once.
   */
  protected readonly defersHashing: boolean = true;

  /** @param hlc The clock that stamps local writes and absorbs merged timestamps. */
  constructor(readonly hlc: HLC) {}

  /** The Merkle tree of this map's records, tombstones included. */
  get merkleTree(): MerkleTree {
    const unhashed = this.#unhashed;
    if (unhashed !== undefined) {
      this.#unhashed = undefined;
      // Until now nothing replaced these keys' records: every change reads the tree first.
      for (const key of unhashed) this.#tree.update(key, undefined, this.#records.get(key));
    }
    return this.#tree;
  }

  /**
   * Writes `value` under `key` with a fresh timestamp and returns the stored record.
   * @throws {ValidationError} when the key, value or TTL is malformed (nothing is written).
   */
  set(key: string, value: V, options?: SetOptions): LWWRecord<V> {
    validateKey(key);
    validateValue(value);
    const ttlMs = options?.ttlMs;
    if (ttlMs !== undefined) validateTtl(ttlMs);
    const timestamp = this.hlc.now();
    const record: LWWRecord<V> = withTtl({ value, timestamp }, ttlMs);
    this.#store(key, record, this.#records.get(key));
    return record;
  }

  /**
   * Deletes `key` by writing a tombstone with a fresh timestamp, and returns it. A tombstone is
   * written even when the key is not present locally, so it also wins over older writes that
   * have not arrived yet.
   * @throws {ValidationError} when the key is malformed.
   */
  delete(key: string): LWWRecord<V> {
    validateKey(key);
    const record: LWWRecord<V> = { value: null, timestamp: this.hlc.now() };
    this.#store(key, record, this.#records.get(key));
    return record;
  }

  /**
   * Writes the fields of `patch` as field writes with one fresh timestamp (a field set to
   * `undefined` is removed), leaving the other fields alone, when `key` holds a plain object;
   * otherwise (absent, deleted, expired, another kind of value) sets `patch` without its
   * undefined fields as the whole value. Returns the write made: the field writes alone (a
   * record whose whole write is the empty write), or the whole record; undefined for an
   * empty patch, which writes nothing.
   * @param fieldWritesAlways Writes field writes whatever `key` holds, for a replica that may
   *   not hold the key's record yet (its stored records are loading). Default: false.
   * @throws {ValidationError} when the key or a field is malformed (nothing is written).
   */
  update(
    key: string,
    patch: Readonly<Record<string, unknown>>,
    fieldWritesAlways?: boolean,
  ): LWWRecord<V> | undefined {
    validateKey(key);
    const names = Object.keys(patch);
    // Removals as null: their names are checked too (no `__proto__`, no lone surrogate).
    validateValue(Object.fromEntries(names.map((name) => [name, patch[name] ?? null])), 'patch');
    if (names.length === 0) return undefined;
    if (!fieldWritesAlways && !isObject(this.get(key)))
      // The patch without its undefined fields: checked JSON data, which JSON keeps exactly.
      return this.set(key, JSON.parse(JSON.stringify(patch)) as V);
    const timestamp = this.hlc.now();
    const fields: Record<string, FieldWrite> = {};
    for (const name of names) {
      const value = patch[name] as Value | undefined;
      fields[name] = value === undefined ? { timestamp } : { timestamp, value };
    }
    // Field writes alone: a record whose whole write is the empty write.
    const written = withFieldWrites<V>({ value: null, timestamp: EMPTY_WRITE_TIMESTAMP }, fields);
    const previous = this.#records.get(key);
    this.#store(key, previous ? mergeRecords(previous, written) : written, previous);
    return written;
  }

  /** The visible value of `key`, or `undefined` when absent, deleted or expired. */
  get(key: string): V | undefined {
    const record = this.#records.get(key);
    if (record === undefined || record.value === null) return undefined;
    if (record.ttlMs !== undefined && this.#isExpired(record)) return undefined;
    return record.value;
  }

  /** Whether `key` has a visible value. */
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** The stored record of `key`, tombstones and expired records included. */
  getRecord(key: string): LWWRecord<V> | undefined {
    return this.#records.get(key);
  }

  /** Number of visible entries. */
  get size(): number {
    if (this.#expiringCount === 0) return this.#liveCount;
    let count = 0;
    for (const _entry of this.entries()) count++;
    return count;
  }

  /** Number of stored records, tombstones and expired records included. */
  get recordCount(): number {
    return this.#records.size;
  }

  /** The visible entries, in insertion order of their keys. */
  *entries(): Generator<[string, V]> {
    const now = this.#expiringCount === 0 ? 0 : this.hlc.physicalTime();
    for (const [key, record] of this.#records) {
      if (record.value === null) continue;
      if (record.ttlMs !== undefined && record.timestamp.millis + record.ttlMs <= now) continue;
      yield [key, record.value];
    }
  }

  /** Every stored record, tombstones and expired records included. */
  allRecords(): IterableIterator<[string, LWWRecord<V>]> {
    return this.#records.entries();
  }

  /**
   * Merges a record from another replica (or from storage) with {@link mergeRecords}: the
   * greater whole write, and per field the latest field write after it; merging the same
   * record again changes nothing. The clock absorbs the record's latest timestamp, so later
   * local writes order after it.
   * @returns whether the key's visible state changed (it appeared, disappeared, or its value
   *   was replaced by a newer write).
   * @throws {ValidationError} when the key or record is malformed.
   * @throws {ClockDriftError} when the timestamp is too far in the future; nothing changes.
   */
  merge(key: string, record: LWWRecord<V>): boolean {
    validateKey(key);
    const incoming = validateRecord<V>(record);
    this.hlc.update(latestTimestamp(incoming));
    const previous = this.#records.get(key);
    const merged = previous === undefined ? incoming : mergeRecords(previous, incoming);
    if (merged === previous) return false;
    return this.#store(key, merged, previous);
  }

  /**
   * Loads records this replica stored itself (validated when they were first written or
   * merged) in bulk: LWW applies per key, the clock absorbs the newest timestamp once, and
   * instead of one change per record, {@link subscribeBulk} listeners are told once. Much
   * faster than `merge` for a replica's start-up; never use it for records from outside.
   */
  loadRecords(entries: Iterable<readonly [string, LWWRecord<V>]>): void {
    let newest: Timestamp | undefined;
    const deferHashing = this.defersHashing;
    for (const [key, loaded] of entries) {
      const previous = this.#records.get(key);
      const record = previous === undefined ? loaded : mergeRecords(previous, loaded);
      if (record === previous) continue;
      if (deferHashing && previous === undefined) {
        this.#records.set(key, record);
        this.#count(record, undefined);
        // A fresh list after any flush (a `replace` below reads the tree, emptying it).
        if (this.#unhashed === undefined) this.#unhashed = [];
        this.#unhashed.push(key);
      } else {
        this.replace(key, record, previous);
      }
      const latest = latestTimestamp(record);
      if (newest === undefined || compareTimestamps(latest, newest) > 0) newest = latest;
    }
    if (newest === undefined) return;
    this.hlc.update(newest);
    for (const listener of this.#bulkListeners ?? []) {
      try {
        listener();
      } catch (error) {
        reportListenerError(error);
      }
    }
  }

  /** Listens to bulk loads ({@link loadRecords}); returns the unsubscribe function. */
  subscribeBulk(listener: () => void): () => void {
    this.#bulkListeners ??= new Set();
    const listeners = this.#bulkListeners;
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }

  /**
   * Listens to changes of the visible state, local and merged. Returns the unsubscribe
   * function. A throwing listener does not stop the others; its error is rethrown
   * asynchronously.
   */
  subscribe(listener: MapChangeListener<V>): () => void {
    this.#listeners ??= new Set();
    const listeners = this.#listeners;
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }

  /**
   * Replaces the stored record of `key` unconditionally, or removes it (no tombstone) when
   * `record` is undefined. Not a CRDT operation: it exists for a replica to undo its own
   * writes that never took effect elsewhere, e.g. rolling back a write the server rejected,
   * or re-stamping writes made with a wrong clock before they were sent.
   * @throws {ValidationError} when the key or record is malformed.
   */
  restore(key: string, record: LWWRecord<V> | undefined): boolean {
    validateKey(key);
    const previous = this.#records.get(key);
    if (record === undefined) {
      if (previous === undefined) return false;
      this.replace(key, undefined, previous);
      const now = previous.ttlMs === undefined ? 0 : this.hlc.physicalTime();
      if (isRecordAbsent(previous, now)) return false;
      if (this.#listeners !== undefined && this.#listeners.size > 0) {
        this.#emit({
          key,
          value: undefined,
          previous: previous.value as V,
          record: { value: null, timestamp: previous.timestamp },
          previousRecord: previous,
        });
      }
      return true;
    }
    return this.#store(key, validateRecord<V>(record), previous);
  }

  #isExpired(record: LWWRecord<V>): boolean {
    return isRecordAbsent(record, this.hlc.physicalTime());
  }

  #store(key: string, record: LWWRecord<V>, previous: LWWRecord<V> | undefined): boolean {
    this.replace(key, record, previous);

    const now =
      previous?.ttlMs !== undefined || record.ttlMs !== undefined ? this.hlc.physicalTime() : 0;
    const before =
      previous === undefined || isRecordAbsent(previous, now) ? undefined : (previous.value as V);
    const after = isRecordAbsent(record, now) ? undefined : (record.value as V);
    if (before === undefined && after === undefined) return false;
    if (this.#listeners !== undefined && this.#listeners.size > 0)
      this.#emit({ key, value: after, previous: before, record, previousRecord: previous });
    return true;
  }

  /**
   * Stores (or removes, `record` undefined) the record of `key` in place of `previous`, keeping
   * the tree and the counts right: every change of a record goes through here, but for the
   * keys a bulk load adds while {@link defersHashing}. Not a CRDT operation (see
   * {@link restore}); a subclass extends it to follow every change.
   */
  protected replace(
    key: string,
    record: LWWRecord<V> | undefined,
    previous: LWWRecord<V> | undefined,
  ): void {
    // The tree first: it may still have to hash records loaded in bulk, `previous` among them.
    const tree = this.merkleTree;
    if (record === undefined) this.#records.delete(key);
    else this.#records.set(key, record);
    tree.update(key, previous, record);
    this.#count(record, previous);
  }

  /** Keeps the counts of live and expiring records across a change of one record. */
  #count(record: LWWRecord<V> | undefined, previous: LWWRecord<V> | undefined): void {
    if (previous !== undefined) {
      if (previous.value !== null) this.#liveCount--;
      if (previous.ttlMs !== undefined) this.#expiringCount--;
    }
    if (record !== undefined) {
      if (record.value !== null) this.#liveCount++;
      if (record.ttlMs !== undefined) this.#expiringCount++;
    }
  }

  #emit(change: MapChange<V>): void {
    for (const listener of this.#listeners ?? []) {
      try {
        listener(change);
      } catch (error) {
        reportListenerError(error);
      }
    }
  }
}
