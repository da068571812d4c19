import {
  type AggregateQuery,
  type AggregateRow,
  compileAggregate,
  encodeMessage,
  fittedChunks,
  LiveAggregate,
  type LWWMap,
  type LWWRecord,
  type MessageOf,
  QueryError,
  stableStringify,
  type Value,
} from '@topgun/core';
import type { CommittedChange } from './changeFanout.js';
import type { WorkSlicer } from './cpuBudget.js';
import { MAP_LOADS_SPENT, type MapGrid } from './mapGrid.js';
import type { ServerMetrics } from './metrics.js';
import type { ServerLimits } from './options.js';
import type { Peer } from './peer.js';
import type { Permissions, ReadFilter } from './permissions.js';
import { viewOf } from './queryIndexes.js';

/** One client's subscription to a shared aggregate. */
interface Subscription {
  readonly peer: Peer;
  readonly id: number;
  readonly shared: SharedAggregate;
  /** Set once its client has the result: changes reach it from then on. */
  ready: boolean;
  /** Lets the grid evict the map again (the subscription held it from its start). */
  readonly release: () => void;
}

/**
 * One aggregate query over what one view (a read filter, and the user it applies to) sees of
 * a map, shared by every subscription to it: built once, kept current by committed changes.
 */
interface SharedAggregate {
  readonly key: string;
  readonly map: string;
  readonly filter: ReadFilter;
  readonly query: AggregateQuery<Value>;
  /** Undefined until built. */
  live: LiveAggregate<Value> | undefined;
  /** While it is built: the changes committed since the build began reading the map. */
  missed: CommittedChange[] | undefined;
  /** The build under way. */
  building: Promise<void> | undefined;
  /** The copy of the map it was built from: another copy (reloaded) may have missed changes. */
  source: LWWMap<Value> | undefined;
  readonly subscribers: Set<Subscription>;
  /** Groups counted against the process's budget. */
  groups: number;
  expiryTimer: ReturnType<typeof setTimeout> | undefined;
}

type RefusalCode = Exclude<MessageOf<'query_error'>['code'], 'INVALID_QUERY'>;

/** A frame in the middle of a result: its size is that of any other. */
const PART = { first: false, last: false };

/** Records read per slice check while a build copies the map. */
const RECORDS_PER_CHECK = 512;

/**
 * Server-side live aggregates (`specifications/protocol.md`, "Aggregates"): an aggregate query
 * of a map, kept by a {@link LiveAggregate} shared by every subscription to the same query
 * and view, maintained from each committed change's previous and new record (so its memory
 * grows with its groups, not the map), and pushed to its subscribers as the groups that
 * changed. Only records the subscriber's read rule lets it see are counted. Bounded per
 * connection (`maxLiveQueries` aggregates) and per process (`maxAggregates` aggregates,
 * `maxAggregateGroups` groups).
 */
export class AggregateHub {
  private readonly byPeer = new Map<Peer, Map<number, Subscription>>();
  private readonly byKey = new Map<string, SharedAggregate>();
  private readonly byMap = new Map<string, Set<SharedAggregate>>();
  private totalGroups = 0;

  constructor(
    private readonly deps: {
      readonly grid: MapGrid;
      readonly permissions: Permissions;
      readonly metrics: ServerMetrics;
      readonly limits: Pick<
        ServerLimits,
        'maxLiveQueries' | 'maxAggregates' | 'maxAggregateGroups' | 'maxFrameBytes' | 'chunkRecords'
      >;
      readonly now: () => number;
      /**
       * Resolves once the grid holds every commit acknowledged before the call (other
       * processes' included); rejects when it cannot tell.
       */
      readonly fresh: (map: string) => Promise<void>;
    },
  ) {}

  /** Starts a subscription and sends its result, or a `query_error`. */
  async subscribe(
    peer: Peer,
    id: number,
    mapName: string,
    query: AggregateQuery<Value>,
    slicer: WorkSlicer,
    mayLoadMap: () => boolean = () => true,
  ): Promise<void> {
    this.unsubscribe(peer, id);
    const subscriptions = this.byPeer.get(peer) ?? new Map<number, Subscription>();
    const { limits } = this.deps;
    if (subscriptions.size >= limits.maxLiveQueries) {
      this.refuse(peer, id, 'LIMIT', `at most ${limits.maxLiveQueries} aggregates per connection`);
      return;
    }
    const filter = this.deps.permissions.readFilter(peer.user, mapName);
    if (filter === null) {
      this.refuse(peer, id, 'PERMISSION', `reading ${mapName} is not allowed`);
      return;
    }
    compileAggregate(query);
    const key = stableStringify([mapName, viewOf(filter, peer.user), query]);
    if (!this.byKey.has(key) && this.byKey.size >= limits.maxAggregates) {
      this.deps.metrics.budgetExceeded.inc({ budget: 'aggregates' });
      this.refuse(peer, id, 'LIMIT', 'the server holds as many aggregates as it may: retry later');
      return;
    }
    try {
      await slicer.io(this.deps.fresh(mapName));
    } catch (error) {
      this.refuse(peer, id, 'UNAVAILABLE', (error as Error).message);
      return;
    }
    // Held from before it is loaded: evicted meanwhile, the aggregate would be built from a
    // copy that no longer learns the map's changes.
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
    if (!peer.isOpen()) {
      release();
      return;
    }
    const shared = this.find(key, mapName, filter, query);
    const subscription: Subscription = { peer, id, shared, ready: false, release };
    shared.subscribers.add(subscription);
    subscriptions.set(id, subscription);
    this.byPeer.set(peer, subscriptions);
    this.deps.metrics.aggregates.inc();
    const current = () => this.byPeer.get(peer)?.get(id) === subscription;

    try {
      // Another subscriber's build may fail (its client left, or ran out of time): then
      // this one builds.
      while (shared.live === undefined && current()) {
        if (shared.building === undefined) shared.building = this.build(shared, map, slicer);
        const building = shared.building;
        try {
          await slicer.io(building);
        } catch (error) {
          if (shared.building === building) throw error;
        } finally {
          if (shared.building === building) shared.building = undefined;
        }
      }
    } catch (error) {
      if (error instanceof QueryError) {
        this.fail(shared, 'LIMIT', error.message);
        return;
      }
      this.unsubscribe(peer, id);
      throw error;
    }
    if (!current()) return;
    const overBudget = this.account(shared);
    if (overBudget !== undefined) {
      this.fail(shared, 'LIMIT', overBudget);
      return;
    }
    // Sent whole, with nothing awaited: every change after it reaches the client as rows.
    this.send(subscription, shared.live!.rows, [], true);
    subscription.ready = true;
  }

  /** Ends a subscription. */
  unsubscribe(peer: Peer, id: number): void {
    const subscription = this.byPeer.get(peer)?.get(id);
    if (subscription === undefined) return;
    this.byPeer.get(peer)!.delete(id);
    subscription.release();
    this.deps.metrics.aggregates.dec();
    const { shared } = subscription;
    shared.subscribers.delete(subscription);
    if (shared.subscribers.size === 0) this.drop(shared);
  }

  /** Ends every subscription of a client. */
  removePeer(peer: Peer): void {
    for (const id of [...(this.byPeer.get(peer)?.keys() ?? [])]) this.unsubscribe(peer, id);
    this.byPeer.delete(peer);
  }

  /**
   * Feeds committed changes to the map's aggregates, and tells their subscribers the groups
   * that changed.
   */
  async onChanges(mapName: string, changes: readonly CommittedChange[]): Promise<void> {
    const aggregates = this.byMap.get(mapName);
    if (aggregates === undefined) return;
    const built: SharedAggregate[] = [];
    for (const shared of aggregates) {
      // Taken before anything is awaited: a build copies the map as it is.
      if (shared.missed !== undefined) shared.missed.push(...changes);
      else if (shared.live !== undefined) built.push(shared);
    }
    if (built.length === 0) return;
    // Maps with subscriptions are held, hence loaded.
    const map = await this.deps.grid.ifLoaded(mapName);
    const now = this.deps.now();
    for (const shared of built) {
      const live = shared.live;
      if (live === undefined) continue; // dropped meanwhile
      if (map !== shared.source) {
        // Its copy of the map left the grid (it had to reload from the database).
        this.fail(shared, 'UNAVAILABLE', 'the map was reloaded: subscribe again');
        continue;
      }
      try {
        live.expire(now);
        for (const change of changes) live.apply(seen(shared.filter, change));
      } catch (error) {
        if (!(error instanceof QueryError)) throw error;
        this.fail(shared, 'LIMIT', error.message);
        continue;
      }
      this.flush(shared);
    }
  }

  /** Builds the aggregate from the map as it is, in `slicer`'s slices. */
  private async build(
    shared: SharedAggregate,
    map: LWWMap<Value>,
    slicer: WorkSlicer,
  ): Promise<void> {
    const missed: CommittedChange[] = [];
    shared.missed = missed;
    try {
      // A copy of the records, read in slices: a key changed meanwhile is read again once
      // the copy is done, so that the copy is the map as it is then.
      const records = new Map<string, LWWRecord<Value>>();
      let read = 0;
      for (const [key, record] of map.allRecords()) {
        records.set(key, record);
        if (++read % RECORDS_PER_CHECK === 0 && slicer.due()) await slicer.pause();
      }
      for (const { key } of missed.splice(0)) {
        const record = map.getRecord(key);
        if (record === undefined) records.delete(key);
        else records.set(key, record);
      }
      // Changes from here on are applied after it, in order.
      const live = new LiveAggregate(shared.query, [], this.deps.now());
      read = 0;
      for (const [key, record] of records) {
        live.apply(seen(shared.filter, { key, record }));
        if (++read % RECORDS_PER_CHECK === 0 && slicer.due()) await slicer.pause();
      }
      for (const change of missed) live.apply(seen(shared.filter, change));
      live.expire(this.deps.now());
      // What the build counted is told as the result itself.
      live.delta();
      shared.live = live;
      shared.source = map;
      this.scheduleExpiry(shared);
    } finally {
      shared.missed = undefined;
    }
  }

  /** Tells every ready subscriber the groups that changed since the last time. */
  private flush(shared: SharedAggregate): void {
    const live = shared.live!;
    const delta = live.delta();
    this.scheduleExpiry(shared);
    if (!delta.changed) return;
    const overBudget = this.account(shared);
    if (overBudget !== undefined) {
      this.fail(shared, 'LIMIT', overBudget);
      return;
    }
    const rows = [...delta.entered, ...delta.updated];
    for (const subscription of shared.subscribers)
      if (subscription.ready) this.send(subscription, rows, delta.left, false);
  }

  /** Sends rows (and keys of groups that left), in as many frames as they need. */
  private send(
    { peer, id }: Subscription,
    rows: readonly AggregateRow[],
    left: readonly string[],
    reset: boolean,
  ): void {
    const { maxFrameBytes, chunkRecords } = this.deps.limits;
    const encode = (
      chunk: readonly (AggregateRow | string)[],
      place: { first: boolean; last: boolean },
    ) =>
      encodeMessage({
        type: 'aggregate_rows',
        id,
        reset: reset && place.first,
        rows: chunk.filter((item): item is AggregateRow => typeof item !== 'string'),
        left: chunk.filter((item): item is string => typeof item === 'string'),
        last: place.last,
      });
    const items: Array<AggregateRow | string> = [...rows, ...left];
    const whole = encode(items, { first: true, last: true });
    if (whole.length <= maxFrameBytes && items.length <= chunkRecords) {
      peer.sendEncoded(whole);
      return;
    }
    const chunks = [
      ...fittedChunks(items, (chunk) => encode(chunk, PART), maxFrameBytes, chunkRecords),
    ];
    for (const [index, { chunk }] of chunks.entries())
      peer.sendEncoded(encode(chunk, { first: index === 0, last: index === chunks.length - 1 }));
  }

  /** Takes expired records out when the next is due. */
  private scheduleExpiry(shared: SharedAggregate): void {
    const due = shared.live?.nextExpiry;
    if (due === undefined || shared.expiryTimer !== undefined) return;
    shared.expiryTimer = setTimeout(
      () => {
        shared.expiryTimer = undefined;
        if (shared.live === undefined || this.byKey.get(shared.key) !== shared) return;
        shared.live.expire(this.deps.now());
        this.flush(shared);
      },
      Math.max(0, due - this.deps.now()) + 1,
    );
    shared.expiryTimer.unref?.();
  }

  private find(
    key: string,
    map: string,
    filter: ReadFilter,
    query: AggregateQuery<Value>,
  ): SharedAggregate {
    let shared = this.byKey.get(key);
    if (shared === undefined) {
      shared = {
        key,
        map,
        filter,
        query,
        live: undefined,
        missed: undefined,
        building: undefined,
        source: undefined,
        subscribers: new Set(),
        groups: 0,
        expiryTimer: undefined,
      };
      this.byKey.set(key, shared);
      const forMap = this.byMap.get(map) ?? new Set();
      forMap.add(shared);
      this.byMap.set(map, forMap);
    }
    return shared;
  }

  /**
   * Counts an aggregate's groups against the process's budget; returns why it may not keep
   * them, if it may not.
   */
  private account(shared: SharedAggregate): string | undefined {
    const groups = shared.live?.groupCount ?? 0;
    const total = this.totalGroups - shared.groups + groups;
    if (groups > shared.groups && total > this.deps.limits.maxAggregateGroups) {
      this.deps.metrics.budgetExceeded.inc({ budget: 'aggregate_groups' });
      return 'the server holds as many aggregate groups as it may: retry later';
    }
    this.totalGroups = total;
    shared.groups = groups;
    return undefined;
  }

  /** Ends every subscription to an aggregate, telling each client why. */
  private fail(shared: SharedAggregate, code: RefusalCode, message: string): void {
    for (const { peer, id } of [...shared.subscribers]) {
      this.unsubscribe(peer, id);
      this.refuse(peer, id, code, message);
    }
    this.drop(shared);
  }

  private drop(shared: SharedAggregate): void {
    if (this.byKey.get(shared.key) !== shared) return;
    this.byKey.delete(shared.key);
    const forMap = this.byMap.get(shared.map);
    forMap?.delete(shared);
    if (forMap?.size === 0) this.byMap.delete(shared.map);
    clearTimeout(shared.expiryTimer);
    this.totalGroups -= shared.groups;
    shared.groups = 0;
    shared.live = undefined;
  }

  private refuse(peer: Peer, id: number, code: RefusalCode, message: string): void {
    peer.send({ type: 'query_error', id, code, message });
  }
}

/** A change as a subscriber's view counts it: records it may not see are absent. */
function seen(
  filter: ReadFilter,
  { key, record, previous }: Pick<CommittedChange, 'key' | 'record' | 'previous'>,
): {
  key: string;
  record: LWWRecord<Value> | undefined;
  previousRecord: LWWRecord<Value> | undefined;
} {
  if (filter.everything) return { key, record, previousRecord: previous };
  return {
    key,
    record: filter.sees(key, record) ? record : undefined,
    previousRecord: previous !== undefined && filter.sees(key, previous) ? previous : undefined,
  };
}
