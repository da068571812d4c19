import { HLC, LWWMap, type Value } from '@topgun/core';
import type { ServerMetrics } from './metrics.js';
import type { Storage } from './storage/storage.js';

/**
 * The in-memory grid: every map in use, loaded from storage on first use and kept in memory
 * with its Merkle tree. Storage stays the authority: the grid only ever merges records that
 * were committed (or read back) from it.
 */
export class MapGrid {
  private readonly maps = new Map<string, Promise<LWWMap<Value>>>();
  // Merges of committed records: the drift bound was enforced when they were written.
  private readonly hlc: HLC;

  constructor(
    private readonly storage: Storage,
    private readonly metrics: ServerMetrics,
    nodeId: string,
    now: () => number,
  ) {
    this.hlc = new HLC({ nodeId, now, maxDriftMs: Number.POSITIVE_INFINITY });
  }

  /** The loaded map (loading it first if needed). A failed load is retried on the next call. */
  get(map: string): Promise<LWWMap<Value>> {
    let loading = this.maps.get(map);
    if (loading === undefined) {
      loading = this.load(map);
      this.maps.set(map, loading);
      loading.catch(() => this.maps.delete(map));
    }
    return loading;
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
        data.loadRecords(page.map(({ key, record }) => [key, record] as const)),
      ),
    );
    return data;
  }
}
