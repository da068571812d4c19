import {
  compareRecords,
  formatTimestamp,
  type LWWRecord,
  type Timestamp,
  type Value,
} from '@topgun/core';
import type { SqlDriver } from '../storage/sqlDriver.js';
import { SqlStorage } from '../storage/sqlStorage.js';
import type {
  AnnouncementChannel,
  RecordWrite,
  Storage,
  StoredRecord,
} from '../storage/storage.js';
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
      expect(rows.map((row) => Number(row.version)).sort()).toEqual([1, 2, 3]);
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
  });
}
