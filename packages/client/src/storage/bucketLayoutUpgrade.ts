import { decodeEntries } from '@topgun/core';

/** The one object store of layout version 1 (named by its idb-keyval store). */
export const BUCKET_STORE = 'topgun';

/** Where {@link upgradeFromBuckets} puts what it reads: the object stores of version 2. */
export interface UpgradeTargets {
  readonly records: IDBObjectStore;
  readonly outbox: IDBObjectStore;
  readonly meta: IDBObjectStore;
}

/**
 * Moves everything from layout version 1 into the stores of version 2, inside the upgrade's
 * versionchange transaction, then drops the old store. Version 1 keyed its values
 * `['b', map, bucket]` (MessagePack bytes of the bucket's wire entries), `['o', id]` (outbox
 * entries, already `{ id, map, entry }`) and `['m', name]` (metadata). If anything fails the
 * transaction aborts, `fail` learns why, and the database stays at version 1, untouched.
 */
export function upgradeFromBuckets(
  transaction: IDBTransaction,
  { records, outbox, meta }: UpgradeTargets,
  fail: (error: unknown) => void,
): void {
  if (!transaction.db.objectStoreNames.contains(BUCKET_STORE)) return;
  const buckets = transaction.objectStore(BUCKET_STORE);
  const keysRequest = buckets.getAllKeys();
  const valuesRequest = buckets.getAll();
  // Both requests list the store in key order, so keys and values pair up by position.
  valuesRequest.onsuccess = () => {
    try {
      const values: unknown[] = valuesRequest.result;
      keysRequest.result.forEach((key, index) => {
        const value = values[index];
        if (!Array.isArray(key)) return;
        const [kind, name] = key;
        if (kind === 'b') {
          for (const entry of decodeEntries(value as Uint8Array))
            records.put(entry, [String(name), entry[0]]);
        } else if (kind === 'o') {
          outbox.put(value, String(name));
        } else if (kind === 'm') {
          meta.put(value, String(name));
        }
      });
      transaction.db.deleteObjectStore(BUCKET_STORE);
    } catch (error) {
      // A corrupt bucket: keep version 1 as it is rather than upgrade without its records.
      fail(error);
      transaction.abort();
    }
  };
}
