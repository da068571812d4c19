import {
  CLOSE_CODES,
  DEFAULT_DECODE_LIMITS,
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeServerMessage,
  encodeMessage,
  fittedChunks,
  fromSyncWire,
  fromWireEntry,
  type HashWidth,
  type LWWMap,
  type LWWRecord,
  type Message,
  type MessageOf,
  PROTOCOL_VERSION,
  type Query,
  rootBytes,
  SyncSession,
  toSyncWire,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import type { OnlineManager } from './onlineManager.js';
import type { Outbox } from './outbox/outbox.js';
import type { OutboxEntry } from './storage/clientStorage.js';
import type { SyncStatusStore } from './syncStatus.js';
import type { Connection, Transport } from './transport.js';

/** Why the server refused a write, as reported to `onRejected` listeners. */
export type RejectionReason = MessageOf<'reject'>['rejections'][number]['reason'];

/** What the sync engine needs from the client that owns the replica. */
export interface SyncHost {
  readonly status: SyncStatusStore;
  /** The node id the connection announces (the client id). */
  readonly nodeId: string;
  /** Maps opened by the app: each is reconciled on every (re)connect. */
  openMaps(): string[];
  replica(map: string): LWWMap<Value>;
  /**
   * Merges records from the server into the replica, persists and shares them.
   * @returns how many of them changed the replica.
   */
  mergeRemote(map: string, entries: ReadonlyArray<readonly [string, LWWRecord<Value>]>): number;
  /** Drops the replica of a map (keeping unacknowledged writes), for a server reset. */
  resetMap(map: string): void;
  /**
   * Drops records the user may no longer see from the replica (without tombstones), keeping
   * any key with an unacknowledged write.
   */
  revoke(map: string, keys: readonly string[]): void;
  /**
   * Gives an unsent write a fresh timestamp (the server refused it as too old), or settles
   * it if a newer write of its key replaced it in the replica.
   */
  restampWrite(entry: OutboxEntry): void;
  acknowledged(ids: readonly string[]): void;
  rejected(
    entry: OutboxEntry,
    reason: RejectionReason,
    message: string,
    current: WireEntry | null | undefined,
  ): void;
  /** The server's time minus this machine's, in ms. */
  setClockOffset(offsetMs: number): void;
  /** Whether local timestamps run ahead of the server's clock beyond what it accepts. */
  clockAheadOf(serverTime: number): boolean;
  /** Rewinds the clock and re-stamps every unsent write (they never left this client). */
  repairClock(): void;
  /** Re-stamps unsent writes stamped under another client id, which the server would refuse. */
  adoptForeignWrites(): void;
  lastSync(map: string): number | undefined;
  setLastSync(map: string, syncedAt: number): void;
  /** Live queries registered by the app, to subscribe on the server. */
  serverQueries(): ReadonlyArray<{
    readonly id: number;
    readonly map: string;
    readonly query: Query<Value>;
  }>;
  queryConfirmed(id: number): void;
  serverError(message: string): void;
}

/** Options of the engine. */
export interface SyncEngineOptions {
  /**
   * The servers' URLs. Each connection attempt takes the next one, so a failed or dropped
   * connection is followed by an attempt on the next server; the first is picked at random,
   * so that clients given the same list spread over its servers.
   */
  readonly urls: readonly [string, ...string[]];
  readonly token?: string | (() => string | undefined | Promise<string | undefined>);
  /** How connections are made. */
  readonly transport: Transport;
  /** The unacknowledged writes: what to send, and which are on their way. */
  readonly outbox: Outbox;
  readonly online: OnlineManager;
  /** Reconnect delay bounds (full jitter between 0 and the exponential bound). Default: 500 ms to 30 s. */
  readonly minRetryMs?: number;
  readonly maxRetryMs?: number;
  /**
   * Delay before a walk the server refused or lost, or one that ended apart without
   * progress, starts again; it doubles with each such walk of the map in a row, up to 64
   * times. Default: 5000 ms.
   */
  readonly walkRetryMs?: number;
  /** The wall clock. */
  readonly now: () => number;
  /** Uniform random numbers in [0, 1): the first URL and the reconnect jitter. */
  readonly random: () => number;
}

interface Walk {
  readonly map: string;
  readonly session: SyncSession<Value>;
  readonly width: HashWidth;
  expected: number;
  received: number;
  /**
   * Records from the server that changed the replica: a walk that got some made progress
   * (records this side sends are no proof: the server may refuse them, walk after walk).
   */
  changed: number;
  /** When the walk last heard from the server (for the watchdog). */
  lastHeard: number;
}

/** Batches of ops in flight at once. */
const MAX_IN_FLIGHT_BATCHES = 4;
/** A walk that hears nothing for this long is abandoned and started again. */
const WALK_TIMEOUT_MS = 30_000;
/** Delay before a walk the server refused or lost is tried again. */
const WALK_RETRY_MS = 5_000;
/** Doublings of that delay at most (5 s becomes 320 s). */
const MAX_WALK_RETRY_DOUBLINGS = 6;

/**
 * The connection to the sync server and the protocol behind it: handshake, Merkle walks of
 * every open map on each (re)connect, then the outbox; server changes and live-query
 * results merged as they come; reconnection with exponential backoff and jitter, each
 * attempt to the next of the servers' URLs.
 */
export class SyncEngine {
  private connection: Connection | undefined;
  private ready = false;
  private attempt = 0;
  /** Index in `urls` of the server the next connection attempt goes to. */
  private nextUrl: number;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private lastMessageAt = 0;
  private heartbeatMs = 30_000;
  private maxBatchOps = 1000;
  private maxFrameBytes = 1024 * 1024;
  /** Set when the server ended the session because the token expired: reconnect at once. */
  private tokenExpired = false;
  private nextSession = 1;
  private readonly walks = new Map<number, Walk>();
  /** Per map, walks in a row that failed or ended apart without progress: the backoff. */
  private readonly walkAttempts = new Map<string, number>();
  /** Op id → outbox entry and batch, for the ops in flight. */
  private initialWalksPending = 0;
  private retryOutboxTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly walkRetryTimers = new Set<ReturnType<typeof setTimeout>>();
  private stopped = false;
  private readonly unsubscribeOnline: () => void;

  constructor(
    private readonly host: SyncHost,
    private readonly options: SyncEngineOptions,
  ) {
    // A single URL draws no number for the pick, so that a scripted `random` feeds the
    // jitter exactly as it did before lists.
    this.nextUrl =
      options.urls.length === 1
        ? 0
        : Math.min(options.urls.length - 1, Math.floor(options.random() * options.urls.length));
    this.unsubscribeOnline = options.online.subscribe((online) => {
      if (online) {
        this.attempt = 0;
        this.connectSoon(0);
      } else {
        this.disconnect('the network is offline');
      }
    });
    this.connectSoon(0);
  }

  /** Reconciles a map opened after the connection was made. */
  walkMap(map: string): void {
    if (this.ready) this.startWalk(map, 4);
  }

  /** Sends whatever the outbox holds that is not already on its way. */
  sendOutbox(): void {
    if (!this.ready || this.initialWalksPending > 0 || this.connection === undefined) return;
    for (const ops of this.options.outbox.takeBatches(this.maxBatchOps, MAX_IN_FLIGHT_BATCHES))
      this.send({ type: 'ops', ops });
  }

  /** Subscribes a live query on the server (when connected). */
  subscribeQuery(id: number, map: string, query: Query<Value>): void {
    if (this.ready) this.send({ type: 'subscribe', id, map, query });
  }

  unsubscribeQuery(id: number): void {
    if (this.ready) this.send({ type: 'unsubscribe', id });
  }

  /** Closes the connection for good. */
  stop(): void {
    this.stopped = true;
    this.unsubscribeOnline();
    clearTimeout(this.retryTimer);
    clearTimeout(this.retryOutboxTimer);
    this.disconnect(undefined);
  }

  private connectSoon(delayMs: number): void {
    if (this.stopped || this.connection !== undefined) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, delayMs);
  }

  private async connect(): Promise<void> {
    if (this.stopped || this.connection !== undefined) return;
    if (!this.options.online.isOnline()) {
      this.host.status.setState({ connection: 'offline' });
      return;
    }
    this.host.status.setState({ connection: 'connecting' });
    let token: string | undefined;
    try {
      token =
        typeof this.options.token === 'function' ? await this.options.token() : this.options.token;
    } catch (error) {
      this.host.serverError(`the token provider failed: ${(error as Error).message}`);
      this.scheduleReconnect();
      return;
    }
    if (this.stopped || this.connection !== undefined) return;
    const url = this.options.urls[this.nextUrl] ?? this.options.urls[0];
    this.nextUrl = (this.nextUrl + 1) % this.options.urls.length;
    // Events of a connection this engine has since dropped are ignored.
    let connection: Connection | undefined;
    const current = () => connection !== undefined && this.connection === connection;
    try {
      connection = this.options.transport.connect(url, {
        open: () => {
          if (!current()) return;
          this.lastMessageAt = this.options.now();
          this.send({
            type: 'hello',
            protocol: PROTOCOL_VERSION,
            nodeId: this.host.nodeId,
            ...(token === undefined ? {} : { token }),
          });
        },
        frame: (data) => {
          if (current()) this.onFrame(data);
        },
        close: (code, reason) => {
          if (current()) this.onClose(code, reason);
        },
      });
    } catch (error) {
      this.host.serverError(`cannot connect to ${url}: ${(error as Error).message}`);
      this.scheduleReconnect();
      return;
    }
    this.connection = connection;
    this.host.status.setState({ url });
  }

  private onClose(code: number, reason: string): void {
    const tokenExpired = this.tokenExpired;
    this.dropConnection(reason || `connection closed (${code})`);
    if (tokenExpired) {
      // The session outlived its token: a fresh one (from the token provider) is due now.
      this.attempt = 0;
    } else if (
      code === CLOSE_CODES.unauthorized ||
      code === CLOSE_CODES.protocolError ||
      code === CLOSE_CODES.forbidden
    ) {
      // Retrying at once would fail the same way: back off.
      this.attempt = Math.max(this.attempt, 4);
    }
    this.scheduleReconnect();
  }

  private onFrame(data: Uint8Array): void {
    this.lastMessageAt = this.options.now();
    let message: Message;
    try {
      message = decodeServerMessage(data, CLIENT_DECODE_LIMITS);
    } catch (error) {
      this.host.serverError(`the server sent a malformed message: ${(error as Error).message}`);
      // It may have belonged to a walk, which would then wait for it forever.
      this.restartWalks();
      return;
    }
    try {
      this.handle(message);
    } catch (error) {
      this.host.serverError(`could not apply a server message: ${(error as Error).message}`);
    }
  }

  private handle(message: Message): void {
    switch (message.type) {
      case 'welcome':
        this.onWelcome(message);
        return;
      case 'auth_error':
        this.host.serverError(`authentication failed: ${message.message}`);
        return;
      case 'error':
        this.host.serverError(message.message);
        if (message.code === 'TOKEN_EXPIRED') this.tokenExpired = true;
        // A message of ours the server refused may have been a walk's, which would stall.
        if (message.code === 'MALFORMED') this.restartWalks();
        return;
      case 'revoke':
        this.host.revoke(message.map, message.keys);
        return;
      case 'ack':
        this.onAck(message);
        return;
      case 'reject':
        this.onReject(message);
        return;
      case 'sync':
        this.onSync(message);
        return;
      case 'sync_records':
        this.onSyncRecords(message);
        return;
      case 'sync_done':
        this.onSyncDone(message);
        return;
      case 'sync_reset':
        this.onSyncReset(message);
        return;
      case 'sync_error':
        this.onSyncError(message);
        return;
      case 'changes':
        for (const change of message.changes) {
          this.host.mergeRemote(
            change.map,
            change.entries.map((entry) => fromWireEntry<Value>(entry)),
          );
        }
        return;
      case 'query_snapshot':
      case 'query_update': {
        const entries =
          message.type === 'query_snapshot'
            ? message.entries
            : [...message.enter, ...message.update];
        const map = this.host.serverQueries().find((query) => query.id === message.id)?.map;
        if (map !== undefined)
          this.host.mergeRemote(
            map,
            entries.map((entry) => fromWireEntry<Value>(entry)),
          );
        if (message.type === 'query_snapshot' && message.last) this.host.queryConfirmed(message.id);
        return;
      }
      case 'query_error':
        this.host.serverError(`live query ${message.id}: ${message.message}`);
        return;
      case 'ping':
        this.send({ type: 'pong', time: message.time });
        return;
      default:
        return;
    }
  }

  private onWelcome(message: MessageOf<'welcome'>): void {
    this.attempt = 0;
    this.ready = true;
    this.heartbeatMs = message.heartbeatMs;
    this.maxBatchOps = message.maxBatchOps;
    this.maxFrameBytes = message.maxFrameBytes;
    const offset = message.serverTime - this.options.now();
    // A client whose wall clock is off learns the server's time and stamps writes with it.
    this.host.setClockOffset(Math.abs(offset) > 1000 ? offset : 0);
    if (this.host.clockAheadOf(message.serverTime)) this.host.repairClock();
    this.host.adoptForeignWrites();
    this.host.status.setState({ connection: 'syncing', lastError: null });
    this.startHeartbeat();
    const maps = this.host.openMaps();
    this.initialWalksPending = maps.length;
    for (const map of maps) this.startWalk(map, 4);
    for (const { id, map, query } of this.host.serverQueries())
      this.send({ type: 'subscribe', id, map, query });
    if (maps.length === 0) {
      this.sendOutbox();
      this.settleIfIdle();
    }
  }

  private startWalk(map: string, width: HashWidth): void {
    for (const walk of this.walks.values()) if (walk.map === map) return;
    const sessionId = this.nextSession++;
    const session = new SyncSession(this.host.replica(map), {
      width,
      // Every message within what the server accepts, however much differs.
      maxMessageBytes: Math.min(DEFAULT_MAX_MESSAGE_BYTES, Math.floor(this.maxFrameBytes / 4)),
    });
    this.walks.set(sessionId, {
      map,
      session,
      width,
      expected: 0,
      received: 0,
      changed: 0,
      lastHeard: this.options.now(),
    });
    this.host.status.setState({ connection: 'syncing' });
    this.send(toSyncWire(map, sessionId, session.open(), this.host.lastSync(map)));
  }

  /**
   * Abandons the walks whose messages were lost (malformed, refused, or never came) and
   * starts them again later.
   */
  private restartWalks(lost: (walk: Walk) => boolean = () => true): void {
    for (const [session, walk] of [...this.walks]) {
      if (!lost(walk)) continue;
      this.walks.delete(session);
      // Ended on the server too, so that it does not keep it (and count it) until it idles out.
      this.send({
        type: 'sync_done',
        map: walk.map,
        session,
        root: rootBytes(this.host.replica(walk.map).merkleTree),
      });
      this.retryWalkLater(walk.map);
      this.walkEnded();
    }
  }

  /** Walks `map` again after a delay that doubles with each attempt in a row. */
  private retryWalkLater(map: string): void {
    const attempt = (this.walkAttempts.get(map) ?? 0) + 1;
    this.walkAttempts.set(map, attempt);
    const delay =
      (this.options.walkRetryMs ?? WALK_RETRY_MS) *
      2 ** Math.min(attempt - 1, MAX_WALK_RETRY_DOUBLINGS);
    const timer = setTimeout(() => {
      this.walkRetryTimers.delete(timer);
      if (this.ready) this.startWalk(map, 4);
    }, delay);
    this.walkRetryTimers.add(timer);
  }

  private onSync(message: MessageOf<'sync'>): void {
    const walk = this.walks.get(message.session);
    if (walk === undefined) return;
    walk.lastHeard = this.options.now();
    const incoming = fromSyncWire<Value>(message);
    if (incoming.records.length > 0)
      walk.changed += this.host.mergeRemote(walk.map, incoming.records);
    const answer = walk.session.receive(incoming);
    const replica = this.host.replica(walk.map);
    if (answer.bulk.length > 0) {
      // Records the server lacks or needs: sent as bulk chunks, each within 500 records and
      // half the server's frame limit, before the answer, so that the server has taken them
      // (and told this client what to forget) before it answers.
      const entries: WireEntry[] = [];
      for (const [key, record] of walk.session.bulkRecords(answer.bulk))
        entries.push(toWireEntry(key, record));
      const encode = (records: readonly WireEntry[], last: boolean) =>
        encodeMessage({
          type: 'sync_records',
          map: walk.map,
          session: message.session,
          records: [...records],
          last,
        });
      const chunks = [
        ...fittedChunks(
          entries,
          (chunk) => encode(chunk, false),
          Math.floor(this.maxFrameBytes / 2),
          500,
        ),
      ];
      for (const { frame } of chunks.slice(0, -1)) this.sendFrame(frame);
      this.sendFrame(encode(chunks.at(-1)?.chunk ?? [], true));
    }
    if (answer.message !== undefined)
      this.send(toSyncWire(walk.map, message.session, answer.message));
    else {
      this.send({
        type: 'sync_done',
        map: walk.map,
        session: message.session,
        root: rootBytes(replica.merkleTree),
      });
    }
  }

  private onSyncRecords(message: MessageOf<'sync_records'>): void {
    const walk = this.walks.get(message.session);
    if (walk === undefined) return;
    walk.lastHeard = this.options.now();
    walk.changed += this.host.mergeRemote(
      walk.map,
      message.records.map((entry) => fromWireEntry<Value>(entry)),
    );
    if (message.total !== undefined) walk.expected += message.total;
    walk.received += message.records.length;
    this.reportProgress();
  }

  private onSyncDone(message: MessageOf<'sync_done'>): void {
    const walk = this.walks.get(message.session);
    if (walk === undefined) return;
    this.walks.delete(message.session);
    const replica = this.host.replica(walk.map);
    const own = rootBytes(replica.merkleTree);
    if (own.every((byte, index) => byte === message.root[index])) {
      this.walkAttempts.delete(walk.map);
      if (message.syncedAt !== undefined) this.host.setLastSync(walk.map, message.syncedAt);
    } else if (walk.changed > 0) {
      // Progress within the server's message budgets: walk on from where this one stopped.
      this.startWalk(walk.map, walk.width);
    } else if (walk.session.truncated) {
      // This side's messages left differences out, and nothing came: the records it sent
      // may be refused walk after walk, so walk again later, each time later.
      this.retryWalkLater(walk.map);
    } else if (this.options.outbox.holdsMap(walk.map)) {
      // Unacknowledged local writes make the roots differ until they are sent: not a failure.
    } else if (walk.width === 4) {
      // Nothing differed, yet the roots do: subtrees whose 4-byte hashes are equal by chance.
      this.startWalk(walk.map, 8);
    } else {
      this.retryWalkLater(walk.map);
    }
    this.reportProgress();
    this.walkEnded();
  }

  private onSyncReset(message: MessageOf<'sync_reset'>): void {
    const walk = this.walks.get(message.session);
    if (walk === undefined) return;
    this.walks.delete(message.session);
    this.host.resetMap(walk.map);
    this.startWalk(walk.map, 4);
  }

  private onSyncError(message: MessageOf<'sync_error'>): void {
    const walk = this.walks.get(message.session);
    if (walk === undefined) return;
    this.walks.delete(message.session);
    this.host.serverError(`syncing ${message.map} failed: ${message.message}`);
    // A map the user may not read is not retried; anything else may pass later.
    if (message.code !== 'permission') this.retryWalkLater(walk.map);
    this.walkEnded();
  }

  private walkEnded(): void {
    if (this.initialWalksPending > 0) {
      this.initialWalksPending--;
      // Every map reconciled once after (re)connecting: now the outbox.
      if (this.initialWalksPending === 0) this.sendOutbox();
    }
    this.settleIfIdle();
  }

  /** Online once no walk runs and none waits to start again. */
  private settleIfIdle(): void {
    if (!this.ready || this.walks.size > 0 || this.walkRetryTimers.size > 0) return;
    this.host.status.setState({ connection: 'online', initialSync: null });
  }

  private reportProgress(): void {
    let expected = 0;
    let received = 0;
    for (const walk of this.walks.values()) {
      expected += walk.expected;
      received += walk.received;
    }
    this.host.status.setState({
      initialSync: expected > 0 ? { received: Math.min(received, expected), expected } : null,
    });
  }

  private onAck(message: MessageOf<'ack'>): void {
    const ids: string[] = [];
    for (const opId of message.ids) {
      const entry = this.options.outbox.answered(opId);
      if (entry !== undefined) ids.push(entry.id);
    }
    if (ids.length > 0) this.host.acknowledged(ids);
    this.sendOutbox();
  }

  private onReject(message: MessageOf<'reject'>): void {
    let retry = false;
    for (const rejection of message.rejections) {
      const entry = this.options.outbox.answered(rejection.id);
      if (entry === undefined) continue;
      if (rejection.retryable) {
        retry = true;
        continue;
      }
      if (rejection.reason === 'too_old') {
        // Written long ago (offline): it applies now, stamped now.
        this.host.restampWrite(entry);
        continue;
      }
      this.host.rejected(entry, rejection.reason, rejection.message, rejection.current);
    }
    if (retry) {
      clearTimeout(this.retryOutboxTimer);
      this.retryOutboxTimer = setTimeout(() => this.sendOutbox(), 1_000);
    } else {
      this.sendOutbox();
    }
  }

  private startHeartbeat(): void {
    clearInterval(this.heartbeatTimer);
    const interval = Math.max(1_000, Math.floor(this.heartbeatMs / 2));
    this.heartbeatTimer = setInterval(() => {
      // A walk that hears nothing (a reply lost or refused on the way) starts again.
      const now = this.options.now();
      const silent = (walk: Walk) => now - walk.lastHeard > WALK_TIMEOUT_MS;
      if ([...this.walks.values()].some(silent)) {
        this.host.serverError('a sync walk got no answer: starting it again');
        this.restartWalks(silent);
      }
      if (now - this.lastMessageAt > this.heartbeatMs * 2.5) {
        // Nothing heard for too long: the connection is dead even if the socket says otherwise.
        const dead = this.connection;
        this.connection = undefined;
        dead?.close();
        if (dead !== undefined) this.dropConnection('no heartbeat from the server');
        this.scheduleReconnect();
        return;
      }
      this.send({ type: 'ping', time: now });
    }, interval);
  }

  private send(message: Message): void {
    this.sendFrame(encodeMessage(message));
  }

  private sendFrame(frame: Uint8Array): void {
    this.connection?.send(frame);
  }

  private disconnect(reason: string | undefined): void {
    const closing = this.connection;
    this.connection = undefined;
    closing?.close();
    this.dropConnection(reason);
  }

  private dropConnection(reason: string | undefined): void {
    this.connection = undefined;
    this.ready = false;
    clearInterval(this.heartbeatTimer);
    this.walks.clear();
    // Retries and their backoff belong to this connection: the next walks every map anew.
    for (const timer of this.walkRetryTimers) clearTimeout(timer);
    this.walkRetryTimers.clear();
    this.walkAttempts.clear();
    this.tokenExpired = false;
    this.options.outbox.forgetSent();
    this.initialWalksPending = 0;
    this.host.status.setState({
      connection: 'offline',
      url: null,
      initialSync: null,
      ...(reason === undefined ? {} : { lastError: reason }),
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped || !this.options.online.isOnline()) return;
    const min = this.options.minRetryMs ?? 500;
    const max = this.options.maxRetryMs ?? 30_000;
    const bound = Math.min(max, min * 2 ** this.attempt);
    this.attempt++;
    this.connectSoon(this.options.random() * bound);
  }
}

const CLIENT_DECODE_LIMITS = { ...DEFAULT_DECODE_LIMITS, maxFrameBytes: 16 * 1024 * 1024 };
