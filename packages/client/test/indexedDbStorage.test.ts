import 'fake-indexeddb/auto';
import type { LWWRecord, Value } from '@topgun/core';
import { createStore, keys, set, type UseStore } from 'idb-keyval';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClientStorage,
  createIndexedDbStorage,
  type OutboxEntry,
  type PersistedRecord,
  type PersistedState,
} from '../src/index.js';
import { CLIENT_DATABASE_VERSION, openClientDatabase } from '../src/storage/clientDatabase.js';
import { requestResult } from '../src/storage/idbRequests.js';
import { createLegacyBucketStorage } from './legacyBucketStorage.js';
import { type ObjectStoreWrites, watchObjectStoreWrites } from './objectStoreWrites.js';

/** Closes an idb-keyval store's connection, which would otherwise hold back the upgrade. */
const closeStore = (store: UseStore) =>
  store('readonly', async (objects) => objects.transaction.db.close());

let database = 0;
const freshName = () => `idb-storage-${database++}`;

const record = (value: Value | null, millis: number, ttlMs?: number): LWWRecord<Value> => ({
  value,
  timestamp: { millis, counter: millis % 7, nodeId: 'n-tab' },
  ...(ttlMs === undefined ? {} : { ttlMs }),
});

const todo = (index: number): PersistedRecord => ({
  map: 'todos',
  key: `todo-${index}`,
  record: record({ title: `Todo ${index}`, done: index % 2 === 0, tags: ['a', 'b'] }, index + 1),
});

/** Fills `map` with `count` records in sync-sized chunks. */
async function fill(storage: ClientStorage, count: number): Promise<void> {
  for (let start = 0; start < count; start += 1000) {
    const records = [];
    for (let index = start; index < Math.min(count, start + 1000); index++)
      records.push(todo(index));
    await storage.commit({ records });
  }
}

const sortRecords = (records: readonly PersistedRecord[]) =>
  [...records].sort((a, b) =>
    a.map === b.map ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : a.map < b.map ? -1 : 1,
  );

let watching: ObjectStoreWrites | undefined;
afterEach(() => {
  watching?.stop();
  watching = undefined;
});

/** What committing one record and its outbox entry writes into a map of `size` records. */
async function oneWriteInto(storage: ClientStorage, size: number): Promise<ObjectStoreWrites> {
  await fill(storage, size);
  watching = watchObjectStoreWrites();
  const written = { map: 'todos', key: 'written', record: record({ title: 'Written' }, 1) };
  await storage.commit({
    records: [written],
    outboxAdd: [{ id: 'n-tab/1', ...written }],
  });
  watching.stop();
  return watching;
}

describe('IndexedDB storage: write cost', () => {
  it('writes one record entry and one outbox entry per local write, whatever the map holds', async () => {
    const small = await oneWriteInto(createIndexedDbStorage(freshName()), 10);
    const large = await oneWriteInto(createIndexedDbStorage(freshName()), 10_000);
    for (const writes of [small, large]) {
      expect(Object.fromEntries(writes.puts)).toEqual({ segments: 1, outbox: 1 });
      expect(writes.deletes.size).toBe(0);
      expect(writes.reads).toBe(0);
    }
    expect(large.bytes).toBe(small.bytes);
  });

  it('writes one segment of the chunk size for a chunk of synced records, whatever the map holds', async () => {
    const chunk = Array.from({ length: 1000 }, (_, index) => todo(5_000 + 2 * index));
    const measure = async (size: number) => {
      const storage = createIndexedDbStorage(freshName(), { compactAfterIdleMs: Infinity });
      await fill(storage, size);
      watching = watchObjectStoreWrites();
      await storage.commit({ records: chunk, removeRecords: [{ map: 'todos', key: 'todo-1' }] });
      watching.stop();
      return watching;
    };
    const small = await measure(10);
    const large = await measure(20_000);
    for (const writes of [small, large]) {
      expect(Object.fromEntries(writes.puts)).toEqual({ segments: 1 });
      expect(writes.deletes.size).toBe(0);
      expect(writes.reads).toBe(0);
    }
    expect(large.bytes).toBe(small.bytes);
    // About the records' own size: a few dozen bytes each, not the map's.
    expect(large.bytes).toBeLessThan(1000 * 80);
  });

  it('sees the bucket layout rewrite its buckets (the measure can fail)', async () => {
    const small = await oneWriteInto(createLegacyBucketStorage(freshName()), 10);
    const large = await oneWriteInto(createLegacyBucketStorage(freshName()), 10_000);
    expect(large.bytes).toBeGreaterThan(20 * small.bytes);
    expect(large.reads).toBeGreaterThan(0);
  });
});

describe('IndexedDB storage: atomicity', () => {
  const write = todo(1);
  const entry: OutboxEntry = { id: 'n-tab/1', ...write };

  const expectNothingStored = async (storage: ClientStorage) => {
    const state = await storage.load();
    expect(state.records).toEqual([]);
    expect(state.outbox).toEqual([]);
    expect(state.meta.size).toBe(0);
  };

  it('stores neither the record nor its outbox entry when a later value cannot be stored', async () => {
    const storage = createIndexedDbStorage(freshName());
    const unstorable = new Map<string, unknown>([['broken', () => 1]]);
    await expect(
      storage.commit({ records: [write], outboxAdd: [entry], meta: unstorable }),
    ).rejects.toThrow();
    await expectNothingStored(storage);
    // The failure was this batch's, not the storage's: the retry of the write is stored.
    await storage.commit({ records: [write], outboxAdd: [entry] });
    const state = await storage.load();
    expect(state.records).toEqual([write]);
    expect(state.outbox).toEqual([entry]);
  });

  it('stores neither when the transaction aborts after every write was queued, as on a quota error', async () => {
    const storage = createIndexedDbStorage(freshName());
    watching = watchObjectStoreWrites();
    const put = IDBObjectStore.prototype.put;
    IDBObjectStore.prototype.put = function (this: IDBObjectStore, value, key) {
      const request = put.call(this, value, key);
      if (this.name === 'meta') this.transaction.abort();
      return request;
    };
    try {
      await expect(
        storage.commit({
          records: [write],
          outboxAdd: [entry],
          meta: new Map([['lastSync:todos', 1]]),
        }),
      ).rejects.toThrow();
    } finally {
      IDBObjectStore.prototype.put = put;
    }
    expect(Object.fromEntries(watching.puts)).toEqual({ segments: 1, outbox: 1, meta: 1 });
    await expectNothingStored(storage);
  });
});

describe('IndexedDB storage: connections', () => {
  it('lets a newer layout upgrade the database, then fails its commits instead of writing', async () => {
    const name = freshName();
    const storage = createIndexedDbStorage(name);
    await storage.commit({ records: [todo(1)] });
    // Would wait forever if the storage kept its connection open through the versionchange.
    const newer = await requestResult(indexedDB.open(name, CLIENT_DATABASE_VERSION + 1));
    newer.close();
    await expect(storage.commit({ records: [todo(2)] })).rejects.toThrow(/version/i);
  });
});

describe('IndexedDB storage: upgrade from the bucket layout (version 1)', () => {
  /** Writes a replica with today's bucket code, as a browser that ran it left it. */
  async function writeWithBuckets(name: string) {
    const legacy = createLegacyBucketStorage(name);
    const expectedRecords = new Map<string, PersistedRecord>();
    const put = (stored: PersistedRecord) =>
      expectedRecords.set(`${stored.map}\u0000${stored.key}`, stored);
    const outbox: OutboxEntry[] = [];
    for (let chunk = 0; chunk < 3; chunk++) {
      const records: PersistedRecord[] = [];
      for (let index = chunk * 1000; index < chunk * 1000 + 1000; index++) {
        const value = index % 10 === 0 ? null : { title: `Todo ${index}`, n: index };
        const stored = {
          map: index % 3 === 0 ? 'notes' : 'todos',
          key: `k${index}`,
          record: record(value, 1_000 + index, index % 7 === 0 ? 60_000 : undefined),
        };
        records.push(stored);
        put(stored);
      }
      const outboxAdd = records.slice(0, 4).map((stored, index) => ({
        id: `n-tab/${chunk * 4 + index + 1}`,
        ...stored,
      }));
      outbox.push(...outboxAdd);
      await legacy.commit({
        records,
        outboxAdd,
        meta: new Map<string, unknown>([
          [`lastSync:chunk${chunk}`, 1_700_000_000_000 + chunk],
          ['lastSync:notes', chunk === 2 ? null : chunk],
          ['profile', { chunk, tags: ['x'] }],
        ]),
      });
    }
    // Removals and an overwrite, so buckets hold what a long-running replica holds.
    const removed = ['k1', 'k2', 'k4'].map((key) => ({ map: 'todos', key }));
    for (const { map, key } of removed) expectedRecords.delete(`${map}\u0000${key}`);
    const overwrite = { map: 'todos', key: 'k5', record: record('latest', 9_999, 5) };
    put(overwrite);
    await legacy.commit({
      records: [overwrite],
      removeRecords: removed,
      outboxRemove: ['n-tab/2', 'n-tab/7'],
    });
    const before = await legacy.load();
    await legacy.close();
    const expectedOutbox = outbox.filter(({ id }) => id !== 'n-tab/2' && id !== 'n-tab/7');
    return { before, expectedRecords: [...expectedRecords.values()], expectedOutbox };
  }

  const expectSameState = (actual: PersistedState, expected: PersistedState) => {
    expect(sortRecords(actual.records)).toEqual(sortRecords(expected.records));
    expect(actual.outbox).toEqual(expected.outbox);
    expect(new Map(actual.meta)).toEqual(new Map(expected.meta));
  };

  it('keeps every record (tombstones, TTLs), outbox entry in order, and meta value', async () => {
    const name = freshName();
    const { before, expectedRecords, expectedOutbox } = await writeWithBuckets(name);
    // The bucket writer itself read back what was written, so the comparison below is fair.
    expect(sortRecords(before.records)).toEqual(sortRecords(expectedRecords));
    expect(before.outbox.map(({ id }) => id)).toContain('n-tab/10');
    expect(new Set(before.outbox.map(({ id }) => id))).toEqual(
      new Set(expectedOutbox.map(({ id }) => id)),
    );
    expect(before.records.some(({ record }) => record.value === null)).toBe(true);
    expect(before.records.some(({ record }) => record.ttlMs !== undefined)).toBe(true);
    expect(before.meta.get('lastSync:notes')).toBeNull();

    const upgraded = createIndexedDbStorage(name);
    expectSameState(await upgraded.load(), before);
    await upgraded.close();

    const opened = await openClientDatabase(name);
    expect(opened.version).toBe(2);
    expect([...opened.objectStoreNames].sort()).toEqual(['meta', 'outbox', 'segments']);
    opened.close();

    // Upgraded once: later opens read the same state and write as usual.
    const reopened = createIndexedDbStorage(name);
    expectSameState(await reopened.load(), before);
    await reopened.commit({ removeRecords: [{ map: 'todos', key: 'k5' }] });
    expect((await reopened.load()).records).toHaveLength(before.records.length - 1);
    await reopened.close();
  });

  it('leaves version 1 untouched when a bucket cannot be decoded', async () => {
    const name = freshName();
    await writeWithBuckets(name);
    const corrupt = createStore(name, 'topgun');
    await set(['b', 'todos', 3], new Uint8Array([0xc1]), corrupt);
    const entriesBefore = (await keys(corrupt)).length;
    await closeStore(corrupt);

    await expect(createIndexedDbStorage(name).load()).rejects.toThrow(/stored entries/);

    const after = createStore(name, 'topgun');
    expect((await keys(after)).length).toBe(entriesBefore);
    await closeStore(after);
    const database = await requestResult(indexedDB.open(name));
    expect(database.version).toBe(1);
    database.close();
  });
});

describe('IndexedDB storage: compaction of the record log', () => {
  /** How many segments the log of database `name` holds. */
  async function segmentCount(name: string): Promise<number> {
    const opened = await openClientDatabase(name);
    const count = await requestResult(
      opened.transaction('segments', 'readonly').objectStore('segments').count(),
    );
    opened.close();
    return count;
  }

  const chunkOf = (start: number, end: number, millis = 0): PersistedRecord[] =>
    Array.from({ length: end - start }, (_, index) => {
      const stored = todo(start + index);
      return millis === 0 ? stored : { ...stored, record: record({ n: millis }, millis) };
    });

  it('merges a log that is mostly garbage into one segment of the live records, dropping removals', async () => {
    const name = freshName();
    const storage = createIndexedDbStorage(name, { compactAfterIdleMs: Infinity });
    await storage.load();
    for (let start = 0; start < 3000; start += 300)
      await storage.commit({ records: chunkOf(start, start + 300) });
    // Nothing to reclaim yet: a log of live records only is left alone.
    expect(await storage.compact()).toBeUndefined();
    for (let round = 1; round <= 3; round++) {
      for (let start = 0; start < 3000; start += 500)
        await storage.commit({ records: chunkOf(start, start + 500, round) });
    }
    await storage.commit({
      removeRecords: Array.from({ length: 500 }, (_, index) => ({
        map: 'todos',
        key: `todo-${index}`,
      })),
    });
    const before = await storage.load();
    expect(await segmentCount(name)).toBe(10 + 18 + 1);
    const report = await storage.compact();
    expect(report).toEqual({ segments: 29, countBefore: 12_500, countAfter: 2_500, full: true });
    expect(await segmentCount(name)).toBe(1);
    const after = await storage.load();
    expect(sortRecords(after.records)).toEqual(sortRecords(before.records));
    expect(after.records.every(({ record }) => record.timestamp.millis === 3)).toBe(true);
    await storage.close();
  });

  it('merges a run of small segments, keeping removals that hide older records', async () => {
    const name = freshName();
    const storage = createIndexedDbStorage(name, { compactAfterIdleMs: Infinity });
    await storage.commit({ records: chunkOf(0, 10_000) });
    await storage.load();
    for (let index = 0; index < 130; index++) {
      await storage.commit({
        records: [{ ...todo(index), record: record('edited', 50_000 + index) }],
        removeRecords: [{ map: 'todos', key: `todo-${5_000 + index}` }],
      });
    }
    const before = await storage.load();
    expect(before.records).toHaveLength(10_000 - 130);
    const report = await storage.compact();
    expect(report).toEqual({ segments: 130, countBefore: 260, countAfter: 260, full: false });
    expect(await segmentCount(name)).toBe(2);
    const after = await storage.load();
    expect(sortRecords(after.records)).toEqual(sortRecords(before.records));
    await storage.close();
  });

  it('leaves a first sync of large segments as written, and merges once the replica says most of it is garbage', async () => {
    const name = freshName();
    const storage = createIndexedDbStorage(name, { compactAfterIdleMs: Infinity });
    await storage.load();
    for (let start = 0; start < 20_000; start += 1000)
      await storage.commit({ records: chunkOf(start, start + 1000), replicaRecords: start + 1000 });
    expect(await storage.compact()).toBeUndefined();
    // The same records again, twice: the replica still holds 20,000.
    for (let round = 1; round <= 2; round++) {
      for (let start = 0; start < 20_000; start += 1000) {
        await storage.commit({
          records: chunkOf(start, start + 1000, round),
          replicaRecords: 20_000,
        });
      }
    }
    expect(await storage.compact()).toEqual({
      segments: 60,
      countBefore: 60_000,
      countAfter: 20_000,
      full: true,
    });
    await storage.close();
  });

  it('compacts by itself once commits stop', async () => {
    const name = freshName();
    const storage = createIndexedDbStorage(name, {
      compactAfterIdleMs: 20,
      compaction: { garbageSlack: 10 },
    });
    await storage.load();
    for (let round = 0; round < 3; round++)
      await storage.commit({ records: chunkOf(0, 20, round + 1) });
    expect(await segmentCount(name)).toBe(3);
    await expect.poll(() => segmentCount(name)).toBe(1);
    expect((await storage.load()).records).toHaveLength(20);
    await storage.close();
  });

  it('writes nothing when another tab compacted the same segments meanwhile', async () => {
    const name = freshName();
    const options = { compactAfterIdleMs: Infinity, compaction: { garbageSlack: 0 } };
    const first = createIndexedDbStorage(name, options);
    const second = createIndexedDbStorage(name, options);
    await first.commit({ records: chunkOf(0, 200) });
    await first.commit({ records: chunkOf(0, 200, 7) });
    await first.commit({ records: chunkOf(100, 200, 8) });
    const before = await first.load();
    await second.load();
    const [one, other] = await Promise.all([first.compact(), second.compact()]);
    // Both read the same three segments; the swap of one of them finds them gone.
    expect([one, other].filter((report) => report !== undefined)).toHaveLength(1);
    expect(await segmentCount(name)).toBe(1);
    expect(sortRecords((await first.load()).records)).toEqual(sortRecords(before.records));
    await Promise.all([first.close(), second.close()]);
  });

  it('leaves the log as it was when closed in the middle of a compaction', async () => {
    const name = freshName();
    const storage = createIndexedDbStorage(name, {
      compactAfterIdleMs: Infinity,
      compaction: { garbageSlack: 0 },
    });
    // Several parts per segment, so that the merge yields between them.
    await storage.commit({ records: chunkOf(0, 10_000) });
    await storage.commit({ records: chunkOf(0, 10_000, 2) });
    const before = await storage.load();
    const compaction = storage.compact();
    await new Promise((resolve) => setTimeout(resolve, 0));
    await storage.close();
    expect(await compaction).toBeUndefined();
    expect(await segmentCount(name)).toBe(2);
    const reopened = createIndexedDbStorage(name);
    expect(sortRecords((await reopened.load()).records)).toEqual(sortRecords(before.records));
    await reopened.close();
  });
});
