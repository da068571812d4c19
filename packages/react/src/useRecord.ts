import { useSyncExternalStore } from 'react';
import { frameBatched } from './frameBatched.js';
import { useClient } from './useClient.js';

/** The value of one record (undefined when absent); re-renders only when that value changes. */
export function useRecord<V>(map: string, key: string): V | undefined {
  const handle = useClient().getMap<V>(map);
  return useSyncExternalStore(
    frameBatched(handle.subscribe),
    () => handle.get(key),
    () => handle.get(key),
  );
}
