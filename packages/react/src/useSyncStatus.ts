import type { SyncStatus } from '@topgun/client';
import { useStore } from 'zustand';
import { useClient } from './useClient.js';

const identity = (status: SyncStatus) => status;

/**
 * The client's sync status (connection, pending writes, progress), or a slice of it:
 * re-renders only when the selected slice changes.
 * @example const pending = useSyncStatus((status) => status.pendingOps);
 */
export function useSyncStatus(): SyncStatus;
export function useSyncStatus<T>(selector: (status: SyncStatus) => T): T;
export function useSyncStatus<T>(selector?: (status: SyncStatus) => T): T | SyncStatus {
  return useStore(
    useClient().status,
    (selector ?? identity) as (status: SyncStatus) => T | SyncStatus,
  );
}
