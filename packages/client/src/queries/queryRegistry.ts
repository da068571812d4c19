import { type LWWMap, type Query, type QueryRow, stableStringify, type Value } from '@topgun/core';
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
  /** A query started following the replica: subscribe it on the server. */
  readonly subscribed: (id: number, map: string, query: Query<Value>) => void;
  /** A query stopped following the replica: unsubscribe it. */
  readonly unsubscribed: (id: number) => void;
}

/** A live query the server should know about. */
export interface ServerQuery {
  readonly id: number;
  readonly map: string;
  readonly query: Query<Value>;
}

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
  query<V>(map: string, query: Query<V>): QueryHandle<V> {
    const cacheKey = `${map}\u0000${stableStringify(query)}`;
    const cached = this.#queries.get(cacheKey);
    if (cached !== undefined) return cached.handle as QueryHandle<V>;
    const options = this.#options;
    const id = this.#nextId++;
    const handle = new QueryHandle<V>(
      map,
      query,
      options.replica(map) as LWWMap<unknown> as LWWMap<V>,
      this.#confirmedMaps.has(map),
      {
        isLoaded: options.isLoaded,
        onResult: (rows) => this.#remember(cacheKey, rows as () => readonly QueryRow<unknown>[]),
        // A handle follows the replica (and the server) only while it is used.
        onActive: (active) => {
          this.#queries.set(cacheKey, { id, handle: active as QueryHandle<unknown> });
          options.subscribed(id, map, query as Query<Value>);
        },
        onIdle: (idle) => {
          if (this.#queries.get(cacheKey)?.handle === (idle as QueryHandle<unknown>))
            this.#queries.delete(cacheKey);
          options.unsubscribed(id);
        },
      },
      options.isLoaded()
        ? undefined
        : (options.resultCache?.read(cacheKey) as QueryRow<V>[] | undefined),
    );
    this.#queries.set(cacheKey, { id, handle: handle as QueryHandle<unknown> });
    return handle;
  }

  /** The queries that follow the replica, for the server to know of. */
  active(): ServerQuery[] {
    return [...this.#queries.values()]
      .filter(({ handle }) => handle.active)
      .map(({ id, handle }) => ({ id, map: handle.map, query: handle.query as Query<Value> }));
  }

  /** The server confirmed query `id`. */
  confirmQuery(id: number): void {
    for (const query of this.#queries.values()) if (query.id === id) query.handle.confirm();
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
    for (const [cacheKey, rows] of this.#pendingResults)
      this.#options.resultCache?.write(cacheKey, rows());
    this.#pendingResults.clear();
  }

  /** Remembers what is pending and stops every query. */
  dispose(): void {
    this.writeResults();
    for (const { handle } of this.#queries.values()) handle.dispose();
  }

  /** Remembers a query's result for the next start, at most once a second (read then). */
  #remember(cacheKey: string, rows: () => readonly QueryRow<unknown>[]): void {
    if (this.#options.resultCache === undefined) return;
    this.#pendingResults.set(cacheKey, rows);
    this.#resultTimer ??= setTimeout(() => this.writeResults(), 1_000);
  }
}
