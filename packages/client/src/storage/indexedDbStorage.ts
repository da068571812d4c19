import { fromWireEntry, toWireEntry, type Value, type WireEntry } from '@topgun/core';
import { META_STORE, OUTBOX_STORE, openClientDatabase, RECORDS_STORE } from './clientDatabase.js';
import type {
  ClientStorage,
  OutboxEntry,
  PersistedRecord,
  PersistedState,
  StorageBatch,
} from './clientStorage.js';
import { requestResult, transactionDone } from './idbRequests.js';

/** An outbox entry as stored: the record in its wire form. */
interface StoredOutboxEntry {
  readonly id: string;
  readonly map: string;
  readonly entry: WireEntry;
}

const STORES = [RECORDS_STORE, OUTBOX_STORE, META_STORE];

/**
 * Storage in IndexedDB, one entry per record (layout in `specifications/client-storage.md`):
 * a commit writes or deletes exactly the entries of its batch, so its cost does not grow with
 * the replica. Records, outbox and metadata live in three object stores of one database, and
 * a batch is one transaction over all three. Opening a database written by an earlier layout
 * upgrades it in place. The default in browsers.
 * @param dbName Database name; tabs of one origin using the same name share the replica.
 *   Default: `'topgun'`.
 */
export function createIndexedDbStorage(dbName = 'topgun'): ClientStorage {
  let connection: Promise<IDBDatabase> | undefined;

  const database = (): Promise<IDBDatabase> => {
    if (connection !== undefined) return connection;
    const opening = openClientDatabase(dbName);
    connection = opening;
    opening.then(
      (opened) => {
        // Let a newer layout's upgrade in another tab proceed instead of blocking it; this
        // tab's next commit then fails with a VersionError that reaches `storageError`.
        const forget = () => {
          opened.close();
          if (connection === opening) connection = undefined;
        };
        opened.onversionchange = forget;
        opened.onclose = forget;
      },
      () => {
        if (connection === opening) connection = undefined;
      },
    );
    return opening;
  };

  return {
    async load(): Promise<PersistedState> {
      const transaction = (await database()).transaction(STORES, 'readonly');
      const records = await readRecordsByMap(transaction.objectStore(RECORDS_STORE));
      const outboxStore = transaction.objectStore(OUTBOX_STORE);
      const metaStore = transaction.objectStore(META_STORE);
      const [stored, metaNames, metaValues] = await Promise.all([
        requestResult(outboxStore.getAll() as IDBRequest<StoredOutboxEntry[]>),
        requestResult(metaStore.getAllKeys()),
        requestResult(metaStore.getAll() as IDBRequest<unknown[]>),
      ]);
      const outbox = stored.map(({ id, map, entry }): OutboxEntry => {
        const [key, record] = fromWireEntry<Value>(entry);
        return { id, map, key, record };
      });
      const meta = new Map(metaNames.map((name, index) => [String(name), metaValues[index]]));
      return { records, outbox, meta };
    },

    async commit(batch: StorageBatch): Promise<void> {
      const transaction = (await database()).transaction(STORES, 'readwrite');
      const done = transactionDone(transaction);
      try {
        const records = transaction.objectStore(RECORDS_STORE);
        const outbox = transaction.objectStore(OUTBOX_STORE);
        const meta = transaction.objectStore(META_STORE);
        for (const { map, key } of batch.removeRecords ?? []) records.delete([map, key]);
        for (const { map, key, record } of batch.records ?? [])
          records.put(toWireEntry(key, record), [map, key]);
        for (const { id, map, key, record } of batch.outboxAdd ?? []) {
          const stored: StoredOutboxEntry = { id, map, entry: toWireEntry(key, record) };
          outbox.put(stored, id);
        }
        for (const id of batch.outboxRemove ?? []) outbox.delete(id);
        for (const [name, value] of batch.meta ?? []) meta.put(value, name);
      } catch (error) {
        // A put that throws (a value that cannot be cloned) would otherwise let the
        // transaction commit the writes queued before it: half a batch.
        transaction.abort();
        done.catch(() => {});
        throw error;
      }
      return done;
    },

    async close() {
      const closing = connection;
      connection = undefined;
      if (closing !== undefined) (await closing.catch(() => undefined))?.close();
    },
  };
}

/**
 * Every record, map by map: keys sort by map name first, so each map is one key range read
 * with one `getAll`, and the first key after that range names the next map.
 */
async function readRecordsByMap(store: IDBObjectStore): Promise<PersistedRecord[]> {
  const records: PersistedRecord[] = [];
  let next = await requestResult(store.getKey(IDBKeyRange.lowerBound([])));
  while (Array.isArray(next)) {
    const map = String(next[0]);
    // `[map]` sorts before every `[map, key]` and `[map, []]` after them (arrays after strings).
    const entries = (await requestResult(
      store.getAll(IDBKeyRange.bound([map], [map, []])),
    )) as WireEntry[];
    for (const entry of entries) {
      const [key, record] = fromWireEntry<Value>(entry);
      records.push({ map, key, record });
    }
    next = await requestResult(store.getKey(IDBKeyRange.lowerBound([map, []], true)));
  }
  return records;
}
