import { HLC, type LWWRecord, ServerLWWMap, type Value } from '@topgun/core';
import { ChangeLog } from './changeLog.js';
import type { ServerMetrics } from './metrics.js';
import type { Storage, StoredRecord } from './storage/storage.js';

/**
 * A record as the grid keeps it: a tombstone of a map with record-level read rules keeps the
 * value it deleted (`prior`, never sent to clients), to decide who may see the deletion.
 */
export interface GridRecord extends LWWRecord<Value> {
  readonly prior?: Value;
}

/** What a {@link MapGrid} needs. */
/** A stored record as the grid keeps it (with the value a tombstone deleted, if kept). */
export function gridRecordOf({ record, prior }: StoredRecord): GridRecord {
  return prior === undefined ? record : { ...record, prior };
}

export interface MapGridOptions {
  /** Where maps are loaded from. */
  readonly storage: Pick<Storage, 'loadMap'>;
  /** Where the grid reports its size, its maps and its evictions. */
  readonly metrics: ServerMetrics;
  /** The node id of the clock that absorbs merged timestamps. */
  readonly nodeId: string;
  /** Wall clock, for idle eviction. */
  readonly now: () => number;
  /**
   * Estimated bytes the grid may hold (records, keys, values, Merkle trees, its own
   * bookkeeping) before it evicts idle maps. Default: no limit.
   */
  readonly maxBytes?: number;
}

/** One map of the grid. */
class GridEntry {
  /** Set as soon as the entry exists: the load reports sizes to the entry as it goes. */
  loading!: Promise<ServerLWWMap<Value>>;
  loaded = false;
  /** The map's estimated size, as counted in the grid's total. */
  bytes = 0;
  /** Evicted (or its load failed): its map's size no longer counts. */
  gone = false;
  /** The changes published since it was loaded, and the map (both set once it is loaded). */
  log: ChangeLog | undefined;
  data: ServerLWWMap<Value> | undefined;

  constructor(
    readonly name: string,
    public lastUsed: number,
    /** Tells this load of the map from its others, in this process: part of its cursors. */
    readonly generation: number,
  ) {}
}

/** Changes a map's log keeps at most (see {@link ChangeLog}). */
const MAX_LOGGED_CHANGES = 10_000;

/**
 * Per map, besides what its `ServerLWWMap.byteSize` counts: the entry, its load promise, the
 * closure that reports the map's size, the grid's table slot and the name's string header.
 */
const ENTRY_BYTES = 420;

/**
 * The in-memory grid: every map in use, loaded from storage on first use and kept in memory
 * with its Merkle tree. Storage stays the authority: the grid only ever merges records that
 * were committed (or read back) from it.
 *
 * The grid keeps an estimate of its size, which every change of a record of a map it holds
 * updates (the maps report it, whoever merges into them). Over `maxBytes`, it evicts idle
 * maps: first those that alone exceed the budget, then the least recently used, until it is
 * within the budget again. A map is idle unless it is loading or something holds it
 * ({@link hold}: a walk, a live query, a write group). A map larger than the whole budget is
 * loaded and served all the same; it stays while it is held, and is the first to go once it
 * is not. Maps unused for a while leave memory too ({@link evictIdle}). An evicted map is
 * loaded again on its next use.
 */
export class MapGrid {
  /** Maps in order of last use, least recent first. */
  private readonly entries = new Map<string, GridEntry>();
  private readonly holds = new Map<string, number>();
  /** Maps larger than the whole budget, held or not: evicted first once not held. */
  private readonly oversized = new Set<GridEntry>();
  private newest: GridEntry | undefined;
  private bytes = 0;
  /** The last eviction found nothing it could evict, and nothing was released since. */
  private exhausted = false;
  private checkScheduled = false;
  // Merges of committed records: the drift bound was enforced when they were written.
  private readonly hlc: HLC;
  private readonly storage: Pick<Storage, 'loadMap'>;
  private readonly metrics: ServerMetrics;
  private readonly now: () => number;
  /** The budget, in estimated bytes. */
  readonly maxBytes: number;
  /** Tells this grid's cursors from any other process's (or an earlier run's). */
  private readonly epoch = Math.random().toString(36).slice(2, 10);
  private generations = 0;

  constructor(options: MapGridOptions) {
    this.storage = options.storage;
    this.metrics = options.metrics;
    this.now = options.now;
    this.maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    this.hlc = new HLC({
      nodeId: options.nodeId,
      now: options.now,
      maxDriftMs: Number.POSITIVE_INFINITY,
    });
  }

  /** The grid's estimated size in bytes: every map it holds, loading ones included. */
  get byteSize(): number {
    return this.bytes;
  }

  /**
   * The loaded map (loading it first if needed). A failed load is retried on the next call.
   * Unless it is held ({@link hold}), the map may leave the grid as soon as the caller
   * yields (the budget is checked once the current work is done): hold it first to use it
   * across awaits, or to merge into it.
   */
  get(map: string): Promise<ServerLWWMap<Value>> {
    const entry = this.entries.get(map);
    if (entry === undefined) return this.load(map).loading;
    this.touch(entry);
    return entry.loading;
  }

  /**
   * Logs changes of a loaded map as they are published to its followers: a client that held
   * every change up to the map's cursor then resumes from it ({@link changedSince}).
   */
  logChanges(map: string, keys: Iterable<string>): void {
    const entry = this.entries.get(map);
    if (entry?.log === undefined) return;
    const before = entry.log.bytes;
    entry.log.append(keys, entry.data!.recordCount);
    this.resized(entry, entry.log.bytes - before);
  }

  /**
   * The load of `map` in this process that its cursors are of (`<grid epoch>.<generation>`,
   * what precedes a cursor's last dot), if it is loaded.
   */
  loadOf(map: string): string | undefined {
    const entry = this.entries.get(map);
    return entry?.log === undefined ? undefined : `${this.epoch}.${entry.generation}`;
  }

  /** Where a client holding every change of `map` published so far may resume from. */
  cursorOf(map: string): string | undefined {
    const load = this.loadOf(map);
    return load === undefined ? undefined : `${load}.${this.entries.get(map)!.log!.version}`;
  }

  /**
   * The keys of `map` changed since `cursor`, each once; undefined when this load of the map
   * did not give that cursor or no longer knows what changed since.
   */
  changedSince(map: string, cursor: string): string[] | undefined {
    const dot = cursor.lastIndexOf('.');
    const version = cursor.slice(dot + 1);
    if (dot < 0 || cursor.slice(0, dot) !== this.loadOf(map) || !/^\d{1,15}$/.test(version))
      return undefined;
    return this.entries.get(map)!.log!.since(Number(version));
  }

  /** Whether the map is loaded (or loading). */
  isLoaded(map: string): boolean {
    return this.entries.has(map);
  }

  /**
   * The map, as {@link get}, if it is in memory or `mayLoad()` lets a connection load it (its
   * map-load budget); `undefined`, at once, otherwise.
   */
  getWithin(map: string, mayLoad: () => boolean): Promise<ServerLWWMap<Value>> | undefined {
    return this.entries.has(map) || mayLoad() ? this.get(map) : undefined;
  }

  /**
   * Keeps `map` in memory, from now (loaded or not yet) until the returned function is
   * called (calling it again does nothing). Whoever keeps using a map across awaits, or merges
   * into it, holds it: a map evicted meanwhile would be loaded again, and what went into the
   * old copy would be lost to the new one.
   */
  hold(map: string): () => void {
    this.holds.set(map, (this.holds.get(map) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.holds.get(map)! - 1;
      if (left > 0) {
        this.holds.set(map, left);
        return;
      }
      this.holds.delete(map);
      const entry = this.entries.get(map);
      if (entry === undefined) return;
      // In use until now: it goes after the maps idle for longer.
      this.touch(entry);
      this.becameEvictable();
    };
  }

  /** Whether something holds `map` ({@link hold}). */
  isHeld(map: string): boolean {
    return this.holds.has(map);
  }

  /**
   * Drops maps unused for `idleMs` that nothing holds: storage keeps them, and the next use
   * loads them again. Returns how many were dropped.
   */
  evictIdle(idleMs: number): number {
    const cutoff = this.now() - idleMs;
    let evicted = 0;
    for (const entry of this.entries.values()) {
      // In order of last use: every map after this one was used later still.
      if (entry.lastUsed >= cutoff) break;
      if (this.isPinned(entry)) continue;
      this.evict(entry, 'idle');
      evicted++;
    }
    this.report();
    return evicted;
  }

  /**
   * Drops every map, held and loading ones too (what they hold may be stale): each loads
   * again, from storage, on its next use.
   */
  clear(): void {
    for (const entry of [...this.entries.values()]) this.evict(entry, undefined);
    this.report();
  }

  /** The map if it is already loaded. */
  async ifLoaded(map: string): Promise<ServerLWWMap<Value> | undefined> {
    const entry = this.entries.get(map);
    return entry === undefined ? undefined : entry.loading.catch(() => undefined);
  }

  /** Names of the loaded (or loading) maps. */
  loadedMaps(): string[] {
    return [...this.entries.keys()];
  }

  private load(name: string): GridEntry {
    const entry = new GridEntry(name, this.now(), ++this.generations);
    const data = new ServerLWWMap<Value>(this.hlc, {
      onByteSizeChange: (delta) => this.resized(entry, delta),
    });
    this.entries.set(name, entry);
    this.newest = entry;
    this.resized(entry, ENTRY_BYTES + name.length + data.byteSize);
    entry.loading = this.fill(name, data).then(
      () => {
        entry.loaded = true;
        entry.data = data;
        entry.log = new ChangeLog(MAX_LOGGED_CHANGES);
        this.becameEvictable();
        return data;
      },
      (error: unknown) => {
        if (this.entries.get(name) === entry) this.evict(entry, undefined);
        throw error;
      },
    );
    // Callers that give up on a failed load see its error; the grid has dealt with it.
    entry.loading.catch(() => {});
    return entry;
  }

  private async fill(map: string, data: ServerLWWMap<Value>): Promise<void> {
    await this.metrics.timeStorage('load_map', () =>
      // Stored records were validated when written and again when decoded: loaded in bulk.
      this.storage.loadMap(map, (page) =>
        data.loadRecords(page.map((stored) => [stored.key, gridRecordOf(stored)] as const)),
      ),
    );
  }

  /** Marks a map used now: it moves to the end of the order of last use. */
  private touch(entry: GridEntry): void {
    entry.lastUsed = this.now();
    if (entry === this.newest) return;
    this.entries.delete(entry.name);
    this.entries.set(entry.name, entry);
    this.newest = entry;
  }

  private isPinned(entry: GridEntry): boolean {
    return !entry.loaded || this.holds.has(entry.name);
  }

  private resized(entry: GridEntry, delta: number): void {
    if (entry.gone) return;
    entry.bytes += delta;
    this.bytes += delta;
    if (entry.bytes > this.maxBytes) this.oversized.add(entry);
    else if (this.oversized.size > 0) this.oversized.delete(entry);
    this.scheduleCheck();
  }

  /** A map may have become evictable: the next check tries again if the grid is over budget. */
  private becameEvictable(): void {
    this.exhausted = false;
    this.scheduleCheck();
  }

  /**
   * Checks the budget once the current work is done rather than on every record: a bulk
   * merge changes the size thousands of times in one go.
   */
  private scheduleCheck(): void {
    if (this.checkScheduled) return;
    this.checkScheduled = true;
    queueMicrotask(() => {
      this.checkScheduled = false;
      if (this.bytes > this.maxBytes) this.evictOverBudget();
      this.report();
    });
  }

  private evictOverBudget(): void {
    if (this.exhausted) return;
    for (const entry of this.oversized) {
      if (!this.isPinned(entry)) this.evict(entry, 'budget');
    }
    // Each map is visited once: held ones move to the end (in use), and are not met again.
    let visits = this.entries.size;
    for (const entry of this.entries.values()) {
      if (this.bytes <= this.maxBytes || visits-- === 0) break;
      if (this.isPinned(entry)) this.touch(entry);
      else this.evict(entry, 'budget');
    }
    this.exhausted = this.bytes > this.maxBytes;
  }

  /** Forgets a map (storage keeps it), evicted for `reason`, or whose load failed. */
  private evict(entry: GridEntry, reason: 'budget' | 'idle' | undefined): void {
    this.entries.delete(entry.name);
    this.oversized.delete(entry);
    if (entry === this.newest) this.newest = undefined;
    entry.gone = true;
    this.bytes -= entry.bytes;
    entry.bytes = 0;
    if (reason !== undefined) this.metrics.gridEvictions.inc({ reason });
    this.scheduleCheck();
  }

  private report(): void {
    this.metrics.gridMaps.set(this.entries.size);
    this.metrics.gridBytes.set(this.bytes);
  }
}

/** The answer to a connection that may load no more maps for now. */
export const MAP_LOADS_SPENT = 'too many maps opened by this connection: retry later';
