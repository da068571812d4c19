import type { FastifyServerOptions } from 'fastify';
import type { AuthOptions } from './auth.js';
import type { PermissionRule } from './permissions.js';
import type { StorageConfig } from './storage/createStorage.js';
import type { Storage } from './storage/storage.js';

/** Limits that keep one client from hurting the others. */
export interface ServerLimits {
  /** Largest WebSocket frame, in bytes (ws `maxPayload`). Default: 1 MiB. */
  readonly maxFrameBytes: number;
  /** Most ops in one `ops` message. Default: 1000. */
  readonly maxBatchOps: number;
  /** Sustained ops per second per connection. Default: 5000. */
  readonly opsPerSecond: number;
  /** Burst of ops per connection. Default: 10 000. */
  readonly opsBurst: number;
  /** Sustained bytes per second received per connection. Default: 4 MiB. */
  readonly bytesPerSecond: number;
  /** Burst of bytes per connection. Default: 8 MiB. */
  readonly bytesBurst: number;
  /** Most live queries per connection. Default: 100. */
  readonly maxLiveQueries: number;
  /** WebSocket upgrades per second per IP address. Default: 20. */
  readonly upgradesPerSecond: number;
  /** Burst of upgrades per IP address. Default: 50. */
  readonly upgradesBurst: number;
  /** Violations (bad frames, rate limits) tolerated within 10 s before closing with 1008. Default: 20. */
  readonly maxViolations: number;
  /** Bytes queued for a client beyond which it is disconnected as too slow. Default: 16 MiB. */
  readonly sendHighWaterMark: number;
  /** Records per `sync_records` and `query_snapshot` chunk. Default: 1000. */
  readonly chunkRecords: number;
  /** Ops persisted together in one group-commit transaction at most. Default: 300. */
  readonly maxGroupOps: number;
}

/** The default limits. */
export const DEFAULT_LIMITS: ServerLimits = Object.freeze({
  maxFrameBytes: 1024 * 1024,
  maxBatchOps: 1000,
  opsPerSecond: 5000,
  opsBurst: 10_000,
  bytesPerSecond: 4 * 1024 * 1024,
  bytesBurst: 8 * 1024 * 1024,
  maxLiveQueries: 100,
  upgradesPerSecond: 20,
  upgradesBurst: 50,
  maxViolations: 20,
  sendHighWaterMark: 16 * 1024 * 1024,
  chunkRecords: 1000,
  maxGroupOps: 150,
});

/** Options of `createServer`. */
export interface ServerOptions {
  /** Port to listen on; 0 picks a free one. Default: 8080. */
  readonly port?: number;
  /** Interface to listen on. Default: `0.0.0.0`. */
  readonly host?: string;
  /**
   * Where data lives: a storage config (the server opens and closes it), or an opened storage
   * (the caller closes it). Default: PGlite in memory.
   */
  readonly storage?: StorageConfig | Storage;
  /** Authentication. Default: anonymous access refused, no keys (every client refused). */
  readonly auth?: AuthOptions;
  /**
   * Read and write rules per map-name pattern; the first matching rule applies and a map
   * no rule matches is neither readable nor writable. Default: every map readable and
   * writable by every admitted user.
   */
  readonly permissions?: readonly PermissionRule[];
  /** Limits; unspecified ones take their defaults. */
  readonly limits?: Partial<ServerLimits>;
  /** This server's node id. Default: random. */
  readonly nodeId?: string;
  /** Interval of WebSocket pings; a client silent for two intervals is dropped. Default: 30 000 ms. */
  readonly heartbeatMs?: number;
  /** Tombstones older than this are pruned. Default: 30 days. */
  readonly pruneHorizonMs?: number;
  /** How often pruning runs. Default: every hour. */
  readonly pruneIntervalMs?: number;
  /** Changes committed within this window reach each client as one message. Default: 5 ms. */
  readonly fanoutWindowMs?: number;
  /** Largest accepted clock drift of client timestamps. Default: 60 000 ms. */
  readonly maxDriftMs?: number;
  /**
   * A directory of static files to serve (a built app, e.g. the demo) at `/`, with
   * `index.html` for unknown paths so client-side routes work. Default: none.
   */
  readonly staticDir?: string;
  /** Fastify logger options; `false` for none. Default: info level. */
  readonly logger?: FastifyServerOptions['logger'];
  /** Wall clock. Default: `Date.now`. */
  readonly now?: () => number;
}
