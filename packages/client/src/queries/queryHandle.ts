import { compileQuery, LiveResult, type LWWMap, type Query, type QueryRow } from '@topgun/core';

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
}

/** How long an unobserved handle keeps following the replica (StrictMode, quick re-renders). */
const IDLE_GRACE_MS = 1_000;
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
  readonly #listeners = new Set<() => void>();
  #snapshot: QuerySnapshot<V> | undefined;
  /** Whether the live query's rows changed since `snapshot` was taken (read when next asked). */
  #rowsChanged = false;
  #confirmed: boolean;
  #notifyScheduled = false;
  #notifyTimer: ReturnType<typeof setTimeout> | undefined;
  /** When listeners were last told (`performance.now()`), for large results. */
  #notifiedAt = Number.NEGATIVE_INFINITY;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  /** @throws {QueryError} when the query is invalid. */
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
    this.#activate();
    if (this.#listeners.size === 0) this.#scheduleIdle();
    return this.#currentSnapshot();
  };

  /** The snapshot, with the live query's rows if they changed since it was taken. */
  #currentSnapshot(): QuerySnapshot<V> {
    if (this.#rowsChanged && this.#live !== undefined) {
      this.#rowsChanged = false;
      this.#snapshot = { ...this.#snapshot!, data: this.#live.rows };
    }
    return this.#snapshot!;
  }

  /** Listens to result changes; returns the unsubscribe function. */
  subscribe = (listener: () => void): (() => void) => {
    this.#activate();
    clearTimeout(this.#idleTimer);
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#scheduleIdle();
    };
  };

  /** Whether the handle currently follows the replica. */
  get active(): boolean {
    return this.#live !== undefined;
  }

  /** Marks the result as confirmed by the server. */
  confirm(): void {
    this.#confirmed = true;
    if (this.#snapshot !== undefined && this.#snapshot.status !== 'synced')
      this.#update({ status: 'synced' });
  }

  /** Stops following the replica now. */
  dispose(): void {
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#notifyTimer);
    this.#notifyScheduled = false;
    this.#deactivate();
    this.#listeners.clear();
  }

  #activate(): void {
    if (this.#live !== undefined) return;
    const live = new LiveResult(this.query, this.#replica.entries());
    this.#live = live;
    const useCache = this.#cachedRows !== undefined && this.#hooks.isLoaded?.() === false;
    this.#snapshot = {
      data: useCache ? this.#cachedRows! : live.rows,
      status: this.#confirmed ? 'synced' : 'local',
    };
    this.#rowsChanged = false;
    if (!useCache && this.#hooks.isLoaded?.() === true) this.#hooks.onResult?.(this.#readRows);
    // Changes are applied as they come, but the rows are only copied out when read (once per
    // render): a stream of changes never copies a large result per change.
    this.#unsubscribeReplica = this.#replica.subscribe((change) => {
      if (this.#live?.apply(change).changed) this.#rowsDidChange();
    });
    // A bulk load (start-up) is cheaper to evaluate once than change by change.
    this.#unsubscribeBulk = this.#replica.subscribeBulk(() => {
      this.#live = new LiveResult(this.query, this.#replica.entries());
      this.#rowsDidChange();
    });
    this.#hooks.onActive(this);
  }

  #deactivate(): void {
    if (this.#live === undefined) return;
    this.#unsubscribeReplica?.();
    this.#unsubscribeReplica = undefined;
    this.#unsubscribeBulk?.();
    this.#unsubscribeBulk = undefined;
    this.#live = undefined;
    this.#hooks.onIdle(this);
  }

  #scheduleIdle(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (this.#listeners.size === 0) this.#deactivate();
    }, IDLE_GRACE_MS);
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
      for (const listener of this.#listeners) listener();
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
