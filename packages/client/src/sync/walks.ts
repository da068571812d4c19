import {
  DEFAULT_DECODE_LIMITS,
  DEFAULT_MAX_MESSAGE_BYTES,
  fromSyncWire,
  fromWireEntry,
  type HashWidth,
  type Message,
  type MessageOf,
  resumeWire,
  rootBytes,
  SyncSession,
  toSyncWire,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import { SyncError } from '../clientErrors.js';
import type { LocalWrites } from '../outbox/localWrites.js';
import type { Outbox } from '../outbox/outbox.js';
import type { QueryRegistry } from '../queries/queryRegistry.js';
import type { ReplicaStore } from '../replica/replicaStore.js';
import type { SyncMarks } from '../replica/syncMarks.js';
import type { SyncStatusStore } from '../status/syncStatus.js';
import { recordFrames } from './recordFrames.js';
import { ResumeCursors } from './resumeCursors.js';
import { WaitingWalks, type Walk, WalkRetries } from './walk.js';

/** The messages of a walk, from the server. */
export type WalkMessage = MessageOf<
  'sync' | 'sync_records' | 'sync_done' | 'sync_reset' | 'sync_error'
>;

/** What the walks work with. */
export interface WalksOptions {
  readonly replicas: ReplicaStore;
  readonly writes: LocalWrites;
  readonly outbox: Outbox;
  readonly marks: SyncMarks;
  readonly queries: QueryRegistry;
  readonly status: SyncStatusStore;
  readonly send: (message: Message) => void;
  readonly sendFrame: (frame: Uint8Array) => void;
  /** Every map open at the handshake was reconciled once (or gave up for now). */
  readonly initialWalksDone: () => void;
  /** Delay before a failed walk starts again; doubles with each in a row. Default: 5000 ms. */
  readonly walkRetryMs?: number | undefined;
  readonly now: () => number;
}

/** A walk that hears nothing for this long is abandoned and started again. */
const WALK_TIMEOUT_MS = 30_000;

/**
 * The Merkle walks of one session with the server: every open map is reconciled from the
 * handshake on (and each map opened later), records flowing both ways; a walk that ends apart
 * walks on, or again later with a doubling delay; progress is reported in `status`.
 */
export class Walks {
  readonly #walks = new Map<number, Walk>();
  readonly #retries: WalkRetries;
  readonly #waiting = new WaitingWalks();
  #nextSession = 1;
  #initialPending = 0;
  readonly #cursors: ResumeCursors;
  #maxFrameBytes = DEFAULT_DECODE_LIMITS.maxFrameBytes;
  #active = false;

  readonly #options: WalksOptions;

  constructor(options: WalksOptions) {
    this.#options = options;
    this.#cursors = new ResumeCursors(options.marks);
    this.#retries = new WalkRetries((map) => {
      if (this.#active) this.#start(map, 4);
    }, options.walkRetryMs);
  }

  /** Whether the walks after the handshake are still running (writes wait for them). */
  get initialRunning(): boolean {
    return this.#initialPending > 0;
  }

  /**
   * The session is up, or its `hello` on its way (the frame limit then assumed the default):
   * walks every open map (`initialWalksDone` is told when they end; at once with none open).
   */
  begin(maxFrameBytes = DEFAULT_DECODE_LIMITS.maxFrameBytes): void {
    this.#active = true;
    this.#maxFrameBytes = maxFrameBytes;
    const maps = this.#options.replicas.names();
    this.#initialPending = maps.length;
    for (const map of maps) this.#start(map, 4);
  }

  /**
   * The server's welcome, with its frame limit: the walks begin now unless they began behind
   * `hello`, and those then start again if the server takes smaller frames than assumed.
   */
  welcomed(maxFrameBytes: number): void {
    if (!this.#active) {
      this.begin(maxFrameBytes);
      return;
    }
    const smaller = maxFrameBytes < this.#maxFrameBytes;
    this.#maxFrameBytes = maxFrameBytes;
    if (smaller)
      for (const [session, walk] of [...this.#walks]) {
        this.#walks.delete(session);
        this.#sendDone(walk.map, session);
        this.#start(walk.map, walk.width);
      }
  }

  /** Reconciles a map opened during the session. */
  walk(map: string): void {
    if (this.#active) this.#start(map, 4);
  }

  receive(message: WalkMessage): void {
    const walk = this.#walks.get(message.session);
    if (walk === undefined) return;
    walk.lastHeard = this.#options.now();
    switch (message.type) {
      case 'sync':
        this.#onSync(walk, message);
        return;
      case 'sync_records':
        this.#onRecords(walk, message);
        return;
      case 'sync_done':
        this.#onDone(walk, message);
        return;
      case 'sync_reset':
        this.#walks.delete(message.session);
        this.#options.writes.revoke(
          walk.map,
          [...this.#options.replicas.entry(walk.map).replica.allRecords()].map(([key]) => key),
        );
        this.#cursors.reset(walk.map);
        this.#start(walk.map, 4);
        return;
      case 'sync_error':
        this.#walks.delete(message.session);
        this.#options.status.setState({
          lastError: new SyncError(
            'WALK_FAILED',
            `syncing ${message.map} failed: ${message.message}`,
            message.code,
          ),
        });
        // A map the user may not read is not retried; anything else may pass later.
        if (message.code !== 'PERMISSION') this.#retries.later(walk.map);
        this.#ended();
        return;
    }
  }

  /** Abandons the walks whose messages were lost (malformed, refused, never came); retries later. */
  restart(lost: (walk: Walk) => boolean = () => true): void {
    for (const [session, walk] of [...this.#walks]) {
      if (!lost(walk)) continue;
      this.#walks.delete(session);
      // Ended on the server too, so that it does not keep it (and count it) until it idles out.
      this.#sendDone(walk.map, session);
      this.#retries.later(walk.map);
      this.#ended();
    }
  }

  /** The watchdog: a walk that hears nothing (a reply lost or refused) starts again. */
  tick(now: number): void {
    const silent = (walk: Walk) => now - walk.lastHeard > WALK_TIMEOUT_MS;
    if (![...this.#walks.values()].some(silent)) return;
    this.#options.status.setState({
      lastError: new SyncError('WALK_FAILED', 'a sync walk got no answer: starting it again'),
    });
    this.restart(silent);
  }

  /** The session is gone: so are its walks and their retries (the next session walks anew). */
  end(): void {
    this.#active = false;
    this.#walks.clear();
    this.#retries.clear();
    this.#waiting.clear();
    this.#cursors.clear();
    this.#initialPending = 0;
  }

  /** The server's changes of `map`, merged, end at `cursor` (see {@link ResumeCursors}). */
  advance(map: string, cursor: string): void {
    this.#cursors.advance(map, cursor);
  }

  #start(map: string, width: HashWidth): void {
    for (const walk of this.#walks.values()) if (walk.map === map) return;
    if (this.#waiting.wait(map, width, this.#walks.size)) return;
    const sessionId = this.#nextSession++;
    const replica = this.#options.replicas.entry(map).replica;
    const session = new SyncSession(replica, {
      width,
      // Every message within what the server accepts, however much differs.
      maxMessageBytes: Math.min(DEFAULT_MAX_MESSAGE_BYTES, Math.floor(this.#maxFrameBytes / 4)),
    });
    const lastSync = this.#options.marks.get(map);
    const cursor = this.#cursors.take(map);
    this.#walks.set(sessionId, {
      map,
      session,
      width,
      expected: 0,
      received: 0,
      changed: 0,
      lastHeard: this.#options.now(),
      resumed: cursor !== undefined,
    });
    this.#options.status.setState({ connection: 'syncing' });
    this.#options.send(
      cursor === undefined || lastSync === undefined
        ? toSyncWire(map, sessionId, session.open(), lastSync)
        : resumeWire(map, sessionId, this.#rootOf(map), lastSync, cursor),
    );
  }

  #onSync(walk: Walk, message: MessageOf<'sync'>): void {
    const incoming = fromSyncWire<Value>(message);
    if (incoming.records.length > 0)
      walk.changed += this.#options.replicas.merge(walk.map, incoming.records, true);
    const answer = walk.session.receive(incoming);
    // Records the server lacks or needs go first, as bulk chunks within half the server's
    // frame limit, so that the server has taken them (and told this client what to forget)
    // before it answers.
    if (answer.bulk.length > 0) this.#sendRecords(walk, message.session, answer.bulk);
    if (answer.message === undefined) this.#sendDone(walk.map, message.session);
    else this.#options.send(toSyncWire(walk.map, message.session, answer.message));
  }

  /** Ends walk `session` of `map`, telling the server this replica's root. */
  #sendDone(map: string, session: number): void {
    this.#options.send({ type: 'sync_done', map, session, root: this.#rootOf(map) });
  }

  /** The root hash of this replica of `map`, as walk messages carry it. */
  #rootOf(map: string): Uint8Array {
    return rootBytes(this.#options.replicas.entry(map).replica.merkleTree);
  }

  #sendRecords(
    walk: Walk,
    session: number,
    bulk: Parameters<SyncSession<Value>['bulkRecords']>[0],
  ): void {
    const entries: WireEntry[] = [];
    for (const [key, record] of walk.session.bulkRecords(bulk))
      entries.push(toWireEntry(key, record));
    for (const frame of recordFrames(walk.map, session, entries, this.#maxFrameBytes / 2))
      this.#options.sendFrame(frame);
  }

  #onRecords(walk: Walk, message: MessageOf<'sync_records'>): void {
    walk.changed += this.#options.replicas.merge(
      walk.map,
      message.records.map((entry) => fromWireEntry<Value>(entry)),
      true,
    );
    if (message.total !== undefined) walk.expected += message.total;
    walk.received += message.records.length;
    this.#reportProgress();
  }

  #onDone(walk: Walk, message: MessageOf<'sync_done'>): void {
    this.#walks.delete(message.session);
    const { map, resumed } = walk;
    const { syncedAt } = message;
    if (resumed) this.#cursors.spent(map);
    // A refused resume (no syncedAt) walks, whatever the roots.
    const equal =
      (syncedAt !== undefined || !resumed) &&
      this.#rootOf(map).every((byte, index) => byte === message.root[index]);
    if (!equal) this.#cursors.apart(map);
    if (equal) {
      this.#retries.converged(map);
      if (syncedAt !== undefined) this.#synced(map, syncedAt, message.cursor);
    } else if (resumed || walk.changed > 0) {
      // Resumed and apart (refused, or apart by writes the walk then pushes), or progress
      // within the server's message budgets: walk on.
      this.#start(map, walk.width);
    } else if (walk.session.truncated) {
      // This side's messages left differences out, and nothing came: the records it sent
      // may be refused walk after walk, so walk again later, each time later.
      this.#retries.later(walk.map);
    } else if (this.#options.outbox.holdsMap(walk.map)) {
      // Unacknowledged local writes make the roots differ until they are sent: not a failure.
    } else if (walk.width === 4) {
      // Nothing differed, yet the roots do: subtrees whose 4-byte hashes are equal by chance.
      this.#start(walk.map, 8);
    } else {
      this.#retries.later(walk.map);
    }
    this.#reportProgress();
    this.#ended();
  }

  #synced(map: string, syncedAt: number, cursor: string | undefined): void {
    this.#cursors.synced(map, syncedAt, cursor);
    this.#options.queries.confirmMap(map);
    this.#options.status.setState({ lastSyncedAt: syncedAt });
  }

  #ended(): void {
    if (this.#initialPending > 0) {
      this.#initialPending--;
      // Every map reconciled once after the handshake: now the outbox.
      if (this.#initialPending === 0) this.#options.initialWalksDone();
    }
    let next = this.#waiting.next(this.#walks.size);
    for (; next !== undefined; next = this.#waiting.next(this.#walks.size)) this.#start(...next);
    this.settleIfIdle();
  }

  /** Online once no walk runs and none waits to start again. */
  settleIfIdle(): void {
    if (!this.#active || this.#walks.size + this.#waiting.size > 0 || this.#retries.waiting) return;
    this.#options.status.setState({ connection: 'online', initialSync: null });
  }

  #reportProgress(): void {
    let expected = 0;
    let received = 0;
    for (const walk of this.#walks.values()) {
      expected += walk.expected;
      received += walk.received;
    }
    this.#options.status.setState({
      initialSync: expected > 0 ? { received: Math.min(received, expected), expected } : null,
    });
  }
}
