import {
  compareFieldWrites,
  compareRecords,
  isEmptyWrite,
  type LWWMap,
  type LWWRecord,
  mergeRecords,
  toWireEntry,
  type Value,
} from '@topgun/core';
import type { CommittedChange } from './changeFanout.js';
import { type GridRecord, gridRecordOf } from './mapGrid.js';
import type { StoredRecord } from './storage/storage.js';

/**
 * Merges committed records into a loaded map as replicas merge (`mergeRecords`), and returns
 * the records that changed as changes to fan out. For records the grid learns from storage
 * rather than from its own writes: read back, or announced by another process.
 */
export function mergeStored(
  map: LWWMap<Value>,
  records: readonly StoredRecord[],
): CommittedChange[] {
  const changes: CommittedChange[] = [];
  const learned: Array<readonly [string, GridRecord]> = [];
  for (const record of records) {
    const { key } = record;
    const previous = map.getRecord(key) as GridRecord | undefined;
    const stored = mergedRecord(previous, gridRecordOf(record));
    if (stored === previous) continue;
    learned.push([key, stored]);
    changes.push({ key, record: stored, entry: toWireEntry(key, stored), previous });
  }
  // Committed and decoded by the storage: loaded in bulk, without `merge`'s per-record checks.
  map.loadRecords(learned);
  return changes;
}

/**
 * `incoming` merged into the grid's `previous` record: `previous` itself when that changes
 * nothing. A tombstone keeps the value it deleted (`prior`), which merging would drop.
 */
export function mergedRecord(previous: GridRecord | undefined, incoming: GridRecord): GridRecord {
  if (previous === undefined) return incoming;
  const merged: GridRecord = mergeRecords(previous, incoming);
  if (merged === previous || merged === incoming || merged.value !== null) return merged;
  const prior = incoming.prior ?? previous.prior;
  return prior === undefined ? merged : { ...merged, prior };
}

/**
 * Whether `current` holds `write` as it was made: its whole write (unless it has only field
 * writes) and each of its field writes. A write merged in and not held lost to later ones.
 */
export function holdsWrite(current: LWWRecord<Value>, write: LWWRecord<Value>): boolean {
  if (write.fields === undefined) return compareRecords(current, write) === 0;
  if (!isEmptyWrite(write.timestamp) && compareRecords(current, write) !== 0) return false;
  for (const name in write.fields) {
    const held =
      current.fields !== undefined && Object.hasOwn(current.fields, name)
        ? current.fields[name]
        : undefined;
    if (held === undefined || compareFieldWrites(held, write.fields[name]!) !== 0) return false;
  }
  return true;
}
