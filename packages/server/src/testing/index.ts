/**
 * Tools for testing (`@topgun/server/testing`), not needed to run a server: deployments of
 * several server processes, and the storage acceptance suite a third-party driver runs.
 */
export { RoundRobinBalancer } from './roundRobinBalancer.js';
export { type ServerProcess, startServerProcess } from './serverProcess.js';
export { runStorageAcceptanceTests, type StorageUnderTest } from './storageAcceptance.js';
export type { TestApi } from './testApi.js';
