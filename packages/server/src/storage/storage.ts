import type { LWWRecord, Timestamp, Value } from '@topgun/core';

/** One record to persist. */
export interface RecordWrite {
  readonly map: string;
  readonly key: string;
  readonly record: LWWRecord<Value>;
  /** The record's timestamp in serialized form, when the caller has it (saves formatting). */
  readonly serializedTimestamp?: string;
}

/** A stored record, as loaded. */
export interface StoredRecord {
  readonly key: string;
  readonly record: LWWRecord<Value>;
}

/**
 * Where the server keeps the truth. Implementations: PostgreSQL (`pg` pool) and embedded
 * PGlite, sharing one SQL dialect (`SqlStorage`); every implementation passes the storage
 * acceptance suite. Nothing here assumes the process is the only writer.
 */
export interface Storage {
  /** What the storage is, for logs: e.g. `PostgreSQL at db.example:5432/app`. */
  readonly description: string;
  /** How many write transactions are worth running at once (1 for an embedded database). */
  readonly writeConcurrency: number;
  /** Creates or migrates the schema. Safe to run concurrently from several processes. */
  migrate(): Promise<void>;
  /** Resolves when the storage answers; rejects otherwise. */
  ping(): Promise<void>;
  /**
   * Writes records in one transaction, each only if it is newer (by timestamp) than the
   * stored one. Resolves after COMMIT with, per write, whether it was stored.
   */
  writeRecords(writes: readonly RecordWrite[]): Promise<boolean[]>;
  /** Streams every record of a map (tombstones included) in pages, in no particular order. */
  loadMap(map: string, onPage: (records: readonly StoredRecord[]) => void): Promise<void>;
  /** The stored records of some keys of a map (absent keys are left out). */
  getRecords(map: string, keys: readonly string[]): Promise<StoredRecord[]>;
  /**
   * Deletes tombstones, and expired records, older than `horizon` from every map, and
   * records the horizon; resolves with the number of records deleted.
   */
  prune(horizon: Timestamp, now: number): Promise<number>;
  /** The server time (ms) of the latest prune that deleted records of `map`, if any. */
  prunedAt(map: string): Promise<number | undefined>;
  /** Releases connections. */
  close(): Promise<void>;
}
