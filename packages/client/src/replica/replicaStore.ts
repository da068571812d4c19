import {
  type HLC,
  type LWWMap,
  type LWWRecord,
  mergeRecords,
  LWWMap as ReplicaMap,
  splitWrite,
  type Value,
} from '@topgun/core';
import { ConfigurationError } from '../clientErrors.js';
import type { PersistQueue } from '../storage/persistQueue.js';
import { ClientMap } from './clientMap.js';

const MODE_PREFIX = 'replicate:';

/** How one map is replicated. */
export interface MapOptions {
  /**
   * `'map'`: the whole map, walked with the server (the default). `'queries'`: only the
   * records the map's live and pinned queries hold, never the whole map: for maps too large
   * for a browser. The mode holds for the client's life.
   */
  readonly replicate?: 'map' | 'queries';
  /**
   * With `'queries'`: records kept beyond those of live and pinned queries, in memory and
   * stored; the others are dropped once a query ends. Default: 10 000.
   */
  readonly maxRecords?: number;
}

/** A change of the replica, for the other tabs to apply (structured-cloned). */
export type ReplicaChange =
  /** Records merged or written, for the other tabs to merge. */
  | {
      readonly type: 'records';
      readonly map: string;
      readonly entries: ReadonlyArray<readonly [string, LWWRecord<Value>]>;
    }
  /**
   * Records replaced or removed outright (rollback, re-stamp, revoke, reset): each key with
   * its new record and the record the tab replaced.
   */
  | {
      readonly type: 'restore';
      readonly map: string;
      readonly entries: ReadonlyArray<RestoredEntry>;
    };

/** A key, its record after a restore (null: removed) and before it (null: none). */
export type RestoredEntry = readonly [string, LWWRecord<Value> | null, LWWRecord<Value> | null];

/** One map of the replica: its records, and the handle apps hold. */
export interface ReplicaEntry {
  readonly replica: LWWMap<Value>;
  readonly handle: ClientMap<unknown>;
}

/**
 * A local write: makes it on the replica of its map (`set`, `delete` or `update`) and returns
 * the write made, or undefined when nothing was written (an empty patch). `loading`: the
 * stored records are not loaded yet, so an update writes field writes whatever the key holds.
 */
export type LocalWrite = (replica: LWWMap<Value>, loading: boolean) => LWWRecord<Value> | undefined;

/** What the store needs around it. */
export interface ReplicaStoreOptions {
  readonly hlc: HLC;
  readonly persist: PersistQueue;
  /** Tells the other tabs a change (they apply it without persisting it again). */
  readonly share: (change: ReplicaChange) => void;
  /** A write through a map handle (`ClientMap.set`, `delete`, `update`): the client decides its fate. */
  readonly write: (map: string, key: string, write: LocalWrite) => void;
  /** A map was opened (to walk it when connected). */
  readonly opened: (map: string) => void;
}

/**
 * The replica: every map this client opened. The one writer of its records: each change is
 * applied, persisted and told to the other tabs here, in that order, so that the three never
 * disagree about what a change was.
 */
export class ReplicaStore {
  readonly #maps = new Map<string, ReplicaEntry>();
  readonly #options: ReplicaStoreOptions;
  /** The budget (`maxRecords`) of each map replicated by query. */
  readonly #scoped = new Map<string, number>();
  /** The modes declared in this client's life (a stored one may be declared over). */
  readonly #declared = new Map<string, string>();

  constructor(options: ReplicaStoreOptions) {
    this.#options = options;
  }

  /**
   * How map `name` is replicated, declared by the app; stored, so that the next start knows
   * it before walking anything.
   * @throws {ConfigurationError} when this client declared it otherwise before.
   */
  declare(name: string, { replicate = 'map', maxRecords = 10_000 }: MapOptions): void {
    const before = this.#declared.get(name);
    if (before !== undefined && before !== replicate)
      throw new ConfigurationError('replicate', `map ${name} is replicated by ${before} already`);
    if (!(Number.isSafeInteger(maxRecords) && maxRecords >= 0))
      throw new ConfigurationError('maxRecords', 'expected a whole number, at least 0');
    const budget = replicate === 'queries' ? maxRecords : undefined;
    // Declared again as it is (a component's every render): nothing to store.
    if (before !== undefined && this.#scoped.get(name) === budget) return;
    this.#declared.set(name, replicate);
    this.#setMode(name, budget);
    this.#options.persist.setMeta(`${MODE_PREFIX}${name}`, budget ?? null);
  }

  /** Reads the modes stored by {@link declare} back (those declared since stay). */
  loadModes(meta: Iterable<readonly [string, unknown]>): void {
    for (const [name, value] of meta) {
      const map = name.slice(MODE_PREFIX.length);
      if (name.startsWith(MODE_PREFIX) && typeof value === 'number' && !this.#declared.has(map))
        this.#setMode(map, value);
    }
  }

  #setMode(name: string, budget: number | undefined): void {
    if (budget === undefined) this.#scoped.delete(name);
    else this.#scoped.set(name, budget);
  }

  /** The budget of a map replicated by query; undefined for a whole map. */
  budgetOf(name: string): number | undefined {
    return this.#scoped.get(name);
  }

  /** The map `name` (created on first use). */
  entry(name: string): ReplicaEntry {
    let entry = this.#maps.get(name);
    if (entry === undefined) {
      const replica = new ReplicaMap<Value>(this.#options.hlc);
      const { write } = this.#options;
      const handle = new ClientMap<unknown>(name, replica as LWWMap<unknown>, {
        set: (map, key, value, options) =>
          write(map, key, (to) => to.set(key, value as Value, options)),
        delete: (map, key) => write(map, key, (to) => to.delete(key)),
        update: (map, key, patch) =>
          write(map, key, (to, loading) => to.update(key, patch, loading)),
      });
      entry = { replica, handle };
      this.#maps.set(name, entry);
      this.#options.opened(name);
    }
    return entry;
  }

  /** The names of the whole maps opened so far (those walked with the server). */
  names(): string[] {
    return [...this.#maps.keys()].filter((name) => !this.#scoped.has(name));
  }

  /** Records held across the maps, tombstones included. */
  recordCount(): number {
    let records = 0;
    for (const { replica } of this.#maps.values()) records += replica.recordCount;
    return records;
  }

  /**
   * A local write: made, then what the replica holds for the key (the write merged into the
   * record, for an update) persisted and shared. Returns the write made (field writes alone,
   * for an update of an object), or undefined when nothing was written. `loading`: see
   * {@link LocalWrite}.
   */
  write(
    map: string,
    key: string,
    write: LocalWrite,
    loading: boolean,
  ): LWWRecord<Value> | undefined {
    const { replica } = this.entry(map);
    const written = write(replica, loading);
    if (written !== undefined) this.#changed(map, [[key, replica.getRecord(key)!]]);
    return written;
  }

  /**
   * Merges records (from the server, or another tab when `persist` is false: that tab
   * persisted and shared them) and persists and shares what changed.
   * @returns how many records changed the replica.
   */
  merge(
    map: string,
    entries: ReadonlyArray<readonly [string, LWWRecord<Value>]>,
    persist: boolean,
  ): number {
    const { replica } = this.entry(map);
    const merged: Array<readonly [string, LWWRecord<Value>]> = [];
    for (const [key, record] of entries) {
      const previous = replica.getRecord(key);
      try {
        replica.merge(key, record);
      } catch {
        continue; // a malformed record is dropped, the rest still applies
      }
      // What the replica holds now, when it changed: the incoming record if it won whole, or
      // a record merged from both (field writes of each).
      const stored = replica.getRecord(key)!;
      if (stored !== previous) merged.push([key, stored]);
    }
    if (persist && merged.length > 0) this.#changed(map, merged);
    return merged.length;
  }

  /** Persists records that changed and tells the other tabs to merge them. */
  #changed(map: string, entries: Array<readonly [string, LWWRecord<Value>]>): void {
    for (const [key, record] of entries) this.#options.persist.record({ map, key, record });
    this.#options.share({ type: 'records', map, entries });
  }

  /** Records this replica stored itself, read back at start-up: already persisted and shared. */
  load(map: string, entries: ReadonlyArray<readonly [string, LWWRecord<Value>]>): void {
    this.entry(map).replica.loadRecords(entries);
  }

  /**
   * Records another tab restored (it persisted and shared them). What this tab holds of a key
   * beyond the record that tab replaced (writes made here that it had not merged yet) is
   * merged back on top, and then persisted: a restore takes back only what the other tab knew.
   */
  restoreFromTab(map: string, entries: ReadonlyArray<RestoredEntry>): void {
    const { replica } = this.entry(map);
    for (const [key, record, replaced] of entries) {
      const unseen = this.#unseen(replica.getRecord(key), replaced);
      if (unseen === undefined) {
        replica.restore(key, record ?? undefined);
        continue;
      }
      const kept = record ? mergeRecords(record, unseen) : unseen;
      replica.restore(key, kept);
      this.#options.persist.record({ map, key, record: kept });
    }
  }

  /** What `current` holds that `replaced` does not: writes merging would add to it. */
  #unseen(
    current: LWWRecord<Value> | undefined,
    replaced: LWWRecord<Value> | null,
  ): LWWRecord<Value> | undefined {
    if (current === undefined || replaced === null) return current;
    if (mergeRecords(replaced, current) === replaced) return undefined;
    const split = splitWrite(current, replaced);
    return split ? split.rest : current;
  }

  /**
   * Sets a key's record outright, whatever the timestamps (a refused write rolled back, a
   * write re-stamped, a record removed when `record` is undefined), persists it and tells the
   * other tabs.
   */
  restore(map: string, key: string, record: LWWRecord<Value> | undefined): void {
    const { replica } = this.entry(map);
    const replaced = replica.getRecord(key) ?? null;
    replica.restore(key, record);
    if (record === undefined) this.#options.persist.remove(map, key);
    else this.#options.persist.record({ map, key, record });
    this.#options.share({ type: 'restore', map, entries: [[key, record ?? null, replaced]] });
  }

  /**
   * Drops records without tombstones (the user may no longer see them, or the server reset
   * the map), except the keys `keep` holds; persists and shares the change.
   */
  revoke(map: string, keys: Iterable<string>, keep: ReadonlySet<string>): void {
    const { replica } = this.entry(map);
    const removed: RestoredEntry[] = [];
    for (const key of keys) {
      const replaced = replica.getRecord(key);
      if (keep.has(key) || replaced === undefined) continue;
      replica.restore(key, undefined);
      this.#options.persist.remove(map, key);
      removed.push([key, null, replaced]);
    }
    if (removed.length > 0) this.#options.share({ type: 'restore', map, entries: removed });
  }
}
