import { fromWireEntry, toWireEntry, type Value, type WireEntry } from '@topgun/core';
import { META_STORE, OUTBOX_STORE, openClientDatabase, SEGMENTS_STORE } from './clientDatabase.js';
import type {
  ClientStorage,
  OutboxEntry,
  PersistedRecord,
  PersistedState,
  StorageBatch,
} from './clientStorage.js';
import { requestResult, transactionDone } from './idbRequests.js';
import {
  type CompactionPolicy,
  type CompactionReport,
  LogCompactor,
  type SegmentInfo,
} from './logCompactor.js';
import { checkedSegment, encodeSegment, type MapChanges, SegmentReplay } from './storedSegment.js';

/** An outbox entry as stored: the record in its wire form. */
interface StoredOutboxEntry {
  readonly id: string;
  readonly map: string;
  readonly entry: WireEntry;
}

const STORES = [SEGMENTS_STORE, OUTBOX_STORE, META_STORE];

/** Options of {@link createIndexedDbStorage}. */
export interface IndexedDbStorageOptions {
  /**
   * How long after the last commit the record log is compacted, if it needs to be; `Infinity`
   * compacts only when `compact()` is called. Default: 2000 ms.
   */
  readonly compactAfterIdleMs?: number;
  /** When compaction merges, and how much (defaults in {@link CompactionPolicy}). */
  readonly compaction?: Partial<CompactionPolicy>;
}

/** Client storage in IndexedDB; `compact` merges the record log now. */
export interface IndexedDbStorage extends ClientStorage {
  /** Compacts the record log now if it needs it; resolves with what was merged, if anything. */
  compact(): Promise<CompactionReport | undefined>;
}

/**
 * Storage in IndexedDB (layout in `specifications/client-storage.md`). Records live in an
 * append-only log: each commit adds one segment holding exactly its batch (MessagePack, in
 * parts), so its cost does not grow with the replica, and loading reads a few large values.
 * The log is compacted in the background once the page is idle. Outbox entries and metadata
 * are entries of their own; a batch is one transaction over all three stores. Opening a
 * database written by the bucket layout (version 1) upgrades it in place. The default in
 * browsers.
 * @param dbName Database name; tabs of one origin using the same name share the replica.
 *   Default: `'topgun'`.
 */
export function createIndexedDbStorage(
  dbName = 'topgun',
  options: IndexedDbStorageOptions = {},
): IndexedDbStorage {
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
  const compactor = new LogCompactor(
    database,
    options.compactAfterIdleMs ?? 2_000,
    options.compaction,
  );

  return {
    async load(): Promise<PersistedState> {
      const transaction = (await database()).transaction(STORES, 'readonly');
      const segments = transaction.objectStore(SEGMENTS_STORE);
      const outboxStore = transaction.objectStore(OUTBOX_STORE);
      const metaStore = transaction.objectStore(META_STORE);
      const [segmentKeys, segmentValues, stored, metaNames, metaValues] = await Promise.all([
        requestResult(segments.getAllKeys()),
        requestResult(segments.getAll()),
        requestResult(outboxStore.getAll() as IDBRequest<StoredOutboxEntry[]>),
        requestResult(metaStore.getAllKeys()),
        requestResult(metaStore.getAll() as IDBRequest<unknown[]>),
      ]);
      const replay = new SegmentReplay();
      const known: SegmentInfo[] = [];
      segmentValues.forEach((value, index) => {
        const segment = checkedSegment(value);
        replay.apply(segment);
        known.push({ key: segmentKeys[index] as number, count: segment.count });
      });
      const records: PersistedRecord[] = [];
      for (const [map, state] of replay.maps) {
        for (const entry of state.values()) {
          if (entry === null) continue;
          const [key, record] = fromWireEntry<Value>(entry);
          records.push({ map, key, record });
        }
      }
      compactor.loaded(known, records.length);
      const outbox = stored.map(({ id, map, entry }): OutboxEntry => {
        const [key, record] = fromWireEntry<Value>(entry);
        return { id, map, key, record };
      });
      const meta = new Map(metaNames.map((name, index) => [String(name), metaValues[index]]));
      return { records, outbox, meta };
    },

    async commit(batch: StorageBatch): Promise<void> {
      const segment = encodeSegment(changesByMap(batch));
      const transaction = (await database()).transaction(STORES, 'readwrite');
      const done = transactionDone(transaction);
      let appended: IDBRequest<IDBValidKey> | undefined;
      try {
        if (segment !== undefined) appended = transaction.objectStore(SEGMENTS_STORE).add(segment);
        const outbox = transaction.objectStore(OUTBOX_STORE);
        const meta = transaction.objectStore(META_STORE);
        for (const { id, map, key, record } of batch.outboxAdd ?? []) {
          const entry: StoredOutboxEntry = { id, map, entry: toWireEntry(key, record) };
          outbox.put(entry, id);
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
      await done;
      compactor.appended(
        segment === undefined || appended === undefined
          ? undefined
          : { key: appended.result as number, count: segment.count },
        batch.replicaRecords,
      );
    },

    compact: () => compactor.compact(),

    async close() {
      await compactor.close();
      const closing = connection;
      connection = undefined;
      if (closing !== undefined) (await closing.catch(() => undefined))?.close();
    },
  };
}

/** A batch's records and removals, map by map, as a segment holds them. */
function changesByMap(batch: StorageBatch): Map<string, MapChanges> {
  const changes = new Map<string, MapChanges>();
  const of = (map: string) => {
    let mapChanges = changes.get(map);
    if (mapChanges === undefined) {
      mapChanges = { entries: [], removed: [] };
      changes.set(map, mapChanges);
    }
    return mapChanges;
  };
  for (const { map, key } of batch.removeRecords ?? []) of(map).removed.push(key);
  for (const { map, key, record } of batch.records ?? [])
    of(map).entries.push(toWireEntry(key, record));
  return changes;
}
