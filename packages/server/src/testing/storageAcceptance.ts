import {
  compareRecords,
  EMPTY_WRITE_TIMESTAMP,
  encodeValue,
  type FieldWrite,
  formatTimestamp,
  type LWWRecord,
  mergeRecords,
  partitionOf,
  type Timestamp,
  type Value,
  withFieldWrites,
} from '@topgun/core';
import { MIGRATIONS } from '../storage/migrations.js';
import type { SqlDriver } from '../storage/sqlDriver.js';
import { MAX_FIELD_WRITES, SqlStorage } from '../storage/sqlStorage.js';
import type {
  AnnouncementChannel,
  RecordWrite,
  Storage,
  StoredRecord,
  WriteOutcome,
} from '../storage/storage.js';
import { recordVersion } from '../storage/storedFields.js';
import type { TestApi } from './testApi.js';

/** A storage under test, with the driver under it for inspection and cleanup. */
export interface StorageUnderTest {
  readonly driver: SqlDriver;
  /** Opens a second driver on the same database (another process, a restart). */
  readonly openAnother: () => Promise<SqlDriver>;
  /** The channel the storage announces its writes on, for a storage shared by processes. */
  readonly announcements?: AnnouncementChannel;
  readonly dispose: () => Promise<void>;
}

const at = (millis: number, counter = 0, nodeId = 'n1'): Timestamp => ({ millis, counter, nodeId });
const put = (
  map: string,
  key: string,
  value: Value | null,
  timestamp: Timestamp,
  ttlMs?: number,
): RecordWrite => {
  const record: LWWRecord<Value> =
    ttlMs === undefined ? { value, timestamp } : { value, timestamp, ttlMs };
  return { map, key, record };
};

/** An update: field writes alone (`undefined`: the field removed), all at `timestamp`. */
const patch = (
  map: string,
  key: string,
  fields: Readonly<Record<string, Value | undefined>>,
  timestamp: Timestamp,
): RecordWrite => {
  const writes: Record<string, FieldWrite> = {};
  for (const [name, value] of Object.entries(fields))
    writes[name] = value === undefined ? { timestamp } : { timestamp, value };
  return {
    map,
    key,
    record: withFieldWrites({ value: null, timestamp: EMPTY_WRITE_TIMESTAMP }, writes),
  };
};

/** The stored value of one key. */
async function storedValue(
  storage: Storage,
  map: string,
  key: string,
): Promise<Value | null | undefined> {
  return (await storage.getRecords(map, [key]))[0]?.record.value;
}

/** Which writes of a batch were stored. */
async function stored(storage: Storage, writes: RecordWrite[]): Promise<boolean[]> {
  return (await storage.writeRecords(writes)).map((outcome) => outcome.stored);
}

async function loadAll(storage: Storage, map: string): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  await storage.loadMap(map, (page) => records.push(...page));
  return records;
}

/**
 * The acceptance suite every storage passes (automerge-repo style): run it with a setup that
 * opens the implementation under test, on a driver of your own (`SqlDriver`) for instance.
 * `test` is the test framework's API (vitest's or jest's `describe`, `it`, `expect`, hooks),
 * so that this package does not depend on one.
 * @example
 * import * as vitest from 'vitest';
 * runStorageAcceptanceTests('my driver', async () => ({ driver, openAnother, dispose }), vitest);
 */
export function runStorageAcceptanceTests(
  name: string,
  setup: () => Promise<StorageUnderTest>,
  test: TestApi,
): void {
  const { describe, it, expect, beforeAll, afterAll, beforeEach } = test;
  describe(`storage acceptance: ${name}`, () => {
    let underTest: StorageUnderTest;
    let storage: Storage;

    beforeAll(async () => {
      underTest = await setup();
      storage = new SqlStorage(
        underTest.driver,
        underTest.announcements === undefined ? {} : { announcements: underTest.announcements },
      );
      await storage.migrate();
    });
    afterAll(async () => {
      await underTest.dispose();
    });
    beforeEach(async () => {
      await underTest.driver.query('TRUNCATE topgun_records, topgun_prunes, topgun_nodes');
    });

    it('migrates idempotently, also from several processes at once', async () => {
      const other = new SqlStorage(await underTest.openAnother());
      await Promise.all([storage.migrate(), other.migrate(), storage.migrate()]);
      const { rows } = await underTest.driver.query<{ version: number }>(
        'SELECT version FROM topgun_migrations',
      );
      expect(rows.map((row) => Number(row.version)).sort()).toEqual(
        MIGRATIONS.map((migration) => migration.version),
      );
      await other.close();
    });

    it('stores records and loads them back exactly', async () => {
      const values: Value[] = [
        { title: 'x', done: false, n: 1.5, tags: ['a', 'b'], nested: { deep: [null, { z: -3 }] } },
        'a string with \u0000 NUL and émojis 🚀',
        0,
        -(2 ** 40),
        true,
        [],
        {},
      ];
      const writes = values.map((value, index) =>
        put('todos', `k${index}`, value, at(1_000 + index)),
      );
      writes.push(put('todos', 'gone', null, at(5_000)));
      writes.push(put('todos', 'temp', 'x', at(6_000, 3, 'n2'), 60_000));
      writes.push(put('other', 'k0', 'elsewhere', at(1)));
      expect(await stored(storage, writes)).toEqual(writes.map(() => true));

      const loaded = await loadAll(storage, 'todos');
      expect(loaded.map((entry) => entry.key).sort()).toEqual([
        'gone',
        'k0',
        'k1',
        'k2',
        'k3',
        'k4',
        'k5',
        'k6',
        'temp',
      ]);
      const byKey = new Map(loaded.map((entry) => [entry.key, entry.record]));
      values.forEach((value, index) => {
        expect(byKey.get(`k${index}`)).toEqual({ value, timestamp: at(1_000 + index) });
      });
      expect(byKey.get('gone')).toEqual({ value: null, timestamp: at(5_000) });
      expect(byKey.get('temp')).toEqual({
        value: 'x',
        timestamp: at(6_000, 3, 'n2'),
        ttlMs: 60_000,
      });
    });

    it('stores keys and map names with characters that need quoting or escaping', async () => {
      const keys = [
        'with "quotes"',
        'back\\slash',
        '{braces},commas',
        'NULL',
        'null',
        ' spaced ',
        'tab\tnew\nline',
        'émoji 🚀 ∑',
        "single ' quote",
        'x'.repeat(1024),
      ];
      const writes = keys.map((key, index) =>
        put('odd/map:name@1', key, index, at(100 + index, 0)),
      );
      writes.push(put('odd/map:name@1', 'tomb', null, at(1, 0, 'node_with-dashes')));
      writes.push(put('odd/map:name@1', 'ttl', 'x', at(1), 2 ** 40));
      expect(await stored(storage, writes)).toEqual(writes.map(() => true));
      const loaded = new Map(
        (await loadAll(storage, 'odd/map:name@1')).map((entry) => [entry.key, entry.record]),
      );
      expect(loaded.size).toBe(writes.length);
      keys.forEach((key, index) => {
        expect(loaded.get(key)).toEqual({ value: index, timestamp: at(100 + index, 0) });
      });
      expect(loaded.get('tomb')).toEqual({ value: null, timestamp: at(1, 0, 'node_with-dashes') });
      expect(loaded.get('ttl')).toEqual({ value: 'x', timestamp: at(1), ttlMs: 2 ** 40 });
      expect(
        (await storage.getRecords('odd/map:name@1', [keys[0]!, keys[7]!])).map((e) => e.key).sort(),
      ).toEqual([keys[0], keys[7]].sort());
    });

    it('reports per write which were stored in a batch mixing new, older and equal writes', async () => {
      await storage.writeRecords([put('mix', 'a', 1, at(50)), put('mix', 'b', 1, at(50))]);
      const results = await stored(storage, [
        put('mix', 'a', 2, at(40)),
        put('mix', 'b', 2, at(60)),
        put('mix', 'c', 2, at(1)),
        put('mix', 'a', 3, at(50)),
        put('other-mix', 'a', 4, at(1)),
      ]);
      // The last write to `a` ties the stored one (same timestamp) and wins by its value's bytes.
      expect(results).toEqual([false, true, true, true, true]);
    });

    it('never stores a write over a newer one', async () => {
      expect(await stored(storage, [put('m', 'k', 'v2', at(200))])).toEqual([true]);
      expect(await stored(storage, [put('m', 'k', 'v1', at(100))])).toEqual([false]);
      expect(await stored(storage, [put('m', 'k', 'v2', at(200))])).toEqual([false]);
      expect(await stored(storage, [put('m', 'k', 'v3', at(200, 1))])).toEqual([true]);
      expect(await stored(storage, [put('m', 'k', null, at(200, 1, 'n2'))])).toEqual([true]);
      expect((await storage.getRecords('m', ['k']))[0]!.record).toEqual({
        value: null,
        timestamp: at(200, 1, 'n2'),
      });
    });

    it('keeps only the newest of several writes to one key in a batch', async () => {
      const results = await stored(storage, [
        put('m', 'k', 'old', at(1)),
        put('m', 'k', 'newest', at(3)),
        put('m', 'k', 'middle', at(2)),
        put('m', 'j', 'other', at(1)),
      ]);
      expect(results).toEqual([false, true, false, true]);
      expect((await storage.getRecords('m', ['k']))[0]!.record.value).toBe('newest');
    });

    it('breaks timestamp ties exactly as compareRecords does (tombstone, value bytes, TTL)', async () => {
      const candidates: Array<[Value | null, number | undefined]> = [
        [null, undefined],
        ['a', undefined],
        ['b', undefined],
        ['ab', undefined],
        [1, undefined],
        [{ a: 1 }, undefined],
        ['a', 5],
        ['a', 9],
      ];
      for (const [firstValue, firstTtl] of candidates) {
        for (const [secondValue, secondTtl] of candidates) {
          const first = put('tie', 'k', firstValue, at(7), firstTtl);
          const second = put('tie', 'k', secondValue, at(7), secondTtl);
          await underTest.driver.query('TRUNCATE topgun_records');
          await storage.writeRecords([first]);
          const [outcome] = await storage.writeRecords([second]);
          expect(outcome!.stored).toBe(compareRecords(second.record, first.record) > 0);
          const [kept] = await storage.getRecords('tie', ['k']);
          const winner = compareRecords(second.record, first.record) > 0 ? second : first;
          expect(kept!.record).toEqual(winner.record);
        }
      }
    });

    it('writes a conditional record only over the record it expects, and keeps priors of tombstones', async () => {
      await storage.writeRecords([put('c', 'a', 'A1', at(10)), put('c', 'b', 'B1', at(10))]);
      const results = await storage.writeRecords([
        { ...put('c', 'a', 'A2', at(20)), expected: formatTimestamp(at(10)) },
        { ...put('c', 'b', 'B2', at(20)), expected: formatTimestamp(at(9)) },
        { ...put('c', 'new', 'N', at(20)), expected: null },
        { ...put('c', 'b-absent', 'X', at(20)), expected: null },
      ]);
      expect(results.map((outcome) => outcome.stored)).toEqual([true, false, true, true]);
      // Expected absent, but present: refused, even though it is newer.
      const [late] = await storage.writeRecords([
        { ...put('c', 'new', 'N2', at(30)), expected: null },
      ]);
      expect(late!.stored).toBe(false);
      // A tombstone keeping the value it deletes; loaded back with it.
      const [deleted] = await storage.writeRecords([
        { ...put('c', 'a', null, at(40)), keepPrior: true, expected: formatTimestamp(at(20)) },
      ]);
      expect(deleted).toEqual({ stored: true, prior: 'A2' });
      const [again] = await storage.writeRecords([
        { ...put('c', 'a', null, at(50)), keepPrior: true },
      ]);
      expect(again).toEqual({ stored: true, prior: 'A2' });
      const loaded = (await loadAll(storage, 'c')).find((entry) => entry.key === 'a')!;
      expect(loaded.prior).toBe('A2');
      // A value over it clears the prior.
      await storage.writeRecords([put('c', 'a', 'A3', at(60))]);
      expect((await storage.getRecords('c', ['a']))[0]!.prior).toBeUndefined();
    });

    it('refuses a record the database cannot index, alone: the rest of the batch is written', async () => {
      const writes = [
        put('iso', 'fine-1', 1, at(1)),
        // 3 KB of UTF-8 that does not compress: over PostgreSQL's B-tree row limit.
        put(
          'iso',
          Array.from({ length: 1024 }, (_, i) =>
            String.fromCharCode(0x4e00 + ((i * 7919) % 20_000)),
          ).join(''),
          2,
          at(1),
        ),
        put('iso', 'fine-2', 3, at(1)),
      ];
      const outcomes = await storage.writeRecords(writes);
      expect(outcomes.map((outcome) => outcome.stored)).toEqual([true, false, true]);
      expect(outcomes[1]!.refused).toMatch(/database refused/);
      expect((await loadAll(storage, 'iso')).map((entry) => entry.key).sort()).toEqual([
        'fine-1',
        'fine-2',
      ]);
    });

    it('gives a node id, its sub-ids and its prefixes to the first user who claims it', async () => {
      expect(await storage.claimNodeId('n7', 'alice', 1)).toBe(true);
      expect(await storage.claimNodeId('n7', 'alice', 2)).toBe(true);
      expect(await storage.claimNodeId('n7', 'mallory', 3)).toBe(false);
      expect(await storage.claimNodeId('n7', null, 3)).toBe(false);
      expect(await storage.claimNodeId('n7-tab', 'mallory', 4)).toBe(false);
      expect(await storage.claimNodeId('n7-tab', 'alice', 4)).toBe(true);
      expect(await storage.claimNodeId('m-1', 'mallory', 5)).toBe(true);
      expect(await storage.claimNodeId('m', 'alice', 6)).toBe(false);
      expect(await storage.claimNodeId('anon', null, 7)).toBe(true);
      expect(await storage.claimNodeId('anon', null, 8)).toBe(true);
      expect(await storage.claimNodeId('anon', 'alice', 8)).toBe(false);
      const racing = await Promise.all(
        ['u1', 'u2', 'u3', 'u4'].map((user) => storage.claimNodeId('contested', user, 9)),
      );
      expect(racing.filter(Boolean)).toHaveLength(1);
    });

    it('writes a batch in one transaction', async () => {
      await expect(
        underTest.driver.transaction(async (sql) => {
          await sql.query(
            "INSERT INTO topgun_records (map, key, ts, value, partition) VALUES ('m', 'k', '0000000000000000n', NULL, 0)",
          );
          throw new Error('abort');
        }),
      ).rejects.toThrow('abort');
      expect(await loadAll(storage, 'm')).toEqual([]);
    });

    it('loads large maps page by page', async () => {
      const writes = Array.from({ length: 12_345 }, (_, index) =>
        put('big', `key-${index}`, index, at(index + 1)),
      );
      await storage.writeRecords(writes);
      let pages = 0;
      const loaded = new Map<string, unknown>();
      await storage.loadMap('big', (page) => {
        pages++;
        for (const entry of page) loaded.set(entry.key, entry.record.value);
      });
      expect(pages).toBeGreaterThan(1);
      expect(loaded.size).toBe(12_345);
      expect(loaded.get('key-12344')).toBe(12_344);
    });

    it('loads a small map with one query, and a map just past that size whole', async () => {
      let queries = 0;
      const counted = new SqlStorage({
        ...underTest.driver,
        query: (text, params) => {
          queries++;
          return underTest.driver.query(text, params);
        },
      });
      const load = async (map: string) => {
        queries = 0;
        const keys = new Set<string>();
        await counted.loadMap(map, (page) => {
          for (const entry of page) keys.add(entry.key);
        });
        return { keys: keys.size, queries };
      };
      await storage.writeRecords(
        Array.from({ length: 1_000 }, (_, index) => put('small', `k${index}`, index, at(1))),
      );
      await storage.writeRecords(
        Array.from({ length: 1_001 }, (_, index) => put('over', `k${index}`, index, at(1))),
      );
      expect(await load('never-written')).toEqual({ keys: 0, queries: 1 });
      expect(await load('small')).toEqual({ keys: 1_000, queries: 1 });
      const over = await load('over');
      expect(over.keys).toBe(1_001);
      expect(over.queries).toBeGreaterThan(1);
    });

    it('reads records by key', async () => {
      await storage.writeRecords([
        put('m', 'a', 1, at(1)),
        put('m', 'b', 2, at(1)),
        put('n', 'a', 3, at(1)),
      ]);
      const records = await storage.getRecords('m', ['a', 'missing', 'b']);
      expect(records.map((entry) => [entry.key, entry.record.value]).sort()).toEqual([
        ['a', 1],
        ['b', 2],
      ]);
      expect(await storage.getRecords('m', [])).toEqual([]);
    });

    it('prunes old tombstones and expired records, and remembers when', async () => {
      await storage.writeRecords([
        put('m', 'old-tombstone', null, at(1_000)),
        put('m', 'new-tombstone', null, at(9_000)),
        put('m', 'expired', 'x', at(1_000), 100),
        put('m', 'still-valid', 'x', at(1_000), 100_000),
        put('m', 'plain', 'x', at(1_000)),
        put('n', 'kept', 'x', at(1_000)),
      ]);
      expect(await storage.pruneMark('m')).toBeUndefined();
      expect(await storage.prune(at(5_000), 77_777)).toBe(2);
      expect((await loadAll(storage, 'm')).map((entry) => entry.key).sort()).toEqual([
        'new-tombstone',
        'plain',
        'still-valid',
      ]);
      expect(await storage.pruneMark('m')).toEqual({ horizonMillis: 5_000, prunedAt: 77_777 });
      expect(await storage.pruneMark('n')).toBeUndefined();
    });

    it('keeps data across a reopen', async () => {
      await storage.writeRecords([put('m', 'durable', { ok: true }, at(1))]);
      const reopened = new SqlStorage(await underTest.openAnother());
      expect((await reopened.getRecords('m', ['durable']))[0]!.record.value).toEqual({ ok: true });
      await reopened.close();
    });

    it('answers ping', async () => {
      await expect(storage.ping()).resolves.toBeUndefined();
    });

    describe('field writes (data model 2)', () => {
      it('merges updates of different fields: both survive, in any order, and again changes nothing', async () => {
        await storage.writeRecords([put('f', 't', { title: 'a', done: false }, at(10))]);
        const [done] = await storage.writeRecords([
          patch('f', 't', { done: true }, at(20, 0, 'n2')),
        ]);
        expect(done).toMatchObject({ stored: true, record: { value: { title: 'a', done: true } } });
        const [title] = await storage.writeRecords([patch('f', 't', { title: 'b' }, at(15))]);
        expect(title!.stored).toBe(true);
        expect(await storedValue(storage, 'f', 't')).toEqual({ title: 'b', done: true });
        // The same update again, and an older one of a field: nothing changes.
        expect(await stored(storage, [patch('f', 't', { title: 'b' }, at(15))])).toEqual([false]);
        expect(await stored(storage, [patch('f', 't', { title: 'z' }, at(12))])).toEqual([false]);
        // Loaded whole, with each field's stamp.
        const [loaded] = await loadAll(storage, 'f');
        expect(loaded!.record).toEqual({
          value: { title: 'b', done: true },
          timestamp: at(10),
          base: { title: 'a', done: false },
          fields: {
            done: { timestamp: at(20, 0, 'n2'), value: true },
            title: { timestamp: at(15), value: 'b' },
          },
        });
      });

      it('merges several writes of one key in one batch in order, each with its own outcome', async () => {
        const outcomes = await storage.writeRecords([
          put('f', 'k', { a: 1, b: 1 }, at(10)),
          patch('f', 'k', { a: 2 }, at(11)),
          patch('f', 'k', { b: undefined, c: 3 }, at(12)),
          patch('f', 'k', { a: 0 }, at(9)),
          put('f', 'other', 'x', at(1)),
        ]);
        expect(outcomes.map((outcome) => outcome.stored)).toEqual([true, true, true, false, true]);
        expect(await storedValue(storage, 'f', 'k')).toEqual({ a: 2, c: 3 });
      });

      it('keeps field writes later than a whole write that replaces the record, and drops older ones', async () => {
        await storage.writeRecords([put('f', 't', { title: 'a', done: false }, at(10))]);
        await storage.writeRecords([patch('f', 't', { done: true }, at(30))]);
        await storage.writeRecords([patch('f', 't', { tag: 'x' }, at(15))]);
        // A set at 20: the tag (15) is gone, done (30) stays on top of it.
        expect(await stored(storage, [put('f', 't', { title: 'c', done: false }, at(20))])).toEqual(
          [true],
        );
        expect(await storedValue(storage, 'f', 't')).toEqual({ title: 'c', done: true });
        // A set later than every field write: a record without field writes again.
        expect(await stored(storage, [put('f', 't', { title: 'd' }, at(40))])).toEqual([true]);
        const { rows } = await underTest.driver.query<{ fields: unknown; fields_latest: unknown }>(
          "SELECT fields, fields_latest FROM topgun_records WHERE map = 'f' AND key = 't'",
        );
        expect(rows).toEqual([{ fields: null, fields_latest: null }]);
        expect(await storedValue(storage, 'f', 't')).toEqual({ title: 'd' });
      });

      it('keeps a field write later than a delete hidden, and shows it under a later set', async () => {
        await storage.writeRecords([put('f', 't', { title: 'a' }, at(10))]);
        await storage.writeRecords([put('f', 't', null, at(20))]);
        expect(await stored(storage, [patch('f', 't', { done: true }, at(40))])).toEqual([true]);
        expect(await storedValue(storage, 'f', 't')).toBeNull();
        await storage.writeRecords([put('f', 't', { title: 'b' }, at(30))]);
        expect(await storedValue(storage, 'f', 't')).toEqual({ title: 'b', done: true });
        // An update of a key never written is kept as field writes alone, absent.
        expect(await stored(storage, [patch('f', 'new', { done: true }, at(5))])).toEqual([true]);
        expect(await storedValue(storage, 'f', 'new')).toBeNull();
        await storage.writeRecords([put('f', 'new', { title: 'n' }, at(4))]);
        expect(await storedValue(storage, 'f', 'new')).toEqual({ title: 'n', done: true });
      });

      it('conditions a write on the record with its field writes, and keeps the prior of a tombstone over fields', async () => {
        await storage.writeRecords([put('f', 'a', { n: 1 }, at(10))]);
        await storage.writeRecords([patch('f', 'a', { n: 2 }, at(20))]);
        // The whole write is still the one at 10, but the record changed since.
        const [stale] = await storage.writeRecords([
          { ...patch('f', 'a', { n: 3 }, at(30)), expected: formatTimestamp(at(10)) },
        ]);
        expect(stale!.stored).toBe(false);
        const version = async () =>
          recordVersion((await storage.getRecords('f', ['a']))[0]!.record);
        const [fresh] = await storage.writeRecords([
          { ...patch('f', 'a', { n: 3 }, at(30)), expected: await version() },
        ]);
        expect(fresh!.stored).toBe(true);
        const [plainStale] = await storage.writeRecords([
          { ...put('f', 'a', null, at(40)), keepPrior: true, expected: formatTimestamp(at(10)) },
        ]);
        expect(plainStale!.stored).toBe(false);
        const [deleted] = await storage.writeRecords([
          { ...put('f', 'a', null, at(40)), keepPrior: true, expected: await version() },
        ]);
        expect(deleted).toMatchObject({ stored: true, prior: { n: 3 } });
        expect((await storage.getRecords('f', ['a']))[0]!.prior).toEqual({ n: 3 });
      });

      it('conditions a write on the whole record: its whole write and every field write', async () => {
        await storage.writeRecords([put('f', 'r', { locked: false, title: 'a' }, at(5))]);
        await storage.writeRecords([patch('f', 'r', { title: 'b' }, at(10))]);
        const [seen] = await storage.getRecords('f', ['r']);
        const version = recordVersion(seen!.record);
        // A whole write at 9 replaces the one at 5; the latest write is still the field write at 10.
        await storage.writeRecords([put('f', 'r', { locked: true, title: 'x' }, at(9))]);
        const [stale] = await storage.writeRecords([
          { ...patch('f', 'r', { title: 'c' }, at(20)), expected: version },
        ]);
        expect(stale!.stored).toBe(false);
        // A field write older than the latest one changes the record too.
        const [now] = await storage.getRecords('f', ['r']);
        await storage.writeRecords([patch('f', 'r', { tag: 'y' }, at(8, 0, 'n3'))]);
        expect(await storedValue(storage, 'f', 'r')).toEqual({ locked: true, title: 'b' });
        const [older] = await storage.writeRecords([
          { ...patch('f', 'r', { title: 'c' }, at(20)), expected: recordVersion(now!.record) },
        ]);
        expect(older!.stored).toBe(true);
      });

      it('refuses an update that would take a record past its field writes or bytes, alone', async () => {
        await storage.writeRecords([put('f', 'big', { n: 0 }, at(1))]);
        const many = (from: number, count: number) =>
          Object.fromEntries(
            Array.from({ length: count }, (_, index) => [`f${from + index}`, index]),
          );
        expect(
          await stored(storage, [patch('f', 'big', many(0, MAX_FIELD_WRITES), at(2))]),
        ).toEqual([true]);
        const outcomes = await storage.writeRecords([
          patch('f', 'big', many(MAX_FIELD_WRITES, 1), at(3)),
          patch('f', 'other', { a: 1 }, at(3)),
        ]);
        expect(outcomes[0]).toMatchObject({
          stored: false,
          refused: expect.stringMatching(/more than 1024 field writes/),
        });
        expect(outcomes[1]!.stored).toBe(true);
        // A whole write replaces the field writes: the record is small again.
        expect(await stored(storage, [put('f', 'big', { n: 1 }, at(4))])).toEqual([true]);
        const blob = Array.from({ length: 3 }, () => 'x'.repeat(200_000));
        expect(await stored(storage, [patch('f', 'big', { a: blob }, at(5))])).toEqual([true]);
        const [tooBig] = await storage.writeRecords([patch('f', 'big', { b: blob }, at(6))]);
        expect(tooBig!.refused).toMatch(/more than 1048576/);
        expect(Object.keys((await storedValue(storage, 'f', 'big')) as object)).toEqual(['n', 'a']);
      });

      it('locks an absent key before the next one, so a whole write racing an update cannot deadlock', async () => {
        // `c` exists, `b` does not. An update of both holds its locks while a whole write of
        // both starts: had the update locked only `c` and inserted `b` later, each would wait
        // for the other (the whole write holding `b`, waiting for `c`).
        await storage.writeRecords([put('race2', 'c', { n: 0 }, at(1))]);
        const driver = await underTest.openAnother();
        let pause: (() => Promise<void>) | undefined;
        const pausing: SqlDriver = {
          ...driver,
          query: (text, params) => driver.query(text, params),
          exec: (script) => driver.exec(script),
          transaction: (work) =>
            driver.transaction(async (sql) => {
              let first = true;
              return work({
                query: async <Row>(text: string, params?: readonly unknown[]) => {
                  const result = await sql.query<Row>(text, params);
                  if (first && pause !== undefined) await pause();
                  first = false;
                  return result;
                },
                exec: (script) => sql.exec(script),
              });
            }),
          close: () => driver.close(),
        };
        const updater = new SqlStorage(pausing);
        let whole: Promise<unknown> | undefined;
        pause = async () => {
          pause = undefined;
          whole = storage.writeRecords([
            put('race2', 'b', { w: 1 }, at(5)),
            put('race2', 'c', { w: 1 }, at(5)),
          ]);
          await new Promise((resolve) => setTimeout(resolve, 300));
        };
        const updated = await updater.writeRecords([
          patch('race2', 'b', { u: 1 }, at(9)),
          patch('race2', 'c', { u: 1 }, at(9)),
        ]);
        expect(updated.map((outcome) => outcome.stored)).toEqual([true, true]);
        expect((await whole) as WriteOutcome[]).toHaveLength(2);
        expect(await storedValue(storage, 'race2', 'c')).toEqual({ w: 1, u: 1 });
        expect(await storedValue(storage, 'race2', 'b')).toEqual({ w: 1, u: 1 });
        await updater.close();
      });

      it('refuses an update the database cannot index, alone: the other updates are written', async () => {
        // 3 KB of UTF-8 that does not compress: over PostgreSQL's B-tree row limit.
        const unindexable = Array.from({ length: 1024 }, (_, i) =>
          String.fromCharCode(0x4e00 + ((i * 7919) % 20_000)),
        ).join('');
        const outcomes = await storage.writeRecords([
          patch('iso2', 'fine-1', { a: 1 }, at(1)),
          patch('iso2', unindexable, { a: 2 }, at(1)),
          patch('iso2', 'fine-2', { a: 3 }, at(1)),
        ]);
        expect(outcomes.map((outcome) => outcome.stored)).toEqual([true, false, true]);
        expect(outcomes[1]!.refused).toMatch(/database refused/);
        expect((await loadAll(storage, 'iso2')).map((entry) => entry.key).sort()).toEqual([
          'fine-1',
          'fine-2',
        ]);
      });

      it('lands every whole write and update of the same keys made from two processes at once', async () => {
        const other = new SqlStorage(await underTest.openAnother());
        const keys = ['a', 'b', 'c', 'd'];
        for (let round = 0; round < 30; round++) {
          const whole = keys.map((key) =>
            put('dl', `${key}${round % 3}`, { n: round }, at(1_000 + round)),
          );
          const updates = [...keys]
            .reverse()
            .map((key) =>
              patch('dl', `${key}${round % 3}`, { u: round }, at(2_000 + round, 0, 'n2')),
            );
          const outcomes = await Promise.all([
            storage.writeRecords(whole),
            other.writeRecords(updates),
            storage.writeRecords(updates.slice(1)),
          ]);
          for (const list of outcomes)
            for (const outcome of list) expect(outcome.refused).toBeUndefined();
        }
        for (const key of keys)
          expect(await storedValue(storage, 'dl', `${key}2`)).toEqual({ n: 29, u: 29 });
        await other.close();
      });

      it('loses no update when processes update different fields of one record at once', async () => {
        const other = new SqlStorage(await underTest.openAnother());
        await storage.writeRecords([put('race', 'r', { seed: 0 }, at(1))]);
        const fields = Array.from({ length: 40 }, (_, index) => `f${index}`);
        await Promise.all(
          fields.map((field, index) =>
            (index % 2 === 0 ? storage : other).writeRecords([
              patch('race', 'r', { [field]: index }, at(100 + index, 0, `n${index}`)),
            ]),
          ),
        );
        const value = (await storedValue(storage, 'race', 'r')) as Record<string, number>;
        expect(Object.keys(value)).toHaveLength(41);
        fields.forEach((field, index) => {
          expect(value[field]).toBe(index);
        });
        await other.close();
      });

      it('agrees with mergeRecords for random orders of whole and field writes', async () => {
        const writes = [
          put('o', 'k', { a: 1, b: 1 }, at(10)),
          patch('o', 'k', { a: 2 }, at(12)),
          patch('o', 'k', { b: undefined }, at(14)),
          put('o', 'k', { a: 3 }, at(13)),
          put('o', 'k', null, at(15)),
          patch('o', 'k', { c: 1 }, at(16)),
          put('o', 'k', { z: 0 }, at(11)),
        ];
        for (let round = 0; round < 6; round++) {
          await underTest.driver.query('TRUNCATE topgun_records');
          // A shuffle of its own per round (a fixed seed: the same orders every run).
          let seed = round + 1;
          const order = [...writes];
          for (let index = order.length - 1; index > 0; index--) {
            seed = (seed * 48_271) % 2_147_483_647;
            const other = seed % (index + 1);
            [order[index], order[other]] = [order[other]!, order[index]!];
          }
          // In separate batches and, for half of them, in one batch.
          if (round % 2 === 0) for (const write of order) await storage.writeRecords([write]);
          else await storage.writeRecords(order);
          const expected = order.map((write) => write.record).reduce((a, b) => mergeRecords(a, b));
          expect((await storage.getRecords('o', ['k']))[0]!.record).toEqual(expected);
        }
      });

      it('prunes a tombstone only once its hidden field writes are older than the horizon', async () => {
        await storage.writeRecords([
          put('p', 'a', null, at(1_000)),
          put('p', 'b', null, at(1_000)),
        ]);
        await storage.writeRecords([patch('p', 'a', { x: 1 }, at(9_000))]);
        expect(await storage.prune(at(5_000), 1)).toBe(1);
        expect((await loadAll(storage, 'p')).map((entry) => entry.key)).toEqual(['a']);
        expect(await storage.prune(at(10_000), 2)).toBe(1);
      });

      it('reads records written before data model 2 as records without field writes, and updates them', async () => {
        // The schema and rows as the previous release wrote them (migrations 1 to 3).
        await underTest.driver.exec(
          'DROP TABLE topgun_records, topgun_prunes, topgun_nodes, topgun_migrations',
        );
        await underTest.driver.exec(
          'CREATE TABLE topgun_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
        );
        for (const migration of MIGRATIONS.filter((candidate) => candidate.version <= 3)) {
          await underTest.driver.exec(migration.sql);
          await underTest.driver.query('INSERT INTO topgun_migrations (version) VALUES ($1)', [
            migration.version,
          ]);
        }
        const old: Array<[string, Timestamp, Value | null, number | null, Value | null]> = [
          ['todo', at(10), { title: 'a', done: false }, null, null],
          ['text', at(11), 'plain', 60_000, null],
          ['gone', at(12), null, null, { title: 'deleted' }],
        ];
        for (const [key, timestamp, value, ttl, prior] of old) {
          await underTest.driver.query(
            'INSERT INTO topgun_records (map, key, ts, value, ttl_ms, partition, prior) VALUES ($1, $2, $3, $4, $5, $6, $7)',
            [
              'legacy',
              key,
              formatTimestamp(timestamp),
              value === null ? null : encodeValue(value),
              ttl,
              partitionOf(key),
              prior === null ? null : encodeValue(prior),
            ],
          );
        }
        await storage.migrate();
        const loaded = new Map(
          (await loadAll(storage, 'legacy')).map((entry) => [entry.key, entry]),
        );
        expect(loaded.get('todo')).toEqual({
          key: 'todo',
          record: { value: { title: 'a', done: false }, timestamp: at(10) },
        });
        expect(loaded.get('text')).toEqual({
          key: 'text',
          record: { value: 'plain', timestamp: at(11), ttlMs: 60_000 },
        });
        expect(loaded.get('gone')).toEqual({
          key: 'gone',
          record: { value: null, timestamp: at(12) },
          prior: { title: 'deleted' },
        });
        // Every field of an old record is as old as the record: a later update wins over it.
        await storage.writeRecords([patch('legacy', 'todo', { done: true }, at(20))]);
        expect(await storedValue(storage, 'legacy', 'todo')).toEqual({ title: 'a', done: true });
      });
    });
  });
}
