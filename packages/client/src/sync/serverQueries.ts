import {
  encodeHave,
  fromWireEntry,
  MAX_WINDOW_ROWS,
  type Message,
  type MessageOf,
  type Value,
} from '@topgun/core';
import type { SyncError } from '../clientErrors.js';
import type { QueryRegistry, ServerQuery } from '../queries/queryRegistry.js';
import type { ReplicaStore } from '../replica/replicaStore.js';
import type { SyncStatusStore } from '../status/syncStatus.js';
import { QueryPacer } from './queryPacer.js';

/** What the live queries of a connection need of the client and the connection. */
export interface ServerQueriesOptions {
  readonly queries: QueryRegistry;
  readonly replicas: ReplicaStore;
  readonly status: SyncStatusStore;
  readonly send: (message: Message) => void;
  readonly report: (code: SyncError['code'], message: string, serverCode?: string) => void;
  readonly now: () => number;
  /** The maps the stored replica held records of, once it is loaded. */
  readonly storedMaps?: (() => ReadonlySet<string>) | undefined;
}

/**
 * The live queries of the leader's connection: subscribed (paced) once the server welcomed
 * the client, grown and ended; their results merged into the replica and their windows;
 * the ones the server could not serve for now subscribed again with backoff.
 *
 * On a profile that held nothing before, the queries of maps replicated by query are
 * subscribed as soon as the welcome arrives ({@link subscribeEarly}), while the replica is
 * still being read: they name no record they hold, which is right for an empty replica (and
 * only costs bytes otherwise), and the answers wait for the replica like everything else.
 */
export class ServerQueries {
  /** The server's welcome is processed: every query may be sent. */
  ready = false;
  readonly #pacer: QueryPacer;
  /** Queries subscribed before the welcome was processed (see the class), by id. */
  readonly #early = new Set<number>();
  #earlyOpen = false;
  /** Queries the server could not serve for now, by id: how many times in a row. */
  readonly #unavailable = new Map<number, number>();
  readonly #retryTimers = new Set<ReturnType<typeof setTimeout>>();
  readonly #options: ServerQueriesOptions;

  constructor(options: ServerQueriesOptions) {
    this.#options = options;
    this.#pacer = new QueryPacer(options.now);
  }

  /**
   * The welcome arrived, and will be processed once the replica is loaded: until then, the
   * queries of maps replicated by query are subscribed at once.
   */
  subscribeEarly(): void {
    this.#earlyOpen = true;
    for (const query of this.#options.queries.active()) this.subscribe(query);
  }

  /** The welcome is processed: subscribes every query not subscribed early. */
  welcomed(): void {
    this.ready = true;
    const stored = this.#options.storedMaps?.();
    for (const query of this.#options.queries.active()) {
      if (!this.#early.has(query.id)) this.subscribe(query);
      else if (stored?.has(query.map)) {
        // The first visit held records after all (its client id was lost, not its replica):
        // subscribed again naming them, so that what the server no longer has is revoked.
        this.#pacer.send(() => this.#options.send({ type: 'unsubscribe', id: query.id }), true);
        this.subscribe(query);
      }
    }
    this.#early.clear();
    this.#earlyOpen = false;
  }

  /**
   * Subscribes a live query (when connected), naming what it holds of a query-scoped map, or
   * a live aggregate.
   */
  subscribe(serverQuery: ServerQuery): void {
    const { id, map } = serverQuery;
    if ('aggregate' in serverQuery) {
      if (this.ready)
        this.#pacer.send(() =>
          this.#options.send({ type: 'aggregate', id, map, query: serverQuery.aggregate }),
        );
      return;
    }
    const { query, have } = serverQuery;
    if (!this.ready) {
      if (!this.#earlyOpen || have === undefined) return;
      this.#early.add(id);
    }
    // What is held is read when the message goes out (paced): the server answers against it.
    this.#pacer.send(() => {
      const held = have?.();
      this.#options.send({
        type: 'subscribe',
        id,
        map,
        query,
        ...(held && held.length <= MAX_WINDOW_ROWS ? { have: encodeHave(held) } : {}),
      });
    });
  }

  /** Grows a live query's window on the server. */
  more(id: number, limit: number): void {
    if (this.ready || this.#early.has(id))
      this.#pacer.send(() => this.#options.send({ type: 'query_more', id, limit }));
  }

  unsubscribe(id: number): void {
    if (!this.ready && !this.#early.delete(id)) return;
    this.#pacer.send(() => this.#options.send({ type: 'unsubscribe', id }), true);
  }

  /** The connection is gone: whatever was on its way is lost. */
  dropped(): void {
    this.#options.queries.aggregates.disconnected();
    this.ready = false;
    this.#early.clear();
    this.#earlyOpen = false;
    this.#pacer.reset();
  }

  stop(): void {
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#pacer.reset();
  }

  /** A query's rows, merged into the replica and its window. */
  result(message: MessageOf<'query_snapshot' | 'query_update'>): void {
    const { queries, replicas } = this.#options;
    const entries =
      message.type === 'query_snapshot' ? message.entries : [...message.enter, ...message.update];
    const map = queries.active().find((query) => query.id === message.id)?.map;
    if (map !== undefined)
      replicas.merge(
        map,
        entries.map((entry) => fromWireEntry<Value>(entry)),
        true,
      );
    const keys = entries.map(([key]) => key);
    if (message.type === 'query_snapshot') queries.serverRows(message.id, keys, [], message.last);
    else
      queries.serverRows(
        message.id,
        message.enter.map(([key]) => key),
        message.leave,
      );
    if (message.matching !== undefined) queries.learnMatching(message.id, message.matching);
    if (message.type === 'query_snapshot' && message.last) {
      this.#unavailable.delete(message.id);
      queries.confirmQuery(message.id);
    }
  }

  /** Rows of a live aggregate. */
  aggregateRows(message: MessageOf<'aggregate_rows'>): void {
    if (message.last) this.#unavailable.delete(message.id);
    this.#options.queries.aggregates.rows(message);
  }

  /** The server refused a query: told to its handle; one it could not serve for now is retried. */
  refused(message: MessageOf<'query_error'>): void {
    const { queries, status, report } = this.#options;
    report('QUERY_FAILED', `live query ${message.id}: ${message.message}`, message.code);
    const error = status.getState().lastError!;
    if (queries.aggregates.has(message.id)) queries.aggregates.refused(message.id, error);
    else queries.refused(message.id, error);
    if (message.code === 'UNAVAILABLE') this.#retry(message.id);
  }

  /** Subscribes a query the server could not serve for now again: after 1 s, doubling, up to 1 min. */
  #retry(id: number): void {
    const times = (this.#unavailable.get(id) ?? 0) + 1;
    this.#unavailable.set(id, times);
    const timer = setTimeout(
      () => {
        this.#retryTimers.delete(timer);
        const query = this.#options.queries.active().find((each) => each.id === id);
        if (query !== undefined) this.subscribe(query);
      },
      Math.min(60_000, 1000 * 2 ** (times - 1)),
    );
    this.#retryTimers.add(timer);
  }
}
