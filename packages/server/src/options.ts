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
  /** Ops persisted together in one group-commit transaction at most. Default: 150. */
  readonly maxGroupOps: number;
  /** Open connections per server process; further upgrades get HTTP 503. Default: 10 000. */
  readonly maxConnections: number;
  /**
   * Connections one authenticated user may have open on a process (anonymous sessions are
   * not counted per user); a further hello gets `error` `POLICY_VIOLATION`, close 1008.
   * Default: 100.
   */
  readonly maxConnectionsPerUser: number;
  /** Time a new connection has to say `hello` before it is closed (4400). Default: 10 000 ms. */
  readonly handshakeTimeoutMs: number;
  /**
   * Event-loop time per connection, sustained, in ms per second: decoding, building live
   * queries, answering walks. A connection over it waits (its socket is paused). Default: 250.
   */
  readonly cpuMsPerSecond: number;
  /** Event-loop time a connection may use in a burst, in ms. Default: 1000. */
  readonly cpuBurstMs: number;
  /** Longest stretch of one request's work before it yields to everyone else, in ms. Default: 10. */
  readonly workSliceMs: number;
  /** Most event-loop time one message may take in all; beyond, it is refused as `LIMIT`. Default: 5000 ms. */
  readonly maxMessageCpuMs: number;
  /** Bytes received and not yet handled per connection before its socket is paused. Default: 4 MiB. */
  readonly receiveHighWaterMark: number;
  /** Sustained live-query subscriptions per second per connection. Default: 10. */
  readonly subscribesPerSecond: number;
  /** Burst of subscriptions per connection. Default: 50. */
  readonly subscribesBurst: number;
  /**
   * Rows the windows of one connection's live queries may hold together (a window holds at
   * most its query's `limit`). Default: 200 000.
   */
  readonly maxLiveQueryRowsPerConnection: number;
  /**
   * Rows the live-query indexes of the process may hold: each holds the records matching one
   * query, shared by every subscription to it (about 190 bytes a row). Default: 4 000 000.
   */
  readonly maxLiveQueryRows: number;
  /**
   * Rows of live-query indexes charged to one connection: an index is charged to the
   * subscriber that built it, then to one of those left. Default: 2 000 000 (a window over a
   * map of a million records and another over part of it).
   */
  readonly maxQueryIndexRowsPerConnection: number;
  /**
   * Live aggregates the process may keep (each shared by the subscriptions to one query and
   * view of a map, and maintained by every change of the map). Default: 256.
   */
  readonly maxAggregates: number;
  /** Groups the process's live aggregates may hold together (a few hundred bytes each). Default: 1 000 000. */
  readonly maxAggregateGroups: number;
  /** Walks one connection may have in progress. Default: 4. */
  readonly maxWalksPerConnection: number;
  /** Walks over maps with record-level read rules (each holds a view) in progress per process. Default: 64. */
  readonly maxWalkViews: number;
  /** Records those views may hold together, per process. Default: 5 000 000. */
  readonly maxWalkViewRecords: number;
  /** Byte budget of one walk message the server sends. Default: 256 KiB. */
  readonly walkMessageBytes: number;
  /** A walk without a message for this long is ended, in ms. Default: 60 000. */
  readonly walkIdleMs: number;
  /** Maps not in memory a connection may have loaded per second, sustained. Default: 20. */
  readonly mapLoadsPerSecond: number;
  /** Burst of map loads per connection. Default: 100. */
  readonly mapLoadsBurst: number;
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
  maxConnections: 10_000,
  maxConnectionsPerUser: 100,
  handshakeTimeoutMs: 10_000,
  cpuMsPerSecond: 250,
  cpuBurstMs: 1000,
  workSliceMs: 10,
  maxMessageCpuMs: 5000,
  receiveHighWaterMark: 4 * 1024 * 1024,
  subscribesPerSecond: 10,
  subscribesBurst: 50,
  maxLiveQueryRowsPerConnection: 200_000,
  maxLiveQueryRows: 4_000_000,
  maxQueryIndexRowsPerConnection: 2_000_000,
  maxAggregates: 256,
  maxAggregateGroups: 1_000_000,
  maxWalksPerConnection: 4,
  maxWalkViews: 64,
  maxWalkViewRecords: 5_000_000,
  walkMessageBytes: 256 * 1024,
  walkIdleMs: 60_000,
  mapLoadsPerSecond: 20,
  mapLoadsBurst: 100,
});

/** Options of `createServer`. */
export interface ServerOptions {
  /** Port to listen on; 0 picks a free one. Default: 8080. */
  readonly port?: number;
  /**
   * Interface to listen on. Default: `0.0.0.0`, or `127.0.0.1` when anonymous clients are
   * admitted (anyone on the network could otherwise read and write everything).
   */
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
  /**
   * Writes stamped earlier than this before server time are refused (`TOO_OLD`; clients
   * stamp them again), so that no client can write what pruning would delete at once.
   * Must be less than `pruneHorizonMs`. Default: 7 days.
   */
  readonly maxWriteAgeMs?: number;
  /**
   * A map unused for this long that nothing holds (no walk, live query or write in progress)
   * leaves memory. Default: 10 minutes.
   */
  readonly idleMapMs?: number;
  /**
   * Memory budget of the grid (the maps held in memory), in estimated bytes: over it, maps
   * nothing uses (no walk, live query or write in progress) are evicted, least recently used
   * first, and loaded again on their next use. A map larger than the whole budget is still
   * served; it stays in memory only while something uses it. An estimate that follows the
   * live heap the grid takes (resident memory grows more: the collector lets garbage
   * accumulate between collections). Default: a quarter of the V8 heap limit
   * (`v8.getHeapStatistics().heap_size_limit`, set by `--max-old-space-size`), leaving the
   * rest to connections, live queries, walk views and the collector's headroom.
   */
  readonly gridMaxBytes?: number;
  /** How often pruning runs. Default: every hour. */
  readonly pruneIntervalMs?: number;
  /**
   * Under load, the changes committed within this window reach each client as one message;
   * a change committed after a quiet window is sent at once. Default: 5 ms.
   */
  readonly fanoutWindowMs?: number;
  /**
   * With PostgreSQL (several processes may share the database): how often this process
   * sends a marker through the announcement channel to check that it still receives other
   * processes' commits. Default: 1 000 ms.
   */
  readonly announcementHeartbeatMs?: number;
  /**
   * With PostgreSQL: the longest a marker may take to come back. Past it the process counts
   * other processes' commits as possibly missed: it drops its loaded maps, closes its client
   * connections (they reconnect and walk again) and serves again once it listens again.
   * This bounds how stale a read can be. Default: 5 000 ms.
   */
  readonly announcementMaxLagMs?: number;
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
