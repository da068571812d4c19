import type { LWWRecord } from '../lwwRecord.js';
import { formatTimestamp, parseTimestamp } from '../timestamp.js';
import type { Value } from '../value.js';
import type { WireEntry } from './messages.js';

/** The wire form of a record: `[key, timestamp, value, ttlMs?]`. */
export function toWireEntry<V extends Value>(key: string, record: LWWRecord<V>): WireEntry {
  const timestamp = formatTimestamp(record.timestamp);
  return record.ttlMs === undefined
    ? [key, timestamp, record.value]
    : [key, timestamp, record.value, record.ttlMs];
}

/**
 * The record of a wire entry. Entries from `decodeMessage` are already validated; this only
 * changes their shape.
 */
export function fromWireEntry<V extends Value>(
  entry: WireEntry,
): [key: string, record: LWWRecord<V>] {
  const [key, timestamp, value, ttlMs] = entry;
  const parsed = parseTimestamp(timestamp);
  const record: LWWRecord<V> =
    ttlMs === undefined
      ? { value: value as V | null, timestamp: parsed }
      : { value: value as V | null, timestamp: parsed, ttlMs };
  return [key, record];
}
