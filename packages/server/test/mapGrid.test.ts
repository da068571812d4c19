import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type LWWMap, rootHashHex, type Value } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { MapGrid } from '../src/mapGrid.js';
import { ServerMetrics } from '../src/metrics.js';
import type { Storage, StoredRecord } from '../src/storage/storage.js';

/**
 * A storage of maps described in memory, whose loads can be held back, counting them. As a
 * storage decoding rows does, each load builds new records: none of their memory is shared.
 */
class TableStorage implements Pick<Storage, 'loadMap'> {
  readonly maps = new Map<string, { readonly count: number; readonly valueBytes: number }>();
  readonly loads: string[] = [];
  /** While set, loads wait for it. */
  gate: Promise<void> | undefined;

  /** Puts `count` records with values of about `valueBytes` each in `map`. */
  fill(map: string, count: number, valueBytes = 20): void {
    this.maps.set(map, { count, valueBytes });
  }

  async loadMap(map: string, onPage: (records: readonly StoredRecord[]) => void): Promise<void> {
    this.loads.push(map);
    await this.gate;
    const { count, valueBytes } = this.maps.get(map) ?? { count: 0, valueBytes: 0 };
    for (let start = 0; start < count; start += 100) {
      const page: StoredRecord[] = [];
      for (let index = start; index < Math.min(count, start + 100); index++) {
        page.push({
          key: `${map}/k${index}`,
          record: {
            value: { text: `${index}`.padEnd(valueBytes, '.') },
            timestamp: { millis: 1_000 + index, counter: 0, nodeId: `writer-${index % 2}` },
          },
        });
      }
      onPage(page);
    }
  }
}

/** A clock the test moves. */
function manualClock(start = 1_000_000) {
  let time = start;
  return {
    now: () => time,
    advance(ms: number) {
      time += ms;
    },
  };
}

/** Lets the checks the grid queued (after loads, merges, releases) run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function setup(maxBytes = Number.POSITIVE_INFINITY) {
  const storage = new TableStorage();
  const clock = manualClock();
  const metrics = new ServerMetrics();
  const grid = new MapGrid({ storage, metrics, nodeId: 'grid', now: clock.now, maxBytes });
  return { storage, clock, metrics, grid };
}

/** The grid's size once `maps` (one record each) are loaded, per map. */
async function perMapBytes(count: number): Promise<number> {
  const { storage, grid } = setup();
  for (let index = 0; index < count; index++) storage.fill(`m${index}`, 1);
  for (let index = 0; index < count; index++) await grid.get(`m${index}`);
  return grid.byteSize / count;
}

async function evictions(metrics: ServerMetrics, reason: 'budget' | 'idle'): Promise<number> {
  const { values } = await metrics.gridEvictions.get();
  return values.find((sample) => sample.labels.reason === reason)?.value ?? 0;
}

/** The collector, made callable in this process (as `node --expose-gc` would). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Heap and memory outside it (array buffers) in use after full collections. */
function usedBytes(gc: () => void): number {
  gc();
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

describe('MapGrid', () => {
  it('counts what merges add to a map it handed out, and nothing once every map is gone', async () => {
    const { storage, grid, clock, metrics } = setup();
    storage.fill('a', 10);
    storage.fill('b', 3);
    const a = await grid.get('a');
    const b = await grid.get('b');
    const overhead = grid.byteSize - a.byteSize - b.byteSize;
    expect(overhead).toBeGreaterThan(0);
    // As the write pipeline merges committed records: straight into the map.
    a.loadRecords(
      Array.from({ length: 500 }, (_, index) => [
        `new-${index}`,
        { value: 'x'.repeat(index), timestamp: { millis: 5_000, counter: index, nodeId: 'w' } },
      ]),
    );
    b.merge('b/k0', { value: null, timestamp: { millis: 9_000, counter: 0, nodeId: 'w' } });
    expect(grid.byteSize - a.byteSize - b.byteSize).toBe(overhead);
    expect(a.byteSize).toBeGreaterThan(500 * 250);
    await settle();
    expect((await metrics.gridBytes.get()).values[0]?.value).toBe(grid.byteSize);
    expect((await metrics.gridMaps.get()).values[0]?.value).toBe(2);

    clock.advance(10);
    expect(grid.evictIdle(5)).toBe(2);
    expect(grid.byteSize).toBe(0);
    expect(grid.loadedMaps()).toEqual([]);
    // What reaches a map after its eviction is not counted: the grid no longer holds it.
    a.merge('late', { value: 'late', timestamp: { millis: 9_500, counter: 0, nodeId: 'w' } });
    expect(grid.byteSize).toBe(0);
    await settle();
    expect((await metrics.gridBytes.get()).values[0]?.value).toBe(0);
    expect((await metrics.gridMaps.get()).values[0]?.value).toBe(0);
  });

  it('holds a map of one record in under 2 KB of heap, about what it estimates', async () => {
    const gc = collector();
    const count = 10_000;
    const { storage, grid } = setup();
    for (let index = 0; index < count; index++) storage.fill(`m${index}`, 1);
    await grid.get('warm-up');
    const before = usedBytes(gc);
    for (let index = 0; index < count; index++) await grid.get(`m${index}`);
    const measured = (usedBytes(gc) - before) / count;
    const estimated = grid.byteSize / count;
    expect(measured).toBeLessThan(2_048);
    expect(estimated / measured).toBeGreaterThan(0.7);
    expect(estimated / measured).toBeLessThan(1.3);
  });

  it('evicts the least recently used idle maps until it is within its budget', async () => {
    const mapBytes = await perMapBytes(8);
    // Room for four maps of one record, not five.
    const { storage, grid, clock, metrics } = setup(Math.floor(mapBytes * 4.5));
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f']) storage.fill(name, 1);
    for (const name of ['a', 'b', 'c', 'd']) {
      await grid.get(name);
      clock.advance(1);
    }
    await grid.get('a'); // now the most recently used
    clock.advance(1);
    await grid.get('e');
    await settle();
    expect(grid.loadedMaps().sort()).toEqual(['a', 'c', 'd', 'e']);
    await grid.get('f');
    await settle();
    expect(grid.loadedMaps().sort()).toEqual(['a', 'd', 'e', 'f']);
    expect(grid.byteSize).toBeLessThanOrEqual(grid.maxBytes);
    expect(await evictions(metrics, 'budget')).toBe(2);
  });

  it('never evicts a map something holds, nor one still loading', async () => {
    const mapBytes = await perMapBytes(8);
    const { storage, grid } = setup(Math.floor(mapBytes * 2.5));
    for (const name of ['held', 'loading', 'x', 'y', 'z']) storage.fill(name, 1);
    const release = grid.hold('held');
    await grid.get('held'); // the least recently used of all
    let open: () => void = () => {};
    storage.gate = new Promise((resolve) => {
      open = resolve;
    });
    const loading = grid.get('loading');
    storage.gate = undefined;
    for (const name of ['x', 'y', 'z']) await grid.get(name);
    await settle();
    // Room for two and a half maps: the held and the loading one stay; idle ones go as they come.
    expect(grid.loadedMaps().sort()).toEqual(['held', 'loading']);
    open();
    await loading;
    await settle();
    expect(grid.isLoaded('held')).toBe(true);
    expect(grid.byteSize).toBeLessThanOrEqual(grid.maxBytes);

    release();
    release(); // a second call does nothing
    expect(grid.isHeld('held')).toBe(false);
    for (const name of ['x', 'y']) await grid.get(name);
    await settle();
    expect(grid.isLoaded('held')).toBe(false);
  });

  it('loads an evicted map again, whole, on its next use', async () => {
    const mapBytes = await perMapBytes(8);
    const { storage, grid } = setup(Math.floor(mapBytes * 30));
    storage.fill('again', 20);
    for (let index = 0; index < 40; index++) storage.fill(`other-${index}`, 1);
    const first = await grid.get('again');
    for (let index = 0; index < 40; index++) await grid.get(`other-${index}`);
    await settle();
    expect(grid.isLoaded('again')).toBe(false);
    const second: LWWMap<Value> = await grid.get('again');
    expect(second).not.toBe(first);
    expect(second.recordCount).toBe(20);
    expect(rootHashHex(second.merkleTree)).toBe(rootHashHex(first.merkleTree));
    expect(storage.loads.filter((map) => map === 'again')).toHaveLength(2);
  });

  it('tells what changed since a cursor of this load of a map, and nothing of another load or grid', async () => {
    const { storage, grid } = setup();
    storage.fill('logged', 3);
    expect(grid.cursorOf('logged')).toBeUndefined();
    await grid.get('logged');
    const start = grid.cursorOf('logged')!;
    expect(grid.changedSince('logged', start)).toEqual([]);
    grid.logChanges('logged', ['a', 'b']);
    grid.logChanges('logged', ['a']);
    grid.logChanges('unloaded', ['x']);
    const moved = grid.cursorOf('logged')!;
    expect(new Set(grid.changedSince('logged', start))).toEqual(new Set(['a', 'b']));
    expect(grid.changedSince('logged', moved)).toEqual([]);
    expect(grid.changedSince('other', moved)).toBeUndefined();
    // Another grid (another process) gave none of these cursors.
    const elsewhere = setup();
    elsewhere.storage.fill('logged', 3);
    await elsewhere.grid.get('logged');
    expect(elsewhere.grid.changedSince('logged', start)).toBeUndefined();
    // Loaded again, the map's log starts anew: older cursors are of another load.
    grid.clear();
    await grid.get('logged');
    expect(grid.changedSince('logged', start)).toBeUndefined();
    expect(grid.changedSince('logged', grid.cursorOf('logged')!)).toEqual([]);
  });

  it('serves a map larger than its whole budget, keeps it while held, and evicts it first once idle', async () => {
    const { storage, grid, metrics } = setup(64 * 1024);
    storage.fill('huge', 2_000, 100);
    storage.fill('small', 1);
    storage.fill('idle', 1);
    await grid.get('idle');
    const releaseSmall = grid.hold('small');
    await grid.get('small');
    const releaseHuge = grid.hold('huge');
    const huge = await grid.get('huge');
    await settle();
    expect(huge.recordCount).toBe(2_000);
    expect(grid.byteSize).toBeGreaterThan(grid.maxBytes);
    // Nothing idle can stay while the grid is over its budget.
    expect(grid.loadedMaps().sort()).toEqual(['huge', 'small']);

    releaseSmall();
    releaseHuge();
    await settle();
    // The huge map goes first, though it was used last: the small one can stay.
    expect(grid.loadedMaps()).toEqual(['small']);
    expect(grid.byteSize).toBeLessThanOrEqual(grid.maxBytes);
    expect(await evictions(metrics, 'budget')).toBe(2);
  });

  it('drops maps unused for the idle time, least recently used first, never held ones', async () => {
    const { storage, grid, clock, metrics } = setup();
    for (const name of ['old', 'held', 'recent']) storage.fill(name, 1);
    await grid.get('old');
    await grid.get('held');
    const release = grid.hold('held');
    clock.advance(1_000);
    await grid.get('recent');
    clock.advance(500);
    expect(grid.evictIdle(1_000)).toBe(1);
    expect(grid.loadedMaps().sort()).toEqual(['held', 'recent']);
    release(); // released now: used now
    clock.advance(999);
    expect(grid.evictIdle(1_000)).toBe(1);
    expect(grid.loadedMaps()).toEqual(['held']);
    expect(await evictions(metrics, 'idle')).toBe(2);
  });

  it('forgets a map whose load failed, and loads it again on the next use', async () => {
    const { storage, grid } = setup();
    storage.fill('flaky', 2);
    let fail = true;
    const loadMap = storage.loadMap.bind(storage);
    storage.loadMap = async (map, onPage) => {
      if (fail) throw new Error('database unavailable');
      return loadMap(map, onPage);
    };
    await expect(grid.get('flaky')).rejects.toThrow('database unavailable');
    expect(grid.isLoaded('flaky')).toBe(false);
    expect(grid.byteSize).toBe(0);
    fail = false;
    expect((await grid.get('flaky')).recordCount).toBe(2);
  });
});
