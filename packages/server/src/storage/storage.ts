import type { LWWRecord, Timestamp, Value } from '@topgun/core';

/** One record to persist. */
export interface RecordWrite {
  readonly map: string;
  readonly key: string;
  readonly record: LWWRecord<Value>;
  /** The record's timestamp in serialized form, when the caller has it (saves formatting). */
  readonly serializedTimestamp?: string;
  /**
   * Write only over this stored record (its serialized timestamp; `null`: only if the key
   * has no record): the condition under which a write rule allowed the write, checked by
   * the database as it writes. Absent: Last-Write-Wins alone decides.
   */
  readonly expected?: string | null | undefined;
  /**
   * For a tombstone: keep the value it replaces (`prior`), so that who may see the deletion
   * can be decided later, by whether they could read what was deleted.
   */
  readonly keepPrior?: boolean | undefined;
}

/** What became of one {@link RecordWrite}. */
export interface WriteOutcome {
  /** Whether the record was stored (it won Last-Write-Wins and its condition held). */
  readonly stored: boolean;
  /** For a stored tombstone written with `keepPrior`: the value it deleted, if any. */
  readonly prior?: Value;
  /**
   * For a stored write merged with the stored record (field writes): the record stored, when
   * it is not the written record itself.
   */
  readonly record?: LWWRecord<Value>;
  /** Why the database refused this record for its data (nothing else in the batch failed). */
  readonly refused?: string;
}

/** A stored record, as loaded. */
export interface StoredRecord {
  readonly key: string;
  readonly record: LWWRecord<Value>;
  /** For a tombstone kept with `keepPrior`: the value it deleted. */
  readonly prior?: Value;
}

/** The latest tombstone pruning of a map. */
export interface PruneMark {
  /** Tombstones older than this timestamp's millis may have been deleted. */
  readonly horizonMillis: number;
  /** Server time (ms) of the prune. */
  readonly prunedAt: number;
}

/**
 * Where the server keeps the truth. Implementations: PostgreSQL (`pg` pool) and embedded
 * PGlite, sharing one SQL dialect (`SqlStorage`); every implementation passes the storage
 * acceptance suite. Nothing here assumes the process is the only writer.
 */
export interface Storage {
  /** What the storage is, for logs: e.g. `PostgreSQL at db.example:5432/app`. */
  readonly description: string;
  /**
   * Where other processes' commits are announced, when other processes may write the same
   * database (PostgreSQL); undefined when this process is the only one (embedded PGlite).
   */
  readonly announcements?: AnnouncementChannel | undefined;
  /** How many write transactions are worth running at once (1 for an embedded database). */
  readonly writeConcurrency: number;
  /** Creates or migrates the schema. Safe to run concurrently from several processes. */
  migrate(): Promise<void>;
  /** Resolves when the storage answers; rejects otherwise. */
  ping(): Promise<void>;
  /**
   * Writes records, each merged into the stored one as replicas merge (`mergeRecords`: the
   * greater whole write, ties included, and per field the latest field write), and stored
   * only if that changes it and its `expected` condition (the stored record's latest
   * timestamp) holds. What is newest is decided by the database or under its row lock, never
   * by this process's memory. Resolves after COMMIT with the outcome of each write. A record the database refuses for its data (an
   * error of SQLSTATE class 22, 23 or 54) is `refused` alone: the others are written.
   */
  writeRecords(writes: readonly RecordWrite[]): Promise<WriteOutcome[]>;
  /** Streams every record of a map (tombstones included) in pages, in no particular order. */
  loadMap(map: string, onPage: (records: readonly StoredRecord[]) => void): Promise<void>;
  /** The stored records of some keys of a map (absent keys are left out). */
  getRecords(map: string, keys: readonly string[]): Promise<StoredRecord[]>;
  /**
   * Deletes tombstones, and expired records, older than `horizon` from every map, and
   * records the horizon; resolves with the number of records deleted.
   */
  prune(horizon: Timestamp, now: number): Promise<number>;
  /** The latest prune that deleted records of `map`, if any. */
  pruneMark(map: string): Promise<PruneMark | undefined>;
  /**
   * Claims `nodeId` for `userId` (`null`: anonymous) unless it, one of its `-` prefixes, or
   * an id it prefixes is already claimed by another user; resolves with whether it is now
   * this user's. Node ids are claimed for good: timestamps carry them.
   */
  claimNodeId(nodeId: string, userId: string | null, now: number): Promise<boolean>;
  /** Releases connections. */
  close(): Promise<void>;
}

/** Whether an error from the database is about the data written (SQLSTATE class 22, 23, 54). */
export function isDataError(error: unknown): error is { code: string; message: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|54)/.test(code);
}

/**
 * One record an announcement names: stored in full, or (when its encoding would not fit a
 * notification) only by key and timestamp, to be read back from storage.
 */
export type AnnouncedRecord =
  | { readonly map: string; readonly key: string; readonly stored: StoredRecord }
  | { readonly map: string; readonly key: string; readonly timestamp: string };

/** What one notification on the channel says. */
export type Announcement =
  /** Records one committed group stored (one group may take several notifications). */
  | { readonly origin: string; readonly sentAt: number; readonly records: AnnouncedRecord[] }
  /** A marker: every commit announced before it has been delivered once it arrives. */
  | { readonly origin: string; readonly sentAt: number; readonly mark: number };

/** What a listener is told. */
export interface AnnouncementHandlers {
  /** An announcement of another storage instance (process), in commit order. */
  onRecords(announcement: Extract<Announcement, { records: unknown }>): void;
  /** One of this instance's own marks came back. */
  onMark(mark: number, sentAt: number): void;
  /**
   * The channel failed (connection lost, or a notification that could not be read): some
   * announcements may be lost. Nothing more is delivered until `listen` is called again.
   */
  onLost(error: Error): void;
}

/**
 * Announcements of committed writes between processes sharing one database. Every write of
 * the storage that owns the channel announces what it stored inside its own transaction, so
 * an announcement is delivered after COMMIT, in commit order, to every listener.
 */
export interface AnnouncementChannel {
  /** This instance's id: its own announcements carry it, and are not delivered back. */
  readonly origin: string;
  /** Starts listening (again); resolves once every later commit will be delivered. */
  listen(handlers: AnnouncementHandlers): Promise<void>;
  /** Sends marker `mark`: `onMark` is called when it comes back through the channel. */
  mark(mark: number, sentAt: number): Promise<void>;
  /** Stops listening and releases its connection. */
  close(): Promise<void>;
}
