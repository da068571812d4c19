import { upgradeFromBuckets } from './bucketLayoutUpgrade.js';

/**
 * The version of the client's IndexedDB layout (`specifications/client-storage.md`).
 * Version 1 kept records in 128 buckets per map in one object store; version 2 keeps an
 * append-only log of segments.
 */
export const CLIENT_DATABASE_VERSION = 2;

/** Object store of the record log: key a number (assigned in order), value a stored segment. */
export const SEGMENTS_STORE = 'segments';
/** Object store of outbox entries: key the entry's id, value `{ id, map, entry }`. */
export const OUTBOX_STORE = 'outbox';
/** Object store of metadata: key the name, value as given. */
export const META_STORE = 'meta';

/**
 * Opens (creating or upgrading) a client database at {@link CLIENT_DATABASE_VERSION}.
 * While a connection at an older version stays open in another tab, the browser holds the
 * upgrade back, and this promise waits with it.
 * @param name Database name.
 * @param factory Where databases live. Default: the global `indexedDB`.
 */
export function openClientDatabase(
  name: string,
  factory: IDBFactory = globalThis.indexedDB,
): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    let upgradeError: unknown;
    const request = factory.open(name, CLIENT_DATABASE_VERSION);
    request.onupgradeneeded = (event) => {
      const database = request.result;
      const transaction = request.transaction;
      // Always set during upgradeneeded; the type cannot say so.
      if (transaction === null) throw new Error('upgrade without a versionchange transaction');
      const targets = {
        segments: database.createObjectStore(SEGMENTS_STORE, { autoIncrement: true }),
        outbox: database.createObjectStore(OUTBOX_STORE),
        meta: database.createObjectStore(META_STORE),
      };
      if (event.oldVersion === 1) {
        upgradeFromBuckets(transaction, targets, (error) => {
          upgradeError = error;
        });
      }
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(upgradeError ?? request.error);
  });
}
