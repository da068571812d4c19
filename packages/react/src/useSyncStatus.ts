import type { SyncStatus } from '@topgun/client';
import { useSyncExternalStore } from 'react';
import { frameBatched } from './frameBatched.js';
import { useClient } from './useClient.js';

const identity = (status: SyncStatus) => status;

/**
 * The client's sync status (connection, pending writes, progress), or a slice of it:
 * re-renders only when the selected slice changes, at most once per animation frame.
 * @example const pending = useSyncStatus((status) => status.pendingOps);
 */
export function useSyncStatus(): SyncStatus;
export function useSyncStatus<T>(selector: (status: SyncStatus) => T): T;
export function useSyncStatus<T>(selector?: (status: SyncStatus) => T): T | SyncStatus {
  const { status } = useClient();
  const select = (selector ?? identity) as (status: SyncStatus) => T | SyncStatus;
  // As zustand's `useStore`, with the progress of a streaming sync rendered once per frame.
  return useSyncExternalStore(
    frameBatched(status.subscribe),
    () => select(status.getState()),
    () => select(status.getInitialState()),
  );
}
