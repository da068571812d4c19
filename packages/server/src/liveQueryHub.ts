import {
  encodeMessage,
  holdsItem,
  isRecordAbsent,
  type LWWMap,
  MAX_WINDOW_ROWS,
  type MessageOf,
  type Query,
  type QueryIndex,
  type QueryRow,
  toWireEntry,
  type Value,
  type WireEntry,
  windowChange,
} from '@topgun/core';
import { type ChangeFanout, type CommittedChange, sendRevoke } from './changeFanout.js';
import type { WorkSlicer } from './cpuBudget.js';
import { type GridRecord, MAP_LOADS_SPENT, type MapGrid } from './mapGrid.js';
import type { ServerMetrics } from './metrics.js';
import type { ServerLimits } from './options.js';
import type { Peer } from './peer.js';
import type { Permissions, ReadFilter } from './permissions.js';
import { INDEX_LINGER_MS, QueryIndexes, type SharedIndex, see } from './queryIndexes.js';
import { streamChunks } from './streamChunks.js';

interface Subscription {
  readonly peer: Peer;
  readonly id: number;
  readonly map: string;
  /** What its client may see of the map. */
  readonly filter: ReadFilter;
  /** The index of its query, shared with the other subscriptions to it. */
  readonly shared: SharedIndex;
  /** Set once its window is: changes reach its client from then on. */
  index: QueryIndex<Value> | undefined;
  /** Its window of the index: `limit` rows from `offset` (`limit` grows with `query_more`). */
  readonly offset: number;
  limit: number;
  /** Rows counted against its connection's budget. */
  rows: number;
  /** The `matching` its client last learned (`hasMore` changes when it crosses the window's end). */
  matching: number;
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
 * Server-side live queries. The records matching a query are kept in one index, shared by
 * every subscription to the query ({@link QueryIndexes}); each subscription holds a window
 * of it, and committed changes tell its client what entered, was updated in, or left that
 * window. The rows of a connection's windows count against its budget; the indexes count
 * against the process's.
 */
export class LiveQueryHub {
  private readonly byPeer = new Map<Peer, Map<number, Subscription>>();
  private readonly rowsByPeer = new Map<Peer, number>();
  private totalRows = 0;
  private readonly indexes: QueryIndexes;

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
        | 'maxQueryIndexRowsPerConnection'
      >;
      readonly now: () => number;
      /**
       * Resolves once the grid holds every commit acknowledged before the call (other
       * processes' included); rejects when it cannot tell.
       */
      readonly fresh: (map: string) => Promise<void>;
      /** How long an index nobody subscribes to is kept. Default: {@link INDEX_LINGER_MS}. */
      readonly indexLingerMs?: number;
      /** How long a subscriber waits for another's build before it builds too. Default: 2 s. */
      readonly buildWaitMs?: number;
    },
  ) {
    this.indexes = new QueryIndexes({
      metrics: deps.metrics,
      limits: deps.limits,
      ...(deps.indexLingerMs === undefined ? {} : { lingerMs: deps.indexLingerMs }),
      ...(deps.buildWaitMs === undefined ? {} : { buildWaitMs: deps.buildWaitMs }),
    });
  }

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
    // Held from before it is loaded: evicted meanwhile, the index would be built from a copy
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
    let shared: SharedIndex;
    try {
      shared = this.indexes.find(mapName, filter, peer.user, query);
    } catch (error) {
      release();
      throw error;
    }
    const subscription: Subscription = {
      peer,
      id,
      map: mapName,
      filter,
      shared,
      index: undefined,
      offset: query.offset ?? 0,
      limit: query.limit ?? Number.POSITIVE_INFINITY,
      rows: 0,
      matching: 0,
      release,
    };
    this.indexes.join(shared, subscription);
    subscriptions.set(id, subscription);
    this.byPeer.set(peer, subscriptions);
    this.deps.metrics.liveQueries.inc();

    let ready: Awaited<ReturnType<QueryIndexes['ready']>>;
    try {
      ready = await this.indexes.ready(
        subscription.shared,
        subscription,
        map,
        () => visibleEntries(filter, map),
        slicer,
        this.deps.now,
      );
    } catch (error) {
      this.unsubscribe(peer, id);
      throw error;
    }
    if (subscriptions.get(id) !== subscription) return; // unsubscribed meanwhile
    if ('refusal' in ready) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, 'LIMIT', this.indexOverBudget(ready.refusal));
      return;
    }
    const { index } = ready;
    subscription.index = index;
    const refusal = this.account(subscription);
    if (refusal !== undefined) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, 'LIMIT', refusal);
      return;
    }

    const receive = (key: string) => receivable(map, filter, key, this.deps.now());
    const rows = index.rowsBetween(subscription.offset, subscription.offset + subscription.limit);
    const plan = await planSnapshot(rows, have, receive, slicer);
    if (subscriptions.get(id) !== subscription) return;
    // Checked again with nothing awaited before they are sent, ahead of the first chunk: a
    // key that appeared meanwhile was entered by its update, and goes with the snapshot.
    const revoked: string[] = [];
    for (const key of plan.revoke) {
      if (receive(key) === undefined) revoked.push(key);
      else plan.outside.add(key);
    }
    if (revoked.length > 0) sendRevoke(peer, mapName, revoked);
    subscription.matching = index.matchingCount;
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
    const { subscription, index } = growing;
    if (subscription.offset + limit > MAX_WINDOW_ROWS) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, 'LIMIT', `a window may hold at most ${MAX_WINDOW_ROWS} rows`);
      return;
    }
    const end = subscription.offset + subscription.limit;
    const entered = index.rowsBetween(end, subscription.offset + limit);
    subscription.limit = limit;
    const refusal = this.account(subscription);
    if (refusal !== undefined) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, 'LIMIT', refusal);
      return;
    }
    // Held by the subscription: loaded.
    const map = await slicer.io(this.deps.grid.get(subscription.map));
    const current = () => this.byPeer.get(peer)?.get(id) === subscription;
    if (!current()) return;
    subscription.matching = index.matchingCount;
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
    this.indexes.leave(subscription.shared, subscription);
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
   * Feeds committed changes to the map's indexes, and tells each subscription's client what
   * entered, was updated in, or left its window, except clients that follow the map: those
   * get the same records as `changes` (and their revokes with them), and evaluate the query
   * on their replica.
   */
  async onChanges(mapName: string, changes: readonly CommittedChange[]): Promise<void> {
    const indexes = this.indexes.ofMap(mapName);
    if (indexes.length === 0) return;
    // Maps with subscriptions are held, hence loaded; an index kept for nobody whose map
    // left the grid is dropped rather than its map loaded again.
    const map = await this.deps.grid.ifLoaded(mapName);
    const now = this.deps.now();
    const current: Array<{ shared: SharedIndex; seen: ReturnType<typeof see>[] }> = [];
    // A peer with several queries on the map is told to forget a key once.
    const revokes = new Map<Peer, Set<string>>();
    for (const shared of indexes) {
      if (shared.index === undefined) {
        // Applied once it is built; a build yet to start reads the map as it is then.
        for (const missed of shared.missed) missed.push(...changes);
        continue;
      }
      if (map === undefined || shared.source !== map) {
        this.indexes.dropIfIdle(shared);
        if (map === undefined) continue;
      }
      const seen = changes.map((change) => see(shared.filter, change, now));
      for (const { peer } of this.windowsOf(shared, mapName, false)) {
        const keys = revokes.get(peer) ?? new Set<string>();
        changes.forEach((change, index) => {
          if (seen[index]!.revoke) keys.add(change.key);
        });
        if (keys.size > 0) revokes.set(peer, keys);
      }
      current.push({ shared, seen });
    }
    // Before the updates: a record hidden and shown again within the batch is sent after its
    // revoke, never before it.
    for (const [peer, keys] of revokes) sendRevoke(peer, mapName, keys);
    if (map === undefined) return;
    for (const { shared, seen } of current) this.moveWindows(shared, map, changes, seen, now);
  }

  /** The subscriptions whose windows of the index are live: all, or those told its updates. */
  private windowsOf(shared: SharedIndex, mapName: string, silentToo: boolean): Subscription[] {
    const windows: Subscription[] = [];
    for (const subscriber of shared.subscribers) {
      const subscription = subscriber as Subscription;
      if (subscription.index !== shared.index) continue;
      // A client that follows the map gets its changes as `changes` (and their revokes).
      if (silentToo || !this.deps.fanout.follows(subscription.peer, mapName))
        windows.push(subscription);
    }
    return windows;
  }

  /** Applies a batch to an index, and tells each window's client what it changed there. */
  private moveWindows(
    shared: SharedIndex,
    map: LWWMap<Value>,
    changes: readonly CommittedChange[],
    seen: readonly ReturnType<typeof see>[],
    now: number,
  ): void {
    const index = shared.index!;
    // Every window is counted again; only those of clients that do not follow the map are
    // told (they get the updates their own writes cause too: rows they push in are not in
    // their replica).
    const windows = this.windowsOf(shared, shared.map, true).map((subscription) => ({
      subscription,
      silent: this.deps.fanout.follows(subscription.peer, shared.map),
      moves: new WindowMoves(),
    }));
    changes.forEach((change, at) => {
      const { value, revoke } = seen[at]!;
      const move = index.move({ key: change.key, value });
      if (move === undefined) return;
      for (const { subscription, silent, moves } of windows) {
        if (silent) continue;
        const { offset, limit } = subscription;
        moves.add(windowChange(index, offset, offset + limit, move), change.key, revoke);
      }
    });
    const overIndexBudget = this.indexes.overBudget(shared);
    if (overIndexBudget !== undefined) {
      for (const { subscription } of windows) {
        this.unsubscribe(subscription.peer, subscription.id);
        this.refuse(
          subscription.peer,
          subscription.id,
          'LIMIT',
          this.indexOverBudget(overIndexBudget),
        );
      }
      this.indexes.dropIfIdle(shared);
      return;
    }
    for (const { subscription, silent, moves } of windows) {
      const { peer, id } = subscription;
      const refusal = this.account(subscription);
      if (refusal !== undefined) {
        this.unsubscribe(peer, id);
        this.refuse(peer, id, 'LIMIT', refusal);
        continue;
      }
      if (silent) continue;
      // As they are now: a later change of the batch may have hidden or deleted one (and
      // says so).
      const { enter, update, leave } = moves.entries((key, tombstone) =>
        receivable(map, shared.filter, key, now, tombstone),
      );
      const matching = index.matchingCount;
      // Whether more rows follow the window changed: told even when no row did.
      const end = subscription.offset + subscription.limit;
      const crossed = matching > end !== subscription.matching > end;
      if (enter.length + update.length + leave.length > 0 || crossed) {
        subscription.matching = matching;
        peer.send({ type: 'query_update', id, enter, update, leave, matching });
      }
    }
  }

  /** The subscription `query_more` would grow to `limit` rows ({@link grows}). */
  private growing(
    peer: Peer,
    id: number,
    limit: number,
  ): { subscription: Subscription; index: QueryIndex<Value> } | undefined {
    const subscription = this.byPeer.get(peer)?.get(id);
    const index = subscription?.index;
    if (subscription === undefined || index === undefined || !(limit > subscription.limit))
      return undefined;
    return { subscription, index };
  }

  /**
   * Counts a subscription's window rows against its connection's budget; returns why it may
   * not keep them, if it may not (it is then ended).
   */
  private account(subscription: Subscription): string | undefined {
    const matching = subscription.index?.matchingCount ?? 0;
    const rows = Math.max(0, Math.min(matching - subscription.offset, subscription.limit));
    if (rows > subscription.rows) {
      const perConnection = this.deps.limits.maxLiveQueryRowsPerConnection;
      const peerRows = (this.rowsByPeer.get(subscription.peer) ?? 0) - subscription.rows + rows;
      if (peerRows > perConnection) {
        this.deps.metrics.budgetExceeded.inc({ budget: 'live_query_rows' });
        return `live queries of one connection may hold at most ${perConnection} rows`;
      }
    }
    this.setRows(subscription, rows);
    return undefined;
  }

  /** Why an index could not be built: over which budget. */
  private indexOverBudget(refusal: 'connection' | 'process'): string {
    return refusal === 'connection'
      ? `the live queries of one connection may index at most ${this.deps.limits.maxQueryIndexRowsPerConnection} rows`
      : 'the server holds as many live-query rows as it may: retry later';
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

/**
 * What a batch of changes did to one window, netted per key: a row that entered and left
 * within the batch is not sent at all, one that left and came back is an update.
 */
class WindowMoves {
  private readonly moves = new Map<string, 'enter' | 'update' | 'leave'>();
  /** Keys that left because they changed (and may still be read): sent in `update` too. */
  private readonly changedAndLeft = new Set<string>();

  add(
    { entered, updated, left }: ReturnType<typeof windowChange<Value>>,
    changed: string,
    revoked: boolean,
  ): void {
    for (const { key } of entered)
      this.moves.set(key, this.moves.get(key) === 'leave' ? 'update' : 'enter');
    for (const { key } of updated)
      if (this.moves.get(key) !== 'enter') this.moves.set(key, 'update');
    for (const key of left) {
      if (this.moves.get(key) === 'enter') this.moves.delete(key);
      else this.moves.set(key, 'leave');
    }
    // Kept through later changes of the batch: `entries` sends it only if it still leaves.
    if (left.includes(changed) && !revoked) this.changedAndLeft.add(changed);
  }

  /** The update's rows, with records as `read` gives them now (skipped where it gives none). */
  entries(read: (key: string, tombstone: boolean) => GridRecord | undefined): {
    enter: WireEntry[];
    update: WireEntry[];
    leave: string[];
  } {
    const enter: WireEntry[] = [];
    const update: WireEntry[] = [];
    const leave: string[] = [];
    const push = (entries: WireEntry[], key: string, tombstone: boolean) => {
      const record = read(key, tombstone);
      if (record !== undefined) entries.push(toWireEntry(key, record));
    };
    for (const [key, move] of this.moves) {
      if (move === 'enter') push(enter, key, false);
      else if (move === 'update') push(update, key, false);
      else {
        leave.push(key);
        // Its new version (a tombstone included), so that the client's own evaluation drops
        // it too; a revoke instead if it may no longer read it.
        if (this.changedAndLeft.has(key)) push(update, key, true);
      }
    }
    return { enter, update, leave };
  }
}
