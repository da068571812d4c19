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
    width: message.width,
    root: message.root,
    marks: message.marks,
    hashes: message.hashes,
    digestSizes: [...message.digestSizes],
    digestKeys: [...message.digestKeys],
    digestStamps: message.digestStamps,
    nodeIds: [...message.nodeIds],
    wants: message.wants,
    records: message.records.map(([key, record]) => toWireEntry(key, record)),
  };
}

/** The walk message carried by a decoded `sync` protocol message. */
export function fromSyncWire<V>(wire: MessageOf<'sync'>): SyncMessage<V> {
  return {
    width: wire.width,
    root: wire.root,
    marks: wire.marks,
    hashes: wire.hashes,
    digestSizes: wire.digestSizes,
    digestKeys: wire.digestKeys,
    digestStamps: wire.digestStamps,
    nodeIds: wire.nodeIds,
    wants: wire.wants,
    records: wire.records.map((entry) => fromWireEntry<V>(entry)),
  };
}
