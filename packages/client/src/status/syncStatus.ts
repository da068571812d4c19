import { createStore, type StoreApi } from 'zustand/vanilla';
import type { StorageError, SyncError } from '../clientErrors.js';

/** The connection to the sync server. */
export type ConnectionState =
  /** Not connected: no URL, offline, or waiting to retry. */
  | 'offline'
  /** Opening the socket and authenticating. */
  | 'connecting'
  /** Connected, reconciling maps with the server. */
  | 'syncing'
  /** Connected and up to date; writes are sent as they happen. */
  | 'online';

/** What `client.status` holds. Subscribe to it or read it with `useSyncStatus`. */
export interface SyncStatus {
  readonly connection: ConnectionState;
  /**
   * The URL of the server connected to, or being connected to while `connection` is
   * `'connecting'`; null while `'offline'`. With several URLs, shows which one serves.
   */
  readonly url: string | null;
  /** Local writes not yet acknowledged by the server. */
  readonly pendingOps: number;
  /** When (server time, ms) every open map was last reconciled; null before the first time. */
  readonly lastSyncedAt: number | null;
  /** Progress of a bulk download (a first sync): records received of expected. */
  readonly initialSync: { readonly received: number; readonly expected: number } | null;
  /**
   * The last storage (IndexedDB) failure (code `STORAGE_FAILED`), cleared after a successful
   * write; its `message` is for display.
   */
  readonly storageError: StorageError | null;
  /**
   * The last connection or server problem, cleared when a server welcomes the client; its
   * `code` says what kind (see {@link SyncError}), its `message` is for display.
   */
  readonly lastError: SyncError | null;
  /** Whether this tab holds the connection (one tab per browser profile does). */
  readonly isLeader: boolean;
}

/** A zustand vanilla store of {@link SyncStatus}. */
export type SyncStatusStore = StoreApi<SyncStatus>;

/** A fresh status store. */
export function createSyncStatusStore(): SyncStatusStore {
  return createStore<SyncStatus>(() => ({
    connection: 'offline',
    url: null,
    pendingOps: 0,
    lastSyncedAt: null,
    initialSync: null,
    storageError: null,
    lastError: null,
    isLeader: false,
  }));
}
