import { decodeEntries, encodeEntries, type WireEntry } from '@topgun/core';
import { StorageCorruptError } from '../clientErrors.js';

/**
 * Most entries in one part of a segment. Parts are encoded and decoded one at a time, so a
 * compaction of a large replica can yield to the page between them.
 */
export const PART_ENTRIES = 4096;

/** One map's changes within a stored segment. */
export interface StoredMapChanges {
  readonly map: string;
  /** MessagePack arrays of wire entries (`encodeEntries`), at most {@link PART_ENTRIES} each. */
  readonly parts: readonly Uint8Array[];
  /** Keys whose records were removed outright (not tombstoned); applied before `parts`. */
  readonly removed: readonly string[];
}

/**
 * One value of the record log (`specifications/client-storage.md`): what one commit wrote, or
 * what a compaction merged. Immutable once stored.
 */
export interface StoredSegment {
  /** Entries plus removed keys, over all maps: how much the segment weighs. */
  readonly count: number;
  readonly maps: readonly StoredMapChanges[];
}

/** A map's changes before they are stored: records in wire form, and removed keys. */
export interface MapChanges {
  readonly entries: WireEntry[];
  readonly removed: string[];
}

/** The parts of a map's entries in a segment, encoded one at a time as they are asked for. */
export function* encodedParts(entries: readonly WireEntry[]): Generator<Uint8Array> {
  for (let start = 0; start < entries.length; start += PART_ENTRIES)
    yield encodeEntries(entries.slice(start, start + PART_ENTRIES));
}

/** Encodes per-map changes as a segment; undefined when there is nothing to store. */
export function encodeSegment(changes: ReadonlyMap<string, MapChanges>): StoredSegment | undefined {
  let count = 0;
  const maps: StoredMapChanges[] = [];
  for (const [map, { entries, removed }] of changes) {
    if (entries.length === 0 && removed.length === 0) continue;
    maps.push({ map, parts: [...encodedParts(entries)], removed });
    count += entries.length + removed.length;
  }
  return maps.length === 0 ? undefined : { count, maps };
}

/**
 * The maps as a run of segments leaves them, applied in log order: per map, each key's last
 * entry, or null where the last change removed it.
 */
export class SegmentReplay {
  readonly maps = new Map<string, Map<string, WireEntry | null>>();

  /** Applies a whole segment (checked by {@link checkedSegment}). */
  apply(segment: StoredSegment): void {
    for (const changes of segment.maps) {
      this.remove(changes.map, changes.removed);
      for (const part of changes.parts) this.applyPart(changes.map, part);
    }
  }

  /** Applies removed keys of one map. */
  remove(map: string, keys: readonly string[]): void {
    const state = this.#mapState(map);
    for (const key of keys) state.set(key, null);
  }

  /**
   * Applies one part of one map.
   * @throws {ValidationError} when the bytes are not a list of wire entries.
   */
  applyPart(map: string, part: Uint8Array): void {
    const state = this.#mapState(map);
    for (const entry of decodeEntries(part)) state.set(entry[0], entry);
  }

  #mapState(map: string): Map<string, WireEntry | null> {
    let state = this.maps.get(map);
    if (state === undefined) {
      state = new Map();
      this.maps.set(map, state);
    }
    return state;
  }
}

/** Checks the shape of a value read from the log (the bytes inside are checked when decoded). */
export function checkedSegment(value: unknown): StoredSegment {
  const segment = value as Partial<StoredSegment> | null;
  const valid =
    typeof segment === 'object' &&
    segment !== null &&
    typeof segment.count === 'number' &&
    Array.isArray(segment.maps) &&
    segment.maps.every(
      (changes: Partial<StoredMapChanges>) =>
        typeof changes?.map === 'string' &&
        Array.isArray(changes.parts) &&
        changes.parts.every((part) => part instanceof Uint8Array) &&
        Array.isArray(changes.removed) &&
        changes.removed.every((key) => typeof key === 'string'),
    );
  if (!valid) throw new StorageCorruptError('a stored segment of the record log is malformed');
  return segment as StoredSegment;
}
