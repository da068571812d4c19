import type { Socket } from 'node:net';
import {
  CLOSE_CODES,
  type DecodeLimits,
  decodeMessage,
  encodeMessage,
  MAX_TOKEN_LENGTH,
  type Message,
  type MessageOf,
  PROTOCOL_VERSION,
  ProtocolError,
} from '@topgun/core';
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import type { AggregateHub } from './aggregateHub.js';
import type { Authenticator, Identity } from './auth.js';
import { type ChangeFanout, sendRevoke } from './changeFanout.js';
import { CpuBudget, WorkAbandonedError, WorkLimitError, type WorkSlicer } from './cpuBudget.js';
import { gatherWritesOfTurn } from './gatherWrites.js';
import type { LiveQueryHub } from './liveQueryHub.js';
import type { ServerMetrics } from './metrics.js';
import type { ServerLimits } from './options.js';
import type { Peer } from './peer.js';
import type { SyncService } from './syncService.js';
import { TokenBucket } from './tokenBucket.js';
import {
  type BatchOutcome,
  rejectAll,
  type SubmitOptions,
  type WritePipeline,
} from './writePipeline.js';

const CLOSE = CLOSE_CODES;

/** Everything a connection talks to. */
export interface ConnectionServices {
  readonly authenticator: Authenticator;
  readonly pipeline: WritePipeline;
  readonly sync: SyncService;
  readonly liveQueries: LiveQueryHub;
  readonly aggregates: AggregateHub;
  readonly fanout: Pick<ChangeFanout, 'forget'>;
  readonly metrics: ServerMetrics;
  readonly limits: ServerLimits;
  readonly decodeLimits: DecodeLimits;
  readonly serverNodeId: string;
  readonly heartbeatMs: number;
  readonly logger: FastifyBaseLogger;
  readonly now: () => number;
  readonly isShuttingDown: () => boolean;
  /** Claims the node id a client says hello with for its user (`storage.claimNodeId`). */
  readonly claimNodeId: (nodeId: string, userId: string | null) => Promise<boolean>;
  /** How many connections of this authenticated user are open (past their handshake). */
  readonly connectionsOf: (userId: string) => number;
}

const VIOLATION_WINDOW_MS = 10_000;
/** Largest frame before the handshake ends: a hello, with the longest token (3 bytes a char). */
const HANDSHAKE_FRAME_BYTES = MAX_TOKEN_LENGTH * 3 + 1024;
/**
 * Ops messages of one connection in the write pipeline at once. A batch does not wait for the
 * previous one to commit (a stalled commit would otherwise delay every later batch of the
 * connection by its whole duration); beyond this many, the next one waits for a slot.
 */
const MAX_PIPELINED_BATCHES = 8;

/** One client: handshake, then every message dispatched to the services. */
export class ClientConnection implements Peer {
  private identity: Identity | undefined;
  private clientNodeId = '';
  /**
   * Whether the node id the client said hello with is its user's: undefined until the session
   * first writes (reading needs no claim), then the claim while it is not settled, its answer
   * once it is. Every write waits for it, and none waits once it succeeded (ops still reach the
   * pipeline synchronously).
   */
  private nodeIdClaimed: Promise<boolean> | boolean | undefined;
  private state: 'handshake' | 'ready' | 'closed' = 'handshake';
  private alive = true;
  private violations: number[] = [];
  private readonly opsBucket: TokenBucket;
  private readonly bytesBucket: TokenBucket;
  private readonly subscribeBucket: TokenBucket;
  private readonly mapLoadBucket: TokenBucket;
  private readonly cpu: CpuBudget;
  private readonly submitOptions: SubmitOptions;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** Bytes received whose handling has not started; the socket is paused above the high-water mark. */
  private receivedBytes = 0;
  /**
   * Messages are handled one after another, except walks, which run on their own chains, and
   * ops batches, which are started in order but answered as their commits finish. Any other
   * message waits until the ops batches before it are answered.
   */
  private queue: Promise<void> = Promise.resolve();
  private readonly pendingOps = new Set<Promise<void>>();
  private readonly walkChains = new Map<string, Promise<void>>();

  constructor(
    readonly id: number,
    private readonly socket: WebSocket,
    private readonly services: ConnectionServices,
  ) {
    const { limits, now, metrics } = services;
    this.opsBucket = new TokenBucket(limits.opsBurst, limits.opsPerSecond, now);
    this.bytesBucket = new TokenBucket(limits.bytesBurst, limits.bytesPerSecond, now);
    this.subscribeBucket = new TokenBucket(limits.subscribesBurst, limits.subscribesPerSecond, now);
    this.mapLoadBucket = new TokenBucket(limits.mapLoadsBurst, limits.mapLoadsPerSecond, now);
    this.cpu = new CpuBudget(
      limits.cpuBurstMs,
      limits.cpuMsPerSecond,
      limits.workSliceMs,
      limits.maxMessageCpuMs,
      () => metrics.budgetExceeded.inc({ budget: 'cpu' }),
      (ms) => metrics.connectionCpu.inc(ms / 1000),
    );
    this.submitOptions = {
      mayLoadMap: () => {
        if (this.mapLoadBucket.take()) return true;
        metrics.budgetExceeded.inc({ budget: 'map_loads' });
        return false;
      },
    };
    this.handshakeTimer = setTimeout(() => {
      if (this.state !== 'handshake') return;
      metrics.budgetExceeded.inc({ budget: 'handshake_timeout' });
      this.send({
        type: 'error',
        code: 'UNAUTHENTICATED',
        message: `no hello within ${limits.handshakeTimeoutMs} ms`,
        retryable: true,
      });
      this.closeWith(CLOSE.handshakeTimeout, 'handshake timeout');
    }, limits.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    socket.on('message', (data, isBinary) =>
      this.onFrame(data as Buffer | ArrayBuffer | Buffer[], isBinary),
    );
    socket.on('pong', () => {
      this.alive = true;
    });
    socket.on('close', () => this.onClose());
    socket.on('error', (error) =>
      services.logger.debug({ err: error, connection: id }, 'socket error'),
    );
  }

  get nodeId(): string {
    return this.clientNodeId;
  }

  /** Whether the handshake is done (the connection counts for its user). */
  get ready(): boolean {
    return this.state === 'ready';
  }

  get user(): Identity {
    return this.identity ?? { id: null, claims: {}, expiresAt: undefined };
  }

  isOpen(): boolean {
    return this.state !== 'closed' && this.socket.readyState === this.socket.OPEN;
  }

  send(message: Message): void {
    if (!this.isOpen()) return;
    this.sendEncoded(encodeMessage(message));
  }

  sendEncoded(frame: Uint8Array): void {
    if (!this.isOpen()) return;
    if (this.socket.bufferedAmount > this.services.limits.sendHighWaterMark) {
      this.services.logger.warn({ connection: this.id }, 'client too slow to read: disconnected');
      this.services.metrics.violations.inc({ kind: 'slow_consumer' });
      this.services.metrics.budgetExceeded.inc({ budget: 'send_queue' });
      this.socket.close(CLOSE.slowConsumer, 'slow consumer');
      this.socket.terminate();
      this.onClose();
      return;
    }
    // ws keeps its TCP socket in _socket (absent before it connects).
    const raw = (this.socket as unknown as { _socket?: Socket })._socket;
    if (raw !== undefined) gatherWritesOfTurn(raw);
    this.socket.send(frame);
  }

  async drained(): Promise<void> {
    const lowWater = this.services.limits.sendHighWaterMark / 4;
    // Not while shutting down: a client that stops reading must not hold the server up.
    while (this.wanted() && this.socket.bufferedAmount > lowWater) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Heartbeat tick: drops a client that did not answer the previous ping. */
  heartbeat(): void {
    if (!this.alive) {
      this.services.logger.info({ connection: this.id }, 'no heartbeat: connection dropped');
      this.socket.terminate();
      this.onClose();
      return;
    }
    this.alive = false;
    this.socket.ping();
  }

  /** Closes for shutdown after telling the client to reconnect elsewhere or later. */
  closeForShutdown(): void {
    if (!this.isOpen()) return;
    this.send({
      type: 'error',
      code: 'SHUTTING_DOWN',
      message: 'the server is shutting down',
      retryable: true,
    });
    this.socket.close(CLOSE.goingAway, 'server shutting down');
  }

  /**
   * Closes the connection because this process lost track of other processes' writes: the
   * client reconnects (here once the process caught up, or to another) and walks again.
   */
  closeForResync(): void {
    if (!this.isOpen()) return;
    this.closeWith(CLOSE.tryAgainLater, 'catching up with other server processes: reconnect');
  }

  /** Resolves when every message received so far has been handled. */
  async settled(): Promise<void> {
    await this.queue;
    await this.opsAnswered();
    await Promise.all(this.walkChains.values());
  }

  /** Resolves when every ops batch started so far has been answered. */
  private opsAnswered(): Promise<unknown> {
    return this.pendingOps.size === 0 ? Promise.resolve() : Promise.all(this.pendingOps);
  }

  private onFrame(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.state === 'closed') return;
    const received = performance.now();
    this.alive = true;
    const frame = Array.isArray(data)
      ? Buffer.concat(data)
      : data instanceof ArrayBuffer
        ? new Uint8Array(data)
        : data;
    if (!isBinary) {
      this.violation('text_frame', 'frames must be binary');
      return;
    }
    // Frames sent behind hello, before its welcome, count too.
    if (!this.bytesBucket.take(frame.length)) {
      this.violation('rate_limit', 'too many bytes per second');
      return;
    }
    // Before hello, only a hello is expected: nothing larger is decoded.
    if (this.state === 'handshake' && frame.length > HANDSHAKE_FRAME_BYTES) {
      this.violation('protocol', `a frame before hello is at most ${HANDSHAKE_FRAME_BYTES} bytes`);
      this.closeWith(CLOSE.protocolError, 'hello expected');
      return;
    }
    let message: Message;
    try {
      message = this.cpu.measure(() => decodeMessage(frame, this.services.decodeLimits));
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.violation('malformed', error.message);
      return;
    }
    // Received but not handled yet: past the high-water mark, stop reading the socket, so a
    // client whose messages wait (for its CPU budget, or behind a long one) cannot queue
    // without bound in this process; TCP pushes back on it instead.
    const size = frame.length;
    this.receivedBytes += size;
    if (this.receivedBytes > this.services.limits.receiveHighWaterMark && !this.socket.isPaused) {
      this.services.metrics.budgetExceeded.inc({ budget: 'receive_queue' });
      this.socket.pause();
    }
    const handled = () => this.handled(size);
    if (
      message.type === 'sync' ||
      message.type === 'sync_records' ||
      message.type === 'sync_done'
    ) {
      // A walk's bulk transfer may take a while: other messages do not wait for it. Each
      // walk has a chain; a client may not make more of them than it may have walks.
      const key = `${message.map}\u0000${message.session}`;
      if (
        !this.walkChains.has(key) &&
        this.walkChains.size > this.services.limits.maxWalksPerConnection * 2
      ) {
        handled();
        this.services.metrics.budgetExceeded.inc({ budget: 'walks' });
        if (message.type === 'sync')
          this.send({
            type: 'sync_error',
            map: message.map,
            session: message.session,
            code: 'LIMIT',
            message: `at most ${this.services.limits.maxWalksPerConnection} walks at once per connection`,
          });
        else this.violation('walks', 'a walk message for a walk too many');
        return;
      }
      const previous = this.walkChains.get(key) ?? this.queue.then(() => this.opsAnswered());
      const next = previous
        .then(() => {
          handled();
          return this.handle(message);
        })
        .catch((error) => this.crash(error));
      this.walkChains.set(key, next);
      void next.finally(() => {
        if (this.walkChains.get(key) === next) this.walkChains.delete(key);
      });
      return;
    }
    if (message.type === 'ops' && this.state === 'ready') {
      this.queue = this.queue
        .then(() =>
          this.pendingOps.size >= MAX_PIPELINED_BATCHES ? Promise.race(this.pendingOps) : undefined,
        )
        .then(() => {
          // Submitted now (handle runs synchronously up to the pipeline), answered later.
          handled();
          const answered = this.handle(message, received).catch((error) => this.crash(error));
          this.pendingOps.add(answered);
          void answered.finally(() => this.pendingOps.delete(answered));
        })
        .catch((error) => this.crash(error));
      return;
    }
    this.queue = this.queue
      .then(() => this.opsAnswered())
      .then(() => {
        handled();
        return this.handle(message, received);
      })
      .catch((error) => this.crash(error));
  }

  /**
   * Whether this connection's pending work is still wanted: not once it is closed, nor while
   * the server shuts down (which must not wait on a client's spent budget).
   */
  private readonly wanted = (): boolean => this.isOpen() && !this.services.isShuttingDown();

  /** A received message's handling starts: it no longer counts as waiting. */
  private handled(size: number): void {
    this.receivedBytes -= size;
    if (
      this.socket.isPaused &&
      this.receivedBytes <= this.services.limits.receiveHighWaterMark / 2 &&
      this.state !== 'closed'
    ) {
      this.socket.resume();
    }
  }

  private async handle(message: Message, received = performance.now()): Promise<void> {
    if (this.state === 'closed') return;
    if (this.state === 'handshake') {
      await this.handshake(message);
      return;
    }
    // Work waits while the connection's event-loop budget is spent (ops are bounded by their
    // own rate limit and mostly wait on the database).
    if (message.type !== 'ops') {
      await this.cpu.ready(this.wanted);
      if (!this.wanted()) return;
    }
    // A batch whose handling began before the shutdown is answered, even if it then waits
    // for the claim: the shutdown lets what it already took in settle.
    const shutdownBegun = this.services.isShuttingDown();
    const writes =
      message.type === 'ops' ||
      message.type === 'sync_records' ||
      (message.type === 'sync' && message.records.length > 0);
    if (writes && this.nodeIdClaimed !== true && !(await this.claimed())) return;
    switch (message.type) {
      case 'ops':
        await this.onOps(message, received, shutdownBegun);
        return;
      case 'sync': {
        const walk = this.mayWriteRecords(message.records.length)
          ? message
          : { ...message, records: [] };
        await this.sliced(
          (slicer) => this.services.sync.onSync(this, walk, slicer, this.submitOptions),
          () =>
            this.send({
              type: 'sync_error',
              map: walk.map,
              session: walk.session,
              code: 'LIMIT',
              message: `the walk needed more than ${this.services.limits.maxMessageCpuMs} ms of server time`,
            }),
        );
        return;
      }
      case 'sync_records':
        if (this.mayWriteRecords(message.records.length))
          await this.services.sync.onClientRecords(this, message, this.submitOptions);
        return;
      case 'sync_done':
        this.services.sync.onSyncDone(this, message);
        return;
      case 'subscribe':
        await this.onSubscribe(message);
        return;
      case 'query_more':
        await this.onQueryMore(message);
        return;
      case 'aggregate':
        await this.queryWork(message.id, (slicer) =>
          this.services.aggregates.subscribe(
            this,
            message.id,
            message.map,
            message.query,
            slicer,
            this.submitOptions.mayLoadMap,
          ),
        );
        return;
      case 'unsubscribe':
        this.services.liveQueries.unsubscribe(this, message.id);
        this.services.aggregates.unsubscribe(this, message.id);
        return;
      case 'ping':
        this.send({ type: 'pong', time: message.time });
        return;
      case 'pong':
        return;
      case 'hello':
        this.violation('protocol', 'already authenticated');
        return;
      default:
        this.violation('protocol', `clients do not send ${message.type}`);
    }
  }

  /**
   * Runs a long request in slices charged to this connection; `onLimit` answers it when it
   * needs more than the per-message limit.
   */
  private async sliced(
    work: (slicer: ReturnType<CpuBudget['slicer']>) => Promise<void>,
    onLimit: () => void,
  ): Promise<void> {
    const slicer = this.cpu.slicer(this.wanted);
    try {
      await work(slicer);
    } catch (error) {
      if (error instanceof WorkAbandonedError) return;
      if (!(error instanceof WorkLimitError)) throw error;
      this.services.metrics.budgetExceeded.inc({ budget: 'message_cpu' });
      onLimit();
    } finally {
      slicer.finish();
    }
  }

  private onSubscribe(message: MessageOf<'subscribe'>): Promise<void> {
    return this.queryWork(message.id, (slicer) =>
      this.services.liveQueries.subscribe(
        this,
        message.id,
        message.map,
        message.query,
        slicer,
        this.submitOptions.mayLoadMap,
        message.have,
      ),
    );
  }

  private async onQueryMore({ id, limit }: MessageOf<'query_more'>): Promise<void> {
    // One that grows no window changes nothing and is not answered: not counted either.
    if (!this.services.liveQueries.grows(this, id, limit)) return;
    await this.queryWork(id, (slicer) => this.services.liveQueries.more(this, id, limit, slicer));
  }

  /**
   * Runs a live query's work (a subscribe, or a `query_more` that grows a window): counted
   * against the subscription rate, and in slices charged to this connection. Refused, the
   * subscription ends with a `query_error` `LIMIT`.
   */
  private async queryWork(id: number, work: (slicer: WorkSlicer) => Promise<void>): Promise<void> {
    const refuse = (text: string) => {
      this.services.liveQueries.unsubscribe(this, id);
      this.services.aggregates.unsubscribe(this, id);
      this.send({ type: 'query_error', id, code: 'LIMIT', message: text });
    };
    if (!this.subscribeBucket.take()) {
      this.services.metrics.budgetExceeded.inc({ budget: 'subscribe_rate' });
      refuse('too many subscriptions per second, slow down');
      return;
    }
    try {
      await this.sliced(work, () =>
        refuse(
          `the query needed more than ${this.services.limits.maxMessageCpuMs} ms of server time`,
        ),
      );
    } catch (error) {
      this.services.logger.warn({ err: error }, 'live query failed');
      refuse('the query could not be served, retry later');
    }
  }

  private async handshake(message: Message): Promise<void> {
    if (message.type !== 'hello') {
      this.send({
        type: 'error',
        code: 'UNAUTHENTICATED',
        message: 'the first message must be hello',
        retryable: false,
      });
      this.closeWith(CLOSE.protocolError, 'hello expected');
      return;
    }
    if (message.protocol !== PROTOCOL_VERSION) {
      this.send({
        type: 'error',
        code: 'PROTOCOL_VERSION',
        message:
          message.protocol < PROTOCOL_VERSION
            ? `upgrade required: this server speaks protocol ${PROTOCOL_VERSION}, the client ${message.protocol}; update @topgun/client`
            : `this server speaks protocol ${PROTOCOL_VERSION}, the client ${message.protocol}: update the server`,
        retryable: false,
      });
      this.closeWith(CLOSE.protocolError, 'protocol version mismatch');
      return;
    }
    const result = await this.services.authenticator.authenticate(message.token);
    if (!result.ok) {
      this.send({ type: 'auth_error', code: result.code, message: result.message });
      this.closeWith(CLOSE.unauthorized, result.code);
      return;
    }
    if (this.refusedAsOneTooMany(result.identity.id)) return;
    clearTimeout(this.handshakeTimer);
    this.identity = result.identity;
    this.clientNodeId = message.nodeId;
    this.state = 'ready';
    this.armExpiry();
    this.send({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      nodeId: this.services.serverNodeId,
      userId: result.identity.id,
      serverTime: this.services.now(),
      heartbeatMs: this.services.heartbeatMs,
      maxBatchOps: this.services.limits.maxBatchOps,
      maxFrameBytes: this.services.limits.maxFrameBytes,
    });
  }

  /**
   * Whether the node id is the user's, claimed at the session's first write (a claim writes to
   * storage: a session that only reads never waits for one, nor makes one).
   */
  private claimed(): Promise<boolean> | boolean {
    this.nodeIdClaimed ??= this.claimNodeId(this.clientNodeId, this.user.id).then((claimed) => {
      this.nodeIdClaimed = claimed;
      return claimed;
    });
    return this.nodeIdClaimed;
  }

  /**
   * Claims the node id for the user; ends the session, and says why, when it belongs to
   * another user or storage cannot tell.
   */
  private async claimNodeId(nodeId: string, userId: string | null): Promise<boolean> {
    let claimed: boolean;
    try {
      claimed = await this.services.claimNodeId(nodeId, userId);
    } catch (error) {
      this.services.logger.warn({ err: error }, 'node id claim failed: storage unavailable');
      this.send({
        type: 'error',
        code: 'UNAVAILABLE',
        message: 'storage is unavailable, retry later',
        retryable: true,
      });
      this.closeWith(CLOSE.tryAgainLater, 'storage unavailable');
      return false;
    }
    if (!claimed) {
      this.send({
        type: 'auth_error',
        code: 'NODE_ID_TAKEN',
        message: `node id ${nodeId} belongs to another user: use a replica of this user's own (another database name)`,
      });
      this.closeWith(CLOSE.forbidden, 'node id taken');
    }
    return claimed;
  }

  /** Refuses the connection, and says so, if its user has as many as it may have. */
  private refusedAsOneTooMany(userId: string | null): boolean {
    const { maxConnectionsPerUser } = this.services.limits;
    if (userId === null || this.services.connectionsOf(userId) < maxConnectionsPerUser)
      return false;
    this.services.metrics.budgetExceeded.inc({ budget: 'user_connections' });
    this.send({
      type: 'error',
      code: 'POLICY_VIOLATION',
      message: `at most ${maxConnectionsPerUser} connections per user`,
      retryable: true,
    });
    this.closeWith(CLOSE.policyViolation, 'too many connections for this user');
    return true;
  }

  /** Ends the session when its token expires, whether or not the client is sending. */
  private armExpiry(): void {
    const expiresAt = this.identity?.expiresAt;
    if (expiresAt === undefined) return;
    // Timers hold at most 2^31 - 1 ms (24.8 days): a longer one is re-armed when it fires.
    const delay = Math.min(Math.max(0, expiresAt - this.services.now()), 2 ** 31 - 1);
    this.expiryTimer = setTimeout(() => {
      if (this.state !== 'ready') return;
      if (this.services.now() < expiresAt) {
        this.armExpiry();
        return;
      }
      this.send({
        type: 'error',
        code: 'TOKEN_EXPIRED',
        message: 'the token has expired: reconnect with a fresh one',
        retryable: true,
      });
      this.closeWith(CLOSE.unauthorized, 'token expired');
    }, delay);
    this.expiryTimer.unref();
  }

  /**
   * Answers a batch of writes; `received` is when its frame arrived (for the ack latency);
   * `refused` when the server was shutting down as its handling began.
   */
  private async onOps(
    message: MessageOf<'ops'>,
    received: number,
    refused: boolean,
  ): Promise<void> {
    const { ops } = message;
    let outcome: BatchOutcome;
    if (refused) {
      outcome = rejectAll(ops, 'UNAVAILABLE', 'the server is shutting down', true);
    } else if (ops.length > this.services.limits.maxBatchOps) {
      this.violation(
        'batch_size',
        `more than ${this.services.limits.maxBatchOps} ops in one message`,
        false,
      );
      outcome = rejectAll(
        ops,
        'RATE_LIMIT',
        `at most ${this.services.limits.maxBatchOps} ops per message`,
        false,
      );
    } else if (!this.opsBucket.take(ops.length)) {
      this.violation('rate_limit', 'too many ops per second', false);
      outcome = rejectAll(ops, 'RATE_LIMIT', 'too many ops per second, slow down', true);
    } else {
      outcome = await this.services.pipeline.submit(this, ops, this.submitOptions);
    }
    if (outcome.acked.length > 0)
      this.send({ type: 'ack', ids: outcome.acked, superseded: outcome.superseded });
    if (outcome.rejected.length > 0) this.send({ type: 'reject', rejections: outcome.rejected });
    for (const [map, keys] of outcome.revoked) sendRevoke(this, map, keys);
    this.services.metrics.ackLatency.observe((performance.now() - received) / 1000);
  }

  /**
   * Whether a walk message may bring `count` records, which are writes: at most a chunk's
   * worth per message, and within the connection's ops rate. Otherwise they are ignored
   * (the walk does not converge, and the client walks again later).
   */
  private mayWriteRecords(count: number): boolean {
    if (count === 0) return true;
    const { chunkRecords } = this.services.limits;
    if (count > chunkRecords) {
      this.violation('batch_size', `more than ${chunkRecords} records in one walk message`, false);
      return false;
    }
    if (!this.opsBucket.take(count)) {
      this.violation('rate_limit', 'too many records per second', false);
      return false;
    }
    return true;
  }

  /** Counts a violation; answers it; closes the connection once they pile up. */
  private violation(kind: string, message: string, answer = true): void {
    this.services.metrics.violations.inc({ kind });
    const now = this.services.now();
    this.violations = this.violations.filter((time) => now - time < VIOLATION_WINDOW_MS);
    this.violations.push(now);
    if (this.violations.length > this.services.limits.maxViolations) {
      this.services.logger.warn(
        { connection: this.id, kind },
        'too many violations: connection closed',
      );
      this.send({
        type: 'error',
        code: 'POLICY_VIOLATION',
        message: `closed after repeated violations: ${message}`,
        retryable: false,
      });
      this.closeWith(CLOSE.policyViolation, 'policy violation');
      return;
    }
    if (answer)
      this.send({
        type: 'error',
        code: 'MALFORMED',
        message: message.slice(0, 1024),
        retryable: false,
      });
  }

  private crash(error: unknown): void {
    this.services.logger.error(
      { err: error, connection: this.id },
      'unexpected error while handling a message',
    );
    this.send({ type: 'error', code: 'INTERNAL', message: 'internal error', retryable: true });
  }

  /** Closes the socket with a code and stops handling its messages. */
  private closeWith(code: number, reason: string): void {
    this.socket.close(code, reason);
    this.onClose();
  }

  private onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.expiryTimer);
    this.services.fanout.forget(this);
    this.services.liveQueries.removePeer(this);
    this.services.aggregates.removePeer(this);
    this.services.sync.removePeer(this);
  }
}
