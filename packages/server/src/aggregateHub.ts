import {
  type AggregateQuery,
  type AggregateRow,
  compileAggregate,
  encodeMessage,
  fittedChunks,
  LiveAggregate,
  type LWWRecord,
  type MessageOf,
  QueryError,
  type ServerLWWMap,
  stableStringify,
  type Value,
} from '@topgun/core';
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

/** The aggregates of one map, fed every change of its records as it is stored. */
interface MapFeed {
  /** The grid's copy of the map they follow (a copy loaded again is another feed). */
  readonly source: ServerLWWMap<Value>;
  readonly aggregates: Set<SharedAggregate>;
  readonly stop: () => void;
}

/**
 * One aggregate query over what one view (a read filter, and the user it applies to) sees of
 * a map, shared by every subscription to it.
 */
interface SharedAggregate {
  readonly key: string;
  readonly filter: ReadFilter;
  readonly query: AggregateQuery<Value>;
  readonly feed: MapFeed;
  /** From the start of its build: counts what the build passed. */
  live: LiveAggregate<Value> | undefined;
  /** While it is built: the keys it passed (changes of others are read when it gets there). */
  passed: Set<string> | undefined;
  built: boolean;
  /** The build under way. */
  building: Promise<void> | undefined;
  readonly subscribers: Set<Subscription>;
  /** Changed since its subscribers were last told. */
  dirty: boolean;
  /** Why it cannot go on (its records fell into too many groups), told at the next flush. */
  failure: string | undefined;
  /** Groups counted against the process's budget. */
  groups: number;
  expiryTimer: ReturnType<typeof setTimeout> | undefined;
}

type RefusalCode = Exclude<MessageOf<'query_error'>['code'], 'INVALID_QUERY'>;

/** A frame in the middle of a result: its size is that of any other. */
const PART = { first: false, last: false };

/** Records counted per slice check while a build reads the map. */
const RECORDS_PER_CHECK = 512;

/**
 * Server-side live aggregates (`specifications/protocol.md`, "Aggregates"): an aggregate query
 * of a map, kept by a {@link LiveAggregate} shared by every subscription to the same query
 * and view. It is fed every change of the grid's copy of the map as it is stored, with the
 * record before and after (local commits and other processes' alike), so that its memory
 * grows with its groups, not the map; its subscribers are told the groups that changed once
 * per turn of the event loop. Only records the subscriber's read rule lets it see count.
 * Bounded per connection (`maxLiveQueries` aggregates) and per process (`maxAggregates`
 * aggregates, `maxAggregateGroups` groups), and to 10,000 groups each.
 */
export class AggregateHub {
  private readonly byPeer = new Map<Peer, Map<number, Subscription>>();
  private readonly byKey = new Map<string, SharedAggregate>();
  private readonly feeds = new Map<ServerLWWMap<Value>, MapFeed>();
  private totalGroups = 0;
  private flushScheduled = false;

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
    try {
      await slicer.io(this.deps.fresh(mapName));
    } catch (error) {
      this.refuse(peer, id, 'UNAVAILABLE', (error as Error).message);
      return;
    }
    // Held from before it is loaded: evicted meanwhile, the aggregate would follow a copy
    // that no longer learns the map's changes.
    const release = this.deps.grid.hold(mapName);
    const loading = this.deps.grid.getWithin(mapName, mayLoadMap);
    if (loading === undefined) {
      release();
      this.refuse(peer, id, 'LIMIT', MAP_LOADS_SPENT);
      return;
    }
    let map: ServerLWWMap<Value>;
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
    const key = stableStringify([mapName, viewOf(filter, peer.user), query]);
    const existing = this.byKey.get(key);
    const shared =
      existing?.feed.source === map ? existing : this.create(key, filter, query, map, existing);
    if (shared === undefined) {
      release();
      this.deps.metrics.budgetExceeded.inc({ budget: 'aggregates' });
      this.refuse(peer, id, 'LIMIT', 'the server holds as many aggregates as it may: retry later');
      return;
    }
    const subscription: Subscription = { peer, id, shared, ready: false, release };
    shared.subscribers.add(subscription);
    subscriptions.set(id, subscription);
    this.byPeer.set(peer, subscriptions);
    this.deps.metrics.aggregates.inc();
    const current = () => this.byPeer.get(peer)?.get(id) === subscription;

    try {
      // Another subscriber's build may fail (its client left, or ran out of time): then
      // this one builds.
      while (!shared.built && current()) {
        shared.building ??= this.build(shared, slicer);
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
    // Sent whole, with nothing awaited: every change after it reaches the client as rows (a
    // change already in it and told again after changes nothing).
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
   * Builds the aggregate from the map in `slicer`'s slices: a record counts as it is when
   * the build reaches it; changes of the records it passed reach it as they are stored.
   */
  private async build(shared: SharedAggregate, slicer: WorkSlicer): Promise<void> {
    const live = new LiveAggregate(shared.query, [], this.deps.now());
    const passed = new Set<string>();
    shared.live = live;
    shared.passed = passed;
    try {
      let read = 0;
      for (const [key, record] of shared.feed.source.allRecords()) {
        // A key deleted and stored again comes again, at the end: it was counted.
        if (passed.has(key)) continue;
        passed.add(key);
        live.apply(seen(shared.filter, key, record, undefined));
        if (++read % RECORDS_PER_CHECK === 0 && slicer.due()) {
          await slicer.pause();
          if (this.byKey.get(shared.key) !== shared) return; // dropped meanwhile
        }
      }
      live.expire(this.deps.now());
      // What the build counted is told as the result itself.
      live.delta();
      shared.dirty = false;
      shared.built = true;
      this.scheduleExpiry(shared);
    } catch (error) {
      shared.live = undefined;
      throw error;
    } finally {
      shared.passed = undefined;
    }
  }

  /** A record of a map with aggregates was stored: counted by those that reached it. */
  private onRecord(
    feed: MapFeed,
    key: string,
    record: LWWRecord<Value> | undefined,
    previous: LWWRecord<Value> | undefined,
  ): void {
    for (const shared of feed.aggregates) {
      const { live, passed } = shared;
      if (live === undefined || shared.failure !== undefined) continue;
      if (passed !== undefined && !passed.has(key)) continue;
      try {
        if (live.apply(seen(shared.filter, key, record, previous))) shared.dirty = true;
      } catch (error) {
        if (!(error instanceof QueryError)) throw error;
        shared.failure = error.message;
        shared.dirty = true;
      }
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        for (const shared of [...this.byKey.values()]) if (shared.dirty) this.flush(shared);
      });
    }
  }

  /** Tells every ready subscriber the groups that changed since the last time. */
  private flush(shared: SharedAggregate): void {
    shared.dirty = false;
    if (shared.failure !== undefined) {
      this.fail(shared, 'LIMIT', shared.failure);
      return;
    }
    const live = shared.live;
    if (!shared.built || live === undefined) return;
    live.expire(this.deps.now());
    this.scheduleExpiry(shared);
    const delta = live.delta();
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
        if (this.byKey.get(shared.key) === shared) this.flush(shared);
      },
      Math.max(0, due - this.deps.now()) + 1,
    );
    shared.expiryTimer.unref?.();
  }

  /**
   * A new aggregate, following `map`; undefined when the process holds as many as it may.
   * One of the same key following an older copy of the map is replaced.
   */
  private create(
    key: string,
    filter: ReadFilter,
    query: AggregateQuery<Value>,
    map: ServerLWWMap<Value>,
    replaced: SharedAggregate | undefined,
  ): SharedAggregate | undefined {
    if (replaced !== undefined) this.fail(replaced, 'UNAVAILABLE', 'the map was reloaded');
    if (this.byKey.size >= this.deps.limits.maxAggregates) return undefined;
    let feed = this.feeds.get(map);
    if (feed === undefined) {
      const aggregates = new Set<SharedAggregate>();
      const created: MapFeed = {
        source: map,
        aggregates,
        stop: map.onRecordChange((recordKey, record, previous) =>
          this.onRecord(created, recordKey, record, previous),
        ),
      };
      feed = created;
      this.feeds.set(map, feed);
    }
    const shared: SharedAggregate = {
      key,
      filter,
      query,
      feed,
      live: undefined,
      passed: undefined,
      built: false,
      building: undefined,
      subscribers: new Set(),
      dirty: false,
      failure: undefined,
      groups: 0,
      expiryTimer: undefined,
    };
    this.byKey.set(key, shared);
    feed.aggregates.add(shared);
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
    const { feed } = shared;
    feed.aggregates.delete(shared);
    if (feed.aggregates.size === 0) {
      feed.stop();
      this.feeds.delete(feed.source);
    }
    clearTimeout(shared.expiryTimer);
    this.totalGroups -= shared.groups;
    shared.groups = 0;
    shared.live = undefined;
  }

  private refuse(peer: Peer, id: number, code: RefusalCode, message: string): void {
    peer.send({ type: 'query_error', id, code, message });
  }
}

/** A change as a view counts it: records it may not see are absent. */
function seen(
  filter: ReadFilter,
  key: string,
  record: LWWRecord<Value> | undefined,
  previous: LWWRecord<Value> | undefined,
): {
  key: string;
  record: LWWRecord<Value> | undefined;
  previousRecord: LWWRecord<Value> | undefined;
} {
  if (filter.everything) return { key, record, previousRecord: previous };
  return {
    key,
    record: record !== undefined && filter.sees(key, record) ? record : undefined,
    previousRecord: previous !== undefined && filter.sees(key, previous) ? previous : undefined,
  };
}
