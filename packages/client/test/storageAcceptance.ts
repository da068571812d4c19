import type { LWWRecord, Value } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import type { ClientStorage, OutboxEntry } from '../src/index.js';

const record = (value: Value | null, millis: number, ttlMs?: number): LWWRecord<Value> => ({
  value,
  timestamp: { millis, counter: 1, nodeId: 'n-tab' },
  ...(ttlMs === undefined ? {} : { ttlMs }),
});

/** The acceptance suite every client storage passes. `open` returns a fresh storage, `reopen` the same data again. */
export function runClientStorageTests(
  name: string,
  open: () => Promise<{ storage: ClientStorage; reopen: () => Promise<ClientStorage> }>,
): void {
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
  });
}
