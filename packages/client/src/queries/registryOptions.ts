import {
  type AggregateQuery,
  type LWWMap,
  type LWWRecord,
  type Query,
  stableStringify,
  type Value,
} from '@topgun/core';
import type { QueryTabMessage } from './pins.js';
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
  /** Another tab's map replicated by query, with its budget: replicated so here too. */
  readonly declare?: (map: string, maxRecords: number) => void;
  /** The budget of a map replicated by query (sent with another tab's query). */
  readonly budgetOf?: (map: string) => number | undefined;
  /** Whether this client made a record's latest write (shown before the server admits it). */
  readonly ownWrite?: (record: LWWRecord<Value>) => boolean;
}

/** A query's key: equal queries (or aggregates) of a map share it, and one handle. */
export const queryKey = (map: string, query: Query<unknown> | AggregateQuery<unknown>) =>
  `${map}\u0000${stableStringify(query)}`;

/** A live query or aggregate the server should know about. */
export type ServerQuery = ServerWindowQuery | ServerAggregateQuery;

/** A live aggregate of a map replicated by query, computed by the server. */
export interface ServerAggregateQuery {
  readonly id: number;
  readonly map: string;
  readonly aggregate: AggregateQuery<Value>;
}

/** A live query the server should know about. */
export interface ServerWindowQuery {
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
