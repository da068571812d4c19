import {
  encodeMessage,
  fittedChunks,
  type LWWRecord,
  type Value,
  type WireEntry,
} from '@topgun/core';
import type { ServerMetrics } from './metrics.js';
import type { Peer } from './peer.js';
import type { Permissions } from './permissions.js';

/** A committed change of one record, with its wire form (computed once, shared by all). */
export interface CommittedChange {
  readonly key: string;
  readonly record: LWWRecord<Value>;
  readonly entry: WireEntry;
}

/**
 * Pushes committed changes to every other client that syncs the map, batched: changes
 * committed within a short window reach a client as one `changes` message, and clients
 * receiving the same changes share one encoded frame. Records a client may not read never
 * leave the server.
 */
export class ChangeFanout {
  private readonly peers = new Set<Peer>();
  /** Per peer, per map, the changes to send: shared arrays when no record is filtered out. */
  private readonly pending = new Map<Peer, Map<string, WireEntry[][]>>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly permissions: Permissions,
    private readonly metrics: ServerMetrics,
    private readonly chunkRecords: number,
    private readonly maxFrameBytes: number,
    private readonly windowMs: number,
  ) {}

  add(peer: Peer): void {
    this.peers.add(peer);
  }

  remove(peer: Peer): void {
    this.peers.delete(peer);
    this.pending.delete(peer);
  }

  /** Queues changes of `map` for every syncing client except `origin`. */
  publish(map: string, changes: readonly CommittedChange[], origin: Peer | undefined): void {
    const recordLevel = this.permissions.hasRecordLevelReads(map);
    const shared = changes.map((change) => change.entry);
    for (const peer of this.peers) {
      if (peer === origin || !peer.syncedMaps.has(map) || !peer.isOpen()) continue;
      const entries = recordLevel
        ? changes
            .filter(
              ({ key, record }) =>
                record.value === null ||
                this.permissions.canReadRecord(peer.user, map, key, record.value),
            )
            .map((change) => change.entry)
        : shared;
      if (entries.length === 0) continue;
      let byMap = this.pending.get(peer);
      if (byMap === undefined) {
        byMap = new Map();
        this.pending.set(peer, byMap);
      }
      const lists = byMap.get(map);
      if (lists === undefined) byMap.set(map, [entries]);
      else lists.push(entries);
    }
    if (this.flushTimer === undefined && this.pending.size > 0) {
      this.flushTimer = setTimeout(() => this.flush(), this.windowMs);
    }
  }

  /** Sends everything pending now. */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    // Clients with the same pending lists get the same bytes: encode each distinct set once.
    const encoded = new Map<string, Uint8Array[]>();
    const listIds = new Map<WireEntry[], number>();
    const signatureOf = (byMap: Map<string, WireEntry[][]>) =>
      [...byMap]
        .map(
          ([map, lists]) =>
            `${map}:${lists.map((list) => listIds.get(list) ?? listIds.set(list, listIds.size).get(list)).join(',')}`,
        )
        .join('|');
    for (const [peer, byMap] of this.pending) {
      const signature = signatureOf(byMap);
      let frames = encoded.get(signature);
      if (frames === undefined) {
        frames = this.encode(byMap);
        encoded.set(signature, frames);
      }
      for (const frame of frames) peer.sendEncoded(frame);
    }
    this.pending.clear();
  }

  /** The `changes` messages for one client, each within the record and frame limits. */
  private encode(byMap: Map<string, WireEntry[][]>): Uint8Array[] {
    const items: Array<readonly [string, WireEntry]> = [];
    for (const [map, lists] of byMap) {
      for (const list of lists) for (const entry of list) items.push([map, entry]);
    }
    this.metrics.changesSent.inc(items.length);
    const frames: Uint8Array[] = [];
    for (const { frame } of fittedChunks(
      items,
      encodeChanges,
      this.maxFrameBytes,
      this.chunkRecords,
    ))
      frames.push(frame);
    return frames;
  }
}

/** One `changes` message for records of possibly several maps, grouped by map. */
function encodeChanges(items: ReadonlyArray<readonly [string, WireEntry]>): Uint8Array {
  const changes: Array<{ map: string; entries: WireEntry[] }> = [];
  for (const [map, entry] of items) {
    const last = changes[changes.length - 1];
    if (last !== undefined && last.map === map) last.entries.push(entry);
    else changes.push({ map, entries: [entry] });
  }
  return encodeMessage({ type: 'changes', changes });
}
