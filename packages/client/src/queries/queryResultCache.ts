import type { QueryRow } from '@topgun/core';

/**
 * Remembers the last result window of each live query, so that the next page load can paint
 * it at once while the replica (possibly large) is read from IndexedDB.
 */
export interface QueryResultCache {
  read(query: string): readonly QueryRow<unknown>[] | undefined;
  write(query: string, rows: readonly QueryRow<unknown>[]): void;
}

/** Most rows, and bytes, kept per query: a first screen, not a copy of the replica. */
const MAX_ROWS = 100;
const MAX_BYTES = 64 * 1024;

/** A cache in localStorage (synchronous, so the first render can use it); undefined where there is none. */
export function localStorageQueryCache(dbName: string): QueryResultCache | undefined {
  let storage: Storage | undefined;
  try {
    storage = globalThis.localStorage;
  } catch {
    return undefined;
  }
  if (storage === undefined) return undefined;
  const prefix = `topgun:${dbName}:query:`;
  return {
    read(query) {
      try {
        const text = storage.getItem(prefix + query);
        if (text === null) return undefined;
        const rows: unknown = JSON.parse(text);
        return Array.isArray(rows) ? (rows as QueryRow<unknown>[]) : undefined;
      } catch {
        return undefined;
      }
    },
    write(query, rows) {
      try {
        if (rows.length > MAX_ROWS) {
          storage.removeItem(prefix + query);
          return;
        }
        const text = JSON.stringify(rows);
        if (text.length > MAX_BYTES) storage.removeItem(prefix + query);
        else storage.setItem(prefix + query, text);
      } catch {
        // Quota exceeded or storage disabled: the cache is only an optimisation.
      }
    },
  };
}
