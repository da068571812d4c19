import {
  type AggregateQuery,
  type LWWMap,
  type LWWRecord,
  MAX_WINDOW_ROWS,
  type Query,
  type QueryRow,
  type Value,
} from '@topgun/core';
import type { AggregateHandle } from './aggregateHandle.js';
import { Aggregates } from './aggregates.js';
import { Pins, type QueryTabMessage, scopedQueryRules } from './pins.js';
import { QueryHandle } from './queryHandle.js';
import {
  type QueryOptions,
  type QueryRegistryOptions,
  queryKey,
  type ServerQuery,
  type ServerWindowQuery,
} from './registryOptions.js';
import { ServerWindow } from './serverWindow.js';

export type { QueryOptions, QueryRegistryOptions, ServerQuery };

/**
 * The live queries of a client: equal queries share one handle, each has an id the server
 * knows it by while it is followed, the maps the server confirmed mark their queries
 * synced, and the last window of each is remembered (at most once a second) for the next
 * start.
 */
export class QueryRegistry {
  readonly #queries = new Map<
    string,
    { id: number; handle: QueryHandle<unknown>; window?: ServerWindow<unknown> | undefined }
  >();
  /** The live aggregates (those of maps replicated by query are the server's). */
  readonly aggregates: Aggregates;
  readonly #confirmedMaps = new Set<string>();
  readonly #pendingResults = new Map<string, () => readonly QueryRow<unknown>[]>();
  /** Pinned queries' last result keys, by `map` + query (stored, and read back at start). */
  readonly #pins: Pins;
  /** Other tabs' queries the leader follows for them, by tab and query: how to stop. */
  readonly #forTabs = new Map<string, () => void>();
  #resultTimer: ReturnType<typeof setTimeout> | undefined;
  #nextId = 1;

  readonly #options: QueryRegistryOptions;

  constructor(options: QueryRegistryOptions) {
    this.#options = options;
    this.#pins = new Pins(options.storePin, options.share);
    this.aggregates = new Aggregates({ ...options, nextId: () => this.#nextId++ });
  }

  /**
   * The live query of `query` over `map` (one handle for equal queries).
   * @throws {QueryError} when the query is invalid.
   */
  query<V>(map: string, query: Query<V>, { offline }: QueryOptions = {}): QueryHandle<V> {
    const cacheKey = queryKey(map, query);
    if (offline) this.#pins.add(cacheKey);
    const cached = this.#queries.get(cacheKey);
    if (cached !== undefined) return cached.handle as QueryHandle<V>;
    const options = this.#options;
    const scoped = options.scoped(map);
    if (scoped) scopedQueryRules(query);
    const id = this.#nextId++;
    const window = scoped
      ? new ServerWindow<unknown>(
          (record) => options.ownWrite?.(record as LWWRecord<Value>) ?? false,
        )
      : undefined;
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
          this.#queries.set(cacheKey, { id, handle: active as QueryHandle<unknown>, window });
          options.subscribed(this.#serverQuery(id, active as QueryHandle<unknown>));
          this.#announce(active as QueryHandle<unknown>, true);
        },
        onIdle: (idle) => {
          if (this.#queries.get(cacheKey)?.handle === (idle as QueryHandle<unknown>))
            this.#queries.delete(cacheKey);
          if (this.#pins.has(cacheKey)) this.#pins.set(cacheKey, idle.keys);
          options.unsubscribed(id);
          // Not confirmed while nothing follows it on the server.
          if (scoped) idle.unconfirm();
          this.#announce(idle as QueryHandle<unknown>, false);
          options.settled(map);
        },
        maxLimit: scoped ? MAX_WINDOW_ROWS : undefined,
        window: window as ServerWindow<V> | undefined,
        onMore: (grown, limit) => {
          if (!scoped) return; // a whole map pages locally
          options.grew(id, limit);
          this.#announce(grown as QueryHandle<unknown>, true);
        },
      },
      options.isLoaded()
        ? undefined
        : (options.resultCache?.read(cacheKey) as QueryRow<V>[] | undefined),
    );
    this.#queries.set(cacheKey, { id, handle: handle as QueryHandle<unknown>, window });
    return handle;
  }

  /**
   * The live aggregate of `query` over `map` (one handle for equal queries): evaluated on the
   * replica of a map replicated whole, by the server for a map replicated by query.
   * @throws {QueryError} when the query is invalid.
   */
  aggregate<V>(map: string, query: AggregateQuery<V>): AggregateHandle<V> {
    return this.aggregates.aggregate(
      queryKey(map, query),
      map,
      query,
      this.#confirmedMaps.has(map),
    );
  }

  /**
   * Rows of query `id` the server sent (merged into the replica already): a snapshot's chunk,
   * or an update moving rows in and out of its window.
   */
  serverRows(id: number, sent: readonly string[], leave: readonly string[], last?: boolean): void {
    const { handle, window } = this.#find(id)?.[1] ?? {};
    if (handle === undefined || window === undefined) return;
    if (last === undefined) {
      window.moved(sent, leave);
      handle.windowChanged([...sent, ...leave]);
    } else if (window.sent(sent, last, handle.serverQuery, (key) => handle.recordOf(key)))
      handle.rebuild();
  }

  /** The query the server knows as `id`, with its key. */
  #find(id: number) {
    for (const entry of this.#queries) if (entry[1].id === id) return entry;
    return undefined;
  }

  #serverQuery(id: number, handle: QueryHandle<unknown>): ServerWindowQuery {
    const { map } = handle;
    const query = handle.serverQuery as Query<Value>;
    if (!this.#options.scoped(map)) return { id, map, query };
    return {
      id,
      map,
      query,
      have: () => {
        const held = handle.heldRecords() as ReadonlyArray<readonly [string, LWWRecord<Value>]>;
        this.#find(id)?.[1].window?.named(held.map(([key]) => key));
        return held;
      },
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
      maxRecords: this.#options.budgetOf?.(handle.map),
    });
  }

  /** A new leader: tells it every query of a map replicated by query followed here. */
  announceAll(): void {
    for (const { handle } of this.#queries.values())
      if (handle.active) this.#announce(handle, true);
    this.aggregates.announceAll();
  }

  /** (Leader) Another tab follows a query, or no longer: followed here for it, on the server. */
  followForTab(message: Extract<QueryTabMessage, { type: 'query' }>): void {
    const { tab, map, query, limit, active, maxRecords } = message;
    const key = `${tab}\u0000${queryKey(map, query)}`;
    this.#forTabs.get(key)?.();
    this.#forTabs.delete(key);
    if (!active) return;
    // Replicated by query here too: opened otherwise, the map would be walked whole.
    if (maxRecords !== undefined) this.#options.declare?.(map, maxRecords);
    const handle = this.query(map, query);
    if (limit !== undefined) handle.growTo(limit);
    this.#forTabs.set(
      key,
      handle.subscribe(() => {}),
    );
    // Already answered (this tab follows it too): the other tab learns so now.
    const { status } = handle.getSnapshot();
    if (status === 'synced' || handle.serverMatching !== undefined)
      this.#options.share?.({
        type: 'query-state',
        key: queryKey(map, query),
        synced: status === 'synced',
        matching: handle.serverMatching,
      });
  }

  /** Another tab pinned or unpinned a query: its rows count as held here too. */
  learnPin(message: Extract<QueryTabMessage, { type: 'pin' }>): void {
    this.#pins.learn(message);
  }

  /** The server ended query `id` (`query_error`): its result is no longer confirmed. */
  refused(id: number, error: Error): void {
    this.#find(id)?.[1].handle.unconfirm(error);
    this.#tellTabs(id, false, undefined, error.message);
  }

  /** The leader's word on a query: its server result arrived, or its count changed. */
  learnFromLeader({
    key,
    synced,
    matching,
    refused,
  }: Extract<QueryTabMessage, { type: 'query-state' }>): void {
    const handle = this.#queries.get(key)?.handle;
    if (handle === undefined) return;
    if (matching !== undefined) handle.learnMatching(matching);
    if (synced) handle.confirm();
    if (refused !== undefined) handle.unconfirm(new Error(refused));
  }

  /** Tells the other tabs what the server said of query `id` (maps replicated by query). */
  #tellTabs(id: number, synced: boolean, matching: number | undefined, refused?: string): void {
    const [key, query] = this.#find(id) ?? [];
    if (key !== undefined && query!.window !== undefined)
      this.#options.share?.({
        type: 'query-state',
        key,
        synced,
        matching,
        ...(refused === undefined ? {} : { refused }),
      });
  }

  /** Unpins a query (its rows may then be dropped like any other). */
  unpin(map: string, query: Query<unknown>): void {
    this.#pins.delete(queryKey(map, query));
    this.#options.settled(map);
  }

  /** Reads the pins stored back. */
  loadPins(meta: Iterable<readonly [string, unknown]>): void {
    this.#pins.load(meta);
  }

  /** The keys of map `map` that live and pinned queries hold. */
  heldKeys(map: string): Set<string> {
    const held = new Set<string>();
    this.#pins.addHeld(map, held);
    for (const { handle } of this.#queries.values())
      if (handle.map === map) for (const key of handle.keys) held.add(key);
    return held;
  }

  /** The server counted `matching` records for query `id`. */
  learnMatching(id: number, matching: number): void {
    const query = this.#find(id)?.[1];
    // A whole map counts locally: its client gets no update of the server's count.
    if (query?.window !== undefined) query.handle.learnMatching(matching);
    this.#tellTabs(id, false, matching);
  }

  /** The queries that follow the replica, for the server to know of. */
  active(): ServerQuery[] {
    return [
      ...[...this.#queries.values()]
        .filter(({ handle }) => handle.active)
        .map(({ id, handle }) => this.#serverQuery(id, handle)),
      ...this.aggregates.active(),
    ];
  }

  /** The server confirmed query `id`. */
  confirmQuery(id: number): void {
    const handle = this.#find(id)?.[1].handle;
    if (handle === undefined) return;
    handle.confirm();
    this.#options.settled(handle.map);
    this.#tellTabs(id, true, undefined);
  }

  /** Map `map` is reconciled with the server: its queries, now and later, are synced. */
  confirmMap(map: string): void {
    this.#confirmedMaps.add(map);
    for (const { handle } of this.#queries.values()) if (handle.map === map) handle.confirm();
    this.aggregates.confirmMap(map);
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
        this.#pins.set(
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
    this.aggregates.dispose();
  }

  /** Remembers a query's result for the next start, at most once a second (read then). */
  #remember(cacheKey: string, rows: () => readonly QueryRow<unknown>[]): void {
    if (this.#options.resultCache === undefined && !this.#pins.has(cacheKey)) return;
    this.#pendingResults.set(cacheKey, rows);
    this.#resultTimer ??= setTimeout(() => this.writeResults(), 1_000);
  }
}
