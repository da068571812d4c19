import {
  encodeMessage,
  holdsItem,
  isRecordAbsent,
  LiveQuery,
  type LWWMap,
  MAX_WINDOW_ROWS,
  type MessageOf,
  type Query,
  type QueryRow,
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
    const refusal = this.account(subscription);
    if (refusal !== undefined) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, 'LIMIT', refusal);
      return;
    }

    const receive = (key: string) => receivable(map, filter, key, this.deps.now());
    const plan = await planSnapshot(live.rows, have, receive, slicer);
    if (subscriptions.get(id) !== subscription) return;
    // Checked again with nothing awaited before they are sent, ahead of the first chunk: a
    // key that appeared meanwhile was entered by its update, and goes with the snapshot.
    const revoked: string[] = [];
    for (const key of plan.revoke) {
      if (receive(key) === undefined) revoked.push(key);
      else plan.outside.add(key);
    }
    if (revoked.length > 0) sendRevoke(peer, mapName, revoked);
    subscription.matching = live.matchingCount;
    await streamChunks(
      peer,
      [...plan.inResult, ...plan.outside],
      (key) => {
        const record = receive(key);
        if (record !== undefined) return toWireEntry(key, record);
        // Gone while the snapshot streamed. A row of the result was told so by its update or
        // revoke; a key named outside the result is told nothing else: it is revoked now.
        if (plan.outside.has(key)) sendRevoke(peer, mapName, [key]);
        return undefined;
      },
      (chunk, { last }) =>
        encodeMessage({
          type: 'query_snapshot',
          id,
          entries: [...chunk],
          last,
          ...(last ? { matching: subscription.matching } : {}),
        }),
      this.deps.limits,
      slicer,
      () => subscriptions.get(id) === subscription,
    );
  }

  /**
   * Whether `query_more` would grow a subscription's window to `limit` rows: not for an
   * unknown id (the subscription may have just ended), a query without `limit`, or a limit
   * no larger than the window's.
   */
  grows(peer: Peer, id: number, limit: number): boolean {
    return this.growing(peer, id, limit) !== undefined;
  }

  /**
   * Grows a subscription's window to `limit` rows and streams the rows after its old last
   * row; does nothing unless it {@link grows}. Past {@link MAX_WINDOW_ROWS} rows, the
   * subscription ends with a `query_error`.
   */
  async more(peer: Peer, id: number, limit: number, slicer: WorkSlicer): Promise<void> {
    const growing = this.growing(peer, id, limit);
    if (growing === undefined) return;
    const { subscription, live } = growing;
    if (subscription.offset + limit > MAX_WINDOW_ROWS) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, 'LIMIT', `a window may hold at most ${MAX_WINDOW_ROWS} rows`);
      return;
    }
    const entered = live.setLimit(limit).entered;
    // Held by the subscription: loaded.
    const map = await slicer.io(this.deps.grid.get(subscription.map));
    const current = () => this.byPeer.get(peer)?.get(id) === subscription;
    if (!current()) return;
    subscription.matching = live.matchingCount;
    await streamChunks(
      peer,
      entered.map((row) => row.key),
      (key) => {
        const record = receivable(map, subscription.filter, key, this.deps.now());
        return record === undefined ? undefined : toWireEntry(key, record);
      },
      (enter) =>
        encodeMessage({
          type: 'query_update',
          id,
          enter: [...enter],
          update: [],
          leave: [],
          matching: subscription.matching,
        }),
      this.deps.limits,
      slicer,
      current,
    );
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
      // As it is now: a later change of the batch may have hidden or deleted it (and says so).
      const push = (entries: WireEntry[], key: string, tombstone = false) => {
        const record = receivable(map, filter, key, now, tombstone);
        if (record !== undefined) entries.push(toWireEntry(key, record));
      };
      for (const change of changes) {
        const { value, revoke } = see(filter, change, now);
        if (revoke && !silent) {
          const keys = revokes.get(peer) ?? new Set<string>();
          keys.add(change.key);
          revokes.set(peer, keys);
        }
        const delta = live.apply({ key: change.key, value });
        if (!delta.changed || silent) continue;
        for (const row of delta.entered) push(enter, row.key);
        for (const row of delta.updated) push(update, row.key);
        leave.push(...delta.left);
        // A record that left because it changed: its new version (a tombstone included), so
        // that the client's own evaluation drops it too; a revoke if it may no longer read it.
        if (!revoke && delta.left.includes(change.key)) push(update, change.key, true);
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

  /** The subscription `query_more` would grow to `limit` rows ({@link grows}). */
  private growing(
    peer: Peer,
    id: number,
    limit: number,
  ): { subscription: Subscription; live: LiveQuery<Value> } | undefined {
    const subscription = this.byPeer.get(peer)?.get(id);
    const live = subscription?.live;
    if (subscription === undefined || live === undefined || !(limit > live.limit)) return undefined;
    return { subscription, live };
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

/**
 * The record of `key` a subscriber may receive now: none when it may not read it, or when it
 * is absent (deleted, expired, never stored) unless a `tombstone` is wanted. Read when a
 * message is built, not before: what changed since was told by the change's own update or
 * revoke, which an older read would contradict.
 */
function receivable(
  map: LWWMap<Value>,
  filter: ReadFilter,
  key: string,
  now: number,
  tombstone = false,
): GridRecord | undefined {
  const record = map.getRecord(key) as GridRecord | undefined;
  if (record === undefined || !filter.sees(key, record)) return undefined;
  return tombstone || !isRecordAbsent(record, now) ? record : undefined;
}

/** The keys a snapshot sends, and those its client must forget. */
interface SnapshotPlan {
  /** Rows of the result the client does not hold as they are, in the result's order. */
  readonly inResult: readonly string[];
  /** Keys named outside the result that the client holds an older version of. */
  readonly outside: Set<string>;
  /** Keys named that are absent, or that the client may not read. */
  readonly revoke: readonly string[];
}

/**
 * Decides a snapshot against what its client holds (`have`). Hashing a record costs as much
 * as it is large (a record may be near a frame's size): the slicer is asked after every key.
 */
async function planSnapshot(
  rows: readonly QueryRow<Value>[],
  have: Have | undefined,
  receive: (key: string) => GridRecord | undefined,
  slicer: WorkSlicer,
): Promise<SnapshotPlan> {
  if (have === undefined || have.keys.length === 0)
    return { inResult: rows.map((row) => row.key), outside: new Set(), revoke: [] };
  const named = new Map(have.keys.map((key, index) => [key, index]));
  const holds = (key: string, record: GridRecord) => {
    const index = named.get(key);
    return index !== undefined && holdsItem(have.hashes, index, key, record);
  };
  const inResult: string[] = [];
  const outside = new Set<string>();
  const revoke: string[] = [];
  const rowKeys = new Set<string>();
  for (const { key } of rows) {
    rowKeys.add(key);
    // One gone meanwhile was told by its update or revoke.
    const record = receive(key);
    if (record !== undefined && !holds(key, record)) inResult.push(key);
    if (slicer.due()) await slicer.pause();
  }
  for (const key of named.keys()) {
    if (rowKeys.has(key)) continue;
    const record = receive(key);
    if (record === undefined) revoke.push(key);
    else if (!holds(key, record)) outside.add(key);
    if (slicer.due()) await slicer.pause();
  }
  return { inResult, outside, revoke };
}
