import { formatTimestamp, type LWWRecord, parseTimestamp, type Value } from '@topgun/core';
import { createStore, entries, promisifyRequest, type UseStore } from 'idb-keyval';
import type {
  ClientStorage,
  OutboxEntry,
  PersistedRecord,
  PersistedState,
  StorageBatch,
} from './clientStorage.js';

/** A record as stored: compact, structured-clone friendly. */
type StoredRecord = [timestamp: string, value: Value | null, ttlMs?: number];

/**
 * Storage in IndexedDB through idb-keyval: one object store holds records (`['r', map,
 * key]`), outbox entries (`['o', id]`) and metadata (`['m', name]`), so a batch is one
 * transaction. The default in browsers.
 * @param dbName Database name; tabs of one origin using the same name share the replica.
 */
export function createIndexedDbStorage(dbName = 'topgun'): ClientStorage {
  const store: UseStore = createStore(dbName, 'topgun');
  return {
    async load(): Promise<PersistedState> {
      const records: PersistedRecord[] = [];
      const outbox: OutboxEntry[] = [];
      const meta = new Map<string, unknown>();
      for (const [key, stored] of await entries<IDBValidKey, unknown>(store)) {
        if (!Array.isArray(key)) continue;
        if (key[0] === 'r') {
          records.push({
            map: String(key[1]),
            key: String(key[2]),
            record: toRecord(stored as StoredRecord),
          });
        } else if (key[0] === 'o') {
          const entry = stored as { id: string; map: string; key: string; record: StoredRecord };
          outbox.push({
            id: entry.id,
            map: entry.map,
            key: entry.key,
            record: toRecord(entry.record),
          });
        } else if (key[0] === 'm') {
          meta.set(String(key[1]), stored);
        }
      }
      return { records, outbox, meta };
    },
    commit(batch: StorageBatch): Promise<void> {
      return store('readwrite', (objects) => {
        for (const { map, key, record } of batch.records ?? [])
          objects.put(fromRecord(record), ['r', map, key]);
        for (const { map, key } of batch.removeRecords ?? []) objects.delete(['r', map, key]);
        for (const entry of batch.outboxAdd ?? []) {
          objects.put(
            { id: entry.id, map: entry.map, key: entry.key, record: fromRecord(entry.record) },
            ['o', entry.id],
          );
        }
        for (const id of batch.outboxRemove ?? []) objects.delete(['o', id]);
        for (const [name, value] of batch.meta ?? []) objects.put(value, ['m', name]);
        return promisifyRequest(objects.transaction);
      });
    },
    async close() {},
  };
}

function fromRecord(record: LWWRecord<Value>): StoredRecord {
  const timestamp = formatTimestamp(record.timestamp);
  return record.ttlMs === undefined
    ? [timestamp, record.value]
    : [timestamp, record.value, record.ttlMs];
}

function toRecord([timestamp, value, ttlMs]: StoredRecord): LWWRecord<Value> {
  const parsed = parseTimestamp(timestamp);
  return ttlMs === undefined ? { value, timestamp: parsed } : { value, timestamp: parsed, ttlMs };
}
