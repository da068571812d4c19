import {
  encodeMessage,
  fittedChunks,
  isRecordAbsent,
  LiveQuery,
  type LWWMap,
  type LWWRecord,
  type Query,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import type { CommittedChange } from './changeFanout.js';
import type { MapGrid } from './mapGrid.js';
import type { ServerMetrics } from './metrics.js';
import type { ServerLimits } from './options.js';
import type { Peer } from './peer.js';
import type { Permissions } from './permissions.js';

interface Subscription {
  readonly peer: Peer;
  readonly id: number;
  readonly map: string;
  readonly live: LiveQuery<Value>;
}

/**
 * Server-side live queries: each subscription keeps a `LiveQuery` over the records its
 * client may read; committed changes update it and the client receives what entered, was
 * updated in, or left its result.
 */
export class LiveQueryHub {
  private readonly byMap = new Map<string, Set<Subscription>>();
  private readonly byPeer = new Map<Peer, Map<number, Subscription>>();

  constructor(
    private readonly grid: MapGrid,
    private readonly permissions: Permissions,
    private readonly metrics: ServerMetrics,
    private readonly limits: Pick<
      ServerLimits,
      'maxLiveQueries' | 'chunkRecords' | 'maxFrameBytes'
    >,
    private readonly now: () => number,
  ) {}

  /** Starts a subscription and sends its snapshot, or a `query_error`. */
  async subscribe(peer: Peer, id: number, mapName: string, query: Query<Value>): Promise<void> {
    const subscriptions = this.byPeer.get(peer) ?? new Map<number, Subscription>();
    if (subscriptions.has(id)) this.unsubscribe(peer, id);
    if (subscriptions.size >= this.limits.maxLiveQueries) {
      peer.send({
        type: 'query_error',
        id,
        code: 'limit',
        message: `at most ${this.limits.maxLiveQueries} live queries per connection`,
      });
      return;
    }
    if (!this.permissions.canReadMap(peer.user, mapName)) {
      peer.send({
        type: 'query_error',
        id,
        code: 'permission',
        message: `reading ${mapName} is not allowed`,
      });
      return;
    }
    const map = await this.grid.get(mapName);
    const live = new LiveQuery<Value>(query, this.readableEntries(peer, mapName, map));
    const subscription: Subscription = { peer, id, map: mapName, live };
    subscriptions.set(id, subscription);
    this.byPeer.set(peer, subscriptions);
    let forMap = this.byMap.get(mapName);
    if (forMap === undefined) {
      forMap = new Set();
      this.byMap.set(mapName, forMap);
    }
    forMap.add(subscription);
    this.metrics.liveQueries.inc();

    const entries = live.rows.map((row) => toWireEntry(row.key, map.getRecord(row.key)!));
    const encode = (chunk: readonly WireEntry[], last: boolean) =>
      encodeMessage({ type: 'query_snapshot', id, entries: [...chunk], last });
    const chunks = [
      ...fittedChunks(
        entries,
        (chunk) => encode(chunk, false),
        this.limits.maxFrameBytes,
        this.limits.chunkRecords,
      ),
    ];
    if (chunks.length === 0) peer.sendEncoded(encode([], true));
    for (let index = 0; index < chunks.length; index++) {
      const { chunk, frame } = chunks[index]!;
      peer.sendEncoded(index === chunks.length - 1 ? encode(chunk, true) : frame);
      await peer.drained();
    }
  }

  /** Ends a subscription. */
  unsubscribe(peer: Peer, id: number): void {
    const subscription = this.byPeer.get(peer)?.get(id);
    if (subscription === undefined) return;
    this.byPeer.get(peer)!.delete(id);
    this.byMap.get(subscription.map)?.delete(subscription);
    this.metrics.liveQueries.dec();
  }

  /** Ends every subscription of a client. */
  removePeer(peer: Peer): void {
    for (const id of [...(this.byPeer.get(peer)?.keys() ?? [])]) this.unsubscribe(peer, id);
    this.byPeer.delete(peer);
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
    for (const subscription of subscriptions) {
      const enter: WireEntry[] = [];
      const update: WireEntry[] = [];
      const leave: string[] = [];
      for (const { key, record } of changes) {
        const value = this.visibleValue(subscription.peer, mapName, key, record, now);
        const delta = subscription.live.apply({ key, value });
        if (!delta.changed) continue;
        for (const row of delta.entered) enter.push(toWireEntry(row.key, map.getRecord(row.key)!));
        for (const row of delta.updated) update.push(toWireEntry(row.key, map.getRecord(row.key)!));
        leave.push(...delta.left);
      }
      if (subscription.peer === origin) continue;
      if (enter.length + update.length + leave.length === 0) continue;
      subscription.peer.send({ type: 'query_update', id: subscription.id, enter, update, leave });
    }
  }

  private visibleValue(
    peer: Peer,
    map: string,
    key: string,
    record: LWWRecord<Value>,
    now: number,
  ): Value | undefined {
    if (isRecordAbsent(record, now)) return undefined;
    const value = record.value as Value;
    if (
      this.permissions.hasRecordLevelReads(map) &&
      !this.permissions.canReadRecord(peer.user, map, key, value)
    ) {
      return undefined;
    }
    return value;
  }

  private *readableEntries(
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
