/**
 * The raw floor: the same records written straight into IndexedDB with no sync layer, in
 * transactions of 1 000 records, as `plain` (one `put` of a plain object per record) or as
 * `packed` (one MessagePack value per 1 000 records). Reports `raw` with the time from
 * opening the database to the last commit.
 */
import { pack } from 'msgpackr';
import { paddedKeyOf, todoOf } from '../src/workload.js';
import { report } from './benchReport.js';

/** Records per transaction (and per packed value). */
const CHUNK = 1_000;

export type RawFormat = 'plain' | 'packed';

/** Writes `records` todos as `format` into a new database and reports how long it took. */
export async function runRawFloor(format: RawFormat, records: number): Promise<void> {
  const startedAt = performance.now();
  const db = await openDatabase(`raw-floor-${format}`);
  const openMs = performance.now() - startedAt;
  for (let start = 0; start < records; start += CHUNK) {
    const end = Math.min(records, start + CHUNK);
    const transaction = db.transaction('records', 'readwrite');
    const store = transaction.objectStore('records');
    if (format === 'plain') {
      for (let i = start; i < end; i++) store.put(todoOf(i), paddedKeyOf(i));
    } else {
      const chunk: Array<[string, unknown]> = [];
      for (let i = start; i < end; i++) chunk.push([paddedKeyOf(i), todoOf(i)]);
      store.put(pack(chunk), `chunk-${String(start / CHUNK).padStart(4, '0')}`);
    }
    await committed(transaction);
  }
  const doneAt = performance.now();
  const values = await request(db.transaction('records').objectStore('records').count());
  db.close();
  report('raw', {
    format,
    records,
    values,
    writeMs: doneAt - startedAt,
    openMs,
    sinceNavigationMs: doneAt,
  });
}

function openDatabase(name: string): Promise<IDBDatabase> {
  const opening = indexedDB.open(name, 1);
  opening.onupgradeneeded = () => opening.result.createObjectStore('records');
  return request(opening);
}

function request<T>(pending: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    pending.onsuccess = () => resolve(pending.result);
    pending.onerror = () => reject(pending.error);
  });
}

function committed(transaction: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error);
  });
}
