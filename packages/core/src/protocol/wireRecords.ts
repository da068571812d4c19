import {
  EMPTY_WRITE_TIMESTAMP,
  type FieldWrite,
  isEmptyWrite,
  withFieldWrites,
  withTtl,
} from '../fieldWrites.js';
import type { LWWRecord } from '../lwwRecord.js';
import { formatTimestamp, parseTimestamp } from '../timestamp.js';
import type { Value } from '../value.js';
import type { WireEntry, WireFieldWrites } from './messages.js';

/**
 * The wire form of a record: `[key, timestamp, value, ttlMs?]`, or with field writes
 * `[key, timestamp or null, whole write's value, ttlMs or null, fields]`.
 */
export function toWireEntry<V>(key: string, record: LWWRecord<V>): WireEntry {
  // Record values were validated as storable when they were written or merged.
  const { fields } = record;
  if (fields === undefined) {
    const timestamp = formatTimestamp(record.timestamp);
    const value = record.value as Value | null;
    return record.ttlMs === undefined
      ? [key, timestamp, value]
      : [key, timestamp, value, record.ttlMs];
  }
  const wire: WireFieldWrites = {};
  for (const name in fields) {
    const { timestamp, value } = fields[name]!;
    const stamp = formatTimestamp(timestamp);
    wire[name] = value === undefined ? [stamp] : [stamp, value];
  }
  return [
    key,
    isEmptyWrite(record.timestamp) ? null : formatTimestamp(record.timestamp),
    (record.base ?? null) as Value | null,
    record.ttlMs ?? null,
    wire,
  ];
}

/**
 * The record of a wire entry. Entries from `decodeMessage` are already validated; this only
 * changes their shape (and applies field writes to the whole write's value).
 */
export function fromWireEntry<V>(entry: WireEntry): [key: string, record: LWWRecord<V>] {
  const [key, stamp, value, ttlMs, wire] = entry;
  const parsed = stamp === null ? EMPTY_WRITE_TIMESTAMP : parseTimestamp(stamp);
  const whole: LWWRecord<V> = withTtl({ value: value as V | null, timestamp: parsed }, ttlMs);
  if (wire === undefined) return [key, whole];
  const fields: Record<string, FieldWrite> = {};
  for (const name in wire) {
    const write = wire[name]!;
    const timestamp = parseTimestamp(write[0]);
    fields[name] = write.length === 1 ? { timestamp } : { timestamp, value: write[1]! };
  }
  return [key, withFieldWrites(whole, fields)];
}
