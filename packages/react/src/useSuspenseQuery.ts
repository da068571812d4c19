import type { QueryOptions } from '@topgun/client';
import type { Query } from '@topgun/core';
import { useClient } from './useClient.js';
import { type UseQueryResult, useQuery } from './useQuery.js';

const loaded = new WeakSet<object>();

/**
 * Like {@link useQuery}, but suspends (for a `Suspense` boundary) until the local replica is
 * loaded, so the first render already shows the stored data.
 */
export function useSuspenseQuery<V>(
  map: string,
  query: Query<V>,
  options?: QueryOptions,
): UseQueryResult<V> {
  const client = useClient();
  if (!loaded.has(client)) {
    throw client.ready.then(() => {
      loaded.add(client);
    });
  }
  return useQuery(map, query, options);
}
