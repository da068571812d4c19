import type { AggregateQuery, LWWMap, Value } from '@topgun/core';
import { type AggregateHandle, type AggregateSnapshot, LocalAggregate } from './aggregateHandle.js';
import type { QueryTabMessage } from './pins.js';
import { type QueryRegistryOptions, queryKey, type ServerQuery } from './registryOptions.js';
import { ServerAggregate } from './serverAggregate.js';

/** What the aggregates of a client need around them. */
export type AggregatesOptions = Pick<
  QueryRegistryOptions,
  'replica' | 'scoped' | 'subscribed' | 'unsubscribed' | 'tab' | 'share'
> & {
  /** A new id the server will know a subscription by (shared with live queries). */
  readonly nextId: () => number;
};

/**
 * The live aggregates of a client: equal aggregates of a map share one handle while used.
 * Those of maps replicated whole are computed on the replica; those of maps replicated by
 * query are subscribed on the server by the leader tab, which tells the other tabs their
 * results.
 */
export class Aggregates {
  readonly #handles = new Map<string, AggregateHandle<unknown>>();
  /** Server aggregates by id. */
  readonly #byId = new Map<number, { key: string; handle: ServerAggregate<unknown> }>();
  /** (Leader) Other tabs' aggregates followed here for them, by tab and key: how to stop. */
  readonly #forTabs = new Map<string, () => void>();
  readonly #options: AggregatesOptions;

  constructor(options: AggregatesOptions) {
    this.#options = options;
  }

  /**
   * The handle of `query` over `map`, by `key` (the registry's key of equal queries).
   * @throws {QueryError} when the query is invalid.
   */
  aggregate<V>(
    key: string,
    map: string,
    query: AggregateQuery<V>,
    confirmed: boolean,
  ): AggregateHandle<V> {
    const cached = this.#handles.get(key);
    if (cached !== undefined) return cached as AggregateHandle<V>;
    const forget = (idle: AggregateHandle<V>) => {
      if (this.#handles.get(key) === (idle as AggregateHandle<unknown>)) this.#handles.delete(key);
    };
    const handle: AggregateHandle<V> = this.#options.scoped(map)
      ? this.#serverAggregate(key, map, query, forget)
      : new LocalAggregate(
          map,
          query,
          this.#options.replica(map) as LWWMap<unknown> as LWWMap<V>,
          confirmed,
          forget,
        );
    this.#handles.set(key, handle as AggregateHandle<unknown>);
    return handle;
  }

  /** Map `map` is reconciled with the server: its local aggregates are synced. */
  confirmMap(map: string): void {
    for (const handle of this.#handles.values())
      if (handle.map === map && handle instanceof LocalAggregate) handle.confirm();
  }

  /** The server aggregates that are followed, for the server to know of. */
  active(): ServerQuery[] {
    return [...this.#byId.values()]
      .filter(({ handle }) => handle.active)
      .map(({ handle }) => serverQueryOf(handle));
  }

  /** Whether the server knows `id` as an aggregate. */
  has(id: number): boolean {
    return this.#byId.has(id);
  }

  /** Rows the server sent for aggregate `id`. */
  rows(message: Parameters<ServerAggregate<unknown>['receive']>[0]): void {
    this.#byId.get(message.id)?.handle.receive(message);
  }

  /** The server refused aggregate `id`, or ended it. */
  refused(id: number, error: Error): void {
    this.#byId.get(id)?.handle.refused(error);
  }

  /** The connection is gone: server aggregates show the rows last sent, as `local`. */
  disconnected(): void {
    for (const { handle } of this.#byId.values()) handle.disconnected();
  }

  /** A new leader: tells it every server aggregate followed here. */
  announceAll(): void {
    for (const { handle } of this.#byId.values()) if (handle.active) this.#announce(handle, true);
  }

  /** (Leader) Another tab follows a server aggregate, or no longer: followed here for it. */
  followForTab({ tab, map, query, active }: Extract<QueryTabMessage, { type: 'aggregate' }>): void {
    const key = `${tab}\u0000${queryKey(map, query)}`;
    this.#forTabs.get(key)?.();
    this.#forTabs.delete(key);
    if (!active) return;
    const handle = this.aggregate(queryKey(map, query), map, query, false);
    const tell = () => {
      const { data, status, error } = handle.getSnapshot();
      this.#options.share?.({
        type: 'aggregate-state',
        key: queryKey(map, query),
        data,
        status,
        error: error?.message ?? null,
      });
    };
    const stop = handle.subscribe(tell);
    this.#forTabs.set(key, stop);
    tell();
  }

  /** The leader's snapshot of a server aggregate followed here. */
  learnFromLeader({
    key,
    data,
    status,
    error,
  }: Extract<QueryTabMessage, { type: 'aggregate-state' }>): void {
    const handle = this.#handles.get(key);
    if (!(handle instanceof ServerAggregate)) return;
    const snapshot: AggregateSnapshot = {
      data,
      status,
      error: error === null ? null : new Error(error),
    };
    handle.learn(snapshot);
  }

  dispose(): void {
    for (const stop of this.#forTabs.values()) stop();
    this.#forTabs.clear();
    for (const handle of this.#handles.values()) handle.dispose();
  }

  #serverAggregate<V>(
    key: string,
    map: string,
    query: AggregateQuery<V>,
    forget: (idle: AggregateHandle<V>) => void,
  ): ServerAggregate<V> {
    const id = this.#options.nextId();
    const handle = new ServerAggregate<V>(map, query, id, {
      onActive: (active) => {
        this.#byId.set(id, { key, handle: active as ServerAggregate<unknown> });
        this.#options.subscribed(serverQueryOf(active as ServerAggregate<unknown>));
        this.#announce(active as ServerAggregate<unknown>, true);
      },
      onIdle: (idle) => {
        this.#byId.delete(id);
        this.#options.unsubscribed(id);
        this.#announce(idle as ServerAggregate<unknown>, false);
        forget(idle);
      },
    });
    return handle;
  }

  /** Tells the other tabs a server aggregate is followed here, or not. */
  #announce(handle: ServerAggregate<unknown>, active: boolean): void {
    const { tab, share } = this.#options;
    if (tab === undefined) return;
    share?.({
      type: 'aggregate',
      tab,
      map: handle.map,
      query: handle.query as AggregateQuery<Value>,
      active,
    });
  }
}

function serverQueryOf(handle: ServerAggregate<unknown>): ServerQuery {
  return { id: handle.id, map: handle.map, aggregate: handle.query as AggregateQuery<Value> };
}
