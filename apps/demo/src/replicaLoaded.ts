import { useSyncExternalStore } from 'react';
import { client } from './client.js';

let loaded = false;
const listeners = new Set<() => void>();

// Settled either way: when storage fails, the replica lives in memory (the status bar says so).
const settle = () => {
  loaded = true;
  for (const listener of listeners) listener();
};
client.ready.then(settle, settle);

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/**
 * Whether the stored replica has been loaded. Known at once after that, unlike a suspending
 * hook's first render (`useSuspenseAggregate` suspends for a moment on its first use in a page
 * even when the replica was loaded long before).
 */
export function useReplicaLoaded(): boolean {
  return useSyncExternalStore(subscribe, () => loaded);
}
