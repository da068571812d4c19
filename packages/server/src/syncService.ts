import {
  type BulkItem,
  bulkRecords,
  bulkSize,
  compareRecords,
  encodeMessage,
  fittedChunks,
  fromSyncWire,
  fromWireEntry,
  HLC,
  LWWMap,
  type LWWRecord,
  type MessageOf,
  rootBytes,
  type SyncAnswer,
  type SyncReplica,
  SyncSession,
  toSyncWire,
  toWireEntry,
  ValidationError,
  type Value,
  type WireEntry,
} from '@topgun/core';
import type { FastifyBaseLogger } from 'fastify';
import { sendRevoke } from './changeFanout.js';
import type { WorkSlicer } from './cpuBudget.js';
import type { GridRecord, MapGrid } from './mapGrid.js';
import type { ServerMetrics } from './metrics.js';
import { ownsNodeId } from './nodeOwnership.js';
import type { ServerLimits } from './options.js';
import type { Peer } from './peer.js';
import type { Permissions } from './permissions.js';
import type { Storage } from './storage/storage.js';
import type { SubmitOptions, WritePipeline } from './writePipeline.js';

interface ActiveWalk {
  readonly map: string;
  readonly session: SyncSession<Value>;
  readonly replica: SyncReplica<Value>;
  /** Whether the replica is a view built for this walk (counted against the view budget). */
  readonly isView: boolean;
  /** Server time when the walk started: what the client may store as its last sync. */
  readonly startedAt: number;
  /** Server time of the walk's last message, to end walks a client abandoned. */
  lastActive: number;
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
  /** Walks of each client being opened (loading their map or view): they count as open. */
  private readonly opening = new Map<Peer, number>();
  private views = 0;

  constructor(
    private readonly deps: {
      readonly grid: MapGrid;
      readonly storage: Storage;
      readonly permissions: Permissions;
      readonly pipeline: WritePipeline;
      readonly metrics: ServerMetrics;
      readonly logger: FastifyBaseLogger;
      readonly nodeId: string;
      readonly limits: Pick<
        ServerLimits,
        | 'chunkRecords'
        | 'maxFrameBytes'
        | 'maxWalksPerConnection'
        | 'maxWalkViews'
        | 'walkMessageBytes'
        | 'walkIdleMs'
      >;
      /** Writes older than this are refused, so a client synced this long after a pruning horizon has every deletion before it. */
      readonly maxWriteAgeMs: number;
      readonly now: () => number;
    },
  ) {}

  /** Whether a walk of `map` is in progress (the grid keeps such maps loaded). */
  isWalked(map: string): boolean {
    for (const walks of this.walks.values())
      for (const walk of walks.values()) if (walk.map === map) return true;
    return false;
  }

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
          'limit',
          `at most ${this.deps.limits.maxWalksPerConnection} walks at once per connection`,
        );
        return;
      }
      // The slot is taken before the first await: openings sent in a burst run side by side.
      this.opening.set(peer, opening + 1);
      let started: ActiveWalk | undefined;
      try {
        started = await this.open(peer, message, slicer);
      } finally {
        const left = (this.opening.get(peer) ?? 1) - 1;
        if (left > 0) this.opening.set(peer, left);
        else this.opening.delete(peer);
      }
      if (started === undefined) return;
      if (!peer.isOpen()) {
        // Gone while its walk was being opened: nothing will end the walk, so release it now.
        if (started.isView) this.views--;
        return;
      }
      walk = started;
      walks.set(id, walk);
      this.deps.metrics.syncSessions.inc();
      this.deps.metrics.activeSyncSessions.inc();
    }
    walk.lastActive = this.deps.now();

    const incoming = fromSyncWire<Value>(message);
    if (incoming.records.length > 0)
      await slicer.io(this.acceptClientRecords(peer, message.map, incoming.records, options));
    let answer: SyncAnswer<Value>;
    try {
      answer = walk.session.receive(incoming);
    } catch (error) {
      this.end(peer, id);
      if (!(error instanceof ValidationError)) throw error;
      this.fail(peer, message, 'invalid', error.message);
      return;
    }
    if (answer.message === undefined && answer.bulk.length === 0) {
      this.finish(peer, message.map, message.session, walk);
      return;
    }
    if (answer.message !== undefined)
      peer.send(toSyncWire(message.map, message.session, answer.message));
    if (answer.bulk.length > 0)
      await this.sendBulk(peer, message.map, message.session, walk.replica, answer.bulk, slicer);
    if (answer.message === undefined) this.finish(peer, message.map, message.session, walk);
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
  }

  /** Forgets every walk of a client. */
  removePeer(peer: Peer): void {
    for (const id of [...(this.walks.get(peer)?.keys() ?? [])]) this.end(peer, id);
    this.walks.delete(peer);
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
  ): Promise<ActiveWalk | undefined> {
    const { permissions, storage, grid, limits } = this.deps;
    if (!permissions.canReadMap(peer.user, message.map))
      return this.fail(peer, message, 'permission', `reading ${message.map} is not allowed`);
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
            reason: 'pruned',
          });
          return undefined;
        }
      }
      map = await slicer.io(grid.get(message.map));
    } catch (error) {
      this.deps.logger.warn({ err: error, map: message.map }, 'sync refused: storage unavailable');
      return this.fail(peer, message, 'unavailable', 'storage is unavailable, retry later');
    }
    peer.syncedMaps.add(message.map);
    const isView = permissions.hasRecordLevelReads(message.map);
    let replica: SyncReplica<Value> = map;
    if (isView) {
      if (this.views >= limits.maxWalkViews) {
        this.deps.metrics.budgetExceeded.inc({ budget: 'walk_views' });
        return this.fail(
          peer,
          message,
          'limit',
          'the server is busy with other walks: retry later',
        );
      }
      this.views++;
      try {
        replica = await this.visibleView(peer, message.map, map, slicer);
      } catch (error) {
        this.views--;
        throw error;
      }
    }
    const session = new SyncSession(replica, { maxMessageBytes: limits.walkMessageBytes });
    const now = this.deps.now();
    return { map: message.map, session, replica, isView, startedAt: now, lastActive: now };
  }

  /**
   * A walk over a map with record-level read rules compares against only what the client
   * may see: a tree built for this walk from those records, in slices.
   */
  private async visibleView(
    peer: Peer,
    mapName: string,
    map: LWWMap<Value>,
    slicer: WorkSlicer,
  ): Promise<SyncReplica<Value>> {
    const view = new LWWMap<Value>(
      new HLC({ nodeId: this.deps.nodeId, maxDriftMs: Number.POSITIVE_INFINITY }),
    );
    const visible: Array<readonly [string, LWWRecord<Value>]> = [];
    let since = 0;
    for (const [key, record] of map.allRecords()) {
      if (this.deps.permissions.canSee(peer.user, mapName, key, record as GridRecord))
        visible.push([key, record]);
      if (++since >= 256) {
        since = 0;
        if (slicer.due()) {
          view.loadRecords(visible.splice(0));
          await slicer.pause();
        }
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
    const ops: MessageOf<'ops'>['ops'] = [];
    const dropped: string[] = [];
    const map = this.deps.grid.isLoaded(mapName) ? await this.deps.grid.get(mapName) : undefined;
    // Records older than the write floor may be ones this server pruned since the client got
    // them: those the client must drop too, or its walks would never converge.
    const floor = this.deps.now() - this.deps.maxWriteAgeMs;
    let horizon: number | undefined | null = null;
    for (const [index, [key, record]] of records.entries()) {
      if (
        record.timestamp.millis < floor &&
        (record.value === null || record.ttlMs !== undefined)
      ) {
        horizon ??= (await this.deps.storage.pruneMark(mapName).catch(() => undefined))
          ?.horizonMillis;
        if (horizon !== undefined && isPruned(record, horizon)) {
          dropped.push(key);
          continue;
        }
      }
      if (ownsNodeId(peer.nodeId, record.timestamp.nodeId)) {
        ops.push({ id: index, map: mapName, entry: toWireEntry(key, record) });
        continue;
      }
      const stored = map?.getRecord(key) as GridRecord | undefined;
      if (
        stored !== undefined &&
        compareRecords(stored, record) >= 0 &&
        !this.deps.permissions.canSee(peer.user, mapName, key, stored)
      ) {
        dropped.push(key);
      }
    }
    if (dropped.length > 0) sendRevoke(peer, mapName, dropped);
    if (ops.length === 0) return;
    const outcome = await this.deps.pipeline.submit(peer, ops, options);
    for (const [name, keys] of outcome.revoked) sendRevoke(peer, name, keys);
  }

  private async sendBulk(
    peer: Peer,
    map: string,
    session: number,
    replica: SyncReplica<Value>,
    bulk: readonly BulkItem[],
    slicer: WorkSlicer,
  ): Promise<void> {
    const total = bulkSize(replica, bulk);
    const { chunkRecords, maxFrameBytes } = this.deps.limits;
    let first = true;
    const encode = (records: readonly WireEntry[], last: boolean) =>
      encodeMessage({
        type: 'sync_records',
        map,
        session,
        records: [...records],
        ...(first ? { total } : {}),
        last,
      });
    const sendChunk = async (records: WireEntry[]) => {
      for (const { frame } of fittedChunks(
        records,
        (chunk) => encode(chunk, false),
        maxFrameBytes,
        chunkRecords,
      )) {
        peer.sendEncoded(frame);
        first = false;
        // Back-pressure: never queue more than the client has read.
        await slicer.io(peer.drained());
      }
    };
    let pending: WireEntry[] = [];
    for (const [key, record] of bulkRecords(replica, bulk)) {
      pending.push(toWireEntry(key, record));
      if (pending.length >= chunkRecords) {
        if (!peer.isOpen()) return;
        await sendChunk(pending);
        pending = [];
      }
      if (pending.length % 256 === 0 && slicer.due()) await slicer.pause();
    }
    // The last chunk carries `last: true` (an empty one when the records ended on a boundary).
    const tail = [
      ...fittedChunks(pending, (chunk) => encode(chunk, false), maxFrameBytes, chunkRecords),
    ];
    for (let index = 0; index < tail.length - 1; index++) {
      peer.sendEncoded(tail[index]!.frame);
      first = false;
    }
    peer.sendEncoded(encode(tail.at(-1)?.chunk ?? [], true));
  }

  private finish(peer: Peer, map: string, session: number, walk: ActiveWalk): void {
    peer.send({
      type: 'sync_done',
      map,
      session,
      root: rootBytes(walk.replica.merkleTree),
      syncedAt: walk.startedAt,
    });
    this.end(peer, `${map}\u0000${session}`);
  }

  private end(peer: Peer, id: string): void {
    const walk = this.walks.get(peer)?.get(id);
    if (walk === undefined) return;
    this.walks.get(peer)!.delete(id);
    if (walk.isView) this.views--;
    this.deps.metrics.activeSyncSessions.dec();
  }
}

/** Whether pruning at `horizonMillis` deletes a record: an older tombstone, or an expired one. */
function isPruned(record: LWWRecord<Value>, horizonMillis: number): boolean {
  if (record.value === null) return record.timestamp.millis < horizonMillis;
  return record.ttlMs !== undefined && record.timestamp.millis + record.ttlMs < horizonMillis;
}
