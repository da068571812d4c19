import {
  fromWireEntry,
  type Message,
  type MessageOf,
  PROTOCOL_VERSION,
  type Value,
} from '@topgun/core';
import { SyncError } from '../clientErrors.js';
import type { LocalWrites } from '../outbox/localWrites.js';
import type { Outbox } from '../outbox/outbox.js';
import type { QueryRegistry, ServerQuery } from '../queries/queryRegistry.js';
import type { ClientClock } from '../replica/clientClock.js';
import type { ReplicaStore } from '../replica/replicaStore.js';
import type { SyncMarks } from '../replica/syncMarks.js';
import type { SyncStatusStore } from '../status/syncStatus.js';
import type { OutboxEntry } from '../storage/clientStorage.js';
import {
  type ConnectionHandler,
  ReconnectingConnection,
  type ReconnectingConnectionOptions,
} from './reconnectingConnection.js';
import { ServerQueries } from './serverQueries.js';
import { Walks } from './walks.js';

/** The rooms of the client the engine syncs. */
export interface SyncedRooms {
  readonly replicas: ReplicaStore;
  readonly writes: LocalWrites;
  readonly outbox: Outbox;
  readonly queries: QueryRegistry;
  readonly marks: SyncMarks;
  readonly clock: ClientClock;
  readonly status: SyncStatusStore;
}

/** Options of the engine: the connection's, and how it introduces itself. */
export interface SyncEngineOptions extends Omit<ReconnectingConnectionOptions, 'status'> {
  /** The node id the connection announces (the client id, shared by this profile's tabs). */
  readonly nodeId: string;
  /**
   * Delay before a walk the server refused or lost, or one that ended apart without progress,
   * starts again; doubled for each such walk of the map in a row, up to 64 times. Default: 5 s.
   */
  readonly walkRetryMs?: number | undefined;
  /** Resolves once the replica is loaded: what follows the server's welcome waits for it. */
  readonly loaded?: Promise<void> | undefined;
  /**
   * Nothing was stored before this start: the queries of maps replicated by query are
   * subscribed without waiting for `loaded` (see {@link ServerQueries}).
   */
  readonly fresh?: boolean | undefined;
  /** The maps the stored replica held records of, once `loaded`. */
  readonly storedMaps?: (() => ReadonlySet<string>) | undefined;
}

/** Batches of ops in flight at once. */
const MAX_IN_FLIGHT_BATCHES = 4;
/** Delay before writes the server refused for now (rate limit, storage down) are sent again. */
const RETRYABLE_RESEND_MS = 1_000;

/**
 * The sync protocol of the leader tab: the handshake, the walks of every open map on each
 * (re)connect, then the outbox in batches answered by acks and rejects; server changes and
 * live-query results merged as they come. The connection below it reconnects by itself.
 */
export class SyncEngine implements ConnectionHandler {
  readonly #connection: ReconnectingConnection;
  readonly #walks: Walks;
  #ready = false;
  #maxBatchOps = 1000;
  #resendTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #queries: ServerQueries;
  /** The welcome arrived and waits for the replica: what follows it waits too, in order. */
  #welcomeWaits = false;
  /** Whether `loaded` has resolved (early subscriptions are for a replica still loading). */
  #replicaLoaded = false;
  /** Connections dropped: a welcome that waited for the replica may be out of date. */
  #drops = 0;

  readonly #rooms: SyncedRooms;
  readonly #options: SyncEngineOptions;

  constructor(rooms: SyncedRooms, options: SyncEngineOptions) {
    this.#rooms = rooms;
    this.#options = options;
    this.#walks = new Walks({
      ...rooms,
      send: (message) => this.#connection.send(message),
      sendFrame: (frame) => this.#connection.sendFrame(frame),
      initialWalksDone: () => this.sendOutbox(),
      walkRetryMs: options.walkRetryMs,
      now: options.now,
    });
    this.#queries = new ServerQueries({
      ...rooms,
      send: (message) => this.#connection.send(message),
      report: (code, message, serverCode) => this.#report(code, message, serverCode),
      now: options.now,
      storedMaps: options.storedMaps,
    });
    void options.loaded?.then(() => {
      this.#replicaLoaded = true;
    });
    this.#connection = new ReconnectingConnection({ ...options, status: rooms.status }, this);
  }

  /** Reconciles a map opened after the connection was made. */
  walkMap(map: string): void {
    this.#walks.walk(map);
  }

  /** Sends whatever the outbox holds that is not already on its way. */
  sendOutbox(): void {
    if (!this.#ready || this.#walks.initialRunning) return;
    for (const ops of this.#rooms.outbox.takeBatches(this.#maxBatchOps, MAX_IN_FLIGHT_BATCHES))
      this.#connection.send({ type: 'ops', ops });
  }

  /** Subscribes a live query (when connected), naming what it holds of a query-scoped map. */
  subscribeQuery(query: ServerQuery): void {
    this.#queries.subscribe(query);
  }

  /** Grows a live query's window on the server. */
  queryMore(id: number, limit: number): void {
    this.#queries.more(id, limit);
  }

  unsubscribeQuery(id: number): void {
    this.#queries.unsubscribe(id);
  }

  /** Closes the connection for good. */
  stop(): void {
    clearTimeout(this.#resendTimer);
    this.#queries.stop();
    this.#connection.stop();
  }

  /** @internal The connection is open. */
  opened(token: string | undefined): void {
    this.#connection.send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      nodeId: this.#options.nodeId,
      ...(token === undefined ? {} : { token }),
    });
    // The walks open right behind it, unless the replica they compare is still loading: the
    // server handles them once it has welcomed this client, a round trip sooner.
    if (this.#options.loaded === undefined || this.#replicaLoaded) this.#walks.begin();
  }

  /** @internal A frame did not decode: it may have belonged to a walk, which would stall. */
  malformed(): void {
    this.#walks.restart();
  }

  /** @internal The connection is gone, and whatever was on its way. */
  dropped(): void {
    this.#drops++;
    this.#ready = false;
    this.#welcomeWaits = false;
    this.#queries.dropped();
    this.#walks.end();
    this.#rooms.outbox.forgetSent();
  }

  /** @internal A heartbeat. */
  tick(now: number): void {
    this.#walks.tick(now);
  }

  /** @internal A message from the server. */
  message(message: Message): void {
    const { loaded } = this.#options;
    // What touches the replica, the queries or the outbox waits for the replica, in order; an
    // error (an expired token) or a ping is answered at once.
    const atOnce =
      message.type === 'error' || message.type === 'auth_error' || message.type === 'ping';
    if (this.#welcomeWaits && loaded !== undefined && !atOnce) {
      const drops = this.#drops;
      void loaded.then(() => drops === this.#drops && this.message(message));
      return;
    }
    try {
      this.#handle(message);
    } catch (error) {
      this.#report(
        'MALFORMED_MESSAGE',
        `could not apply a server message: ${(error as Error).message}`,
      );
    }
  }

  #handle(message: Message): void {
    switch (message.type) {
      case 'welcome': {
        const drops = this.#drops;
        const { loaded, fresh } = this.#options;
        if (loaded === undefined) {
          this.#onWelcome(message);
          return;
        }
        this.#welcomeWaits = true;
        void loaded.then(() => {
          if (drops !== this.#drops) return;
          this.#welcomeWaits = false;
          this.#onWelcome(message);
        });
        if (fresh && !this.#replicaLoaded) this.#queries.subscribeEarly();
        return;
      }
      case 'auth_error':
        this.#report('AUTH_FAILED', `authentication failed: ${message.message}`, message.code);
        // A welcome still waiting for the replica to load is dropped with the connection.
        this.#connection.refused();
        return;
      case 'error':
        this.#report('SERVER_ERROR', message.message, message.code);
        if (message.code === 'TOKEN_EXPIRED') this.#connection.expireToken();
        // A message of ours the server refused may have been a walk's, which would stall.
        if (message.code === 'MALFORMED') this.#walks.restart();
        return;
      case 'revoke':
        this.#rooms.writes.revoke(message.map, message.keys);
        return;
      case 'ack':
        this.#onAck(message);
        return;
      case 'reject':
        this.#onReject(message);
        return;
      case 'sync':
      case 'sync_records':
      case 'sync_done':
      case 'sync_reset':
      case 'sync_error':
        this.#walks.receive(message);
        return;
      case 'changes':
        for (const { map, entries, cursor } of message.changes) {
          this.#rooms.replicas.merge(
            map,
            entries.map((entry) => fromWireEntry<Value>(entry)),
            true,
          );
          if (cursor !== undefined) this.#walks.advance(map, cursor);
        }
        return;
      case 'query_snapshot':
      case 'query_update':
        this.#queries.result(message);
        return;
      case 'query_error':
        this.#queries.refused(message);
        return;
      case 'aggregate_rows':
        this.#queries.aggregateRows(message);
        return;
      case 'ping':
        this.#connection.send({ type: 'pong', time: message.time });
        return;
      default:
        return;
    }
  }

  #onWelcome(message: MessageOf<'welcome'>): void {
    const { clock, writes, status } = this.#rooms;
    this.#ready = true;
    this.#maxBatchOps = message.maxBatchOps;
    this.#connection.established(message.heartbeatMs);
    // A client whose wall clock is off learns the server's time and stamps writes with it.
    clock.learnServerTime(message.serverTime, this.#options.now());
    if (clock.runsAheadOf(message.serverTime)) writes.repairClock();
    writes.adoptForeignWrites();
    status.setState({ connection: 'syncing', lastError: null });
    this.#walks.welcomed(message.maxFrameBytes);
    this.#queries.welcomed();
    if (!this.#walks.initialRunning) {
      this.sendOutbox();
      this.#walks.settleIfIdle();
    }
  }

  #onAck(message: MessageOf<'ack'>): void {
    const ids: string[] = [];
    for (const opId of message.ids) {
      const entry = this.#rooms.outbox.answered(opId);
      if (entry !== undefined) ids.push(entry.id);
    }
    if (ids.length > 0) this.#rooms.writes.acknowledged(ids);
    this.sendOutbox();
  }

  #onReject(message: MessageOf<'reject'>): void {
    let retry = false;
    const tooOld: OutboxEntry[] = [];
    for (const rejection of message.rejections) {
      const entry = this.#rooms.outbox.answered(rejection.id);
      if (entry === undefined) continue;
      if (rejection.retryable) retry = true;
      else if (rejection.reason === 'TOO_OLD') tooOld.push(entry);
      else
        this.#rooms.writes.rejected(entry, rejection.reason, rejection.message, rejection.current);
    }
    // Together: stamped again in one pass, in their order.
    if (tooOld.length > 0) this.#rooms.writes.tooOld(tooOld);
    if (!retry) {
      this.sendOutbox();
      return;
    }
    clearTimeout(this.#resendTimer);
    this.#resendTimer = setTimeout(() => this.sendOutbox(), RETRYABLE_RESEND_MS);
  }

  #report(code: SyncError['code'], message: string, serverCode?: string): void {
    this.#rooms.status.setState({ lastError: new SyncError(code, message, serverCode) });
  }
}
