import {
  type LWWMap,
  type LWWRecord,
  type Query,
  type QueryRow,
  stableStringify,
  type Value,
} from '@topgun/core';
import { QueryHandle } from './queryHandle.js';
import type { QueryResultCache } from './queryResultCache.js';

/** What the registry needs around it. */
export interface QueryRegistryOptions {
  /** The replica of map `map`. */
  readonly replica: (map: string) => LWWMap<Value>;
  /** Whether the stored replica is loaded (before that, remembered windows are shown). */
  readonly isLoaded: () => boolean;
  /** Where the last windows are remembered for the next start; undefined: nowhere. */
  readonly resultCache: QueryResultCache | undefined;
  /** Whether map `map` is replicated by query (its queries send `have`, and are confirmed one by one). */
  readonly scoped: (map: string) => boolean;
  /** A query started following the replica: subscribe it on the server. */
  readonly subscribed: (query: ServerQuery) => void;
  /** A query stopped following the replica: unsubscribe it. */
  readonly unsubscribed: (id: number) => void;
  /** A query's window grew to `limit` rows. */
  readonly grew: (id: number, limit: number) => void;
  /** A query of map `map` stopped following the replica, or its server result arrived. */
  readonly settled: (map: string) => void;
  /** Stores the keys of a pinned query's result (`null`: unpinned). */
  readonly storePin: (pin: string, keys: readonly string[] | null) => void;
  /** This tab's id, and a channel to the other tabs (the leader subscribes their queries). */
  readonly tab?: string;
  readonly share?: (message: QueryTabMessage) => void;
}

/**
 * Between tabs, for maps replicated by query: a tab's query followed or no longer (the leader
 * subscribes it on the server for that tab), and the leader's word on one.
 */
export type QueryTabMessage =
  | {
      readonly type: 'query';
      readonly tab: string;
      readonly map: string;
      readonly query: Query<Value>;
      readonly limit: number | undefined;
      readonly active: boolean;
    }
  | {
      readonly type: 'query-state';
      /** The query's map and serialized form. */
      readonly key: string;
      readonly synced: boolean;
      readonly matching: number | undefined;
    };

/** A live query the server should know about. */
export interface ServerQuery {
  readonly id: number;
  readonly map: string;
  /** The query, its window grown as `loadMore` left it. */
  readonly query: Query<Value>;
  /** For a map replicated by query: the records of its result, for `have`. */
  readonly have?: () => ReadonlyArray<readonly [string, LWWRecord<Value>]>;
}

/** Options of a live query. */
export interface QueryOptions {
  /**
   * Pins the query: its rows stay stored while it is not used, and answer it after a reload
   * without network (for a map replicated by query: they are kept beyond `maxRecords`).
   */
  readonly offline?: boolean;
}

const PIN_PREFIX = 'pin:';

/**
 * The live queries of a client: equal queries share one handle, each has an id the server
 * knows it by while it is followed, the maps the server confirmed mark their queries
 * synced, and the last window of each is remembered (at most once a second) for the next
 * start.
 */
export class QueryRegistry {
  readonly #queries = new Map<string, { id: number; handle: QueryHandle<unknown> }>();
  readonly #confirmedMaps = new Set<string>();
  readonly #pendingResults = new Map<string, () => readonly QueryRow<unknown>[]>();
  /** Pinned queries' last result keys, by `map` + query (stored, and read back at start). */
  readonly #pins = new Map<string, readonly string[]>();
  /** Other tabs' queries the leader follows for them, by tab and query: how to stop. */
  readonly #forTabs = new Map<string, () => void>();
  #resultTimer: ReturnType<typeof setTimeout> | undefined;
  #nextId = 1;

  readonly #options: QueryRegistryOptions;

  constructor(options: QueryRegistryOptions) {
    this.#options = options;
  }

  /**
   * The live query of `query` over `map` (one handle for equal queries).
   * @throws {QueryError} when the query is invalid.
   */
  query<V>(map: string, query: Query<V>, { offline }: QueryOptions = {}): QueryHandle<V> {
    const cacheKey = `${map}\u0000${stableStringify(query)}`;
    if (offline && !this.#pins.has(cacheKey)) this.#pins.set(cacheKey, []);
    const cached = this.#queries.get(cacheKey);
    if (cached !== undefined) return cached.handle as QueryHandle<V>;
    const options = this.#options;
    const id = this.#nextId++;
    const scoped = options.scoped(map);
    const handle: QueryHandle<V> = new QueryHandle<V>(
      map,
      query,
      options.replica(map) as LWWMap<unknown> as LWWMap<V>,
      !scoped && this.#confirmedMaps.has(map),
      {
        isLoaded: options.isLoaded,
        onResult: (rows) => this.#remember(cacheKey, rows as () => readonly QueryRow<unknown>[]),
        // A handle follows the replica (and the server) only while it is used.
        onActive: (active) => {
          this.#queries.set(cacheKey, { id, handle: active as QueryHandle<unknown> });
          options.subscribed(this.#serverQuery(id, active as QueryHandle<unknown>));
          this.#announce(active as QueryHandle<unknown>, true);
        },
        onIdle: (idle) => {
          if (this.#queries.get(cacheKey)?.handle === (idle as QueryHandle<unknown>))
            this.#queries.delete(cacheKey);
          if (this.#pins.has(cacheKey)) this.#storePin(cacheKey, idle.keys);
          options.unsubscribed(id);
          // Not confirmed while nothing follows it on the server.
          if (scoped) idle.unconfirm();
          this.#announce(idle as QueryHandle<unknown>, false);
          options.settled(map);
        },
        onMore: (grown, limit) => {
          options.grew(id, limit);
          this.#announce(grown as QueryHandle<unknown>, true);
        },
      },
      options.isLoaded()
        ? undefined
        : (options.resultCache?.read(cacheKey) as QueryRow<V>[] | undefined),
    );
    this.#queries.set(cacheKey, { id, handle: handle as QueryHandle<unknown> });
    return handle;
  }

  #serverQuery(id: number, handle: QueryHandle<unknown>): ServerQuery {
    const { map } = handle;
    const query = handle.serverQuery as Query<Value>;
    if (!this.#options.scoped(map)) return { id, map, query };
    return {
      id,
      map,
      query,
      have: () => handle.heldRecords() as ReadonlyArray<readonly [string, LWWRecord<Value>]>,
    };
  }

  /** Tells the other tabs a query of a map replicated by query is followed here, or not. */
  #announce(handle: QueryHandle<unknown>, active: boolean): void {
    const { tab, share, scoped } = this.#options;
    if (tab === undefined || !scoped(handle.map)) return;
    share?.({
      type: 'query',
      tab,
      map: handle.map,
      query: handle.query as Query<Value>,
      limit: handle.grownLimit,
      active,
    });
  }

  /** A new leader: tells it every query of a map replicated by query followed here. */
  announceAll(): void {
    for (const { handle } of this.#queries.values())
      if (handle.active) this.#announce(handle, true);
  }

  /** (Leader) Another tab follows a query, or no longer: followed here for it, on the server. */
  followForTab({
    tab,
    map,
    query,
    limit,
    active,
  }: Extract<QueryTabMessage, { type: 'query' }>): void {
    const key = `${tab}\u0000${map}\u0000${stableStringify(query)}`;
    this.#forTabs.get(key)?.();
    this.#forTabs.delete(key);
    if (!active) return;
    const handle = this.query(map, query);
    if (limit !== undefined) handle.growTo(limit);
    this.#forTabs.set(
      key,
      handle.subscribe(() => {}),
    );
  }

  /** The leader's word on a query: its server result arrived, or its count changed. */
  learnFromLeader({
    key,
    synced,
    matching,
  }: Extract<QueryTabMessage, { type: 'query-state' }>): void {
    const handle = this.#queries.get(key)?.handle;
    if (handle === undefined) return;
    if (matching !== undefined) handle.learnMatching(matching);
    if (synced) handle.confirm();
  }

  /** Tells the other tabs what the server said of query `id` (maps replicated by query). */
  #tellTabs(id: number, synced: boolean, matching: number | undefined): void {
    for (const [key, query] of this.#queries)
      if (query.id === id && this.#options.scoped(query.handle.map))
        this.#options.share?.({ type: 'query-state', key, synced, matching });
  }

  /** Unpins a query (its rows may then be dropped like any other). */
  unpin(map: string, query: Query<unknown>): void {
    const pin = `${map}\u0000${stableStringify(query)}`;
    if (this.#pins.delete(pin)) this.#options.storePin(pin, null);
    this.#options.settled(map);
  }

  #storePin(pin: string, keys: readonly string[]): void {
    this.#pins.set(pin, keys);
    this.#options.storePin(pin, keys);
  }

  /** Reads the pins stored back. */
  loadPins(meta: Iterable<readonly [string, unknown]>): void {
    for (const [name, keys] of meta)
      if (name.startsWith(PIN_PREFIX) && Array.isArray(keys))
        this.#pins.set(name.slice(PIN_PREFIX.length), keys);
  }

  /** The keys of map `map` that live and pinned queries hold. */
  heldKeys(map: string): Set<string> {
    const held = new Set<string>();
    for (const [pin, keys] of this.#pins)
      if (pin.startsWith(`${map}\u0000`)) for (const key of keys) held.add(key);
    for (const { handle } of this.#queries.values())
      if (handle.map === map) for (const key of handle.keys) held.add(key);
    return held;
  }

  /** The server counted `matching` records for query `id`. */
  learnMatching(id: number, matching: number): void {
    for (const query of this.#queries.values())
      if (query.id === id) query.handle.learnMatching(matching);
    this.#tellTabs(id, false, matching);
  }

  /** The queries that follow the replica, for the server to know of. */
  active(): ServerQuery[] {
    return [...this.#queries.values()]
      .filter(({ handle }) => handle.active)
      .map(({ id, handle }) => this.#serverQuery(id, handle));
  }

  /** The server confirmed query `id`. */
  confirmQuery(id: number): void {
    for (const query of this.#queries.values()) {
      if (query.id !== id) continue;
      query.handle.confirm();
      this.#options.settled(query.handle.map);
    }
    this.#tellTabs(id, true, undefined);
  }

  /** Map `map` is reconciled with the server: its queries, now and later, are synced. */
  confirmMap(map: string): void {
    this.#confirmedMaps.add(map);
    for (const { handle } of this.#queries.values()) if (handle.map === map) handle.confirm();
  }

  /** The stored replica is loaded: remember the windows of the queries that follow it. */
  loaded(): void {
    for (const [cacheKey, { handle }] of this.#queries) {
      if (handle.active) this.#remember(cacheKey, () => handle.getSnapshot().data);
    }
  }

  /** Writes the windows waiting to be remembered now (the page is going away). */
  writeResults(): void {
    clearTimeout(this.#resultTimer);
    this.#resultTimer = undefined;
    for (const [cacheKey, rows] of this.#pendingResults) {
      const result = rows();
      this.#options.resultCache?.write(cacheKey, result);
      if (this.#pins.has(cacheKey))
        this.#storePin(
          cacheKey,
          result.map((row) => row.key),
        );
    }
    this.#pendingResults.clear();
  }

  /** Remembers what is pending and stops every query. */
  dispose(): void {
    this.writeResults();
    for (const { handle } of this.#queries.values()) handle.dispose();
  }

  /** Remembers a query's result for the next start, at most once a second (read then). */
  #remember(cacheKey: string, rows: () => readonly QueryRow<unknown>[]): void {
    if (this.#options.resultCache === undefined && !this.#pins.has(cacheKey)) return;
    this.#pendingResults.set(cacheKey, rows);
    this.#resultTimer ??= setTimeout(() => this.writeResults(), 1_000);
  }
}
