import {
  type BulkItem,
  bulkSize,
  EMPTY_WRITE_TIMESTAMP,
  encodeMessage,
  type FieldWrite,
  fromSyncWire,
  fromWireEntry,
  HLC,
  isEmptyWrite,
  LWWMap,
  type LWWRecord,
  type MessageOf,
  mergeRecords,
  rootBytes,
  type SyncReplica,
  SyncSession,
  type Timestamp,
  toSyncWire,
  toWireEntry,
  ValidationError,
  type Value,
  wholeWriteOf,
  withFieldWrites,
} from '@topgun/core';
import type { FastifyBaseLogger } from 'fastify';
import { type ChangeFanout, sendRevoke } from './changeFanout.js';
import type { WorkSlicer } from './cpuBudget.js';
import { type GridRecord, MAP_LOADS_SPENT, type MapGrid } from './mapGrid.js';
import type { ServerMetrics } from './metrics.js';
import { ownsNodeId } from './nodeOwnership.js';
import type { ServerLimits } from './options.js';
import type { Peer } from './peer.js';
import type { Permissions, ReadFilter } from './permissions.js';
import type { Storage } from './storage/storage.js';
import { streamChunks } from './streamChunks.js';
import type { SubmitOptions, WritePipeline } from './writePipeline.js';

interface ActiveWalk {
  readonly map: string;
  readonly session: SyncSession<Value>;
  readonly replica: SyncReplica<Value>;
  /** Whether the replica is a view built for this walk (counted against the view budget). */
  readonly isView: boolean;
  /** Records of the map when the view was built (counted against the view budget). */
  readonly viewRecords: number;
  /** Server time when the walk started: what the client may store as its last sync. */
  readonly startedAt: number;
  /** Server time of the walk's last message, to end walks a client abandoned. */
  lastActive: number;
  /** Lets the grid evict the map again (the walk held it from its opening). */
  readonly release: () => void;
}

type SyncErrorCode = MessageOf<'sync_error'>['code'];

/**
 * Serves Merkle walks (`specifications/merkle-sync.md`): one `SyncSession` per (client,
 * map, session number), every message within a byte budget, bulk transfers streamed in
 * bounded chunks with back-pressure, a reset for clients whose last sync predates tombstone
 * pruning. A client may have a few walks at once; a walk it abandons ends after a while.
 */
export class SyncService {
  private readonly walks = new Map<Peer, Map<string, ActiveWalk>>();
  /** Per client, walks that ended lately (id → server time): their bulk chunks are taken. */
  private readonly ended = new Map<Peer, Map<string, number>>();
  /** Walks of each client being opened (loading their map or view): they count as open. */
  private readonly opening = new Map<Peer, number>();
  private views = 0;
  private viewRecords = 0;

  constructor(
    private readonly deps: {
      readonly grid: MapGrid;
      readonly storage: Storage;
      readonly permissions: Permissions;
      readonly pipeline: WritePipeline;
      /** Where clients that walked a map are registered to receive its changes. */
      readonly fanout: Pick<ChangeFanout, 'follow' | 'flushFor' | 'rebase'>;
      readonly metrics: ServerMetrics;
      readonly logger: FastifyBaseLogger;
      readonly nodeId: string;
      readonly limits: Pick<
        ServerLimits,
        | 'chunkRecords'
        | 'maxFrameBytes'
        | 'maxWalksPerConnection'
        | 'maxWalkViews'
        | 'maxWalkViewRecords'
        | 'walkMessageBytes'
        | 'walkIdleMs'
      >;
      /** Writes older than this are refused, so a client synced this long after a pruning horizon has every deletion before it. */
      readonly maxWriteAgeMs: number;
      readonly now: () => number;
      /**
       * Resolves once the grid holds every commit acknowledged before the call (other
       * processes' included); rejects when it cannot tell.
       */
      readonly fresh: (map: string) => Promise<void>;
    },
  ) {}

  /** Handles a `sync` message. */
  async onSync(
    peer: Peer,
    message: MessageOf<'sync'>,
    slicer: WorkSlicer,
    options: SubmitOptions,
  ): Promise<void> {
    const id = `${message.map}\u0000${message.session}`;
    const walks = this.walks.get(peer) ?? new Map<string, ActiveWalk>();
    this.walks.set(peer, walks);
    let walk = walks.get(id);
    if (walk === undefined) {
      const opening = this.opening.get(peer) ?? 0;
      if (walks.size + opening >= this.deps.limits.maxWalksPerConnection) {
        this.deps.metrics.budgetExceeded.inc({ budget: 'walks' });
        this.fail(
          peer,
          message,
          'LIMIT',
          `at most ${this.deps.limits.maxWalksPerConnection} walks at once per connection`,
        );
        return;
      }
      // The slot is taken before the first await: openings sent in a burst run side by side.
      this.opening.set(peer, opening + 1);
      // The walk holds its map from before it is loaded: evicted while it opens, the walk
      // would go on over a copy that no longer learns the map's changes.
      const release = this.deps.grid.hold(message.map);
      let started: ActiveWalk | undefined;
      try {
        started = await this.open(peer, message, slicer, options, release);
      } finally {
        const left = (this.opening.get(peer) ?? 1) - 1;
        if (left > 0) this.opening.set(peer, left);
        else this.opening.delete(peer);
        if (started === undefined) release();
      }
      if (started === undefined) return;
      if (!peer.isOpen()) {
        // Gone while its walk was being opened: nothing will end the walk, so release it now.
        if (started.isView) this.releaseView(started.viewRecords);
        release();
        return;
      }
      walk = started;
      walks.set(id, walk);
      this.deps.metrics.syncSessions.inc();
      this.deps.metrics.activeSyncSessions.inc();
    }
    walk.lastActive = this.deps.now();
    try {
      if (message.cursor !== undefined) await this.resume(peer, id, walk, message, slicer);
      else await this.answer(peer, id, walk, message, slicer, options);
    } catch (error) {
      // A walk that failed (bad message, over its CPU limit, abandoned) holds nothing more.
      this.end(peer, id);
      if (!(error instanceof ValidationError)) throw error;
      this.fail(peer, message, 'INVALID', error.message);
    }
  }

  private async answer(
    peer: Peer,
    id: string,
    walk: ActiveWalk,
    message: MessageOf<'sync'>,
    slicer: WorkSlicer,
    options: SubmitOptions,
  ): Promise<void> {
    const incoming = fromSyncWire<Value>(message);
    if (incoming.records.length > 0)
      await slicer.io(this.acceptClientRecords(peer, message.map, incoming.records, options));
    const answer = walk.session.receive(incoming);
    if (answer.message === undefined && answer.bulk.length === 0) {
      this.finish(peer, message.map, message.session, walk);
      return;
    }
    if (answer.message !== undefined)
      peer.send(toSyncWire(message.map, message.session, answer.message));
    if (answer.bulk.length > 0)
      await this.sendBulk(peer, id, walk, message.session, answer.bulk, slicer);
    if (answer.message === undefined) this.finish(peer, message.map, message.session, walk);
  }

  /**
   * Resumes from the cursor of the client's last sync instead of walking: sends the records
   * changed since, then `sync_done` with the root and a new cursor. A cursor this process
   * cannot resume from (another process's, an earlier load's of the map, too old, or a map
   * with record-level read rules) gets `sync_done` with the root alone: the client walks.
   */
  private async resume(
    peer: Peer,
    id: string,
    walk: ActiveWalk,
    message: MessageOf<'sync'>,
    slicer: WorkSlicer,
  ): Promise<void> {
    const { map, session } = message;
    const changed = this.deps.grid.changedSince(map, message.cursor!);
    if (changed === undefined) {
      const root = rootBytes(walk.replica.merkleTree);
      // A client that holds the map as it is now gets its cursor all the same.
      if (root.every((byte, index) => byte === message.root[index]))
        this.finish(peer, map, session, walk);
      else {
        peer.send({ type: 'sync_done', map, session, root });
        this.end(peer, id);
      }
      return;
    }
    // A record that is wholly the client's own write, it holds (it may have written it
    // while disconnected from here: not echoed back).
    const own = (key: string) => {
      const record = walk.replica.getRecord(key);
      return record !== undefined && ownPart(record, peer.nodeId, 0) === record;
    };
    const bulk = changed.filter((key) => !own(key)).map((key) => ({ key }));
    if (bulk.length > 0) await this.sendBulk(peer, id, walk, session, bulk, slicer);
    // What this process's commits merged into the grid is published, so the root the client
    // is sent is one the records it was sent (or is sent now, before it) reach.
    await slicer.io(this.deps.pipeline.published());
    if (this.walks.get(peer)?.get(id) === walk) this.finish(peer, map, session, walk);
  }

  /**
   * Handles a bulk chunk the client sends in a walk (records the server lacked entirely). The
   * walk may already have ended on this side (the chunks follow the client's last `sync`), and
   * the records are writes like any other, so they are taken either way.
   */
  async onClientRecords(
    peer: Peer,
    message: MessageOf<'sync_records'>,
    options: SubmitOptions,
  ): Promise<void> {
    if (message.records.length === 0) return;
    // Only as part of a walk of this client's, open or just ended (its chunks may follow it).
    const id = `${message.map}\u0000${message.session}`;
    if (!this.walks.get(peer)?.has(id) && !this.ended.get(peer)?.has(id)) return;
    const records = message.records.map((entry) => fromWireEntry<Value>(entry));
    await this.acceptClientRecords(peer, message.map, records, options);
  }

  /** Handles the client's `sync_done`: answers with the server's, so the client learns `syncedAt`. */
  onSyncDone(peer: Peer, message: MessageOf<'sync_done'>): void {
    const id = `${message.map}\u0000${message.session}`;
    const walk = this.walks.get(peer)?.get(id);
    if (walk === undefined) return;
    this.finish(peer, message.map, message.session, walk);
  }

  /** Ends walks that saw no message for the idle limit (their views are the costly part). */
  sweep(): void {
    const cutoff = this.deps.now() - this.deps.limits.walkIdleMs;
    for (const [peer, walks] of this.walks) {
      for (const [id, walk] of walks) if (walk.lastActive < cutoff) this.end(peer, id);
    }
    for (const [peer, ended] of this.ended) {
      for (const [id, at] of ended) if (at < cutoff) ended.delete(id);
      if (ended.size === 0) this.ended.delete(peer);
    }
  }

  /** Forgets every walk of a client. */
  removePeer(peer: Peer): void {
    for (const id of [...(this.walks.get(peer)?.keys() ?? [])]) this.end(peer, id);
    this.walks.delete(peer);
    this.ended.delete(peer);
  }

  private fail(
    peer: Peer,
    message: { readonly map: string; readonly session: number },
    code: SyncErrorCode,
    text: string,
  ): undefined {
    peer.send({
      type: 'sync_error',
      map: message.map,
      session: message.session,
      code,
      message: text.slice(0, 1024),
    });
    return undefined;
  }

  private async open(
    peer: Peer,
    message: MessageOf<'sync'>,
    slicer: WorkSlicer,
    options: SubmitOptions,
    release: () => void,
  ): Promise<ActiveWalk | undefined> {
    const { permissions, storage, grid, limits } = this.deps;
    const filter = permissions.readFilter(peer.user, message.map);
    if (filter === null)
      return this.fail(peer, message, 'PERMISSION', `reading ${message.map} is not allowed`);
    try {
      await slicer.io(this.deps.fresh(message.map));
    } catch (error) {
      return this.fail(peer, message, 'UNAVAILABLE', (error as Error).message);
    }
    const loading = grid.getWithin(message.map, options.mayLoadMap ?? (() => true));
    if (loading === undefined) return this.fail(peer, message, 'LIMIT', MAP_LOADS_SPENT);
    let map: LWWMap<Value>;
    try {
      if (message.lastSync !== undefined) {
        // Whoever synced later than a pruned tombstone could still arrive has seen it: a
        // write older than the write floor is refused, so that is the horizon plus the floor.
        const mark = await slicer.io(storage.pruneMark(message.map));
        if (mark !== undefined && message.lastSync < mark.horizonMillis + this.deps.maxWriteAgeMs) {
          peer.send({
            type: 'sync_reset',
            map: message.map,
            session: message.session,
            reason: 'PRUNED',
          });
          return undefined;
        }
      }
      map = await slicer.io(loading);
    } catch (error) {
      this.deps.logger.warn({ err: error, map: message.map }, 'sync refused: storage unavailable');
      return this.fail(peer, message, 'UNAVAILABLE', 'storage is unavailable, retry later');
    }
    this.deps.fanout.follow(peer, message.map);
    const isView = !filter.everything;
    if (isView && message.cursor !== undefined) {
      // Never given a cursor of this map: its view is not built only to refuse it.
      peer.send({
        type: 'sync_done',
        map: message.map,
        session: message.session,
        root: new Uint8Array(8),
      });
      return undefined;
    }
    let replica: SyncReplica<Value> = map;
    const viewRecords = isView ? map.recordCount : 0;
    if (isView) {
      if (
        this.views >= limits.maxWalkViews ||
        this.viewRecords + viewRecords > limits.maxWalkViewRecords
      ) {
        this.deps.metrics.budgetExceeded.inc({ budget: 'walk_views' });
        return this.fail(
          peer,
          message,
          'LIMIT',
          'the server is busy with other walks: retry later',
        );
      }
      this.views++;
      this.viewRecords += viewRecords;
      try {
        replica = await this.visibleView(filter, map, slicer);
      } catch (error) {
        this.releaseView(viewRecords);
        throw error;
      }
    }
    const session = new SyncSession(replica, { maxMessageBytes: limits.walkMessageBytes });
    const now = this.deps.now();
    return {
      map: message.map,
      session,
      replica,
      isView,
      viewRecords,
      startedAt: now,
      lastActive: now,
      release,
    };
  }

  /**
   * A walk over a map with record-level read rules compares against only what the client
   * may see: a tree built for this walk from those records, in slices.
   */
  private async visibleView(
    filter: ReadFilter,
    map: LWWMap<Value>,
    slicer: WorkSlicer,
  ): Promise<SyncReplica<Value>> {
    const view = new LWWMap<Value>(
      new HLC({ nodeId: this.deps.nodeId, maxDriftMs: Number.POSITIVE_INFINITY }),
    );
    const visible: Array<readonly [string, LWWRecord<Value>]> = [];
    let since = 0;
    for (const [key, record] of map.allRecords()) {
      if (filter.sees(key, record as GridRecord)) visible.push([key, record]);
      if (++since >= 256) {
        since = 0;
        view.loadRecords(visible.splice(0));
        if (slicer.due()) await slicer.pause();
      }
    }
    view.loadRecords(visible);
    return view;
  }

  /**
   * Records a client pushes during a walk are writes like any other: they go through the
   * write pipeline (node id, time window, permissions, commit). Rejected ones are simply not
   * merged; the client's outbox reports them through its own ops. Records it holds that it
   * may no longer see (another writer's, or its own, replaced by what it cannot read), and
   * tombstones and expired records this server has pruned, are revoked, so that its replica
   * ends up equal to what it may see.
   */
  private async acceptClientRecords(
    peer: Peer,
    mapName: string,
    records: ReadonlyArray<readonly [string, LWWRecord<Value>]>,
    options: SubmitOptions,
  ): Promise<void> {
    const { permissions, grid, pipeline } = this.deps;
    const filter = permissions.readFilter(peer.user, mapName);
    if (filter === null) return;
    // Held throughout: records are judged after the writes against the map they went into.
    const release = grid.hold(mapName);
    try {
      const map = await grid.get(mapName).catch(() => undefined);
      if (map === undefined) return;
      // The client must end up holding exactly what it may see. A record it holds that it did
      // not write (or wrote too long ago to be written again, or may not write) it drops,
      // unless this server holds one it may see that is at least as new, which the walk sends
      // it: deleted, pruned, hidden and absent keys all get the same answer, so the answer
      // reveals nothing the client may not see.
      const dropped = new Set<string>();
      const judge = (key: string, record: LWWRecord<Value>) => {
        const stored = map.getRecord(key) as GridRecord | undefined;
        const kept =
          stored !== undefined &&
          filter.sees(key, stored) &&
          mergeRecords(stored, record) === stored;
        if (!kept) dropped.add(key);
      };
      const floor = this.deps.now() - this.deps.maxWriteAgeMs;
      const own: Array<readonly [string, LWWRecord<Value>]> = [];
      const ops: MessageOf<'ops'>['ops'] = [];
      // Records that also hold others' writes (field writes of several writers): judged once
      // the client's own writes in them are committed.
      const mixed: Array<readonly [string, LWWRecord<Value>]> = [];
      for (const [key, record] of records) {
        const part = ownPart(record, peer.nodeId, floor);
        if (part === undefined) {
          judge(key, record);
          continue;
        }
        ops.push({ id: own.length, map: mapName, entry: toWireEntry(key, part) });
        own.push([key, record]);
        if (part !== record) mixed.push([key, record]);
      }
      if (ops.length > 0) {
        const outcome = await pipeline.submit(peer, ops, options);
        for (const keys of outcome.revoked.values()) for (const key of keys) dropped.add(key);
        const judged = new Set<string>();
        for (const rejection of outcome.rejected) {
          if (rejection.retryable) continue;
          const [key, record] = own[rejection.id]!;
          judge(key, record);
          judged.add(key);
        }
        for (const [key, record] of mixed) if (!judged.has(key)) judge(key, record);
      }
      if (dropped.size > 0) sendRevoke(peer, mapName, dropped);
    } finally {
      release();
    }
  }

  /**
   * Streams a walk's bulk transfer in bounded chunks, each sent once the client has read
   * most of the previous; it stops if the walk ends meanwhile (abandoned, or its client gone).
   */
  private async sendBulk(
    peer: Peer,
    id: string,
    walk: ActiveWalk,
    session: number,
    bulk: readonly BulkItem[],
    slicer: WorkSlicer,
  ): Promise<void> {
    const { map } = walk;
    const total = bulkSize(walk.replica, bulk);
    await streamChunks(
      peer,
      walk.session.bulkRecords(bulk),
      ([key, record]) => toWireEntry(key, record),
      (records, { first, last }) =>
        encodeMessage({
          type: 'sync_records',
          map,
          session,
          records: [...records],
          ...(first ? { total } : {}),
          last,
        }),
      this.deps.limits,
      slicer,
      () => {
        walk.lastActive = this.deps.now();
        return this.walks.get(peer)?.get(id) === walk;
      },
    );
  }

  private finish(peer: Peer, map: string, session: number, walk: ActiveWalk): void {
    // The changes queued for the client go first: its root is compared once it has them, and
    // the cursor covers them.
    this.deps.fanout.flushFor(peer);
    this.deps.fanout.rebase(peer, map);
    const cursor = walk.isView ? undefined : this.deps.grid.cursorOf(map);
    peer.send({
      type: 'sync_done',
      map,
      session,
      root: rootBytes(walk.replica.merkleTree),
      syncedAt: walk.startedAt,
      ...(cursor === undefined ? {} : { cursor }),
    });
    this.end(peer, `${map}\u0000${session}`);
  }

  private end(peer: Peer, id: string): void {
    const walk = this.walks.get(peer)?.get(id);
    if (walk === undefined) return;
    this.walks.get(peer)!.delete(id);
    walk.release();
    if (walk.isView) this.releaseView(walk.viewRecords);
    this.deps.metrics.activeSyncSessions.dec();
    if (peer.isOpen()) {
      let ended = this.ended.get(peer);
      if (ended === undefined) {
        ended = new Map();
        this.ended.set(peer, ended);
      }
      // A few are enough: chunks follow their walk's last message closely.
      if (ended.size >= 16) ended.delete(ended.keys().next().value!);
      ended.set(id, this.deps.now());
    }
  }

  /** Gives back a walk view's share of the view budgets. */
  private releaseView(records: number): void {
    this.views--;
    this.viewRecords -= records;
  }
}

/**
 * The writes of a record a client may push as its own (its node id, within the time window):
 * the record itself, or its whole write and field writes that are (the empty write standing
 * for a whole write that is not), or undefined when none is.
 */
function ownPart(
  record: LWWRecord<Value>,
  nodeId: string,
  floor: number,
): LWWRecord<Value> | undefined {
  const mine = ({ millis, nodeId: writer }: Timestamp) =>
    millis >= floor && ownsNodeId(nodeId, writer);
  const wholeMine = !isEmptyWrite(record.timestamp) && mine(record.timestamp);
  if (record.fields === undefined) return wholeMine ? record : undefined;
  let fields: Record<string, FieldWrite> | undefined;
  let all = wholeMine || isEmptyWrite(record.timestamp);
  for (const name in record.fields) {
    const write = record.fields[name]!;
    if (!mine(write.timestamp)) {
      all = false;
      continue;
    }
    fields ??= {};
    fields[name] = write;
  }
  if (all) return record;
  const whole = wholeMine
    ? wholeWriteOf(record)
    : { value: null, timestamp: EMPTY_WRITE_TIMESTAMP };
  if (fields === undefined) return wholeMine ? whole : undefined;
  return withFieldWrites(whole, fields);
}
