import {
  ClockDriftError,
  compareTimestamps,
  fromWireEntry,
  type HLC,
  type LWWMap,
  type LWWRecord,
  type MessageOf,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import type { FastifyBaseLogger } from 'fastify';
import type { ChangeFanout, CommittedChange } from './changeFanout.js';
import type { LiveQueryHub } from './liveQueryHub.js';
import type { MapGrid } from './mapGrid.js';
import type { ServerMetrics } from './metrics.js';
import { ownsNodeId } from './nodeOwnership.js';
import type { Peer } from './peer.js';
import type { Permissions } from './permissions.js';
import type { RecordWrite, Storage } from './storage/storage.js';

type Rejection = MessageOf<'reject'>['rejections'][number];
type Op = MessageOf<'ops'>['ops'][number];

/** What became of one batch of ops. */
export interface BatchOutcome {
  /** Ops committed (including superseded ones). */
  readonly acked: number[];
  /** Ops among `acked` that were older than the stored record. */
  readonly superseded: number[];
  readonly rejected: Rejection[];
}

/** A queued batch, collecting its outcome as its group commits. */
interface Batch extends BatchOutcome {
  readonly peer: Peer;
  readonly ops: readonly Op[];
  readonly resolve: (outcome: BatchOutcome) => void;
}

/** An admitted op: also the storage write of its record. */
interface Candidate extends RecordWrite {
  readonly batch: Batch;
  readonly op: Op;
}

/**
 * Applies writes: validation, node-id ownership, clock drift and permissions per op, then
 * every admitted op of every batch waiting is persisted in one transaction (group commit),
 * merged into the grid after COMMIT, acknowledged, and fanned out. Nothing is acknowledged,
 * merged or broadcast before it is committed.
 */
export class WritePipeline {
  private readonly queue: Batch[] = [];
  private active = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly deps: {
      readonly storage: Storage;
      readonly grid: MapGrid;
      readonly permissions: Permissions;
      readonly fanout: ChangeFanout;
      readonly liveQueries: LiveQueryHub;
      readonly metrics: ServerMetrics;
      readonly clock: HLC;
      readonly logger: FastifyBaseLogger;
      readonly maxGroupOps: number;
      /** Group transactions in flight at once (the storage's useful concurrency). */
      readonly concurrency: number;
    },
  ) {}

  /** Queues a batch; resolves once every op is committed or rejected. */
  submit(peer: Peer, ops: readonly Op[]): Promise<BatchOutcome> {
    return new Promise((resolve) => {
      this.queue.push({ peer, ops, resolve, acked: [], superseded: [], rejected: [] });
      this.pump();
    });
  }

  /** Resolves when every queued batch has been answered. */
  idle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Starts group transactions while there is work and capacity. Batches arriving while
   * transactions are in flight wait and form the next group: the busier the server, the
   * larger the groups, so throughput grows with load instead of latency.
   */
  private pump(): void {
    while (this.active < this.deps.concurrency && this.queue.length > 0) {
      const group: Batch[] = [];
      let size = 0;
      while (
        this.queue.length > 0 &&
        (group.length === 0 || size + this.queue[0]!.ops.length <= this.deps.maxGroupOps)
      ) {
        const batch = this.queue.shift()!;
        group.push(batch);
        size += batch.ops.length;
      }
      this.active++;
      this.commitGroup(group)
        .catch((error) => {
          // Never leave a batch unanswered, whatever went wrong.
          this.deps.logger.error({ err: error }, 'write group failed');
          for (const batch of group)
            batch.resolve(
              rejectAll(batch.ops, 'unavailable', 'the write failed on the server', true),
            );
        })
        .finally(() => {
          this.active--;
          this.pump();
          if (this.active === 0 && this.queue.length === 0) {
            const waiters = this.idleWaiters;
            this.idleWaiters = [];
            for (const waiter of waiters) waiter();
          }
        });
    }
  }

  private async commitGroup(group: readonly Batch[]): Promise<void> {
    const { grid, storage, metrics } = this.deps;
    const candidates: Candidate[] = [];

    // Every map the group touches, loaded once (undefined when storage could not load it).
    const maps = new Map<string, LWWMap<Value> | undefined>();
    for (const batch of group) for (const op of batch.ops) maps.set(op.map, undefined);
    for (const name of maps.keys()) maps.set(name, await grid.get(name).catch(() => undefined));

    for (const batch of group) {
      for (const op of batch.ops) {
        const admitted = this.admit(batch.peer, op, maps.get(op.map));
        if ('reason' in admitted) batch.rejected.push(admitted);
        else
          candidates.push({
            batch,
            op,
            map: op.map,
            key: op.entry[0],
            record: admitted.record,
            serializedTimestamp: op.entry[1],
          });
      }
    }

    let stored: boolean[] = [];
    if (candidates.length > 0) {
      try {
        stored = await metrics.timeStorage('write_records', () => storage.writeRecords(candidates));
      } catch (error) {
        this.deps.logger.warn({ err: error }, 'storage unavailable: writes rejected');
        for (const candidate of candidates) {
          candidate.batch.rejected.push({
            id: candidate.op.id,
            reason: 'unavailable',
            message: 'storage is unavailable, retry later',
            retryable: true,
          });
        }
        candidates.length = 0;
      }
    }

    // After COMMIT: merge what was stored, then settle the rest against the grid.
    const changesByMap = new Map<string, Array<CommittedChange & { readonly origin: Peer }>>();
    const unstored: Candidate[] = [];
    for (let index = 0; index < candidates.length; index++) {
      const candidate = candidates[index]!;
      if (!stored[index]) {
        unstored.push(candidate);
        continue;
      }
      candidate.batch.acked.push(candidate.op.id);
      let changes = changesByMap.get(candidate.op.map);
      if (changes === undefined) {
        changes = [];
        changesByMap.set(candidate.op.map, changes);
      }
      // The op's wire entry is the record's wire form: it is not encoded again.
      changes.push({
        key: candidate.key,
        record: candidate.record,
        entry: candidate.op.entry,
        origin: candidate.batch.peer,
      });
    }
    // Into the grid in bulk: these records were validated when their frames were decoded
    // and are committed, so the per-record checks of `merge` would only repeat work.
    for (const [name, changes] of changesByMap) {
      maps.get(name)!.loadRecords(changes.map((change) => [change.key, change.record] as const));
    }
    for (const candidate of unstored) {
      const key = candidate.op.entry[0];
      const map = maps.get(candidate.op.map)!;
      let current = map.getRecord(key);
      if (
        current === undefined ||
        compareTimestamps(current.timestamp, candidate.record.timestamp) < 0
      ) {
        // Another process stored something newer: read it back into the grid.
        const [fresh] = await storage.getRecords(candidate.op.map, [key]).catch(() => []);
        if (fresh !== undefined) {
          map.merge(key, fresh.record);
          current = fresh.record;
        }
      }
      candidate.batch.acked.push(candidate.op.id);
      // The same write sent again (a lost ack) is a plain ack; an older one is superseded.
      if (
        current === undefined ||
        compareTimestamps(current.timestamp, candidate.record.timestamp) !== 0
      ) {
        candidate.batch.superseded.push(candidate.op.id);
      }
    }

    for (const batch of group) {
      const { acked, superseded, rejected } = batch;
      metrics.opsApplied.inc(acked.length);
      for (const rejection of rejected) metrics.opsRejected.inc({ reason: rejection.reason });
      batch.resolve({ acked, superseded, rejected });
    }
    for (const [map, changes] of changesByMap) {
      // Each client's own writes are not echoed back to it.
      const byOrigin = new Map<Peer, CommittedChange[]>();
      for (const change of changes) {
        const list = byOrigin.get(change.origin) ?? [];
        list.push(change);
        byOrigin.set(change.origin, list);
      }
      for (const [origin, list] of byOrigin) {
        this.deps.fanout.publish(map, list, origin);
        await this.deps.liveQueries.onChanges(map, list, origin);
      }
    }
  }

  /** Checks one op: its record when it may be written, otherwise why it is rejected. */
  private admit(
    peer: Peer,
    op: Op,
    map: LWWMap<Value> | undefined,
  ): Rejection | { readonly record: LWWRecord<Value> } {
    const { permissions, clock } = this.deps;
    const [key, parsed] = fromWireEntry<Value>(op.entry);
    if (!ownsNodeId(peer.nodeId, parsed.timestamp.nodeId)) {
      return reject(
        op,
        'node_id',
        `the timestamp's node id ${parsed.timestamp.nodeId} is not this connection's (${peer.nodeId})`,
      );
    }
    try {
      clock.assertWithinDrift(parsed.timestamp);
    } catch (error) {
      if (error instanceof ClockDriftError) return reject(op, 'clock_drift', error.message);
      throw error;
    }
    if (map === undefined) {
      return {
        id: op.id,
        reason: 'unavailable',
        message: 'storage is unavailable, retry later',
        retryable: true,
      };
    }
    const stored = map.getRecord(key);
    const previous = stored === undefined || stored.value === null ? undefined : stored.value;
    if (
      !permissions.canWrite({ user: peer.user, map: op.map, key, value: parsed.value, previous })
    ) {
      const readable =
        permissions.canReadMap(peer.user, op.map) &&
        (stored === undefined ||
          stored.value === null ||
          !permissions.hasRecordLevelReads(op.map) ||
          permissions.canReadRecord(peer.user, op.map, key, stored.value));
      // The client rolls back to the server's record, if it may see it.
      const current: WireEntry | null | undefined = readable
        ? stored === undefined
          ? null
          : toWireEntry(key, stored)
        : undefined;
      return {
        ...reject(op, 'permission', `writing ${op.map}/${key} is not allowed`),
        ...(current === undefined ? {} : { current }),
      };
    }
    // The grid keeps the record: its node id is the connection's own string, shared by every
    // record the connection writes, instead of one more string per record.
    const { millis, counter, nodeId } = parsed.timestamp;
    if (nodeId !== peer.nodeId) return { record: parsed };
    return { record: { ...parsed, timestamp: { millis, counter, nodeId: peer.nodeId } } };
  }
}

function reject(op: Op, reason: Rejection['reason'], message: string): Rejection {
  return { id: op.id, reason, message: message.slice(0, 1024), retryable: false };
}

/** Rejects every op of a batch for one reason. */
export function rejectAll(
  ops: readonly Op[],
  reason: Rejection['reason'],
  message: string,
  retryable: boolean,
): BatchOutcome {
  return {
    acked: [],
    superseded: [],
    rejected: ops.map((op) => ({ id: op.id, reason, message, retryable })),
  };
}
