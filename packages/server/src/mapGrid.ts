import { HLC, LWWMap, type LWWRecord, type Value } from '@topgun/core';
import type { ServerMetrics } from './metrics.js';
import type { Storage } from './storage/storage.js';

/**
 * A record as the grid keeps it: a tombstone of a map with record-level read rules keeps the
 * value it deleted (`prior`, never sent to clients), to decide who may see the deletion.
 */
export interface GridRecord extends LWWRecord<Value> {
  readonly prior?: Value;
}

/**
 * The in-memory grid: every map in use, loaded from storage on first use and kept in memory
 * with its Merkle tree. Storage stays the authority: the grid only ever merges records that
 * were committed (or read back) from it.
 */
export class MapGrid {
  private readonly maps = new Map<string, Promise<LWWMap<Value>>>();
  private readonly lastUsed = new Map<string, number>();
  // Merges of committed records: the drift bound was enforced when they were written.
  private readonly hlc: HLC;

  constructor(
    private readonly storage: Storage,
    private readonly metrics: ServerMetrics,
    nodeId: string,
    private readonly now: () => number,
  ) {
    this.hlc = new HLC({ nodeId, now, maxDriftMs: Number.POSITIVE_INFINITY });
  }

  /** The loaded map (loading it first if needed). A failed load is retried on the next call. */
  get(map: string): Promise<LWWMap<Value>> {
    this.lastUsed.set(map, this.now());
    let loading = this.maps.get(map);
    if (loading === undefined) {
      loading = this.load(map);
      this.maps.set(map, loading);
      loading.catch(() => {
        if (this.maps.get(map) === loading) this.maps.delete(map);
      });
      this.metrics.loadedMaps.set(this.maps.size);
    }
    return loading;
  }

  /** Whether the map is loaded (or loading). */
  isLoaded(map: string): boolean {
    return this.maps.has(map);
  }

  /**
   * The map, as {@link get}, if it is in memory or `mayLoad()` lets a connection load it (its
   * map-load budget); `undefined`, at once, otherwise.
   */
  getWithin(map: string, mayLoad: () => boolean): Promise<LWWMap<Value>> | undefined {
    return this.maps.has(map) || mayLoad() ? this.get(map) : undefined;
  }

  /**
   * Drops maps unused for `idleMs` that nothing holds on to (`isPinned`): storage keeps
   * them, and the next use loads them again. Returns how many were dropped.
   */
  evictIdle(idleMs: number, isPinned: (map: string) => boolean): number {
    const cutoff = this.now() - idleMs;
    let evicted = 0;
    for (const [map, used] of this.lastUsed) {
      if (used >= cutoff || isPinned(map)) continue;
      this.maps.delete(map);
      this.lastUsed.delete(map);
      evicted++;
    }
    this.metrics.loadedMaps.set(this.maps.size);
    return evicted;
  }

  /** Drops every map: each loads again, from storage, on its next use. */
  clear(): void {
    this.maps.clear();
    this.lastUsed.clear();
    this.metrics.loadedMaps.set(0);
  }

  /** The map if it is already loaded. */
  async ifLoaded(map: string): Promise<LWWMap<Value> | undefined> {
    const loading = this.maps.get(map);
    return loading === undefined ? undefined : loading.catch(() => undefined);
  }

  /** Names of the loaded (or loading) maps. */
  loadedMaps(): string[] {
    return [...this.maps.keys()];
  }

  private async load(map: string): Promise<LWWMap<Value>> {
    const data = new LWWMap<Value>(this.hlc);
    await this.metrics.timeStorage('load_map', () =>
      // Stored records were validated when written and again when decoded: loaded in bulk.
      this.storage.loadMap(map, (page) =>
        data.loadRecords(
          page.map(({ key, record, prior }) =>
            prior === undefined ? ([key, record] as const) : ([key, { ...record, prior }] as const),
          ),
        ),
      ),
    );
    return data;
  }
}

/** The answer to a connection that may load no more maps for now. */
export const MAP_LOADS_SPENT = 'too many maps opened by this connection: retry later';
