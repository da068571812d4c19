import { decodeValue, type LWWRecord, parseTimestamp, type Value } from '@topgun/core';
import type { AnnouncedRecord, Announcement, StoredRecord } from './storage.js';

/** The PostgreSQL channel that carries announcements (`specifications/scale-out.md`). */
export const ANNOUNCEMENT_CHANNEL = 'topgun_changes';

/**
 * Reads one notification's payload.
 * @throws {Error} if it is not an announcement (the listener then treats the channel as lost).
 */
export function parseAnnouncement(payload: string): Announcement {
  const parsed: unknown = JSON.parse(payload);
  if (typeof parsed !== 'object' || parsed === null) throw new Error('not an announcement');
  const { o: origin, t: sentAt, m: mark, r: items } = parsed as Record<string, unknown>;
  if (typeof origin !== 'string' || typeof sentAt !== 'number')
    throw new Error('an announcement without its origin or time');
  if (typeof mark === 'number') return { origin, sentAt, mark };
  if (!Array.isArray(items)) throw new Error('an announcement without records');
  return { origin, sentAt, records: items.map(parseItem) };
}

function parseItem(item: unknown): AnnouncedRecord {
  if (!Array.isArray(item) || (item.length !== 3 && item.length !== 6))
    throw new Error('an announced record of the wrong shape');
  const [map, key, ts, value, ttl, prior] = item as unknown[];
  if (typeof map !== 'string' || typeof key !== 'string' || typeof ts !== 'string')
    throw new Error('an announced record without its map, key or timestamp');
  if (item.length === 3) return { map, key, timestamp: ts };
  const timestamp = parseTimestamp(ts, `announced record ${key}`);
  const decoded: Value | null = typeof value === 'string' ? decodeBase64Value(value) : null;
  const record: LWWRecord<Value> =
    typeof ttl === 'number'
      ? { value: decoded, timestamp, ttlMs: ttl }
      : { value: decoded, timestamp };
  const stored: StoredRecord =
    typeof prior === 'string' ? { key, record, prior: decodeBase64Value(prior) } : { key, record };
  return { map, key, stored };
}

function decodeBase64Value(text: string): Value {
  return decodeValue(Buffer.from(text, 'base64'));
}
