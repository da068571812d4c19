import { LiveQuery, type LWWMap, type Query, type QueryRow } from '@topgun/core';

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

/**
 * A live query over one map of the local replica, kept up to date incrementally. Listeners
 * run once per tick at most, and only when the result or its status changed.
 */
export class QueryHandle<V> {
  private readonly live: LiveQuery<V>;
  private readonly listeners = new Set<() => void>();
  private snapshot: QuerySnapshot<V>;
  private notifyScheduled = false;
  private readonly unsubscribeReplica: () => void;
  private disposed = false;

  constructor(
    readonly map: string,
    readonly query: Query<V>,
    replica: LWWMap<V>,
    confirmed: boolean,
    private readonly onIdle: (handle: QueryHandle<V>) => void,
  ) {
    this.live = new LiveQuery(query, replica.entries());
    this.snapshot = { data: this.live.rows, status: confirmed ? 'synced' : 'local' };
    this.unsubscribeReplica = replica.subscribe((change) => {
      if (this.live.apply(change).changed) this.update({ data: this.live.rows });
    });
  }

  /** The current result. */
  getSnapshot = (): QuerySnapshot<V> => this.snapshot;

  /** Listens to result changes; returns the unsubscribe function. */
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.onIdle(this);
    };
  };

  /** Whether anyone listens. */
  get observed(): boolean {
    return this.listeners.size > 0;
  }

  /** Marks the result as confirmed by the server. */
  confirm(): void {
    if (this.snapshot.status !== 'synced') this.update({ status: 'synced' });
  }

  /** Stops following the replica. */
  dispose(): void {
    this.disposed = true;
    this.unsubscribeReplica();
    this.listeners.clear();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private update(change: Partial<QuerySnapshot<V>>): void {
    this.snapshot = { ...this.snapshot, ...change };
    if (this.notifyScheduled) return;
    this.notifyScheduled = true;
    queueMicrotask(() => {
      this.notifyScheduled = false;
      for (const listener of this.listeners) listener();
    });
  }
}
