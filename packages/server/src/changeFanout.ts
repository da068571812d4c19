import { encodeMessage, fittedChunks, type WireEntry } from '@topgun/core';
import type { GridRecord, MapGrid } from './mapGrid.js';
import type { ServerMetrics } from './metrics.js';
import type { Peer } from './peer.js';
import type { Permissions, ReadFilter } from './permissions.js';

/** A committed change of one record, with its wire form (computed once, shared by all). */
export interface CommittedChange {
  readonly key: string;
  readonly record: GridRecord;
  readonly entry: WireEntry;
  /** The record the grid held before, if any: who could see it may have to forget it. */
  readonly previous?: GridRecord | undefined;
}

/**
 * Pushes committed changes to every other client that follows the map (walked it); who
 * follows what is kept here only. Batched: changes committed within a short window reach a
 * client as one `changes` message, and clients receiving the same changes share one encoded
 * frame. Records a client may not see never leave the server; a client that could see a
 * record and no longer can is told to forget it (`revoke`).
 */
export class ChangeFanout {
  /** Per connected client, the maps it follows. */
  private readonly followed = new Map<Peer, Set<string>>();
  /** Per map, the clients that follow it (its changes go to them), with what each may see. */
  private readonly followers = new Map<string, Map<Peer, ReadFilter>>();
  /** Per peer, per map, the changes to send: shared arrays when no record is filtered out. */
  private readonly pending = new Map<Peer, Map<string, WireEntry[][]>>();
  /** Per peer, per map, keys to revoke. */
  private readonly revokes = new Map<Peer, Map<string, Set<string>>>();
  /**
   * Per peer, per map, the load of the map its cursors are of (`MapGrid.loadOf`): since it
   * followed the map, or last finished a walk of it. Changes carry the map's
   * cursor only while it is of that load: a map evicted meanwhile missed other processes'
   * commits its followers did not get either.
   */
  private readonly bases = new Map<Peer, Map<string, string>>();
  /** Cancels the flush scheduled, if one is. */
  private cancelFlush: (() => void) | undefined;
  /** When changes were last sent (performance.now()). */
  private lastFlushAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly permissions: Permissions,
    private readonly metrics: ServerMetrics,
    private readonly chunkRecords: number,
    private readonly maxFrameBytes: number,
    private readonly windowMs: number,
    /** Where published changes are logged, and each map's cursor read (the grid). */
    private readonly log?: Pick<MapGrid, 'logChanges' | 'cursorOf' | 'loadOf'>,
  ) {}

  /**
   * From now on `peer` receives the changes of `map` it may see (it walked the map). A peer
   * that is closed, or may not read the map, is not registered: nothing would forget it.
   */
  follow(peer: Peer, map: string): void {
    if (!peer.isOpen() || this.followers.get(map)?.has(peer)) return;
    const filter = this.permissions.readFilter(peer.user, map);
    if (filter === null) return;
    let maps = this.followed.get(peer);
    if (maps === undefined) {
      maps = new Set();
      this.followed.set(peer, maps);
    }
    maps.add(map);
    let followers = this.followers.get(map);
    if (followers === undefined) {
      followers = new Map();
      this.followers.set(map, followers);
    }
    followers.set(peer, filter);
    this.rebase(peer, map);
  }

  /**
   * `peer` finished a walk of `map`: the cursors of the map's current load may go to it (if
   * the walk converged, it holds the map as loaded now).
   */
  rebase(peer: Peer, map: string): void {
    const load = this.log?.loadOf(map);
    let byMap = this.bases.get(peer);
    if (load === undefined) {
      byMap?.delete(map);
      return;
    }
    if (byMap === undefined) {
      byMap = new Map();
      this.bases.set(peer, byMap);
    }
    byMap.set(map, load);
  }

  /** Per map of `byMap`, the cursor `peer`'s changes of it carry now, if any. */
  private cursorsFor(peer: Peer, byMap: Map<string, WireEntry[][]>): Map<string, string> {
    const cursors = new Map<string, string>();
    for (const map of byMap.keys()) {
      const base = this.bases.get(peer)?.get(map);
      if (base === undefined || !this.followers.get(map)?.get(peer)?.everything) continue;
      if (this.log?.loadOf(map) === base) cursors.set(map, this.log.cursorOf(map)!);
    }
    return cursors;
  }

  /** Whether `peer` receives the changes of `map`. */
  follows(peer: Peer, map: string): boolean {
    return this.followers.get(map)?.has(peer) === true;
  }

  /** Forgets a client that disconnected: every map it followed, and what was pending for it. */
  forget(peer: Peer): void {
    const maps = this.followed.get(peer) ?? [];
    this.followed.delete(peer);
    this.bases.delete(peer);
    this.pending.delete(peer);
    this.revokes.delete(peer);
    for (const map of maps) {
      const followers = this.followers.get(map);
      followers?.delete(peer);
      if (followers?.size === 0) this.followers.delete(map);
    }
  }

  /** Queues changes of `map` for every client that follows it except `origin`. */
  publish(map: string, changes: readonly CommittedChange[], origin: Peer | undefined): void {
    // Logged before it is queued: a cursor read when this is sent covers it.
    this.log?.logChanges(
      map,
      changes.map((change) => change.key),
    );
    const followers = this.followers.get(map);
    if (followers === undefined) return;
    const shared = changes.map((change) => change.entry);
    for (const [peer, filter] of followers) {
      if (peer === origin || !peer.isOpen()) continue;
      let entries = shared;
      if (!filter.everything) {
        entries = [];
        for (const { key, record, entry, previous } of changes) {
          const seen = filter.seesChange(key, record, previous);
          if (seen === 'record') entries.push(entry);
          else if (seen === 'revoke') this.revoke(peer, map, key);
        }
      }
      if (entries.length > 0) {
        let byMap = this.pending.get(peer);
        if (byMap === undefined) {
          byMap = new Map();
          this.pending.set(peer, byMap);
        }
        const lists = byMap.get(map);
        if (lists === undefined) byMap.set(map, [entries]);
        else lists.push(entries);
      }
    }
    this.schedule();
  }

  /**
   * Sends what is pending at the end of this turn when nothing was sent within the window
   * (a quiet server pushes a change at once), else once the window since the last sending
   * has passed: under load, a client gets at most one message per map and window.
   */
  private schedule(): void {
    if (this.cancelFlush !== undefined || (this.pending.size === 0 && this.revokes.size === 0))
      return;
    const wait = this.lastFlushAt + this.windowMs - performance.now();
    if (wait <= 0) {
      const immediate = setImmediate(() => this.flush());
      this.cancelFlush = () => clearImmediate(immediate);
    } else {
      const timer = setTimeout(() => this.flush(), wait);
      this.cancelFlush = () => clearTimeout(timer);
    }
  }

  private revoke(peer: Peer, map: string, key: string): void {
    let byMap = this.revokes.get(peer);
    if (byMap === undefined) {
      byMap = new Map();
      this.revokes.set(peer, byMap);
    }
    let keys = byMap.get(map);
    if (keys === undefined) {
      keys = new Set();
      byMap.set(map, keys);
    }
    keys.add(key);
  }

  /**
   * Sends what is pending for `peer` now (a walk ending: the changes it may lack go before its
   * `sync_done`, whose root they are part of).
   */
  flushFor(peer: Peer): void {
    const byMap = this.pending.get(peer);
    if (byMap !== undefined)
      for (const frame of this.encode(byMap, this.cursorsFor(peer, byMap))) peer.sendEncoded(frame);
    this.pending.delete(peer);
    for (const [map, keys] of this.revokes.get(peer) ?? []) sendRevoke(peer, map, keys);
    this.revokes.delete(peer);
  }

  /** Sends everything pending now. */
  flush(): void {
    this.cancelFlush?.();
    this.cancelFlush = undefined;
    if (this.pending.size === 0 && this.revokes.size === 0) return;
    this.lastFlushAt = performance.now();
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
      const cursors = this.cursorsFor(peer, byMap);
      const signature = `${signatureOf(byMap)}|${[...cursors].join('|')}`;
      let frames = encoded.get(signature);
      if (frames === undefined) {
        frames = this.encode(byMap, cursors);
        encoded.set(signature, frames);
      }
      for (const frame of frames) peer.sendEncoded(frame);
    }
    this.pending.clear();
    for (const [peer, byMap] of this.revokes) {
      for (const [map, keys] of byMap) sendRevoke(peer, map, keys);
    }
    this.revokes.clear();
  }

  /**
   * The `changes` messages for one client, each within the record and frame limits; each
   * map's last entry list carries its cursor in `cursors`.
   */
  private encode(
    byMap: Map<string, WireEntry[][]>,
    cursors: ReadonlyMap<string, string>,
  ): Uint8Array[] {
    const items: Array<readonly [string, WireEntry]> = [];
    for (const [map, lists] of byMap) {
      for (const list of lists) for (const entry of list) items.push([map, entry]);
    }
    this.metrics.changesSent.inc(items.length);
    // A map's cursor goes with its last entry: a client that takes it holds the others by then.
    const lastOf = new Map<string, readonly [string, WireEntry]>();
    for (const item of items) lastOf.set(item[0], item);
    const cursorAfter = new Map<readonly [string, WireEntry], string>();
    for (const [map, cursor] of cursors) {
      const last = lastOf.get(map);
      if (last !== undefined) cursorAfter.set(last, cursor);
    }
    const frames: Uint8Array[] = [];
    for (const { frame } of fittedChunks(
      items,
      (chunk) => encodeChanges(chunk, cursorAfter),
      this.maxFrameBytes,
      this.chunkRecords,
    ))
      frames.push(frame);
    return frames;
  }
}

/**
 * One `changes` message for records of possibly several maps, grouped by map; a group ending
 * with an item of `cursorAfter` carries that cursor.
 */
function encodeChanges(
  items: ReadonlyArray<readonly [string, WireEntry]>,
  cursorAfter: ReadonlyMap<readonly [string, WireEntry], string> = new Map(),
): Uint8Array {
  const changes: Array<{ map: string; entries: WireEntry[]; cursor?: string }> = [];
  for (const item of items) {
    const [map, entry] = item;
    let last = changes[changes.length - 1];
    if (last !== undefined && last.map === map) last.entries.push(entry);
    else {
      last = { map, entries: [entry] };
      changes.push(last);
    }
    const cursor = cursorAfter.get(item);
    if (cursor !== undefined) last.cursor = cursor;
  }
  return encodeMessage({ type: 'changes', changes });
}

/** Tells a client to forget records it may no longer see, in messages within the limits. */
export function sendRevoke(peer: Peer, map: string, keys: Iterable<string>): void {
  const all = [...keys];
  for (let start = 0; start < all.length; start += REVOKE_CHUNK) {
    peer.send({ type: 'revoke', map, keys: all.slice(start, start + REVOKE_CHUNK) });
  }
}

/** Keys per `revoke` message: at most 1 KiB each, well within a frame. */
const REVOKE_CHUNK = 500;
