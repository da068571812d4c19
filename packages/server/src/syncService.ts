import {
  encodeMessage,
  fittedChunks,
  fromSyncWire,
  fromWireEntry,
  HLC,
  LWWMap,
  type MessageOf,
  recordsUnder,
  rootBytes,
  type SyncAnswer,
  type SyncMessage,
  type SyncReplica,
  SyncSession,
  toSyncWire,
  toWireEntry,
  ValidationError,
  type Value,
  type WireEntry,
} from '@topgun/core';
import type { FastifyBaseLogger } from 'fastify';
import type { MapGrid } from './mapGrid.js';
import type { ServerMetrics } from './metrics.js';
import { ownsNodeId } from './nodeOwnership.js';
import type { Peer } from './peer.js';
import type { Permissions } from './permissions.js';
import type { Storage } from './storage/storage.js';
import type { WritePipeline } from './writePipeline.js';

interface ActiveWalk {
  readonly session: SyncSession<Value>;
  readonly replica: SyncReplica<Value>;
  /** Server time when the walk started: what the client may store as its last sync. */
  readonly startedAt: number;
}

/**
 * Serves Merkle walks (`specifications/merkle-sync.md`): one `SyncSession` per (client,
 * map, session number), bulk transfers streamed in bounded chunks with back-pressure, a
 * reset for clients whose last sync predates tombstone pruning.
 */
export class SyncService {
  private readonly walks = new Map<Peer, Map<string, ActiveWalk>>();

  constructor(
    private readonly deps: {
      readonly grid: MapGrid;
      readonly storage: Storage;
      readonly permissions: Permissions;
      readonly pipeline: WritePipeline;
      readonly metrics: ServerMetrics;
      readonly logger: FastifyBaseLogger;
      readonly nodeId: string;
      readonly chunkRecords: number;
      readonly maxFrameBytes: number;
      readonly now: () => number;
    },
  ) {}

  /** Handles a `sync` message. */
  async onSync(peer: Peer, message: MessageOf<'sync'>): Promise<void> {
    const id = `${message.map}\u0000${message.session}`;
    const walks = this.walks.get(peer) ?? new Map<string, ActiveWalk>();
    this.walks.set(peer, walks);
    let walk = walks.get(id);
    if (walk === undefined) {
      const started = await this.open(peer, message);
      if (started === undefined) return;
      walk = started;
      walks.set(id, walk);
      this.deps.metrics.syncSessions.inc();
      this.deps.metrics.activeSyncSessions.inc();
    }

    const incoming = fromSyncWire<Value>(message);
    if (incoming.records.length > 0) await this.acceptClientRecords(peer, message.map, incoming);
    let answer: SyncAnswer<Value>;
    try {
      answer = walk.session.receive(incoming);
    } catch (error) {
      this.end(peer, id);
      if (!(error instanceof ValidationError)) throw error;
      peer.send({
        type: 'sync_error',
        map: message.map,
        session: message.session,
        code: 'invalid',
        message: error.message.slice(0, 1024),
      });
      return;
    }
    if (answer.message === undefined && answer.bulkPaths.length === 0) {
      this.finish(peer, message.map, message.session, walk);
      return;
    }
    if (answer.message !== undefined)
      peer.send(toSyncWire(message.map, message.session, answer.message));
    if (answer.bulkPaths.length > 0)
      await this.sendBulk(peer, message.map, message.session, walk.replica, answer.bulkPaths);
    if (answer.message === undefined) this.finish(peer, message.map, message.session, walk);
  }

  /**
   * Handles a bulk chunk the client sends in a walk (records the server lacked entirely). The
   * walk may already have ended on this side (the chunks follow the client's last `sync`), and
   * the records are writes like any other, so they are taken either way.
   */
  async onClientRecords(peer: Peer, message: MessageOf<'sync_records'>): Promise<void> {
    if (message.records.length === 0) return;
    const records = message.records.map((entry) => fromWireEntry<Value>(entry));
    await this.acceptClientRecords(peer, message.map, { records });
  }

  /** Handles the client's `sync_done`: answers with the server's, so the client learns `syncedAt`. */
  onSyncDone(peer: Peer, message: MessageOf<'sync_done'>): void {
    const id = `${message.map}\u0000${message.session}`;
    const walk = this.walks.get(peer)?.get(id);
    if (walk === undefined) return;
    this.finish(peer, message.map, message.session, walk);
  }

  /** Forgets every walk of a client. */
  removePeer(peer: Peer): void {
    const walks = this.walks.get(peer);
    if (walks !== undefined) this.deps.metrics.activeSyncSessions.dec(walks.size);
    this.walks.delete(peer);
  }

  private async open(peer: Peer, message: MessageOf<'sync'>): Promise<ActiveWalk | undefined> {
    const { permissions, storage, grid } = this.deps;
    const fail = (code: 'permission' | 'unavailable', text: string) => {
      peer.send({
        type: 'sync_error',
        map: message.map,
        session: message.session,
        code,
        message: text,
      });
      return undefined;
    };
    if (!permissions.canReadMap(peer.user, message.map))
      return fail('permission', `reading ${message.map} is not allowed`);
    let map: LWWMap<Value>;
    try {
      if (message.lastSync !== undefined) {
        const prunedAt = await storage.prunedAt(message.map);
        if (prunedAt !== undefined && prunedAt > message.lastSync) {
          peer.send({
            type: 'sync_reset',
            map: message.map,
            session: message.session,
            reason: 'pruned',
          });
          return undefined;
        }
      }
      map = await grid.get(message.map);
    } catch (error) {
      this.deps.logger.warn({ err: error, map: message.map }, 'sync refused: storage unavailable');
      return fail('unavailable', 'storage is unavailable, retry later');
    }
    peer.syncedMaps.add(message.map);
    const replica = permissions.hasRecordLevelReads(message.map)
      ? this.readableView(peer, message.map, map)
      : map;
    return { session: new SyncSession(replica), replica, startedAt: this.deps.now() };
  }

  /**
   * A walk over a map with record-level read rules compares against only what the client
   * may read: a tree built for this walk from the readable records.
   */
  private readableView(peer: Peer, mapName: string, map: LWWMap<Value>): SyncReplica<Value> {
    const view = new LWWMap<Value>(
      new HLC({ nodeId: this.deps.nodeId, maxDriftMs: Number.POSITIVE_INFINITY }),
    );
    for (const [key, record] of map.allRecords()) {
      if (
        record.value === null ||
        this.deps.permissions.canReadRecord(peer.user, mapName, key, record.value)
      ) {
        view.merge(key, record);
      }
    }
    return view;
  }

  /**
   * Records a client pushes during a walk are writes like any other: they go through the
   * write pipeline (node id, drift, permissions, commit). Rejected ones are simply not
   * merged; the client's outbox reports them through its own ops.
   */
  private async acceptClientRecords(
    peer: Peer,
    map: string,
    incoming: Pick<SyncMessage<Value>, 'records'>,
  ): Promise<void> {
    const ops = incoming.records
      .filter(([, record]) => ownsNodeId(peer.nodeId, record.timestamp.nodeId))
      .map(([key, record], index) => ({ id: index, map, entry: toWireEntry(key, record) }));
    if (ops.length > 0) await this.deps.pipeline.submit(peer, ops);
  }

  private async sendBulk(
    peer: Peer,
    map: string,
    session: number,
    replica: SyncReplica<Value>,
    paths: ReadonlyArray<readonly number[]>,
  ): Promise<void> {
    const total = paths.reduce((sum, path) => sum + replica.merkleTree.node(path).count, 0);
    const { chunkRecords, maxFrameBytes } = this.deps;
    let first = true;
    const encode = (records: readonly WireEntry[], last: boolean) => {
      const frame = encodeMessage({
        type: 'sync_records',
        map,
        session,
        records: [...records],
        ...(first ? { total } : {}),
        last,
      });
      return frame;
    };
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
        await peer.drained();
      }
    };
    let pending: WireEntry[] = [];
    for (const path of paths) {
      for (const [key, record] of recordsUnder(replica, path)) {
        pending.push(toWireEntry(key, record));
        if (pending.length >= chunkRecords) {
          if (!peer.isOpen()) return;
          await sendChunk(pending);
          pending = [];
        }
      }
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
    if (this.walks.get(peer)?.delete(id)) this.deps.metrics.activeSyncSessions.dec();
  }
}
