/** Re-exported from `@topgun/core` (keys of equal queries). */
export { stableStringify } from '@topgun/core';
export {
  ClientClosedError,
  ConfigurationError,
  StorageCorruptError,
  StorageError,
  SyncError,
  type SyncErrorCode,
  WriteRejectedError,
} from './clientErrors.js';
export { createClient } from './createClient.js';
export type { ClientOptions, MapOptions } from './options/clientOptions.js';
export type { RejectedWrite, RejectionReason } from './outbox/localWrites.js';
export type { AggregateHandle, AggregateSnapshot } from './queries/aggregateHandle.js';
export { QueryHandle, type QuerySnapshot, type QueryStatus } from './queries/queryHandle.js';
export type { QueryOptions } from './queries/queryRegistry.js';
export { ClientMap, type MapWriter, type Patch } from './replica/clientMap.js';
export type { ConnectionState, SyncStatus, SyncStatusStore } from './status/syncStatus.js';
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
export {
  browserOnlineManager,
  manualOnlineManager,
  type OnlineManager,
} from './sync/onlineManager.js';
export type { Connection, ConnectionEvents, Transport } from './sync/transport.js';
export { type WebSocketConstructor, webSocketTransport } from './sync/webSocketTransport.js';
export { type LeaderElection, webLocksElection } from './tabs/leaderElection.js';
export { TopGunClient } from './topGunClient.js';
