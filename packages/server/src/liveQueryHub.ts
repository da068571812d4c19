import {
  encodeMessage,
  fittedChunks,
  holdsItem,
  isRecordAbsent,
  LiveQuery,
  type LWWMap,
  MAX_WINDOW_ROWS,
  type MessageOf,
  type Query,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import { type ChangeFanout, type CommittedChange, sendRevoke } from './changeFanout.js';
import type { WorkSlicer } from './cpuBudget.js';
import { type GridRecord, MAP_LOADS_SPENT, type MapGrid } from './mapGrid.js';
import type { ServerMetrics } from './metrics.js';
import type { ServerLimits } from './options.js';
import type { Peer } from './peer.js';
import type { Permissions, ReadFilter } from './permissions.js';
import { streamChunks } from './streamChunks.js';

interface Subscription {
  readonly peer: Peer;
  readonly id: number;
  readonly map: string;
  /** What its client may see of the map. */
  readonly filter: ReadFilter;
  /** Undefined while it is being built; changes committed meanwhile wait in `missed`. */
  live: LiveQuery<Value> | undefined;
  readonly missed: CommittedChange[];
  /** Rows counted against the budgets. */
  rows: number;
  /** The `matching` its client last learned (`hasMore` changes when it crosses the window's end). */
  matching: number;
  /** The query's `offset` (a window grows up to {@link MAX_WINDOW_ROWS} rows with it). */
  readonly offset: number;
  /** A window grown while the subscription was being built: applied once it is. */
  grownTo: number | undefined;
  /** Lets the grid evict the map again (the subscription held it from its start). */
  readonly release: () => void;
}

/** The records a client holds of a result (`subscribe`'s `have`). */
export interface Have {
  readonly keys: readonly string[];
  readonly hashes: Uint8Array;
}

type QueryErrorCode = Exclude<MessageOf<'query_error'>['code'], 'INVALID_QUERY'>;

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
    private readonly deps: {
      readonly grid: MapGrid;
      readonly permissions: Permissions;
      /** Who follows which map: those clients get its changes as `changes`. */
      readonly fanout: Pick<ChangeFanout, 'follows'>;
      readonly metrics: ServerMetrics;
      readonly limits: Pick<
        ServerLimits,
        | 'maxLiveQueries'
        | 'chunkRecords'
        | 'maxFrameBytes'
        | 'maxLiveQueryRowsPerConnection'
        | 'maxLiveQueryRows'
      >;
      readonly now: () => number;
      /**
       * Resolves once the grid holds every commit acknowledged before the call (other
       * processes' included); rejects when it cannot tell.
       */
      readonly fresh: (map: string) => Promise<void>;
    },
  ) {}

  /**
   * Starts a subscription and sends its snapshot, or a `query_error`. With `have` (the records
   * the client holds of the result), the snapshot is a delta against it.
   */
  async subscribe(
    peer: Peer,
    id: number,
    mapName: string,
    query: Query<Value>,
    slicer: WorkSlicer,
    mayLoadMap: () => boolean = () => true,
    have?: Have,
  ): Promise<void> {
    if (this.byPeer.get(peer)?.has(id)) this.unsubscribe(peer, id);
    const subscriptions = this.byPeer.get(peer) ?? new Map<number, Subscription>();
    if (subscriptions.size >= this.deps.limits.maxLiveQueries) {
      this.refuse(
        peer,
        id,
        'LIMIT',
        `at most ${this.deps.limits.maxLiveQueries} live queries per connection`,
      );
      return;
    }
    const filter = this.deps.permissions.readFilter(peer.user, mapName);
    if (filter === null) {
      this.refuse(peer, id, 'PERMISSION', `reading ${mapName} is not allowed`);
      return;
    }
    try {
      await slicer.io(this.deps.fresh(mapName));
    } catch (error) {
      this.refuse(peer, id, 'UNAVAILABLE', (error as Error).message);
      return;
    }
    // Held from before it is loaded: evicted meanwhile, the query would be built from a copy
    // that no longer learns the map's changes.
    const release = this.deps.grid.hold(mapName);
    const loading = this.deps.grid.getWithin(mapName, mayLoadMap);
    if (loading === undefined) {
      release();
      this.refuse(peer, id, 'LIMIT', MAP_LOADS_SPENT);
      return;
    }
    let map: LWWMap<Value>;
    try {
      map = await slicer.io(loading);
    } catch (error) {
      release();
      throw error;
    }
    // Closed while the map loaded: nothing would ever end a subscription registered now.
    if (!peer.isOpen()) {
      release();
      return;
    }
    const subscription: Subscription = {
      peer,
      id,
      map: mapName,
      filter,
      live: undefined,
      missed: [],
      rows: 0,
      matching: 0,
      offset: query.offset ?? 0,
      grownTo: undefined,
      release,
    };
    subscriptions.set(id, subscription);
    this.byPeer.set(peer, subscriptions);
    let forMap = this.byMap.get(mapName);
    if (forMap === undefined) {
      forMap = new Set();
      this.byMap.set(mapName, forMap);
    }
    forMap.add(subscription);
    this.deps.metrics.liveQueries.inc();

    // The build stops as soon as more rows match than the budgets have room for: a query
    // over a large map is refused before it holds them all.
    const connectionRoom =
      this.deps.limits.maxLiveQueryRowsPerConnection - (this.rowsByPeer.get(peer) ?? 0);
    const serverRoom = this.deps.limits.maxLiveQueryRows - this.totalRows;
    const room = Math.min(connectionRoom, serverRoom);
    let live: LiveQuery<Value> | undefined;
    try {
      live = await LiveQuery.build(query, visibleEntries(filter, map), slicer, room);
    } catch (error) {
      this.unsubscribe(peer, id);
      throw error;
    }
    if (subscriptions.get(id) !== subscription) return; // unsubscribed meanwhile
    if (live === undefined) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, 'LIMIT', this.overBudget(connectionRoom <= serverRoom));
      return;
    }
    subscription.live = live;
    for (const change of subscription.missed.splice(0)) {
      live.apply({ key: change.key, value: see(filter, change, this.deps.now()).value });
    }
    if (subscription.grownTo !== undefined) live.setLimit(subscription.grownTo);
    const refusal = this.account(subscription);
    if (refusal !== undefined) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, 'LIMIT', refusal);
      return;
    }

    const rows = live.rows;
    const held = new Map(have?.keys.map((key, index) => [key, index]));
    const holds = (key: string, record: GridRecord) => {
      const index = held.get(key);
      return index !== undefined && holdsItem(have!.hashes, index, key, record);
    };
    const now = this.deps.now();
    // Keys the client named outside the result: their current record when it is live,
    // readable and newer than the client's; a revoke when it is absent or hidden.
    const revoked: string[] = [];
    const outside: string[] = [];
    if (held.size > 0) {
      const inResult = new Set(rows.map((row) => row.key));
      for (const key of held.keys()) {
        if (inResult.has(key)) continue;
        const record = map.getRecord(key) as GridRecord | undefined;
        if (record === undefined || isRecordAbsent(record, now) || !filter.sees(key, record))
          revoked.push(key);
        else if (!holds(key, record)) outside.push(key);
      }
    }
    const entries = (function* () {
      for (const row of rows) {
        const record = map.getRecord(row.key) as GridRecord;
        if (!holds(row.key, record)) yield toWireEntry(row.key, record);
      }
      for (const key of outside) yield entryOf(map, key);
    })();
    subscription.matching = live.matchingCount;
    await streamChunks(
      peer,
      entries,
      (chunk, { last }) => {
        if (last && revoked.length > 0) sendRevoke(peer, mapName, revoked.splice(0));
        return encodeMessage({
          type: 'query_snapshot',
          id,
          entries: [...chunk],
          last,
          ...(last ? { matching: subscription.matching } : {}),
        });
      },
      this.deps.limits,
      slicer,
      () => subscriptions.get(id) === subscription,
    );
  }

  /**
   * Grows a subscription's window to `limit` rows and sends the rows after its old last row.
   * An unknown id is ignored (the subscription may have just ended).
   */
  async more(peer: Peer, id: number, limit: number): Promise<void> {
    const subscription = this.byPeer.get(peer)?.get(id);
    if (subscription === undefined) return;
    const { live } = subscription;
    if (subscription.offset + limit > MAX_WINDOW_ROWS) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, 'LIMIT', `a window may hold at most ${MAX_WINDOW_ROWS} rows`);
      return;
    }
    if (live === undefined) {
      subscription.grownTo = Math.max(subscription.grownTo ?? 0, limit);
      return;
    }
    // Not grown (a repeated or smaller limit, or a query without one): nothing to answer.
    if (!(limit > live.limit)) return;
    const entered = live.setLimit(limit).entered;
    // Held by the subscription: loaded.
    const map = await this.deps.grid.get(subscription.map);
    if (this.byPeer.get(peer)?.get(id) !== subscription) return;
    const entries = entered.map((row) => entryOf(map, row.key));
    subscription.matching = live.matchingCount;
    const encode = (enter: readonly WireEntry[]) =>
      encodeMessage({
        type: 'query_update',
        id,
        enter: [...enter],
        update: [],
        leave: [],
        matching: subscription.matching,
      });
    const { maxFrameBytes, chunkRecords } = this.deps.limits;
    for (const { frame } of fittedChunks(entries, encode, maxFrameBytes, chunkRecords))
      peer.sendEncoded(frame);
    if (entries.length === 0) peer.sendEncoded(encode([]));
  }

  /** Ends a subscription. */
  unsubscribe(peer: Peer, id: number): void {
    const subscription = this.byPeer.get(peer)?.get(id);
    if (subscription === undefined) return;
    this.byPeer.get(peer)!.delete(id);
    this.byMap.get(subscription.map)?.delete(subscription);
    subscription.release();
    this.setRows(subscription, 0);
    this.deps.metrics.liveQueries.dec();
  }

  /** Ends every subscription of a client. */
  removePeer(peer: Peer): void {
    for (const id of [...(this.byPeer.get(peer)?.keys() ?? [])]) this.unsubscribe(peer, id);
    this.byPeer.delete(peer);
    this.rowsByPeer.delete(peer);
  }

  /**
   * Feeds committed changes to the map's subscriptions. Their clients learn what entered, was
   * updated in, or left each result, except clients that follow the map: those get the same
   * records as `changes` (and their revokes with them), and evaluate the query on their
   * replica.
   */
  async onChanges(mapName: string, changes: readonly CommittedChange[]): Promise<void> {
    const subscriptions = this.byMap.get(mapName);
    if (subscriptions === undefined || subscriptions.size === 0) return;
    const map = await this.deps.grid.get(mapName);
    const now = this.deps.now();
    // A peer with several queries on the map is told to forget a key once.
    const revokes = new Map<Peer, Set<string>>();
    for (const subscription of [...subscriptions]) {
      const { live, peer, filter } = subscription;
      if (live === undefined) {
        subscription.missed.push(...changes);
        continue;
      }
      // A client that follows the map gets its changes as `changes`. One that does not gets
      // the updates its own writes cause too: rows they push in are not in its replica.
      const silent = this.deps.fanout.follows(peer, mapName);
      const enter: WireEntry[] = [];
      const update: WireEntry[] = [];
      const leave: string[] = [];
      for (const change of changes) {
        const { value, revoke } = see(filter, change, now);
        if (revoke && !silent) {
          const keys = revokes.get(peer) ?? new Set<string>();
          keys.add(change.key);
          revokes.set(peer, keys);
        }
        const delta = live.apply({ key: change.key, value });
        if (!delta.changed || silent) continue;
        for (const row of delta.entered) enter.push(entryOf(map, row.key));
        for (const row of delta.updated) update.push(entryOf(map, row.key));
        leave.push(...delta.left);
        // A record that left because it changed: its new version (a tombstone included), so
        // that the client's own evaluation drops it too; a revoke if it may no longer read it.
        if (!revoke && delta.left.includes(change.key)) update.push(entryOf(map, change.key));
      }
      const refusal = this.account(subscription);
      if (refusal !== undefined) {
        this.unsubscribe(peer, subscription.id);
        this.refuse(peer, subscription.id, 'LIMIT', refusal);
        continue;
      }
      if (silent) continue;
      const matching = live.matchingCount;
      // Whether more rows follow the window changed: told even when no row did.
      const end = subscription.offset + live.limit;
      const crossed = matching > end !== subscription.matching > end;
      if (enter.length + update.length + leave.length > 0 || crossed) {
        subscription.matching = matching;
        peer.send({ type: 'query_update', id: subscription.id, enter, update, leave, matching });
      }
    }
    for (const [peer, keys] of revokes) sendRevoke(peer, mapName, keys);
  }

  /**
   * Counts a subscription's rows against the budgets; returns why it may not keep them, if
   * it may not (it is then ended).
   */
  private account(subscription: Subscription): string | undefined {
    const rows = subscription.live?.matchingCount ?? 0;
    if (rows > subscription.rows) {
      const { maxLiveQueryRowsPerConnection: perConnection, maxLiveQueryRows: total } =
        this.deps.limits;
      const peerRows = (this.rowsByPeer.get(subscription.peer) ?? 0) - subscription.rows + rows;
      if (peerRows > perConnection || this.totalRows - subscription.rows + rows > total)
        return this.overBudget(peerRows > perConnection);
    }
    this.setRows(subscription, rows);
    return undefined;
  }

  /** Counts a refusal for rows over a budget, and says which. */
  private overBudget(perConnection: boolean): string {
    if (perConnection) {
      this.deps.metrics.budgetExceeded.inc({ budget: 'live_query_rows' });
      return `live queries of one connection may hold at most ${this.deps.limits.maxLiveQueryRowsPerConnection} rows`;
    }
    this.deps.metrics.budgetExceeded.inc({ budget: 'live_query_rows_total' });
    return 'the server holds as many live-query rows as it may: retry later';
  }

  private setRows(subscription: Subscription, rows: number): void {
    const delta = rows - subscription.rows;
    subscription.rows = rows;
    this.totalRows += delta;
    const peerRows = (this.rowsByPeer.get(subscription.peer) ?? 0) + delta;
    this.rowsByPeer.set(subscription.peer, peerRows);
    this.deps.metrics.liveQueryRows.set(this.totalRows);
  }

  private refuse(peer: Peer, id: number, code: QueryErrorCode, message: string): void {
    peer.send({ type: 'query_error', id, code, message });
  }
}

/**
 * What a subscriber sees of a change: the value if it may see the record (and it is live),
 * and whether it must forget the key (it could see the previous record and no longer can).
 */
function see(
  filter: ReadFilter,
  { key, record, previous }: CommittedChange,
  now: number,
): { value: Value | undefined; revoke: boolean } {
  const seen = filter.seesChange(key, record, previous);
  const visible = seen === 'record' && !isRecordAbsent(record, now);
  return { value: visible ? (record.value as Value) : undefined, revoke: seen === 'revoke' };
}

/** The live records of a map its subscriber may see. */
function* visibleEntries(filter: ReadFilter, map: LWWMap<Value>): Generator<[string, Value]> {
  for (const [key, value] of map.entries()) if (filter.sees(key, { value })) yield [key, value];
}

function entryOf(map: LWWMap<Value>, key: string): WireEntry {
  return toWireEntry(key, map.getRecord(key) as GridRecord);
}
