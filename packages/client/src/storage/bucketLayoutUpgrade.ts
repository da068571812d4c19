import { decodeEntries } from '@topgun/core';
import type { StoredSegment } from './storedSegment.js';

/** The one object store of layout version 1 (named by its idb-keyval store). */
export const BUCKET_STORE = 'topgun';

/** Where {@link upgradeFromBuckets} puts what it reads: the object stores of version 2. */
export interface UpgradeTargets {
  readonly segments: IDBObjectStore;
  readonly outbox: IDBObjectStore;
  readonly meta: IDBObjectStore;
}

/**
 * Moves everything from layout version 1 into the stores of version 2, inside the upgrade's
 * versionchange transaction, then drops the old store. Version 1 keyed its values
 * `['b', map, bucket]` (MessagePack bytes of the bucket's wire entries), `['o', id]` (outbox
 * entries, already `{ id, map, entry }`) and `['m', name]` (metadata). The buckets become the
 * parts of one segment as they are (their bytes are already a part's encoding), after each is
 * decoded once to check it. If anything fails the transaction aborts, `fail` learns why, and
 * the database stays at version 1, untouched.
 */
export function upgradeFromBuckets(
  transaction: IDBTransaction,
  { segments, outbox, meta }: UpgradeTargets,
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
      const parts = new Map<string, Uint8Array[]>();
      let count = 0;
      keysRequest.result.forEach((key, index) => {
        const value = values[index];
        if (!Array.isArray(key)) return;
        const [kind, name] = key;
        if (kind === 'b') {
          const bytes = value as Uint8Array;
          count += decodeEntries(bytes).length;
          const map = String(name);
          parts.set(map, [...(parts.get(map) ?? []), bytes]);
        } else if (kind === 'o') {
          outbox.put(value, String(name));
        } else if (kind === 'm') {
          meta.put(value, String(name));
        }
      });
      if (count > 0) {
        const segment: StoredSegment = {
          count,
          maps: [...parts].map(([map, mapParts]) => ({ map, parts: mapParts, removed: [] })),
        };
        segments.add(segment);
      }
      transaction.db.deleteObjectStore(BUCKET_STORE);
    } catch (error) {
      // A corrupt bucket: keep version 1 as it is rather than upgrade without its records.
      fail(error);
      transaction.abort();
    }
  };
}
