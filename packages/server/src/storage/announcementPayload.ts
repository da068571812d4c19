import { decodeValue } from '@topgun/core';
import type { AnnouncedRecord, Announcement, StoredRecord } from './storage.js';
import { recordOf } from './storedFields.js';

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
  if (!Array.isArray(item) || (item.length !== 3 && item.length !== 7))
    throw new Error('an announced record of the wrong shape');
  const [map, key, ts, value, ttl, prior, fields] = item as unknown[];
  if (typeof map !== 'string' || typeof key !== 'string' || typeof ts !== 'string')
    throw new Error('an announced record without its map, key or timestamp');
  // Announced by key alone: `ts` is the record's latest timestamp.
  if (item.length === 3) return { map, key, timestamp: ts };
  const record = recordOf(
    key,
    ts,
    typeof value === 'string' ? base64(value) : null,
    typeof ttl === 'number' ? ttl : null,
    typeof fields === 'string' ? base64(fields) : null,
    `announced record ${key}`,
  );
  const stored: StoredRecord =
    typeof prior === 'string'
      ? { key, record, prior: decodeValue(base64(prior)) }
      : { key, record };
  return { map, key, stored };
}

function base64(text: string): Uint8Array {
  return Buffer.from(text, 'base64');
}
