import {
  applyFieldWrites,
  type HLC,
  type LWWRecord,
  latestTimestamp,
  mergeRecords,
  restampWrite,
  splitWrite,
  type Value,
} from '@topgun/core';

/**
 * What a write made before the stored replica was loaded becomes once it is loaded (the write
 * itself when nothing changes). Until then an update is written as field writes whatever its
 * key held (the stored record may hold the object it patches), so:
 * - an update of a key that holds no object once loaded (`holdsObject` false) becomes the set
 *   of its patch, as `update` makes it, at the update's time;
 * - the parts of it that `stored`, the key's stored record, replaces (stamped later by a clock
 *   this one had not seen yet, though written before it) are stamped again by `hlc`.
 * Only the stored record decides: what other tabs merged meanwhile is never a reason to stamp
 * a write again, since newer writes made on top of it would then lose to it.
 */
export function writeOnceLoaded(
  write: LWWRecord<Value>,
  stored: LWWRecord<Value> | undefined,
  holdsObject: boolean,
  hlc: HLC,
): LWWRecord<Value> {
  if (write.fields && !holdsObject)
    write = { value: applyFieldWrites({}, write.fields), timestamp: latestTimestamp(write) };
  if (stored === undefined) return write;
  const kept = splitWrite(mergeRecords(stored, write), write)?.held;
  const lost = kept ? splitWrite(write, kept)?.rest : write;
  return lost ? mergeRecords(write, restampWrite(lost, hlc.now())) : write;
}
