import {
  type AggregateQuery,
  type AggregateRow,
  MAX_WINDOW_ROWS,
  type Query,
  QueryError,
  type Value,
} from '@topgun/core';

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
      readonly maxRecords: number | undefined;
    }
  /** A tab pinned a query (its rows are kept by every tab's budget), or unpinned it (`null`). */
  | { readonly type: 'pin'; readonly pin: string; readonly keys: readonly string[] | null }
  /** A tab follows an aggregate of a map replicated by query, or no longer. */
  | {
      readonly type: 'aggregate';
      readonly tab: string;
      readonly map: string;
      readonly query: AggregateQuery<Value>;
      readonly active: boolean;
    }
  /** The leader's snapshot of such an aggregate (by its map and serialized form). */
  | {
      readonly type: 'aggregate-state';
      readonly key: string;
      readonly data: readonly AggregateRow[];
      readonly status: 'local' | 'synced';
      readonly error: string | null;
    }
  | {
      readonly type: 'query-state';
      /** The query's map and serialized form. */
      readonly key: string;
      readonly synced: boolean;
      readonly matching: number | undefined;
      /** Why the server refused it, if it did. */
      readonly refused?: string;
    };

/**
 * What a query over a map replicated by query must be: a window the server can resume by
 * digest and grow (a `limit` of at most {@link MAX_WINDOW_ROWS}), from the first row.
 * @throws {QueryError} otherwise.
 */
export function scopedQueryRules(query: Query<unknown>): void {
  const { limit, offset } = query;
  if (limit === undefined || limit > MAX_WINDOW_ROWS)
    throw new QueryError(
      'limit',
      `a query of a map replicated by query needs a limit of at most ${MAX_WINDOW_ROWS}`,
    );
  if (offset) throw new QueryError('offset', 'not on a map replicated by query: use loadMore');
}

const PIN_PREFIX = 'pin:';

/**
 * Pinned queries (`{ offline: true }`) and the keys of their last result, by map and query:
 * stored (read back at start) and told to the other tabs, whose budgets keep them too.
 */
export class Pins {
  readonly #keys = new Map<string, readonly string[]>();

  constructor(
    private readonly store: (pin: string, keys: readonly string[] | null) => void,
    private readonly share: ((message: QueryTabMessage) => void) | undefined,
  ) {}

  has(pin: string): boolean {
    return this.#keys.has(pin);
  }

  /** Pins a query whose result is not known yet. */
  add(pin: string): void {
    if (!this.#keys.has(pin)) this.#keys.set(pin, []);
  }

  /** A pinned query's result: stored and told. */
  set(pin: string, keys: readonly string[]): void {
    this.#keys.set(pin, keys);
    this.store(pin, keys);
    this.share?.({ type: 'pin', pin, keys });
  }

  /** Unpins; returns whether it was pinned. */
  delete(pin: string): boolean {
    if (!this.#keys.delete(pin)) return false;
    this.store(pin, null);
    this.share?.({ type: 'pin', pin, keys: null });
    return true;
  }

  /** Another tab pinned or unpinned a query. */
  learn({ pin, keys }: Extract<QueryTabMessage, { type: 'pin' }>): void {
    if (keys === null) this.#keys.delete(pin);
    else this.#keys.set(pin, keys);
  }

  /** Reads the pins stored back. */
  load(meta: Iterable<readonly [string, unknown]>): void {
    for (const [name, keys] of meta)
      if (name.startsWith(PIN_PREFIX) && Array.isArray(keys))
        this.#keys.set(name.slice(PIN_PREFIX.length), keys);
  }

  /** Adds to `held` the keys pinned queries of map `map` hold. */
  addHeld(map: string, held: Set<string>): void {
    for (const [pin, keys] of this.#keys)
      if (pin.startsWith(`${map}\u0000`)) for (const key of keys) held.add(key);
  }
}
