import {
  decodeValue,
  encodeValue,
  formatTimestamp,
  fromWireEntry,
  type LWWRecord,
  latestTimestamp,
  parseTimestamp,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';

/*
 * How a record with field writes is stored (migration 4): `ts`, `value` and `ttl_ms` hold its
 * whole write (`ts` '' for the empty write), `fields` the MessagePack of its field writes as
 * on the wire (`{ name: [timestamp, value?] }`), `fields_latest` the latest field write's
 * timestamp. A record without field writes has NULL in both: exactly a data model 1 row.
 */

/** The columns of one record. */
export interface RecordColumns {
  readonly ts: string;
  readonly value: Uint8Array | null;
  readonly ttlMs: number | null;
  readonly fields: Uint8Array | null;
  readonly fieldsLatest: string | null;
}

/** The columns a record is stored in. */
export function columnsOf(record: LWWRecord<Value>): RecordColumns {
  if (record.fields === undefined) {
    return {
      ts: formatTimestamp(record.timestamp),
      value: record.value === null ? null : encodeValue(record.value),
      ttlMs: record.ttlMs ?? null,
      fields: null,
      fieldsLatest: null,
    };
  }
  const entry = toWireEntry('-', record);
  const base = record.base ?? null;
  return {
    ts: entry[1] ?? '',
    value: base === null ? null : encodeValue(base),
    ttlMs: record.ttlMs ?? null,
    fields: encodeValue(entry[4] as Value),
    fieldsLatest: formatTimestamp(latestTimestamp(record)),
  };
}

/** The record stored in these columns (`context` names it in errors). */
export function recordOf(
  key: string,
  ts: string,
  value: Uint8Array | null,
  ttlMs: number | null,
  fields: Uint8Array | null,
  context: string,
): LWWRecord<Value> {
  const decoded: Value | null = value === null ? null : decodeValue(value);
  if (fields === null) {
    const timestamp = parseTimestamp(ts, context);
    return ttlMs === null ? { value: decoded, timestamp } : { value: decoded, timestamp, ttlMs };
  }
  const entry = [key, ts === '' ? null : ts, decoded, ttlMs, decodeValue(fields)] as WireEntry;
  return fromWireEntry<Value>(entry)[1];
}

/**
 * What identifies a stored record, for a write conditioned on it (`RecordWrite.expected`):
 * the serialized timestamp of its whole write, and when it has field writes, their encoding
 * too (an update changes a record without changing its whole write, nor always its latest
 * write).
 */
export function recordVersion(record: LWWRecord<Value>): string {
  if (record.fields === undefined) return formatTimestamp(record.timestamp);
  const { ts, fields } = columnsOf(record);
  // A space never occurs in a serialized timestamp.
  return `${ts} ${Buffer.from(fields!).toString('base64')}`;
}
