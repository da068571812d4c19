import {
  decodeEntries,
  encodeEntries,
  fromWireEntry,
  keyHash,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import { createStore, entries, promisifyRequest, type UseStore } from 'idb-keyval';
import type {
  ClientStorage,
  OutboxEntry,
  PersistedRecord,
  PersistedState,
  StorageBatch,
} from '../src/index.js';

/** Records of one map fall into this many buckets by key hash. */
const BUCKETS = 128;

/**
 * The IndexedDB storage of client layout version 1, kept verbatim (but for `close`) as the
 * writer of data for the upgrade test: the new storage must read everything it wrote. One
 * idb-keyval object store holds record buckets (`['b', map, bucket]`, MessagePack bytes of the
 * bucket's wire entries), outbox entries (`['o', id]`) and metadata (`['m', name]`).
 * @param dbName Database name.
 */
export function createLegacyBucketStorage(dbName: string): ClientStorage {
  const store: UseStore = createStore(dbName, 'topgun');
  return {
    async load(): Promise<PersistedState> {
      const records: PersistedRecord[] = [];
      const outbox: OutboxEntry[] = [];
      const meta = new Map<string, unknown>();
      for (const [key, stored] of await entries<IDBValidKey, unknown>(store)) {
        if (!Array.isArray(key)) continue;
        if (key[0] === 'b') {
          const map = String(key[1]);
          for (const entry of decodeEntries(stored as Uint8Array)) {
            const [recordKey, record] = fromWireEntry<Value>(entry);
            records.push({ map, key: recordKey, record });
          }
        } else if (key[0] === 'o') {
          const { id, map, entry } = stored as { id: string; map: string; entry: WireEntry };
          const [recordKey, record] = fromWireEntry<Value>(entry);
          outbox.push({ id, map, key: recordKey, record });
        } else if (key[0] === 'm') {
          meta.set(String(key[1]), stored);
        }
      }
      return { records, outbox, meta };
    },
    commit(batch: StorageBatch): Promise<void> {
      // Changes per bucket: a record's wire entry, or null to remove the key.
      const buckets = new Map<
        string,
        { key: IDBValidKey; changes: Map<string, WireEntry | null> }
      >();
      const change = (map: string, key: string, record: WireEntry | null) => {
        const bucket = keyHash(key) % BUCKETS;
        const id = `${map}\u0000${bucket}`;
        let entry = buckets.get(id);
        if (entry === undefined) {
          entry = { key: ['b', map, bucket], changes: new Map() };
          buckets.set(id, entry);
        }
        entry.changes.set(key, record);
      };
      for (const { map, key } of batch.removeRecords ?? []) change(map, key, null);
      for (const { map, key, record } of batch.records ?? [])
        change(map, key, toWireEntry(key, record));
      return store('readwrite', async (objects) => {
        for (const entry of batch.outboxAdd ?? []) {
          objects.put(
            { id: entry.id, map: entry.map, entry: toWireEntry(entry.key, entry.record) },
            ['o', entry.id],
          );
        }
        for (const id of batch.outboxRemove ?? []) objects.delete(['o', id]);
        for (const [name, value] of batch.meta ?? []) objects.put(value, ['m', name]);
        // Read every touched bucket, then write them back: all within this one transaction.
        const current = await Promise.all(
          [...buckets.values()].map((bucket) =>
            promisifyRequest(objects.get(bucket.key) as IDBRequest<Uint8Array | undefined>),
          ),
        );
        [...buckets.values()].forEach((bucket, index) => {
          const stored = current[index];
          const contents = new Map<string, WireEntry>(
            stored === undefined
              ? []
              : decodeEntries(stored).map((entry) => [entry[0], entry] as const),
          );
          for (const [key, entry] of bucket.changes) {
            if (entry === null) contents.delete(key);
            else contents.set(key, entry);
          }
          if (contents.size === 0) objects.delete(bucket.key);
          else objects.put(encodeEntries([...contents.values()]), bucket.key);
        });
        return promisifyRequest(objects.transaction);
      });
    },
    // The original left its connection open; the upgrade waits until it is closed.
    async close() {
      await store('readonly', async (objects) => objects.transaction.db.close());
    },
  };
}
