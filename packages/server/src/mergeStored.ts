import { compareRecords, type LWWMap, toWireEntry, type Value } from '@topgun/core';
import type { CommittedChange } from './changeFanout.js';
import { type GridRecord, gridRecordOf } from './mapGrid.js';
import type { StoredRecord } from './storage/storage.js';

/**
 * Merges committed records into a loaded map, each only if it is newer than the record the
 * map holds (Last-Write-Wins), and returns them as changes to fan out. For records the grid
 * learns from storage rather than from its own writes: read back, or announced by another
 * process.
 */
export function mergeStored(
  map: LWWMap<Value>,
  records: readonly StoredRecord[],
): CommittedChange[] {
  const changes: CommittedChange[] = [];
  const learned: Array<readonly [string, GridRecord]> = [];
  for (const record of records) {
    const { key } = record;
    const stored = gridRecordOf(record);
    const previous = map.getRecord(key) as GridRecord | undefined;
    if (previous !== undefined && compareRecords(stored, previous) <= 0) continue;
    learned.push([key, stored]);
    changes.push({ key, record: stored, entry: toWireEntry(key, stored), previous });
  }
  // Committed and decoded by the storage: loaded in bulk, without `merge`'s per-record checks.
  map.loadRecords(learned);
  return changes;
}
