import type { SyncMessage } from '../merkleSync.js';
import type { MessageOf } from './messages.js';
import { fromWireEntry, toWireEntry } from './wireRecords.js';

/** The `sync` protocol message carrying one walk message for `map`. */
export function toSyncWire<V>(
  map: string,
  session: number,
  message: SyncMessage<V>,
  lastSync?: number,
): MessageOf<'sync'> {
  return {
    type: 'sync',
    map,
    session,
    ...(lastSync === undefined ? {} : { lastSync }),
    ...message,
    digestSizes: [...message.digestSizes],
    digestKeys: [...message.digestKeys],
    nodeIds: [...message.nodeIds],
    records: message.records.map(([key, record]) => toWireEntry(key, record)),
  };
}

/** The walk message carried by a decoded `sync` protocol message. */
export function fromSyncWire<V>(wire: MessageOf<'sync'>): SyncMessage<V> {
  const { type, map, session, lastSync, cursor, records, ...walk } = wire;
  return { ...walk, records: records.map((entry) => fromWireEntry<V>(entry)) };
}

/**
 * The opening of a walk of `map` that resumes from `cursor`, the last one the server gave
 * for it (`specifications/protocol.md`, "Resuming from a cursor"): the client's root, no hashes.
 */
export function resumeWire(
  map: string,
  session: number,
  root: Uint8Array,
  lastSync: number,
  cursor: string,
): MessageOf<'sync'> {
  const empty = new Uint8Array(0);
  return {
    type: 'sync',
    map,
    session,
    lastSync,
    cursor,
    width: 4,
    root,
    marks: empty,
    hashes: empty,
    digestSizes: [],
    digestKeys: [],
    digestStamps: empty,
    nodeIds: [],
    wants: empty,
    records: [],
  };
}
