import type { LWWRecord } from '../lwwRecord.js';
import { formatTimestamp, parseTimestamp } from '../timestamp.js';
import type { Value } from '../value.js';
import type { WireEntry } from './messages.js';

/** The wire form of a record: `[key, timestamp, value, ttlMs?]`. */
export function toWireEntry<V>(key: string, record: LWWRecord<V>): WireEntry {
  const timestamp = formatTimestamp(record.timestamp);
  // Record values were validated as storable when they were written or merged.
  const value = record.value as Value | null;
  return record.ttlMs === undefined
    ? [key, timestamp, value]
    : [key, timestamp, value, record.ttlMs];
}

/**
 * The record of a wire entry. Entries from `decodeMessage` are already validated; this only
 * changes their shape.
 */
export function fromWireEntry<V>(entry: WireEntry): [key: string, record: LWWRecord<V>] {
  const [key, timestamp, value, ttlMs] = entry;
  const parsed = parseTimestamp(timestamp);
  const record: LWWRecord<V> =
    ttlMs === undefined
      ? { value: value as V | null, timestamp: parsed }
      : { value: value as V | null, timestamp: parsed, ttlMs };
  return [key, record];
}
