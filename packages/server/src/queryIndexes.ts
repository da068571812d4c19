import {
  compileQuery,
  type IndexedQuery,
  isRecordAbsent,
  type LWWMap,
  type Query,
  QueryIndex,
  stableStringify,
  type Value,
} from '@topgun/core';
import type { CommittedChange } from './changeFanout.js';
import type { WorkSlicer } from './cpuBudget.js';
import type { ServerMetrics } from './metrics.js';
import type { ServerLimits } from './options.js';
import type { Peer } from './peer.js';
import type { ReadFilter, UserContext } from './permissions.js';

/** How long an index nobody subscribes to is kept, for the clients that come back. */
export const INDEX_LINGER_MS = 30_000;
/**
 * How long a subscriber waits for a build another connection runs before it builds too (that
 * connection's budget may be spent, or spent on purpose); the first build to finish is kept.
 */
export const BUILD_WAIT_MS = 2_000;

/**
 * The index of one query (its `where`, `sort` and `fields`) over what one filter sees of a
 * map, shared by every subscription to it, whatever its window.
 */
export interface SharedIndex {
  readonly key: string;
  readonly map: string;
  readonly filter: ReadFilter;
  readonly query: IndexedQuery<Value>;
  /** Undefined until built. */
  index: QueryIndex<Value> | undefined;
  /** Per build under way: the changes committed since it started reading the map. */
  readonly missed: Set<CommittedChange[]>;
  /** The copy of the map it was built from: another copy (reloaded) may have missed changes. */
  source: LWWMap<Value> | undefined;
  readonly subscribers: Set<{ readonly peer: Peer }>;
  /** The connection its rows are charged to: its builder, then one of its subscribers. */
  owner: Peer | undefined;
  /** Rows counted against the budgets. */
  rows: number;
  /** The build subscribers wait for (the latest started), resolving how it ended. */
  building: Promise<'built' | IndexRefusal> | undefined;
  linger: ReturnType<typeof setTimeout> | undefined;
  /** Joined again after it was kept for nobody: `source` is checked before it is used. */
  revived: boolean;
}

/** Which budget an index would go over: its connection's or the process's. */
export type IndexRefusal = 'connection' | 'process';

/** What one user may read of one map, as a key: users with the same view share indexes. */
export function viewOf(filter: ReadFilter, user: UserContext): string {
  return filter.everything ? '*' : stableStringify({ id: user.id, claims: user.claims });
}

/**
 * The live-query indexes of a server: one per query and view of a map, built once in slices
 * (by the first subscriber, the others waiting), kept current by the map's committed
 * changes, and kept for {@link INDEX_LINGER_MS} after its last subscriber left. Their rows
 * count against a budget per process and one per connection (the connection an index is
 * charged to); an index kept for nobody is dropped first when a build needs room.
 */
export class QueryIndexes {
  private readonly byKey = new Map<string, SharedIndex>();
  private readonly byMap = new Map<string, Set<SharedIndex>>();
  private readonly rowsByPeer = new Map<Peer, number>();
  private totalRows = 0;

  constructor(
    private readonly deps: {
      readonly metrics: ServerMetrics;
      readonly limits: Pick<ServerLimits, 'maxLiveQueryRows' | 'maxQueryIndexRowsPerConnection'>;
      readonly lingerMs?: number;
      /** Default: {@link BUILD_WAIT_MS}. */
      readonly buildWaitMs?: number;
    },
  ) {}

  /**
   * The index of `query` over what `filter` lets `user` see of the map, found or created.
   * @throws {QueryError} when the query is invalid.
   */
  find(map: string, filter: ReadFilter, user: UserContext, query: Query<Value>): SharedIndex {
    compileQuery(query);
    const { where, sort, fields } = query;
    const indexed: IndexedQuery<Value> = {
      ...(where === undefined ? {} : { where }),
      ...(sort === undefined ? {} : { sort }),
      ...(fields === undefined ? {} : { fields }),
    };
    const key = stableStringify([map, viewOf(filter, user), indexed]);
    let shared = this.byKey.get(key);
    if (shared === undefined) {
      shared = {
        key,
        map,
        filter,
        query: indexed,
        index: undefined,
        missed: new Set(),
        source: undefined,
        subscribers: new Set(),
        owner: undefined,
        rows: 0,
        building: undefined,
        linger: undefined,
        revived: false,
      };
      this.byKey.set(key, shared);
      const forMap = this.byMap.get(map) ?? new Set();
      forMap.add(shared);
      this.byMap.set(map, forMap);
    }
    return shared;
  }

  /** The subscriber holds the index (found with {@link find}) until it {@link leave}s. */
  join(shared: SharedIndex, subscriber: { readonly peer: Peer }): void {
    if (shared.linger !== undefined) {
      clearTimeout(shared.linger);
      shared.linger = undefined;
      shared.revived = true;
    }
    shared.subscribers.add(subscriber);
  }

  /**
   * Resolves once the index is built from `map` (`visible`: its records the filter lets be
   * seen): by this caller, in its slices, unless another one builds it already. Resolves a
   * refusal instead when its rows would go over a budget: the process's, or that of the
   * subscriber's connection, to which an index nobody is charged for is charged.
   */
  async ready(
    shared: SharedIndex,
    subscriber: { readonly peer: Peer },
    map: LWWMap<Value>,
    visible: () => Iterable<[string, Value]>,
    slicer: WorkSlicer,
    now: () => number,
  ): Promise<{ index: QueryIndex<Value> } | { refusal: IndexRefusal }> {
    // Kept for nobody, from a copy the grid dropped since: it may have missed what went into
    // the new one.
    if (shared.revived && shared.source !== map) this.reset(shared);
    shared.revived = false;
    const peer = subscriber.peer;
    while (shared.index === undefined) {
      if (shared.building !== undefined) {
        // Another subscriber's build: if it fails (its client left, or ran out of time), or
        // its connection had no room, this one builds; if it is slow, this one builds too.
        const outcome = await slicer.io(this.waitFor(shared.building));
        if (outcome === 'process') return this.refused('process');
        if (outcome !== 'slow' || shared.index !== undefined) continue;
      }
      const building = this.build(shared, peer, map, visible(), slicer, now);
      shared.building = building;
      let outcome: Awaited<typeof building>;
      try {
        outcome = await building;
      } catch (error) {
        this.buildEnded(shared, building);
        throw error;
      }
      this.buildEnded(shared, building);
      if (outcome !== 'built') return this.refused(outcome);
    }
    if (shared.owner === undefined) {
      if (!this.fits(peer, shared.index.matchingCount)) return this.refused('connection');
      this.charge(shared, peer);
    }
    return { index: shared.index };
  }

  /** The subscriber no longer holds the index: kept a while for nobody, then dropped. */
  leave(shared: SharedIndex, subscriber: { readonly peer: Peer }): void {
    if (!shared.subscribers.delete(subscriber)) return;
    if (shared.owner === subscriber.peer) {
      const subscribers = [...shared.subscribers];
      if (!subscribers.some((other) => other.peer === subscriber.peer)) {
        // Passed on to a subscriber with room for it; to nobody (the process's budget still
        // counts it) when none has.
        const next = subscribers.find((other) => this.fits(other.peer, shared.rows));
        this.charge(shared, next?.peer);
      }
    }
    if (shared.subscribers.size === 0) this.lingerOrDrop(shared);
  }

  /**
   * Whether the index's rows, counted again after changes moved them, go
   * over a budget: the process's (once indexes kept for nobody are dropped) or its
   * connection's. Its subscriptions are then ended, and it is dropped.
   */
  overBudget(shared: SharedIndex): IndexRefusal | undefined {
    this.charge(shared, shared.owner);
    this.makeRoom();
    if (this.totalRows > this.deps.limits.maxLiveQueryRows) return this.refused('process').refusal;
    const owner = shared.owner;
    if (owner !== undefined && !this.fits(owner, 0)) return this.refused('connection').refusal;
    return undefined;
  }

  /** The indexes of a map. */
  ofMap(map: string): readonly SharedIndex[] {
    return [...(this.byMap.get(map) ?? [])];
  }

  /** Drops an index kept for nobody (its map left the grid: it would miss the map's changes). */
  dropIfIdle(shared: SharedIndex): void {
    if (shared.subscribers.size === 0 && shared.missed.size === 0) this.drop(shared);
  }

  /**
   * Builds the index in `slicer`'s slices, within the room the budgets leave it, checked
   * again once built (other builds may have taken room meanwhile).
   */
  private async build(
    shared: SharedIndex,
    peer: Peer,
    map: LWWMap<Value>,
    visible: Iterable<[string, Value]>,
    slicer: WorkSlicer,
    now: () => number,
  ): Promise<'built' | IndexRefusal> {
    // What the build reads is the map as it is: only changes committed from now on are missed.
    const missed: CommittedChange[] = [];
    shared.missed.add(missed);
    try {
      const connectionRoom = () =>
        this.deps.limits.maxQueryIndexRowsPerConnection - (this.rowsByPeer.get(peer) ?? 0);
      // Indexes kept for nobody make room as it is needed.
      const processRoom = () =>
        this.deps.limits.maxLiveQueryRows - this.totalRows + this.lingeringRows();
      const room = Math.min(connectionRoom(), processRoom());
      const built = await QueryIndex.buildIndex(shared.query, visible, slicer, room);
      // Another build finished first: it is kept, this one dropped.
      if (shared.index !== undefined) return 'built';
      const rows = built?.matchingCount ?? room + 1;
      if (rows > connectionRoom()) return 'connection';
      if (rows > processRoom()) return 'process';
      for (const change of missed)
        built!.move({ key: change.key, value: see(shared.filter, change, now()).value });
      shared.index = built;
      shared.source = map;
      const subscribed = [...shared.subscribers].some((other) => other.peer === peer);
      this.charge(shared, subscribed ? peer : undefined);
      this.makeRoom();
      if (shared.subscribers.size === 0) this.lingerOrDrop(shared);
      return 'built';
    } finally {
      shared.missed.delete(missed);
    }
  }

  /** How a build ended, or `slow` when it is still under way after {@link BUILD_WAIT_MS}. */
  private async waitFor(
    building: Promise<'built' | IndexRefusal>,
  ): Promise<'built' | IndexRefusal | 'failed' | 'slow'> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const slow = new Promise<'slow'>((resolve) => {
      timer = setTimeout(() => resolve('slow'), this.deps.buildWaitMs ?? BUILD_WAIT_MS);
    });
    try {
      return await Promise.race([building.catch(() => 'failed' as const), slow]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A build ended: an entry nothing came of, with nobody waiting, is dropped. */
  private buildEnded(shared: SharedIndex, building: Promise<unknown>): void {
    if (shared.building === building) shared.building = undefined;
    if (shared.index === undefined && shared.subscribers.size === 0 && shared.missed.size === 0)
      this.drop(shared);
  }

  /** Counts a refusal, and says which budget. */
  private refused(refusal: IndexRefusal): { refusal: IndexRefusal } {
    this.deps.metrics.budgetExceeded.inc({
      budget: refusal === 'connection' ? 'query_index_rows' : 'live_query_rows_total',
    });
    return { refusal };
  }

  /** Whether `rows` more fit in the rows of indexes charged to `peer`. */
  private fits(peer: Peer, rows: number): boolean {
    return (
      (this.rowsByPeer.get(peer) ?? 0) + rows <= this.deps.limits.maxQueryIndexRowsPerConnection
    );
  }

  /** An index nobody subscribes to any more: kept a while if built, else dropped. */
  private lingerOrDrop(shared: SharedIndex): void {
    const lingerMs = this.deps.lingerMs ?? INDEX_LINGER_MS;
    if (shared.index === undefined || lingerMs <= 0) {
      if (shared.missed.size === 0) this.drop(shared);
      return;
    }
    shared.linger = setTimeout(() => this.drop(shared), lingerMs);
    shared.linger.unref?.();
  }

  /** Forgets an index built from a copy of the map the grid no longer has. */
  private reset(shared: SharedIndex): void {
    this.charge(shared, undefined);
    this.totalRows -= shared.rows;
    shared.rows = 0;
    shared.index = undefined;
    shared.source = undefined;
    this.deps.metrics.queryIndexRows.set(this.totalRows);
  }

  /** Charges an index's rows, as they are now, to `peer` (nobody, for `undefined`). */
  private charge(shared: SharedIndex, peer: Peer | undefined): void {
    const rows = shared.index?.matchingCount ?? 0;
    if (shared.owner !== undefined) {
      const left = (this.rowsByPeer.get(shared.owner) ?? 0) - shared.rows;
      if (left > 0) this.rowsByPeer.set(shared.owner, left);
      else this.rowsByPeer.delete(shared.owner);
    }
    this.totalRows += rows - shared.rows;
    shared.rows = rows;
    shared.owner = peer;
    if (peer !== undefined) this.rowsByPeer.set(peer, (this.rowsByPeer.get(peer) ?? 0) + rows);
    this.deps.metrics.queryIndexRows.set(this.totalRows);
  }

  private lingeringRows(): number {
    let rows = 0;
    for (const shared of this.byKey.values()) if (shared.linger !== undefined) rows += shared.rows;
    return rows;
  }

  /** Drops indexes kept for nobody, oldest first, while the rows go over the process's budget. */
  private makeRoom(): void {
    for (const shared of this.byKey.values()) {
      if (this.totalRows <= this.deps.limits.maxLiveQueryRows) return;
      if (shared.linger !== undefined) this.drop(shared);
    }
  }

  private drop(shared: SharedIndex): void {
    if (shared.linger !== undefined) clearTimeout(shared.linger);
    shared.linger = undefined;
    if (shared.subscribers.size > 0) return;
    this.reset(shared);
    this.byKey.delete(shared.key);
    const forMap = this.byMap.get(shared.map);
    forMap?.delete(shared);
    if (forMap?.size === 0) this.byMap.delete(shared.map);
  }
}

/**
 * What a subscriber sees of a change: the value if it may see the record (and it is live),
 * and whether it must forget the key (it could see the previous record and no longer can).
 */
export function see(
  filter: ReadFilter,
  { key, record, previous }: CommittedChange,
  now: number,
): { value: Value | undefined; revoke: boolean } {
  const seen = filter.seesChange(key, record, previous);
  const visible = seen === 'record' && !isRecordAbsent(record, now);
  return { value: visible ? (record.value as Value) : undefined, revoke: seen === 'revoke' };
}
