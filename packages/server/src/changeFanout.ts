import { type LWWRecord, toWireEntry, type Value, type WireEntry } from '@topgun/core';
import type { ServerMetrics } from './metrics.js';
import type { Peer } from './peer.js';
import type { Permissions } from './permissions.js';

/** A committed change of one record. */
export interface CommittedChange {
  readonly key: string;
  readonly record: LWWRecord<Value>;
}

/**
 * Pushes committed changes to every other client that syncs the map, batched: changes
 * committed within one turn of the event loop reach a client as one `changes` message.
 * Records the client may not read never leave the server.
 */
export class ChangeFanout {
  private readonly peers = new Set<Peer>();
  private readonly pending = new Map<Peer, Map<string, WireEntry[]>>();
  private flushScheduled = false;

  constructor(
    private readonly permissions: Permissions,
    private readonly metrics: ServerMetrics,
    private readonly chunkRecords: number,
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
    for (const peer of this.peers) {
      if (peer === origin || !peer.syncedMaps.has(map) || !peer.isOpen()) continue;
      const visible = changes.filter(
        ({ key, record }) =>
          !recordLevel ||
          record.value === null ||
          this.permissions.canReadRecord(peer.user, map, key, record.value),
      );
      if (visible.length === 0) continue;
      let byMap = this.pending.get(peer);
      if (byMap === undefined) {
        byMap = new Map();
        this.pending.set(peer, byMap);
      }
      let entries = byMap.get(map);
      if (entries === undefined) {
        entries = [];
        byMap.set(map, entries);
      }
      for (const { key, record } of visible) entries.push(toWireEntry(key, record));
    }
    if (!this.flushScheduled && this.pending.size > 0) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const [peer, byMap] of this.pending) {
      // Bounded messages: at most `chunkRecords` records each.
      let changes: Array<{ map: string; entries: WireEntry[] }> = [];
      let size = 0;
      for (const [map, entries] of byMap) {
        for (let start = 0; start < entries.length; start += this.chunkRecords) {
          const chunk = entries.slice(start, start + this.chunkRecords);
          if (size + chunk.length > this.chunkRecords && changes.length > 0) {
            peer.send({ type: 'changes', changes });
            changes = [];
            size = 0;
          }
          changes.push({ map, entries: chunk });
          size += chunk.length;
        }
        this.metrics.changesSent.inc(entries.length);
      }
      if (changes.length > 0) peer.send({ type: 'changes', changes });
    }
    this.pending.clear();
  }
}
