import {
  compileQuery,
  LiveResult,
  type LWWMap,
  type LWWRecord,
  type Query,
  type QueryRow,
} from '@topgun/core';
import { Observers } from './observers.js';
import type { ServerWindow } from './serverWindow.js';

/** Where a query's result comes from. */
export type QueryStatus =
  /** Evaluated on the local replica; the server has not confirmed the map yet. */
  | 'local'
  /** The replica of the map has been reconciled with the server in this session. */
  | 'synced';

/** What a live query handle holds. The object keeps its identity until something changes. */
export interface QuerySnapshot<V> {
  /** Result rows in order. */
  readonly data: readonly QueryRow<V>[];
  readonly status: QueryStatus;
  /**
   * Whether rows follow the window (`offset + limit` below the matching records): the
   * server's count for a map replicated by query once it answered, the replica's otherwise.
   */
  readonly hasMore: boolean;
  /** Why the server refused the query (a budget, a permission): the rows are then `local`. */
  readonly error: Error | null;
}

/**
 * A result of more rows than this is copied for a render at most once per its size in
 * thousands of ms (200,000 rows: every 200 ms), up to once a second: while a first sync
 * streams in, copying a large result every frame would cost more than the sync itself.
 */
const LARGE_RESULT = 20_000;

/** What a handle tells its registry, and asks it. */
export interface QueryHandleHooks<V> {
  readonly onActive: (handle: QueryHandle<V>) => void;
  readonly onIdle: (handle: QueryHandle<V>) => void;
  /** Whether the stored replica is loaded (before that, `cachedRows` stand in for the result). */
  readonly isLoaded?: () => boolean;
  /** The result changed (to remember it for the next start); `rows` reads it. */
  readonly onResult?: (rows: () => readonly QueryRow<V>[]) => void;
  /** For a map replicated by query: what the server's window admits. */
  readonly window?: ServerWindow<V> | undefined;
  /** The longest window {@link QueryHandle.loadMore} grows to. Default: no bound. */
  readonly maxLimit?: number | undefined;
  /** The window grew to `limit` rows ({@link QueryHandle.loadMore}). */
  readonly onMore?: (handle: QueryHandle<V>, limit: number) => void;
}

/**
 * A live query over one map of the local replica. It follows the replica only while it is
 * read or observed (plus a short grace period), keeping its result up to date
 * incrementally; listeners run once per tick at most, and only when the result or its
 * status changed.
 */
export class QueryHandle<V> {
  #live: LiveResult<V> | undefined;
  #unsubscribeReplica: (() => void) | undefined;
  #unsubscribeBulk: (() => void) | undefined;
  readonly #observers = new Observers(
    () => this.#activate(),
    () => this.#deactivate(),
  );
  #snapshot: QuerySnapshot<V> | undefined;
  /** Whether the live query's rows changed since `snapshot` was taken (read when next asked). */
  #rowsChanged = false;
  #confirmed: boolean;
  #notifyScheduled = false;
  #notifyTimer: ReturnType<typeof setTimeout> | undefined;
  /** When listeners were last told (`performance.now()`), for large results. */
  #notifiedAt = Number.NEGATIVE_INFINITY;
  /** The window's length, once {@link loadMore} grew it past the query's `limit`. */
  #limit: number | undefined;
  /** How many records match on the server (maps replicated by query), once it said. */
  #serverMatching: number | undefined;

  readonly #replica: LWWMap<V>;
  readonly #hooks: QueryHandleHooks<V>;
  /** The window remembered from the last session, shown until the replica is loaded. */
  readonly #cachedRows: readonly QueryRow<V>[] | undefined;

  /** @throws {QueryError} when the query is invalid. */
  constructor(
    readonly map: string,
    readonly query: Query<V>,
    replica: LWWMap<V>,
    confirmed: boolean,
    hooks: QueryHandleHooks<V>,
    cachedRows?: readonly QueryRow<V>[],
  ) {
    compileQuery(query);
    this.#replica = replica;
    this.#hooks = hooks;
    this.#cachedRows = cachedRows;
    this.#confirmed = confirmed;
  }

  /** The current result. */
  getSnapshot = (): QuerySnapshot<V> => {
    this.#observers.read();
    return this.#currentSnapshot();
  };

  /** The snapshot, with the live query's rows if they changed since it was taken. */
  #currentSnapshot(): QuerySnapshot<V> {
    if (this.#rowsChanged && this.#live !== undefined) {
      this.#rowsChanged = false;
      this.#snapshot = { ...this.#snapshot!, data: this.#live.rows, hasMore: this.#hasMore() };
    }
    return this.#snapshot!;
  }

  #hasMore(): boolean {
    const { offset = 0 } = this.query;
    const live = this.#live;
    return live !== undefined && offset + live.limit < (this.#serverMatching ?? live.matchingCount);
  }

  /** The query as the server should follow it: its `limit` grown by {@link loadMore}. */
  get serverQuery(): Query<V> {
    return this.#limit === undefined ? this.query : { ...this.query, limit: this.#limit };
  }

  /**
   * Grows the window by one page (the query's `limit`): the next rows after the last one,
   * from the replica at once and, for a map replicated by query, from the server. Nothing
   * for a query without `limit`.
   */
  loadMore = (): void => {
    const page = this.query.limit;
    const most = this.#hooks.maxLimit ?? Number.POSITIVE_INFINITY;
    if (page) this.growTo(Math.min((this.#limit ?? page) + page, most));
  };

  /** Grows the window to `limit` rows, if that is more than it holds (see {@link loadMore}). */
  growTo(limit: number): void {
    if (!(limit > (this.#limit ?? this.query.limit ?? Number.POSITIVE_INFINITY))) return;
    this.#limit = limit;
    if (this.#live?.setLimit(limit).changed) this.#rowsDidChange();
    else this.#refreshHasMore();
    this.#hooks.onMore?.(this, limit);
  }

  /** How many records the server counted (maps replicated by query), once it said. */
  get serverMatching(): number | undefined {
    return this.#serverMatching;
  }

  /** The window's length as {@link loadMore} grew it; undefined while it has not. */
  get grownLimit(): number | undefined {
    return this.#limit;
  }

  /** The server counted `matching` records matching the query (maps replicated by query). */
  learnMatching(matching: number): void {
    this.#serverMatching = matching;
    this.#refreshHasMore();
  }

  #refreshHasMore(): void {
    const hasMore = this.#hasMore();
    if (this.#snapshot !== undefined && this.#snapshot.hasMore !== hasMore)
      this.#update({ hasMore });
  }

  /** The record the replica holds for `key`. */
  recordOf(key: string): LWWRecord<V> | undefined {
    return this.#replica.getRecord(key);
  }

  #admits(key: string): boolean {
    return this.#hooks.window?.admits(key, this.#replica.getRecord(key)) ?? true;
  }

  /** The server's window changed (a snapshot ended, an update moved rows): shows what it admits. */
  windowChanged(keys: Iterable<string>): void {
    const live = this.#live;
    if (live === undefined) return;
    let changed = false;
    for (const key of keys)
      changed =
        live.apply({ key, value: this.#admits(key) ? this.#replica.get(key) : undefined })
          .changed || changed;
    if (changed) this.#rowsDidChange();
  }

  /** Evaluates the query again over what the window admits (a snapshot ended). */
  rebuild(): void {
    if (this.#live === undefined) return;
    this.#live = this.#build();
    this.#rowsDidChange();
  }

  /** The rows of the result with their records, for the server to send only what differs. */
  heldRecords(): Array<readonly [string, LWWRecord<V>]> {
    return (this.#live?.rows ?? []).map(({ key }) => [key, this.#replica.getRecord(key)!] as const);
  }

  /** The result's keys (what it holds of the replica). */
  get keys(): readonly string[] {
    return (this.#live?.rows ?? []).map((row) => row.key);
  }

  /** Listens to result changes; returns the unsubscribe function. */
  subscribe = (listener: () => void): (() => void) => this.#observers.subscribe(listener);

  /** Whether the handle currently follows the replica. */
  get active(): boolean {
    return this.#live !== undefined;
  }

  /** No longer confirmed (subscribed again), or refused by the server (`error`). */
  unconfirm(error: Error | null = null): void {
    this.#confirmed = false;
    const snapshot = this.#snapshot;
    if (snapshot && (snapshot.status === 'synced' || snapshot.error !== error))
      this.#update({ status: 'local', error });
  }

  /** Marks the result as confirmed by the server. */
  confirm(): void {
    this.#confirmed = true;
    if (this.#snapshot && this.#snapshot.status !== 'synced')
      this.#update({ status: 'synced', error: null });
  }

  /** Stops following the replica now. */
  dispose(): void {
    clearTimeout(this.#notifyTimer);
    this.#notifyScheduled = false;
    this.#observers.dispose();
  }

  #activate(): void {
    if (this.#live !== undefined) return;
    const live = this.#build();
    this.#live = live;
    const useCache = this.#cachedRows !== undefined && this.#hooks.isLoaded?.() === false;
    this.#snapshot = {
      data: useCache ? this.#cachedRows! : live.rows,
      status: this.#confirmed ? 'synced' : 'local',
      hasMore: this.#hasMore(),
      error: null,
    };
    this.#rowsChanged = false;
    if (!useCache && this.#hooks.isLoaded?.() === true) this.#hooks.onResult?.(this.#readRows);
    // Changes are applied as they come, but the rows are only copied out when read (once per
    // render): a stream of changes never copies a large result per change.
    this.#unsubscribeReplica = this.#replica.subscribe((change) => {
      const { key } = change;
      const admitted = this.#admits(key) ? change : { key, value: undefined };
      if (this.#live?.apply(admitted).changed) this.#rowsDidChange();
      // A record past the window changes only whether more rows follow it.
      else this.#refreshHasMore();
    });
    // A bulk load (start-up) is cheaper to evaluate once than change by change.
    this.#unsubscribeBulk = this.#replica.subscribeBulk(() => {
      this.#live = this.#build();
      this.#rowsDidChange();
    });
    this.#hooks.onActive(this);
  }

  /** The live result over the replica, with the window grown as {@link loadMore} left it. */
  #build(): LiveResult<V> {
    const all = this.#replica.entries();
    const live = new LiveResult(
      this.query,
      this.#hooks.window ? [...all].filter(([key]) => this.#admits(key)) : all,
    );
    if (this.#limit !== undefined) live.setLimit(this.#limit);
    return live;
  }

  #deactivate(): void {
    if (this.#live === undefined) return;
    this.#unsubscribeReplica?.();
    this.#unsubscribeReplica = undefined;
    this.#unsubscribeBulk?.();
    this.#unsubscribeBulk = undefined;
    // Told while its result is still readable (a pinned query's keys are kept from it).
    this.#hooks.onIdle(this);
    this.#live = undefined;
  }

  readonly #readRows = (): readonly QueryRow<V>[] => this.#currentSnapshot().data;

  #rowsDidChange(): void {
    this.#rowsChanged = true;
    if (this.#hooks.isLoaded?.() !== false) this.#hooks.onResult?.(this.#readRows);
    this.#notify();
  }

  #update(change: Partial<QuerySnapshot<V>>): void {
    this.#snapshot = { ...this.#currentSnapshot(), ...change };
    this.#notify();
  }

  #notify(): void {
    if (this.#notifyScheduled) return;
    this.#notifyScheduled = true;
    const tell = () => {
      this.#notifyScheduled = false;
      this.#notifyTimer = undefined;
      this.#notifiedAt = performance.now();
      this.#observers.tell();
    };
    const size = this.#rowsChanged ? (this.#live?.resultSize ?? 0) : 0;
    const wait =
      size > LARGE_RESULT
        ? this.#notifiedAt + Math.min(1_000, size / 1_000) - performance.now()
        : 0;
    if (wait > 0) this.#notifyTimer = setTimeout(tell, wait);
    else queueMicrotask(tell);
  }
}
