export { Authenticator, type AuthFailure, type AuthOptions, type Identity } from './auth.js';
export { createServer, type TopGunServer } from './createServer.js';
export { MapGrid } from './mapGrid.js';
export { ServerMetrics } from './metrics.js';
export { DEFAULT_LIMITS, type ServerLimits, type ServerOptions } from './options.js';
export {
  ALLOW_ALL,
  type FilteredRecord,
  type PermissionRule,
  Permissions,
  type ReadContext,
  type ReadFilter,
  type Rule,
  type UserContext,
  type WriteContext,
} from './permissions.js';
export { ServerConfigurationError } from './serverConfigurationError.js';
export { createStorage, type StorageConfig } from './storage/createStorage.js';
export { createPgDriver, type PgDriverOptions } from './storage/pgDriver.js';
export { createPgliteDriver } from './storage/pgliteDriver.js';
export type { SqlDriver, SqlExecutor } from './storage/sqlDriver.js';
export { SqlStorage } from './storage/sqlStorage.js';
export type { RecordWrite, Storage, StoredRecord } from './storage/storage.js';
