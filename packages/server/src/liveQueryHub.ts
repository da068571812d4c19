import {
  encodeMessage,
  fittedChunks,
  isRecordAbsent,
  LiveQuery,
  type LWWMap,
  type Query,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import type { CommittedChange } from './changeFanout.js';
import { sendRevoke } from './changeFanout.js';
import type { WorkSlicer } from './cpuBudget.js';
import type { GridRecord, MapGrid } from './mapGrid.js';
import type { ServerMetrics } from './metrics.js';
import type { ServerLimits } from './options.js';
import type { Peer } from './peer.js';
import type { Permissions } from './permissions.js';

interface Subscription {
  readonly peer: Peer;
  readonly id: number;
  readonly map: string;
  /** Undefined while it is being built; changes committed meanwhile wait in `missed`. */
  live: LiveQuery<Value> | undefined;
  readonly missed: CommittedChange[];
  /** Rows counted against the budgets. */
  rows: number;
}

type QueryErrorCode = 'permission' | 'limit';

/**
 * Server-side live queries: each subscription keeps a `LiveQuery` over the records its
 * client may see; committed changes update it and the client receives what entered, was
 * updated in, or left its result. Building one runs in slices charged to the connection, and
 * the rows subscriptions hold count against a budget per connection and one per process.
 */
export class LiveQueryHub {
  private readonly byMap = new Map<string, Set<Subscription>>();
  private readonly byPeer = new Map<Peer, Map<number, Subscription>>();
  private readonly rowsByPeer = new Map<Peer, number>();
  private totalRows = 0;

  constructor(
    private readonly grid: MapGrid,
    private readonly permissions: Permissions,
    private readonly metrics: ServerMetrics,
    private readonly limits: Pick<
      ServerLimits,
      | 'maxLiveQueries'
      | 'chunkRecords'
      | 'maxFrameBytes'
      | 'maxLiveQueryRowsPerConnection'
      | 'maxLiveQueryRows'
    >,
    private readonly now: () => number,
  ) {}

  /** Whether `map` has subscriptions (the grid keeps such maps loaded). */
  isWatched(map: string): boolean {
    return (this.byMap.get(map)?.size ?? 0) > 0;
  }

  /** Starts a subscription and sends its snapshot, or a `query_error`. */
  async subscribe(
    peer: Peer,
    id: number,
    mapName: string,
    query: Query<Value>,
    slicer: WorkSlicer,
    mayLoadMap: () => boolean = () => true,
  ): Promise<void> {
    if (this.byPeer.get(peer)?.has(id)) this.unsubscribe(peer, id);
    const subscriptions = this.byPeer.get(peer) ?? new Map<number, Subscription>();
    if (subscriptions.size >= this.limits.maxLiveQueries) {
      this.refuse(
        peer,
        id,
        'limit',
        `at most ${this.limits.maxLiveQueries} live queries per connection`,
      );
      return;
    }
    if (!this.permissions.canReadMap(peer.user, mapName)) {
      this.refuse(peer, id, 'permission', `reading ${mapName} is not allowed`);
      return;
    }
    if (!this.grid.isLoaded(mapName) && !mayLoadMap()) {
      this.refuse(peer, id, 'limit', 'too many maps opened by this connection: retry later');
      return;
    }
    const map = await slicer.io(this.grid.get(mapName));
    // Closed while the map loaded: nothing would ever end a subscription registered now.
    if (!peer.isOpen()) return;
    const subscription: Subscription = {
      peer,
      id,
      map: mapName,
      live: undefined,
      missed: [],
      rows: 0,
    };
    subscriptions.set(id, subscription);
    this.byPeer.set(peer, subscriptions);
    let forMap = this.byMap.get(mapName);
    if (forMap === undefined) {
      forMap = new Set();
      this.byMap.set(mapName, forMap);
    }
    forMap.add(subscription);
    this.metrics.liveQueries.inc();

    let live: LiveQuery<Value>;
    try {
      live = await LiveQuery.build(query, this.visibleEntries(peer, mapName, map), slicer);
    } catch (error) {
      this.unsubscribe(peer, id);
      throw error;
    }
    if (subscriptions.get(id) !== subscription) return; // unsubscribed meanwhile
    subscription.live = live;
    for (const change of subscription.missed.splice(0)) {
      live.apply({ key: change.key, value: this.visibleValue(peer, mapName, change, this.now()) });
    }
    const refusal = this.account(subscription);
    if (refusal !== undefined) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, 'limit', refusal);
      return;
    }

    // Streamed a chunk at a time (encoded once each), each sent once the client has read most
    // of the previous: a large result is never held whole, as frames, in memory.
    const rows = live.rows;
    const { chunkRecords, maxFrameBytes } = this.limits;
    const encode = (chunk: readonly WireEntry[], last: boolean) =>
      encodeMessage({ type: 'query_snapshot', id, entries: [...chunk], last });
    for (let start = 0; start === 0 || start < rows.length; start += chunkRecords) {
      const entries = rows
        .slice(start, start + chunkRecords)
        .map((row) => toWireEntry(row.key, map.getRecord(row.key)!));
      const lastChunk = start + chunkRecords >= rows.length;
      const frames = [
        ...fittedChunks(entries, (chunk) => encode(chunk, false), maxFrameBytes, chunkRecords),
      ];
      if (frames.length === 0) frames.push({ chunk: [], frame: encode([], false) });
      for (let index = 0; index < frames.length; index++) {
        const { chunk, frame } = frames[index]!;
        peer.sendEncoded(lastChunk && index === frames.length - 1 ? encode(chunk, true) : frame);
        await slicer.io(peer.drained());
      }
      if (slicer.due()) await slicer.pause();
    }
  }

  /** Ends a subscription. */
  unsubscribe(peer: Peer, id: number): void {
    const subscription = this.byPeer.get(peer)?.get(id);
    if (subscription === undefined) return;
    this.byPeer.get(peer)!.delete(id);
    this.byMap.get(subscription.map)?.delete(subscription);
    this.setRows(subscription, 0);
    this.metrics.liveQueries.dec();
  }

  /** Ends every subscription of a client. */
  removePeer(peer: Peer): void {
    for (const id of [...(this.byPeer.get(peer)?.keys() ?? [])]) this.unsubscribe(peer, id);
    this.byPeer.delete(peer);
    this.rowsByPeer.delete(peer);
  }

  /** Feeds committed changes to the map's subscriptions; `origin`'s own are updated silently. */
  async onChanges(
    mapName: string,
    changes: readonly CommittedChange[],
    origin: Peer | undefined,
  ): Promise<void> {
    const subscriptions = this.byMap.get(mapName);
    if (subscriptions === undefined || subscriptions.size === 0) return;
    const map = await this.grid.get(mapName);
    const now = this.now();
    for (const subscription of [...subscriptions]) {
      const { live, peer } = subscription;
      if (live === undefined) {
        subscription.missed.push(...changes);
        continue;
      }
      const enter: WireEntry[] = [];
      const update: WireEntry[] = [];
      const leave: string[] = [];
      const revoked: string[] = [];
      for (const change of changes) {
        const value = this.visibleValue(peer, mapName, change, now);
        const delta = live.apply({ key: change.key, value });
        if (
          value === undefined &&
          this.permissions.seeChange(
            peer.user,
            mapName,
            change.key,
            change.record,
            change.previous,
          ) === 'revoke'
        ) {
          revoked.push(change.key);
        }
        if (!delta.changed) continue;
        for (const row of delta.entered) enter.push(entryOf(map, row.key));
        for (const row of delta.updated) update.push(entryOf(map, row.key));
        leave.push(...delta.left);
      }
      const refusal = this.account(subscription);
      if (refusal !== undefined) {
        this.unsubscribe(peer, subscription.id);
        this.refuse(peer, subscription.id, 'limit', refusal);
        continue;
      }
      if (peer === origin) continue;
      if (enter.length + update.length + leave.length > 0)
        peer.send({ type: 'query_update', id: subscription.id, enter, update, leave });
      if (revoked.length > 0) sendRevoke(peer, mapName, revoked);
    }
  }

  /**
   * Counts a subscription's rows against the budgets; returns why it may not keep them, if
   * it may not (it is then ended).
   */
  private account(subscription: Subscription): string | undefined {
    const rows = subscription.live?.matchingCount ?? 0;
    const { maxLiveQueryRowsPerConnection: perConnection, maxLiveQueryRows: total } = this.limits;
    const peerRows = (this.rowsByPeer.get(subscription.peer) ?? 0) - subscription.rows + rows;
    if (rows > subscription.rows && peerRows > perConnection) {
      this.metrics.budgetExceeded.inc({ budget: 'live_query_rows' });
      return `live queries of one connection may hold at most ${perConnection} rows (this one matches ${rows})`;
    }
    if (rows > subscription.rows && this.totalRows - subscription.rows + rows > total) {
      this.metrics.budgetExceeded.inc({ budget: 'live_query_rows_total' });
      return 'the server holds as many live-query rows as it may: retry later';
    }
    this.setRows(subscription, rows);
    return undefined;
  }

  private setRows(subscription: Subscription, rows: number): void {
    const delta = rows - subscription.rows;
    subscription.rows = rows;
    this.totalRows += delta;
    const peerRows = (this.rowsByPeer.get(subscription.peer) ?? 0) + delta;
    this.rowsByPeer.set(subscription.peer, peerRows);
    this.metrics.liveQueryRows.set(this.totalRows);
  }

  private refuse(peer: Peer, id: number, code: QueryErrorCode, message: string): void {
    peer.send({ type: 'query_error', id, code, message });
  }

  private visibleValue(
    peer: Peer,
    map: string,
    change: CommittedChange,
    now: number,
  ): Value | undefined {
    const { key, record } = change;
    if (isRecordAbsent(record, now)) return undefined;
    if (!this.permissions.canSee(peer.user, map, key, record)) return undefined;
    return record.value as Value;
  }

  private *visibleEntries(
    peer: Peer,
    mapName: string,
    map: LWWMap<Value>,
  ): Generator<[string, Value]> {
    const recordLevel = this.permissions.hasRecordLevelReads(mapName);
    for (const [key, value] of map.entries()) {
      if (!recordLevel || this.permissions.canReadRecord(peer.user, mapName, key, value))
        yield [key, value];
    }
  }
}

function entryOf(map: LWWMap<Value>, key: string): WireEntry {
  return toWireEntry(key, map.getRecord(key) as GridRecord);
}
