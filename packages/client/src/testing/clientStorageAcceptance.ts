import { EMPTY_WRITE_TIMESTAMP, type LWWRecord, type Value, withFieldWrites } from '@topgun/core';
import type fastCheck from 'fast-check';
import type { Arbitrary } from 'fast-check';
import type { ExpectStatic, SuiteAPI, TestAPI } from 'vitest';
import type {
  ClientStorage,
  OutboxEntry,
  PersistedRecord,
  PersistedState,
  StorageBatch,
} from '../storage/clientStorage.js';

/**
 * The test framework functions the suite runs with: vitest's (`import * as vitest from
 * 'vitest'`) or any with the same shape, and fast-check (`fc`) for its random test. Types
 * only: this package loads neither.
 */
export interface ClientStorageTestApi {
  readonly describe: SuiteAPI;
  readonly it: TestAPI;
  readonly expect: ExpectStatic;
  readonly fc: typeof fastCheck;
}

const record = (value: Value | null, millis: number, ttlMs?: number): LWWRecord<Value> => ({
  value,
  timestamp: { millis, counter: 1, nodeId: 'n-tab' },
  ...(ttlMs === undefined ? {} : { ttlMs }),
});

const recordId = ({ map, key }: { map: string; key: string }) => `${map}\u0000${key}`;

/** Random batches for the model test. */
function randomBatches(fc: typeof fastCheck) {
  // Map names that sort next to each other, prefix one another or are empty: where a layout
  // keyed by map could mix up two maps.
  const mapName = fc.constantFrom('todos', 'a', 'ab', 'a\u0000b', '', 'ü');
  const recordKey = fc.oneof(fc.constantFrom('k', 'k2', ''), fc.string({ maxLength: 4 }));
  const persistedRecord: Arbitrary<PersistedRecord> = fc.record({
    map: mapName,
    key: recordKey,
    record: fc
      .record({
        value: fc.oneof(
          fc.constant(null),
          fc.string(),
          fc.integer(),
          fc.record({ title: fc.string(), tags: fc.array(fc.string(), { maxLength: 2 }) }),
        ),
        ttlMs: fc.option(fc.integer({ min: 1, max: 1e6 }), { nil: undefined }),
        millis: fc.nat(),
      })
      .map(({ value, ttlMs, millis }) => record(value, millis, ttlMs)),
  });

  /** Batches; a key may be both removed and written in one (the write wins). */
  const batch: Arbitrary<StorageBatch> = fc.record({
    records: fc.uniqueArray(persistedRecord, { maxLength: 8, selector: recordId }),
    removeRecords: fc.array(fc.record({ map: mapName, key: recordKey }), { maxLength: 3 }),
    outboxAdd: fc.array(
      fc
        .tuple(fc.integer({ min: 1, max: 20 }), persistedRecord)
        .map(([counter, stored]): OutboxEntry => ({ id: `n-tab/${counter}`, ...stored })),
      { maxLength: 3 },
    ),
    outboxRemove: fc.array(
      fc.integer({ min: 1, max: 20 }).map((n) => `n-tab/${n}`),
      {
        maxLength: 3,
      },
    ),
    meta: fc
      .array(fc.tuple(fc.constantFrom('lastSync:a', 'lastSync:b', 'x'), fc.option(fc.nat())), {
        maxLength: 2,
      })
      .map((entries) => new Map<string, unknown>(entries)),
  });
  return batch;
}

/** What loading after `batches` must give: the model every storage agrees with. */
function expectedState(batches: readonly StorageBatch[]) {
  const records = new Map<string, PersistedRecord>();
  const outbox = new Map<string, OutboxEntry>();
  const meta = new Map<string, unknown>();
  for (const { records: written, removeRecords, outboxAdd, outboxRemove, meta: named } of batches) {
    for (const removal of removeRecords ?? []) records.delete(recordId(removal));
    for (const stored of written ?? []) records.set(recordId(stored), stored);
    for (const entry of outboxAdd ?? []) outbox.set(entry.id, entry);
    for (const id of outboxRemove ?? []) outbox.delete(id);
    for (const [name, value] of named ?? []) meta.set(name, value);
  }
  return { records: [...records.values()], outbox: [...outbox.values()], meta };
}

const byRecordId = (records: readonly PersistedRecord[]) =>
  new Map(records.map((stored) => [recordId(stored), stored.record]));
const byOutboxId = (outbox: readonly OutboxEntry[]) =>
  new Map(outbox.map((entry) => [entry.id, entry]));

function expectState(
  expect: ExpectStatic,
  actual: PersistedState,
  expected: ReturnType<typeof expectedState>,
) {
  expect(actual.records).toHaveLength(expected.records.length);
  expect(byRecordId(actual.records)).toEqual(byRecordId(expected.records));
  expect(byOutboxId(actual.outbox)).toEqual(byOutboxId(expected.outbox));
  expect(new Map(actual.meta)).toEqual(expected.meta);
}

/**
 * The acceptance suite every client storage passes (`@topgun/client/testing`). `open` returns
 * a fresh storage, `reopen` the same data again, and `compact`, for a storage that reorganizes
 * what it stored, does so now (the random test calls it after every commit).
 * @example
 * import * as vitest from 'vitest';
 * import fc from 'fast-check';
 * runClientStorageTests('mine', async () => ({ storage, reopen }), { ...vitest, fc });
 */
export function runClientStorageTests(
  name: string,
  open: () => Promise<{
    storage: ClientStorage;
    reopen: () => Promise<ClientStorage>;
    compact?: () => Promise<unknown>;
  }>,
  test: ClientStorageTestApi,
): void {
  const { describe, it, expect, fc } = test;
  const batch = randomBatches(fc);
  describe(`client storage acceptance: ${name}`, () => {
    it('starts empty', async () => {
      const { storage } = await open();
      const state = await storage.load();
      expect(state.records).toEqual([]);
      expect(state.outbox).toEqual([]);
      expect(state.meta.size).toBe(0);
    });

    it('persists records, tombstones, TTLs, outbox entries and metadata, and loads them back', async () => {
      const { storage, reopen } = await open();
      const entry: OutboxEntry = {
        id: 'n-tab/1',
        map: 'todos',
        key: 'a',
        record: record({ title: 'A', tags: ['x'] }, 5),
      };
      await storage.commit({
        records: [
          { map: 'todos', key: 'a', record: entry.record },
          { map: 'todos', key: 'gone', record: record(null, 6) },
          { map: 'other', key: 'a', record: record('ttl', 7, 1000) },
        ],
        outboxAdd: [entry],
        meta: new Map([['lastSync:todos', 123]]),
      });
      await storage.close();
      const state = await (await reopen()).load();
      const records = new Map(
        state.records.map((stored) => [`${stored.map}/${stored.key}`, stored.record]),
      );
      expect(records.get('todos/a')).toEqual(entry.record);
      expect(records.get('todos/gone')).toEqual(record(null, 6));
      expect(records.get('other/a')).toEqual(record('ttl', 7, 1000));
      expect(state.outbox).toEqual([entry]);
      expect(state.meta.get('lastSync:todos')).toBe(123);
    });

    it('persists records with field writes, and field writes alone, and loads them back', async () => {
      const { storage, reopen } = await open();
      const at = (millis: number) => ({ millis, counter: 0, nodeId: 'n-tab' });
      const edited = withFieldWrites(record({ title: 'A', done: false }, 5, 60_000), {
        done: { timestamp: at(6), value: true },
        title: { timestamp: at(7) },
      });
      const hidden = withFieldWrites(record(null, 5), { done: { timestamp: at(8), value: 1 } });
      const patch = withFieldWrites<Value>(
        { value: null, timestamp: EMPTY_WRITE_TIMESTAMP },
        { tag: { timestamp: at(9), value: 'x' } },
      );
      const entry: OutboxEntry = { id: 'n-tab/3', map: 'todos', key: 'p', record: patch };
      await storage.commit({
        records: [
          { map: 'todos', key: 'edited', record: edited },
          { map: 'todos', key: 'hidden', record: hidden },
          { map: 'todos', key: 'p', record: patch },
        ],
        outboxAdd: [entry],
      });
      await storage.close();
      const state = await (await reopen()).load();
      const records = new Map(state.records.map((stored) => [stored.key, stored.record]));
      expect(records.get('edited')).toEqual(edited);
      expect(records.get('edited')!.value).toEqual({ done: true });
      expect(records.get('hidden')).toEqual(hidden);
      expect(records.get('p')).toEqual(patch);
      expect(state.outbox).toEqual([entry]);
    });

    it('removes records and outbox entries', async () => {
      const { storage } = await open();
      const entry: OutboxEntry = { id: 'n-tab/2', map: 'm', key: 'k', record: record(1, 1) };
      await storage.commit({
        records: [{ map: 'm', key: 'k', record: entry.record }],
        outboxAdd: [entry],
      });
      await storage.commit({ removeRecords: [{ map: 'm', key: 'k' }], outboxRemove: ['n-tab/2'] });
      const state = await storage.load();
      expect(state.records).toEqual([]);
      expect(state.outbox).toEqual([]);
    });

    it('overwrites a record with the last version committed', async () => {
      const { storage } = await open();
      await storage.commit({ records: [{ map: 'm', key: 'k', record: record(1, 1) }] });
      await storage.commit({ records: [{ map: 'm', key: 'k', record: record(2, 2) }] });
      expect((await storage.load()).records).toEqual([
        { map: 'm', key: 'k', record: record(2, 2) },
      ]);
    });

    it('loads what a model of the batches holds, across maps that sort together (random batches)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(batch, { minLength: 1, maxLength: 8 }), async (batches) => {
          const { storage, reopen, compact } = await open();
          await storage.load();
          for (const each of batches) {
            await storage.commit(each);
            await compact?.();
          }
          const expected = expectedState(batches);
          expectState(expect, await storage.load(), expected);
          await storage.close();
          const reopened = await reopen();
          expectState(expect, await reopened.load(), expected);
          await reopened.close();
        }),
        { numRuns: 40 },
      );
    });
  });
}
