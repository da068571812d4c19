import {
  type QueryHandle,
  type QueryOptions,
  type QuerySnapshot,
  stableStringify,
} from '@topgun/client';
import type { Query, QueryRow } from '@topgun/core';
import { useMemo, useSyncExternalStore } from 'react';
import { frameBatched } from './frameBatched.js';
import { useClient } from './useClient.js';

/** The state of a {@link useQuery}. */
export type UseQueryStatus =
  /** Evaluated on the local replica; not yet confirmed by the server in this session. */
  | 'local'
  /** The map has been reconciled with the server. */
  | 'synced'
  /** The query was falsy: nothing is evaluated. */
  | 'disabled'
  /** The query is invalid (see `error`). */
  | 'error';

/** What {@link useQuery} returns; the same object until the result changes. */
export interface UseQueryResult<V> {
  /** Result rows `{ key, value }` in order (empty when disabled or invalid). */
  readonly data: readonly QueryRow<V>[];
  readonly status: UseQueryStatus;
  /**
   * Why the query is invalid, when `status` is `error`; or why the server refused it (a
   * budget, a permission), the rows then being what this client holds (`local`).
   */
  readonly error: Error | null;
  /** Whether rows follow the window (see `QuerySnapshot.hasMore`). */
  readonly hasMore: boolean;
  /**
   * Grows the window by one page (the query's `limit`): the rows after the last one; for a
   * map replicated by query, only those are fetched. Stable across renders.
   */
  readonly loadMore: () => void;
}

const EMPTY: readonly QueryRow<never>[] = Object.freeze([]);
const nothingMore = () => {};
const DISABLED: UseQueryResult<never> = Object.freeze({
  data: EMPTY,
  status: 'disabled',
  error: null,
  hasMore: false,
  loadMore: nothingMore,
});
const noSubscription = () => () => {};

/** Results wrapped once per snapshot, so identity follows the snapshot's. */
const results = new WeakMap<QuerySnapshot<unknown>, UseQueryResult<unknown>>();

function resultOf<V>(snapshot: QuerySnapshot<V>, handle: QueryHandle<V>): UseQueryResult<V> {
  let result = results.get(snapshot as QuerySnapshot<unknown>);
  if (result === undefined) {
    const { data, status, hasMore, error } = snapshot;
    result = { data, status, error, hasMore, loadMore: handle.loadMore };
    results.set(snapshot as QuerySnapshot<unknown>, result);
  }
  return result as UseQueryResult<V>;
}

/**
 * A live query on a map of the local replica: `{ data, status, error, hasMore, loadMore }`.
 * Re-renders only when the result changes (a write outside the result does not re-render),
 * at most once per animation frame. The query may be written inline: equal queries share one
 * subscription. A falsy query disables it. `options.offline` pins it (see `QueryOptions`).
 */
export function useQuery<V>(
  map: string,
  query: Query<V> | null | undefined | false,
  options?: QueryOptions,
): UseQueryResult<V> {
  const client = useClient();
  const key = query ? stableStringify(query) : null;
  // The serialized query stands for the object, so an inline query keeps its subscription.
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` is `query` serialized
  const source = useMemo((): { handle: QueryHandle<V> } | { error: Error } | null => {
    if (!query) return null;
    try {
      return { handle: client.query<V>(map, query, options) };
    } catch (error) {
      return { error: error as Error };
    }
  }, [client, map, key, options?.offline]);
  const handle = source !== null && 'handle' in source ? source.handle : undefined;
  const snapshot = useSyncExternalStore(
    handle === undefined ? noSubscription : frameBatched(handle.subscribe),
    () => handle?.getSnapshot(),
    () => handle?.getSnapshot(),
  );
  if (source === null) return DISABLED as UseQueryResult<V>;
  if ('error' in source)
    return {
      data: EMPTY as readonly QueryRow<V>[],
      status: 'error',
      error: source.error,
      hasMore: false,
      loadMore: nothingMore,
    };
  return resultOf(snapshot!, source.handle);
}
