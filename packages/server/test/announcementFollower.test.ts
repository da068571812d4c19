import { HLC, LWWMap, type LWWRecord, type Value, withFieldWrites } from '@topgun/core';
import type { FastifyBaseLogger } from 'fastify';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AnnouncementFollower, NOT_FOLLOWING } from '../src/announcementFollower.js';
import type { ChangeFanout, CommittedChange } from '../src/changeFanout.js';
import type { LiveQueryHub } from '../src/liveQueryHub.js';
import type { MapGrid } from '../src/mapGrid.js';
import { ServerMetrics } from '../src/metrics.js';
import type {
  AnnouncedRecord,
  AnnouncementChannel,
  AnnouncementHandlers,
  Storage,
  StoredRecord,
} from '../src/storage/storage.js';

/** A channel the test drives: it sees markers sent, and delivers what the test says. */
class FakeChannel implements AnnouncementChannel {
  readonly origin = 'self';
  handlers: AnnouncementHandlers | undefined;
  marks: Array<{ mark: number; sentAt: number }> = [];
  listens = 0;
  failListen = false;

  async listen(handlers: AnnouncementHandlers): Promise<void> {
    this.listens++;
    if (this.failListen) throw new Error('refused');
    this.handlers = handlers;
  }
  async mark(mark: number, sentAt: number): Promise<void> {
    this.marks.push({ mark, sentAt });
  }
  async close(): Promise<void> {
    this.handlers = undefined;
  }
  /** Delivers the oldest marker sent back. */
  returnMark(): void {
    const { mark, sentAt } = this.marks.shift()!;
    this.handlers!.onMark(mark, sentAt);
  }
  announce(records: AnnouncedRecord[], sentAt = 0): void {
    this.handlers!.onRecords({ origin: 'other', sentAt, records });
  }
}

const record = (value: Value, millis: number): LWWRecord<Value> => ({
  value,
  timestamp: { millis, counter: 0, nodeId: 'other' },
});
const full = (map: string, key: string, value: Value, millis: number): AnnouncedRecord => ({
  map,
  key,
  stored: { key, record: record(value, millis) },
});
const silent = { warn() {}, info() {} } as unknown as FastifyBaseLogger;
const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('following other processes’ commits', () => {
  let clock: number;
  let channel: FakeChannel;
  let maps: Map<string, LWWMap<Value>>;
  let loading: Map<string, Promise<LWWMap<Value>>>;
  let published: Array<{ map: string; keys: string[] }>;
  let fed: Array<{ map: string; keys: string[] }>;
  let readBack: Array<{ map: string; keys: readonly string[] }>;
  let stored: Map<string, StoredRecord>;
  let lost: number;
  let restored: number;
  let follower: AnnouncementFollower;

  beforeEach(async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    clock = 1_000_000;
    channel = new FakeChannel();
    maps = new Map();
    loading = new Map();
    published = [];
    fed = [];
    readBack = [];
    stored = new Map();
    lost = 0;
    restored = 0;
    const grid = {
      isLoaded: (map: string) => maps.has(map) || loading.has(map),
      ifLoaded: async (map: string) => maps.get(map) ?? loading.get(map),
      hold: () => () => {},
    } as unknown as MapGrid;
    const keysOf = (changes: readonly CommittedChange[]) => changes.map((change) => change.key);
    follower = new AnnouncementFollower({
      channel,
      storage: {
        getRecords: async (map: string, keys: readonly string[]) => {
          readBack.push({ map, keys });
          return keys.flatMap((key) => stored.get(key) ?? []);
        },
      } as unknown as Storage,
      grid,
      fanout: {
        publish: (map: string, changes: readonly CommittedChange[]) =>
          published.push({ map, keys: keysOf(changes) }),
      } as unknown as ChangeFanout,
      liveQueries: {
        onChanges: async (map: string, changes: readonly CommittedChange[]) => {
          fed.push({ map, keys: keysOf(changes) });
        },
      } as unknown as LiveQueryHub,
      metrics: new ServerMetrics(),
      logger: silent,
      now: () => clock,
      heartbeatMs: 1_000,
      maxLagMs: 5_000,
      onLost: () => lost++,
      onRestored: () => restored++,
    });
    await follower.start();
  });
  afterEach(() => {
    follower.close();
    vi.useRealTimers();
  });

  const loaded = (name: string) => {
    const map = new LWWMap<Value>(
      new HLC({ nodeId: 'grid', maxDriftMs: Number.POSITIVE_INFINITY }),
    );
    maps.set(name, map);
    return map;
  };

  it('merges announced records into loaded maps, fans out what was new, ignores other maps', async () => {
    const todos = loaded('todos');
    todos.loadRecords([['a', record('old', 5)]]);
    channel.announce([
      full('todos', 'a', 'new', 10),
      full('todos', 'b', 'b', 10),
      full('elsewhere', 'x', 1, 10),
    ]);
    channel.announce([full('todos', 'a', 'stale', 7)]);
    await flush();
    expect(todos.get('a')).toBe('new');
    expect(todos.get('b')).toBe('b');
    expect(published).toEqual([{ map: 'todos', keys: ['a', 'b'] }]);
    expect(fed).toEqual(published);
    expect(maps.has('elsewhere')).toBe(false);
  });

  it('reads back every record announced by name, even one whose latest write the map holds', async () => {
    const docs = loaded('docs');
    // The map holds the latest write (a field write at 30) of `held`, but not the whole write
    // that replaced its older one at 25: with field writes, the latest write says too little.
    const base = { value: { a: 1 }, timestamp: { millis: 20, counter: 0, nodeId: 'other' } };
    const field = { timestamp: { millis: 30, counter: 0, nodeId: 'other' }, value: 2 };
    docs.loadRecords([['held', withFieldWrites(base, { b: field })]]);
    const replaced = { value: { a: 9 }, timestamp: { millis: 25, counter: 0, nodeId: 'other' } };
    stored.set('held', { key: 'held', record: withFieldWrites(replaced, { b: field }) });
    stored.set('big', { key: 'big', record: record('large value', 20) });
    channel.announce([
      { map: 'docs', key: 'big', timestamp: '0000000000140000other' },
      { map: 'docs', key: 'held', timestamp: '00000000001e0000other' },
    ]);
    await flush();
    expect(readBack).toEqual([{ map: 'docs', keys: ['big', 'held'] }]);
    expect(docs.get('big')).toBe('large value');
    expect(docs.get('held')).toEqual({ a: 9, b: 2 });
  });

  it('merges into a map that is loading once it has loaded', async () => {
    let finish!: (map: LWWMap<Value>) => void;
    loading.set('slow', new Promise((resolve) => (finish = resolve)));
    channel.announce([full('slow', 'k', 'v', 10)]);
    await flush();
    const map = new LWWMap<Value>(
      new HLC({ nodeId: 'grid', maxDriftMs: Number.POSITIVE_INFINITY }),
    );
    finish(map);
    await flush();
    expect(map.get('k')).toBe('v');
  });

  it('answers a read once a marker sent after it came back and the map caught up', async () => {
    loaded('todos');
    let fresh = false;
    void follower.fresh('todos').then(() => (fresh = true));
    expect(channel.marks).toHaveLength(1);
    // Reads arriving while that marker is in flight need the next one.
    let later = false;
    void follower.fresh('todos').then(() => (later = true));
    expect(channel.marks).toHaveLength(1);
    channel.returnMark();
    await flush();
    expect([fresh, later]).toEqual([true, false]);
    expect(channel.marks).toHaveLength(1);
    channel.returnMark();
    await flush();
    expect(later).toBe(true);
  });

  it('answers a read of a map not in memory at once: its load will read every commit', async () => {
    await expect(follower.fresh('cold')).resolves.toBeUndefined();
    expect(channel.marks).toHaveLength(0);
    // Loading (not yet loaded) counts as in memory: the load may have read before a commit.
    loading.set('warming', new Promise(() => {}));
    const warming = follower.fresh('warming');
    expect(channel.marks).toHaveLength(1);
    channel.returnMark();
    await expect(warming).resolves.toBeUndefined();
  });

  it('counts the channel lost when a marker does not come back in time, and recovers', async () => {
    loaded('todos');
    const read = follower.fresh('todos');
    const failed = expect(read).rejects.toThrow(NOT_FOLLOWING);
    clock += 5_001;
    await vi.advanceTimersByTimeAsync(1_000);
    await failed;
    expect(lost).toBe(1);
    expect(follower.isHealthy).toBe(true); // listening again at once
    expect(restored).toBe(2); // at the start, and after listening again
    expect(channel.listens).toBe(2);
  });

  it('serves no read while it cannot listen, and retries until it can', async () => {
    channel.failListen = true;
    channel.handlers!.onLost(new Error('terminated'));
    await flush();
    expect(lost).toBe(1);
    expect(follower.isHealthy).toBe(false);
    await expect(follower.fresh('todos')).rejects.toThrow(NOT_FOLLOWING);
    channel.failListen = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(follower.isHealthy).toBe(true);
  });
});
