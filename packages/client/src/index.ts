/** Re-exported from `@topgun/core` (keys of equal queries). */
export { stableStringify } from '@topgun/core';
export { ClientClosedError, ConfigurationError, StorageCorruptError } from './clientErrors.js';
export { ClientMap, type MapWriter, type Patch } from './clientMap.js';
export { createClient } from './createClient.js';
export { type LeaderElection, webLocksElection } from './leaderElection.js';
export { browserOnlineManager, manualOnlineManager, type OnlineManager } from './onlineManager.js';
export type { ClientOptions } from './options/clientOptions.js';
export { QueryHandle, type QuerySnapshot, type QueryStatus } from './queryHandle.js';
export type {
  ClientStorage,
  OutboxEntry,
  PersistedRecord,
  PersistedState,
  StorageBatch,
} from './storage/clientStorage.js';
export {
  createIndexedDbStorage,
  type IndexedDbStorage,
  type IndexedDbStorageOptions,
} from './storage/indexedDbStorage.js';
export type { CompactionPolicy, CompactionReport } from './storage/logCompactor.js';
export { createMemoryStorage } from './storage/memoryStorage.js';
export type { RejectionReason } from './syncEngine.js';
export type { ConnectionState, SyncStatus, SyncStatusStore } from './syncStatus.js';
export { type RejectedWrite, TopGunClient } from './topGunClient.js';
export type { Connection, ConnectionEvents, Transport } from './transport.js';
export { type WebSocketConstructor, webSocketTransport } from './webSocketTransport.js';
