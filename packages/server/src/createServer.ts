import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import fastifyStatic from '@fastify/static';
import websocket from '@fastify/websocket';
import { DEFAULT_DECODE_LIMITS, HLC } from '@topgun/core';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { AggregateHub } from './aggregateHub.js';
import { AnnouncementFollower, NOT_FOLLOWING } from './announcementFollower.js';
import { Authenticator } from './auth.js';
import { ChangeFanout } from './changeFanout.js';
import { ClientConnection } from './connection.js';
import { LiveQueryHub } from './liveQueryHub.js';
import { MapGrid } from './mapGrid.js';
import { ServerMetrics } from './metrics.js';
import { DEFAULT_LIMITS, type ServerLimits, type ServerOptions } from './options.js';
import { Permissions } from './permissions.js';
import { ServerConfigurationError } from './serverConfigurationError.js';
import { createStorage } from './storage/createStorage.js';
import type { Storage } from './storage/storage.js';
import { SyncService } from './syncService.js';
import { TokenBucket } from './tokenBucket.js';
import { WritePipeline } from './writePipeline.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** A running (or ready to run) TopGun sync server. */
export interface TopGunServer {
  /** The Fastify instance: routes, hooks and logger are available for embedding. */
  readonly app: FastifyInstance;
  /** The storage in use. */
  readonly storage: Storage;
  /** Prometheus metrics. */
  readonly metrics: ServerMetrics;
  /** Starts listening; resolves with the base URL, e.g. `http://127.0.0.1:8080`. */
  listen(): Promise<string>;
  /**
   * Graceful shutdown: stop accepting, finish and acknowledge in-flight batches, close every
   * socket with 1001, close storage (unless it was passed in already opened).
   */
  close(): Promise<void>;
  /** Runs tombstone pruning now (it also runs on a schedule); resolves with records deleted. */
  prune(): Promise<number>;
}

/**
 * Creates a TopGun sync server: WebSocket `/sync`, `GET /health`, `GET /ready`,
 * `GET /metrics`. Storage is opened and migrated before this resolves.
 * @throws {ServerConfigurationError} (rejects with it) when options cannot work together, or
 *   the configured key cannot verify tokens of the configured algorithms.
 */
export async function createServer(options: ServerOptions = {}): Promise<TopGunServer> {
  const now = options.now ?? Date.now;
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const nodeId = options.nodeId ?? `server-${randomBytes(6).toString('hex')}`;
  const heartbeatMs = options.heartbeatMs ?? 30_000;
  const pruneHorizonMs = options.pruneHorizonMs ?? 30 * DAY_MS;
  const maxWriteAgeMs = options.maxWriteAgeMs ?? Math.min(7 * DAY_MS, pruneHorizonMs / 2);
  if (!(maxWriteAgeMs < pruneHorizonMs)) {
    throw new ServerConfigurationError(
      ['maxWriteAgeMs', 'pruneHorizonMs'],
      'maxWriteAgeMs must be less than pruneHorizonMs: a client could write what pruning deletes',
    );
  }
  const gridMaxBytes = options.gridMaxBytes ?? Math.floor(getHeapStatistics().heap_size_limit / 4);
  if (!(gridMaxBytes > 0)) {
    throw new ServerConfigurationError(
      ['gridMaxBytes'],
      'gridMaxBytes must be a positive number of bytes',
    );
  }
  // Checked before storage is opened: a server that cannot start leaves nothing open.
  const authenticator = new Authenticator(options.auth);
  await authenticator.ready();
  const app = Fastify({
    logger: options.logger ?? { level: 'info' },
    // The WebSocket plugin keeps sockets; Fastify must not wait forever for them on close.
    forceCloseConnections: true,
    // Health checks and scrapes every few seconds would drown everything else.
    logController: new LogController({ disableRequestLogging: true }),
  });
  const metrics = new ServerMetrics();

  const storageOption = options.storage ?? { kind: 'pglite' as const };
  // A storage passed in opened belongs to the caller, who closes it; one opened here is ours.
  const ownsStorage = !('migrate' in storageOption);
  const storage: Storage =
    'migrate' in storageOption
      ? storageOption
      : await createStorage(storageOption, (error) =>
          app.log.warn({ err: error }, 'database connection lost'),
        );
  let ready = false;
  const migrate = async (): Promise<void> => {
    try {
      await storage.migrate();
      ready = true;
    } catch (error) {
      app.log.error({ err: error }, 'storage migration failed; retrying in 5 s');
      setTimeout(() => void migrate(), 5_000).unref();
    }
  };
  await migrate();

  const permissions = new Permissions(options.permissions);
  const clock = new HLC({ nodeId, now, maxDriftMs: options.maxDriftMs ?? 60_000 });
  const grid = new MapGrid({ storage, metrics, nodeId, now, maxBytes: gridMaxBytes });
  const idleMapMs = options.idleMapMs ?? 10 * 60 * 1000;
  const fanout = new ChangeFanout(
    permissions,
    metrics,
    limits.chunkRecords,
    limits.maxFrameBytes,
    options.fanoutWindowMs ?? 5,
    grid,
  );
  // Reads (walks, snapshots) wait until the grid holds every commit acknowledged before them.
  let follower: AnnouncementFollower | undefined;
  const fresh = (map: string) => (follower === undefined ? Promise.resolve() : follower.fresh(map));
  const liveQueries = new LiveQueryHub({ grid, permissions, fanout, metrics, limits, now, fresh });
  const aggregates = new AggregateHub({ grid, permissions, metrics, limits, now, fresh });
  const pipeline = new WritePipeline({
    storage,
    grid,
    permissions,
    metrics,
    clock,
    logger: app.log,
    maxGroupOps: limits.maxGroupOps,
    concurrency: storage.writeConcurrency,
    maxWriteAgeMs,
    now,
  });
  // After the commit slot is free: pushing changes to clients never holds the next commit up.
  pipeline.onCommitted(async ({ map, changes, origin }) => {
    fanout.publish(map, changes, origin);
    await liveQueries.onChanges(map, changes);
  });
  const connections = new Set<ClientConnection>();
  const channel = storage.announcements;
  follower =
    channel === undefined
      ? undefined
      : new AnnouncementFollower({
          channel,
          storage,
          grid,
          fanout,
          liveQueries,
          metrics,
          logger: app.log,
          now,
          heartbeatMs: options.announcementHeartbeatMs ?? 1_000,
          maxLagMs: options.announcementMaxLagMs ?? 5_000,
          onLost: () => {
            for (const connection of connections) connection.closeForResync();
            grid.clear();
          },
          onRestored: () => grid.clear(),
        });
  const sync = new SyncService({
    grid,
    storage,
    permissions,
    pipeline,
    fanout,
    metrics,
    logger: app.log,
    nodeId,
    limits,
    maxWriteAgeMs,
    now,
    fresh,
  });
  await follower?.start();

  const upgradeBuckets = new Map<string, TokenBucket>();
  let shuttingDown = false;
  let nextConnectionId = 1;

  await app.register(websocket, {
    options: {
      maxPayload: limits.maxFrameBytes,
      perMessageDeflate: false,
      // One message per turn of the event loop per socket: frames that arrive together are
      // decoded one at a time, with I/O between them, so a burst of the largest frames holds
      // the loop for one frame's decoding at most.
      allowSynchronousEvents: false,
    },
  });

  if (options.staticDir !== undefined) {
    await app.register(fastifyStatic, { root: resolve(options.staticDir), wildcard: false });
    // Client-side routes: unknown GETs that want HTML get the app's index.html.
    app.setNotFoundHandler((request, reply) => {
      if (request.method === 'GET' && (request.headers.accept ?? '').includes('text/html')) {
        return reply.sendFile('index.html');
      }
      return reply.code(404).send({ error: 'not found' });
    });
  }

  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/ready', async (_request, reply) => {
    if (!ready || shuttingDown)
      return reply.code(503).send({ status: shuttingDown ? 'shutting down' : 'migrating' });
    if (follower !== undefined && !follower.isHealthy)
      return reply.code(503).send({ status: 'catching up with other server processes' });
    try {
      await Promise.race([
        storage.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2_000).unref()),
      ]);
      return { status: 'ready', storage: storage.description };
    } catch {
      return reply.code(503).send({ status: 'storage unavailable', storage: storage.description });
    }
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  app.get(
    '/sync',
    {
      websocket: true,
      preValidation: async (request, reply) => {
        if (shuttingDown) return reply.code(503).send({ error: 'shutting down' });
        if (follower !== undefined && !follower.isHealthy)
          return reply.code(503).send({ error: NOT_FOLLOWING });
        if (connections.size >= limits.maxConnections) {
          metrics.budgetExceeded.inc({ budget: 'connections' });
          return reply.code(503).send({ error: 'the server has as many connections as it may' });
        }
        let bucket = upgradeBuckets.get(request.ip);
        if (bucket === undefined) {
          bucket = new TokenBucket(limits.upgradesBurst, limits.upgradesPerSecond, now);
          upgradeBuckets.set(request.ip, bucket);
        }
        if (!bucket.take()) {
          metrics.violations.inc({ kind: 'upgrade_rate' });
          return reply.code(429).send({ error: 'too many connections from this address' });
        }
        return undefined;
      },
    },
    (socket) => {
      const connection = new ClientConnection(nextConnectionId++, socket, {
        authenticator,
        pipeline,
        sync,
        liveQueries,
        aggregates,
        fanout,
        metrics,
        limits,
        decodeLimits: { ...DEFAULT_DECODE_LIMITS, maxFrameBytes: limits.maxFrameBytes },
        serverNodeId: nodeId,
        heartbeatMs,
        logger: app.log,
        now,
        isShuttingDown: () => shuttingDown,
        claimNodeId: (clientNodeId, userId) => storage.claimNodeId(clientNodeId, userId, now()),
        connectionsOf: (userId) => {
          let count = 0;
          for (const other of connections) if (other.ready && other.user.id === userId) count++;
          return count;
        },
      });
      connections.add(connection);
      metrics.connections.inc();
      socket.on('close', () => {
        if (connections.delete(connection)) metrics.connections.dec();
      });
    },
  );

  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const heartbeat = setInterval(() => {
    for (const connection of connections) connection.heartbeat();
    // Forget idle per-IP buckets so the map does not grow without bound.
    if (upgradeBuckets.size > 10_000) upgradeBuckets.clear();
    metrics.eventLoopDelay.set(loopDelay.max / 1e9);
    loopDelay.reset();
  }, heartbeatMs);
  heartbeat.unref();
  // Abandoned walks end, and maps no one uses leave memory (storage keeps them).
  const sweep = setInterval(
    () => {
      sync.sweep();
      grid.evictIdle(idleMapMs);
    },
    Math.min(limits.walkIdleMs, 60_000),
  );
  sweep.unref();

  const prune = async (): Promise<number> => {
    const horizon = { millis: Math.max(0, now() - pruneHorizonMs), counter: 0, nodeId: '0' };
    const deleted = await metrics.timeStorage('prune', () => storage.prune(horizon, now()));
    for (const name of grid.loadedMaps()) {
      const map = await grid.ifLoaded(name);
      map?.prune(horizon);
    }
    if (deleted > 0) app.log.info({ deleted }, 'pruned tombstones');
    return deleted;
  };
  const pruneTimer = setInterval(
    () => {
      prune().catch((error) => app.log.warn({ err: error }, 'pruning failed'));
    },
    options.pruneIntervalMs ?? 60 * 60 * 1000,
  );
  pruneTimer.unref();

  let closing: Promise<void> | undefined;
  return {
    app,
    storage,
    metrics,
    async listen() {
      return app.listen({ port: options.port ?? 8080, host: options.host ?? defaultHost(options) });
    },
    close() {
      closing ??= (async () => {
        shuttingDown = true;
        clearInterval(heartbeat);
        clearInterval(sweep);
        clearInterval(pruneTimer);
        loopDelay.disable();
        // Let every message already received be handled, and every batch be committed and acked.
        await Promise.all([...connections].map((connection) => connection.settled()));
        await pipeline.idle();
        for (const connection of connections) connection.closeForShutdown();
        follower?.close();
        await app.close();
        if (ownsStorage) await storage.close();
      })();
      return closing;
    },
    prune,
  };
}

/**
 * Where to listen when no host is given: every interface, unless anonymous clients are
 * admitted, in which case only this machine (anyone on the network could otherwise read
 * and write everything).
 */
export function defaultHost(options: Pick<ServerOptions, 'auth'>): string {
  return options.auth?.allowAnonymous ? '127.0.0.1' : '0.0.0.0';
}
