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
  const { type, map, session, lastSync, records, ...walk } = wire;
  return { ...walk, records: records.map((entry) => fromWireEntry<V>(entry)) };
}
