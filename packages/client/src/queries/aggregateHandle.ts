import {
  type AggregateQuery,
  type AggregateRow,
  compileAggregate,
  LiveAggregate,
  type LWWMap,
  type MapChange,
} from '@topgun/core';
import { Observers } from './observers.js';
import type { QueryStatus } from './queryHandle.js';

/** What a live aggregate handle holds. The object keeps its identity until something changes. */
export interface AggregateSnapshot {
  /**
   * The groups in order, each `{ key, value }` with its group keys and figures by name. A
   * group whose figures did not change keeps its row object.
   */
  readonly data: readonly AggregateRow[];
  readonly status: QueryStatus;
  /** Why there is no result: the records fall into more than 10,000 groups. */
  readonly error: Error | null;
}

export const NO_ROWS: readonly AggregateRow[] = Object.freeze([]);

/**
 * A live aggregate: computed on the local replica for a map replicated whole, by the server
 * for a map replicated by query. Its snapshot keeps its identity until something changes.
 */
export interface AggregateHandle<V> {
  readonly map: string;
  readonly query: AggregateQuery<V>;
  /** The current result. */
  readonly getSnapshot: () => AggregateSnapshot;
  /** Listens to result changes; returns the unsubscribe function. */
  readonly subscribe: (listener: () => void) => () => void;
  /** Whether the handle currently follows the replica (or the server). */
  readonly active: boolean;
  /** Stops following now. */
  dispose(): void;
}

/**
 * A live aggregate over one map of the local replica, kept up to date change by change
 * while it is read or observed (plus a short grace period); listeners run once per tick at
 * most, and only when a group's figures or the status changed.
 */
export class LocalAggregate<V> implements AggregateHandle<V> {
  #live: LiveAggregate<V> | undefined;
  /** Set while a counted record is due to expire: it is taken out then. */
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #unsubscribe: (() => void) | undefined;
  readonly #observers = new Observers(
    () => this.#activate(),
    () => this.#deactivate(),
  );
  #snapshot: AggregateSnapshot = { data: NO_ROWS, status: 'local', error: null };
  #confirmed: boolean;
  #notifyScheduled = false;
  /** The aggregate took changes not read yet. */
  #figuresMoved = false;
  /** The snapshot changed since the listeners were last told. */
  #snapshotChanged = false;
  readonly #replica: LWWMap<V>;
  readonly #onIdle: (handle: LocalAggregate<V>) => void;

  /**
   * @param onIdle Called when the handle stops following the replica.
   * @throws {QueryError} when the query is invalid.
   */
  constructor(
    readonly map: string,
    readonly query: AggregateQuery<V>,
    replica: LWWMap<V>,
    confirmed: boolean,
    onIdle: (handle: LocalAggregate<V>) => void = () => {},
  ) {
    compileAggregate(query);
    this.#replica = replica;
    this.#confirmed = confirmed;
    this.#onIdle = onIdle;
  }

  /** The current result. */
  getSnapshot = (): AggregateSnapshot => {
    this.#observers.read();
    return this.#snapshot;
  };

  /** Listens to result changes; returns the unsubscribe function. */
  subscribe = (listener: () => void): (() => void) => this.#observers.subscribe(listener);

  /** Whether the handle currently follows the replica. */
  get active(): boolean {
    return this.#unsubscribe !== undefined;
  }

  /** The map was reconciled with the server: the figures are `synced`. */
  confirm(): void {
    this.#confirmed = true;
    if (this.#snapshot.status !== 'synced') this.#update({ status: 'synced' });
  }

  /** Stops following the replica now. */
  dispose(): void {
    this.#observers.dispose();
  }

  #activate(): void {
    if (this.#unsubscribe !== undefined) return;
    this.#rebuild();
    const unsubscribeChanges = this.#replica.subscribe((change) => this.#apply(change));
    // A bulk load (start-up) is cheaper to evaluate once than change by change.
    const unsubscribeBulk = this.#replica.subscribeBulk(() => this.#rebuild(true));
    this.#unsubscribe = () => {
      unsubscribeChanges();
      unsubscribeBulk();
    };
  }

  #rebuild(tell = false): void {
    const status = this.#confirmed ? 'synced' : 'local';
    try {
      this.#live = new LiveAggregate(this.query, this.#replica.allRecords(), Date.now());
      this.#snapshot = { data: this.#live.rows, status, error: null };
      this.#scheduleExpiry();
    } catch (error) {
      this.#live = undefined;
      this.#snapshot = { data: NO_ROWS, status, error: error as Error };
    }
    if (tell) this.#notify();
  }

  #apply(change: MapChange<V>): void {
    const live = this.#live;
    if (live === undefined) return;
    try {
      if (live.apply(change)) this.#notify(true);
      if (change.record.ttlMs !== undefined) this.#scheduleExpiry();
    } catch (error) {
      this.#live = undefined;
      this.#update({ data: NO_ROWS, error: error as Error });
    }
  }

  #deactivate(): void {
    if (this.#unsubscribe === undefined) return;
    this.#unsubscribe();
    this.#unsubscribe = undefined;
    this.#live = undefined;
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    this.#onIdle(this);
  }

  /** Takes records out as they expire: a timer for the next one due. */
  #scheduleExpiry(): void {
    const due = this.#live?.nextExpiry;
    if (due === undefined) return;
    clearTimeout(this.#expiryTimer);
    // Timers may fire early by a millisecond: a record due then is taken out by the next.
    this.#expiryTimer = setTimeout(
      () => {
        this.#expiryTimer = undefined;
        if (this.#live?.expire(Date.now())) this.#notify(true);
        this.#scheduleExpiry();
      },
      Math.max(0, due - Date.now()) + 1,
    );
  }

  #update(change: Partial<AggregateSnapshot>): void {
    this.#snapshot = { ...this.#snapshot, ...change };
    this.#notify();
  }

  /**
   * Tells the listeners once per tick, when the snapshot changed; `figures`: the aggregate
   * took changes, read together then (a new snapshot only when a figure moved).
   */
  #notify(figures = false): void {
    if (figures) this.#figuresMoved = true;
    else this.#snapshotChanged = true;
    if (this.#notifyScheduled) return;
    this.#notifyScheduled = true;
    queueMicrotask(() => {
      this.#notifyScheduled = false;
      if (this.#figuresMoved) {
        this.#figuresMoved = false;
        const live = this.#live;
        if (live?.delta().changed) {
          this.#snapshot = { ...this.#snapshot, data: live.rows };
          this.#snapshotChanged = true;
        }
      }
      if (!this.#snapshotChanged) return;
      this.#snapshotChanged = false;
      this.#observers.tell();
    });
  }
}
