import type { LWWRecord, Value } from '@topgun/core';

/** A record of one map, as persisted by a client. */
export interface PersistedRecord {
  readonly map: string;
  readonly key: string;
  readonly record: LWWRecord<Value>;
}

/** A write not yet acknowledged by the server. */
export interface OutboxEntry {
  /** Unique id: the writing replica's node id and a counter. */
  readonly id: string;
  readonly map: string;
  readonly key: string;
  readonly record: LWWRecord<Value>;
}

/** Everything a client persisted. */
export interface PersistedState {
  readonly records: readonly PersistedRecord[];
  readonly outbox: readonly OutboxEntry[];
  readonly meta: ReadonlyMap<string, unknown>;
}

/** Changes to persist together, atomically. */
export interface StorageBatch {
  readonly records?: readonly PersistedRecord[];
  /**
   * Records to remove outright (rolled back writes, maps reset by the server). Applied before
   * `records`, so a key in both ends up written.
   */
  readonly removeRecords?: ReadonlyArray<{ readonly map: string; readonly key: string }>;
  readonly outboxAdd?: readonly OutboxEntry[];
  readonly outboxRemove?: readonly string[];
  readonly meta?: ReadonlyMap<string, unknown>;
  /**
   * How many records (tombstones included) the replica holds across its maps once this batch
   * is applied: lets a storage that keeps superseded versions judge how much of what it
   * stored is garbage. Optional, advisory.
   */
  readonly replicaRecords?: number;
}

/**
 * Where a client keeps its replica and outbox. `commit` must be atomic: a record and the
 * outbox entry of the same write are stored together or not at all. Implementations:
 * `createMemoryStorage` and `createIndexedDbStorage`; every implementation passes the client
 * storage acceptance suite.
 */
export interface ClientStorage {
  /** Reads everything persisted. */
  load(): Promise<PersistedState>;
  /** Persists a batch in one transaction. */
  commit(batch: StorageBatch): Promise<void>;
  /** Releases resources. */
  close(): Promise<void>;
}
