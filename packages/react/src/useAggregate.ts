import { type AggregateHandle, type AggregateSnapshot, stableStringify } from '@topgun/client';
import type { AggregateQuery, AggregateRow } from '@topgun/core';
import { useMemo, useSyncExternalStore } from 'react';
import { frameBatched } from './frameBatched.js';
import { useClient } from './useClient.js';
import type { UseQueryStatus } from './useQuery.js';

/** What {@link useAggregate} returns; the same object until the result changes. */
export interface UseAggregateResult<G extends string = string, F extends string = string> {
  /**
   * The groups in order, `{ key, value }` with the group keys and figures by name (empty when
   * disabled or invalid). A group whose figures did not change keeps its row object.
   */
  readonly data: readonly AggregateRow<G, F>[];
  readonly status: UseQueryStatus;
  /** Why the aggregate is invalid, or why it has no result (more than 10,000 groups). */
  readonly error: Error | null;
}

const EMPTY: readonly AggregateRow<never, never>[] = Object.freeze([]);
const DISABLED: UseAggregateResult<never, never> = Object.freeze({
  data: EMPTY,
  status: 'disabled',
  error: null,
});
const noSubscription = () => () => {};

/** Results wrapped once per snapshot, so identity follows the snapshot's. */
const results = new WeakMap<AggregateSnapshot, UseAggregateResult>();

function resultOf(snapshot: AggregateSnapshot): UseAggregateResult {
  let result = results.get(snapshot);
  if (result === undefined) {
    const { data, status, error } = snapshot;
    result = { data, status: error === null ? status : 'error', error };
    results.set(snapshot, result);
  }
  return result;
}

/**
 * A live aggregate on a map of the local replica: `{ data, status, error }`, the groups of
 * `query` with their figures. Re-renders only when a group's figures change, at most once per
 * animation frame. The query may be written inline: equal queries share one maintainer. A
 * falsy query disables it.
 * @example
 * const { data } = useAggregate<Todo, 'owner', 'open'>('todos', {
 *   where: { done: false }, groupBy: { owner: 'owner' }, aggregate: { open: 'count' },
 * });
 */
export function useAggregate<V, G extends string = string, F extends string = string>(
  map: string,
  query: AggregateQuery<V, G, F> | null | undefined | false,
): UseAggregateResult<G, F> {
  const client = useClient();
  const key = query ? stableStringify(query) : null;
  // The serialized query stands for the object, so an inline query keeps its maintainer.
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` is `query` serialized
  const source = useMemo((): { handle: AggregateHandle<V> } | { error: Error } | null => {
    if (!query) return null;
    try {
      return { handle: client.aggregate<V>(map, query) };
    } catch (error) {
      return { error: error as Error };
    }
  }, [client, map, key]);
  const handle = source !== null && 'handle' in source ? source.handle : undefined;
  const snapshot = useSyncExternalStore(
    handle === undefined ? noSubscription : frameBatched(handle.subscribe),
    () => handle?.getSnapshot(),
    () => handle?.getSnapshot(),
  );
  if (source === null) return DISABLED as UseAggregateResult<G, F>;
  if ('error' in source)
    return { data: EMPTY as readonly AggregateRow<G, F>[], status: 'error', error: source.error };
  return resultOf(snapshot!) as UseAggregateResult<G, F>;
}

const loaded = new WeakSet<object>();

/**
 * Like {@link useAggregate}, but suspends (for a `Suspense` boundary) until the local replica
 * is loaded, so the first render already counts the stored records.
 */
export function useSuspenseAggregate<V, G extends string = string, F extends string = string>(
  map: string,
  query: AggregateQuery<V, G, F>,
): UseAggregateResult<G, F> {
  const client = useClient();
  if (!loaded.has(client)) {
    throw client.ready.then(() => {
      loaded.add(client);
    });
  }
  return useAggregate(map, query);
}
