import type { ClientMap, Patch } from '@topgun/client';
import type { SetOptions } from '@topgun/core';
import { useMemo, useSyncExternalStore } from 'react';
import { frameBatched } from './frameBatched.js';
import { useClient } from './useClient.js';

/** What {@link useMap} returns. */
export interface UseMapResult<V> {
  /** The visible entries as `[key, value]` pairs; the same array until the map changes. */
  readonly entries: ReadonlyArray<readonly [string, V]>;
  /** Writes a value. */
  readonly set: (key: string, value: V, options?: SetOptions) => void;
  /** Deletes a key. */
  readonly delete: (key: string) => void;
  /** Writes only the patch's fields; `undefined` fields are removed (`ClientMap.update`). */
  readonly update: (key: string, patch: Patch<V>) => void;
  /** The map handle itself. */
  readonly map: ClientMap<V>;
}

/**
 * A map of the local replica; re-renders when it changes (locally, in another tab, or from the
 * server), at most once per animation frame.
 */
export function useMap<V>(name: string): UseMapResult<V> {
  const client = useClient();
  const map = client.getMap<V>(name);
  const entries = useSyncExternalStore(
    frameBatched(map.subscribe),
    () => map.entries(),
    () => map.entries(),
  );
  const actions = useMemo(
    () => ({
      set: (key: string, value: V, options?: SetOptions) => map.set(key, value, options),
      delete: (key: string) => map.delete(key),
      update: (key: string, patch: Patch<V>) => map.update(key, patch),
    }),
    [map],
  );
  return { entries, ...actions, map };
}
