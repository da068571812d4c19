import {
  assertWithinDrift,
  ClockDriftError,
  fromWireEntry,
  type HLC,
  isEmptyWrite,
  type LWWMap,
  type LWWRecord,
  type MessageOf,
  mergeRecords,
  type Timestamp,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import type { FastifyBaseLogger } from 'fastify';
import type { CommittedChange } from './changeFanout.js';
import { type GridRecord, MAP_LOADS_SPENT, type MapGrid } from './mapGrid.js';
import { holdsWrite, mergeStored } from './mergeStored.js';
import type { ServerMetrics } from './metrics.js';
import { ownsNodeId } from './nodeOwnership.js';
import type { Peer } from './peer.js';
import type { Permissions, ReadFilter, WriteContext } from './permissions.js';
import type { RecordWrite, Storage, WriteOutcome } from './storage/storage.js';
import { recordVersion } from './storage/storedFields.js';

type Rejection = MessageOf<'reject'>['rejections'][number];
type Op = MessageOf<'ops'>['ops'][number];

/** What became of one batch of ops. */
export interface BatchOutcome {
  /** Ops committed (including superseded ones). */
  readonly acked: number[];
  /** Ops among `acked` that were not applied: the stored record won (acknowledged, not applied). */
  readonly superseded: number[];
  readonly rejected: Rejection[];
  /** Per map, keys the writer must drop from its replica: it may not see their records. */
  readonly revoked: ReadonlyMap<string, ReadonlySet<string>>;
}

/** Options of {@link WritePipeline.submit}. */
export interface SubmitOptions {
  /**
   * Asked before loading a map into the grid for this batch (a map no one used lately):
   * false refuses the op as rate-limited instead. Default: always allowed.
   */
  readonly mayLoadMap?: () => boolean;
}

/** Changes of one map that one group committed, written by one client (or by none). */
export interface CommittedChanges {
  readonly map: string;
  /** In commit order; each is still the record the grid holds when listeners hear of it. */
  readonly changes: readonly CommittedChange[];
  /** The client whose writes these are (not to be echoed back to it); undefined for none. */
  readonly origin: Peer | undefined;
}

/** Hears of committed changes; the next group's changes wait until its promise settles. */
export type CommittedListener = (committed: CommittedChanges) => void | Promise<void>;

/** No keys to revoke: shared by every batch until one has some. */
const NO_REVOKES: ReadonlyMap<string, ReadonlySet<string>> = new Map();

/** A queued batch, collecting its outcome as its group commits. */
interface Batch extends Omit<BatchOutcome, 'revoked'> {
  revoked: Map<string, Set<string>>;
  readonly peer: Peer;
  readonly ops: readonly Op[];
  readonly options: SubmitOptions;
  readonly resolve: (outcome: BatchOutcome) => void;
  /** What the writer may read, per map, asked once per batch and map. */
  readonly filters: Map<string, ReadFilter | null>;
}

/** What a group committed, per map: the changes and the map they were merged into. */
type GroupChanges = Map<string, { readonly map: LWWMap<Value>; readonly changes: OriginChange[] }>;

/** A committed change and the client that wrote it, if one did. */
type OriginChange = CommittedChange & { readonly origin?: Peer };

/** An admitted op: also the storage write of its record. */
interface Candidate extends RecordWrite {
  readonly batch: Batch;
  readonly op: Op;
}

/** Rounds of conditional writes that lost their condition to a concurrent write. */
const MAX_WRITE_ROUNDS = 4;

/**
 * Applies writes: validation, node-id ownership, the time window and permissions per op, then
 * every admitted op of every batch waiting is persisted in one statement (group commit),
 * merged into the grid after COMMIT and acknowledged; then the group's commit slot is free
 * for the next group, and listeners hear of its changes (`onCommitted`: fan-out, live
 * queries), one group after another in the order they committed. Nothing is acknowledged,
 * merged or broadcast before it is committed, and every change the grid learns from storage
 * is broadcast, whichever path it came by.
 *
 * A map whose write rule is a function has its rule decided with the commit: each write is
 * conditional on the stored record it was evaluated against, and one that finds another
 * record there is evaluated again against that one. Answers describe records as the writer
 * may see them: a record it may not read is, in every answer, a record that is not there.
 */
export class WritePipeline {
  private readonly queue: Batch[] = [];
  /** Groups committing (holding a commit slot). */
  private active = 0;
  /** Groups committed whose listeners have not all finished. */
  private notifying = 0;
  /** Where each committed group's notification waits for the previous one's. */
  private notified: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<CommittedListener>();
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly deps: {
      readonly storage: Storage;
      readonly grid: MapGrid;
      readonly permissions: Permissions;
      readonly metrics: ServerMetrics;
      readonly clock: HLC;
      readonly logger: FastifyBaseLogger;
      readonly maxGroupOps: number;
      /** Group transactions in flight at once (the storage's useful concurrency). */
      readonly concurrency: number;
      /** Writes stamped earlier than this many ms before server time are refused (`TOO_OLD`). */
      readonly maxWriteAgeMs: number;
      readonly now: () => number;
    },
  ) {}

  /** Queues a batch; resolves once every op is committed or rejected. */
  submit(peer: Peer, ops: readonly Op[], options: SubmitOptions = {}): Promise<BatchOutcome> {
    return new Promise((resolve) => {
      this.queue.push({
        peer,
        ops,
        options,
        resolve,
        acked: [],
        superseded: [],
        rejected: [],
        revoked: NO_REVOKES as Map<string, Set<string>>,
        filters: new Map(),
      });
      this.pump();
    });
  }

  /**
   * Calls `listener` with the changes of every group committed from now on, once the group's
   * batches are answered and its commit slot is free: listeners' work never delays commits.
   * Groups are heard of one after another in the order they committed, each only once the
   * previous one's listeners are done. Returns a function that removes the listener.
   */
  onCommitted(listener: CommittedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Resolves once the listeners have heard of every group committed so far: what the grid
   * holds from this process's writes has then been published (a cursor read then covers it).
   */
  published(): Promise<void> {
    return this.notified;
  }

  /** Resolves when every queued batch has been answered and its listeners are done. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.active === 0 && this.notifying === 0 && this.queue.length === 0;
  }

  /**
   * Starts group transactions while there is work and capacity. Batches arriving while
   * transactions are in flight wait and form the next group: the busier the server, the
   * larger the groups, so throughput grows with load instead of latency. Committed groups
   * waiting for their listeners hold their maps and changes: at most twice the concurrency
   * of them, so slow listeners hold commits back rather than let memory grow.
   */
  private pump(): void {
    while (
      this.active < this.deps.concurrency &&
      this.notifying < 2 * this.deps.concurrency &&
      this.queue.length > 0
    ) {
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
      const releases: Array<() => void> = [];
      void this.commitGroup(group, releases)
        .catch((error): GroupChanges => {
          // Never leave a batch unanswered, whatever went wrong.
          this.deps.logger.error({ err: error }, 'write group failed');
          for (const batch of group)
            batch.resolve(
              rejectAll(batch.ops, 'UNAVAILABLE', 'the write failed on the server', true),
            );
          return new Map();
        })
        .then((changes) => {
          this.active--;
          this.notifying++;
          // Taken in turn now, before the next group can commit: commit order is kept.
          const notification = this.notified
            .then(() => this.notify(changes))
            .catch((error) => this.deps.logger.error({ err: error }, 'commit notification failed'));
          this.notified = notification;
          this.pump();
          return notification;
        })
        .finally(() => {
          // The group's maps stay in the grid until its listeners are done with them.
          for (const release of releases) release();
          this.notifying--;
          this.pump();
          if (this.isIdle()) {
            const waiters = this.idleWaiters;
            this.idleWaiters = [];
            for (const waiter of waiters) waiter();
          }
        });
    }
  }

  /** Tells the listeners of a group's changes, per map and per client that wrote them. */
  private async notify(changes: GroupChanges): Promise<void> {
    for (const [name, { map, changes: list }] of changes) {
      // Each client's own writes are not echoed back to it.
      const byOrigin = new Map<Peer | undefined, CommittedChange[]>();
      for (let change of list) {
        // Groups commit side by side: another may have stored a newer record of the key since
        // (or this very one, read back). What goes out is what the grid holds, still against
        // this change's previous record: a listener that could see that one may have to
        // forget the key, which the newer change, measured against this one, would not say.
        const current = map.getRecord(change.key) as GridRecord | undefined;
        if (current === undefined) continue;
        if (current !== change.record)
          change = { ...change, record: current, entry: toWireEntry(change.key, current) };
        const forOrigin = byOrigin.get(change.origin);
        if (forOrigin === undefined) byOrigin.set(change.origin, [change]);
        else forOrigin.push(change);
      }
      for (const [origin, forOrigin] of byOrigin) {
        for (const listener of this.listeners) {
          try {
            await listener({ map: name, changes: forOrigin, origin });
          } catch (error) {
            this.deps.logger.error({ err: error, map: name }, 'a commit listener failed');
          }
        }
      }
    }
  }

  /**
   * Commits a group. The grid keeps each map the group loads until the group is done (the
   * caller calls `releases`): records are merged into the map the group admitted them against.
   */
  private async commitGroup(
    group: readonly Batch[],
    releases: Array<() => void>,
  ): Promise<GroupChanges> {
    const { grid, metrics } = this.deps;
    // 1. What can be refused without the map; the maps the rest need, loaded once each.
    const waiting: Array<{ batch: Batch; op: Op; key: string; record: LWWRecord<Value> }> = [];
    const maps = new Map<string, LWWMap<Value>>();
    const unloaded = new Set<string>();
    for (const batch of group) {
      for (const op of batch.ops) {
        const [key, record] = fromWireEntry<Value>(op.entry);
        const refusal = this.precheck(batch, op, record);
        if (refusal !== undefined) {
          batch.rejected.push(refusal);
          continue;
        }
        if (!maps.has(op.map) && !unloaded.has(op.map)) {
          releases.push(grid.hold(op.map));
          const loading = grid.getWithin(op.map, batch.options.mayLoadMap ?? (() => true));
          if (loading === undefined) {
            batch.rejected.push({
              id: op.id,
              reason: 'RATE_LIMIT',
              message: MAP_LOADS_SPENT,
              retryable: true,
            });
            continue;
          }
          const map = await loading.catch(() => undefined);
          if (map === undefined) unloaded.add(op.map);
          else maps.set(op.map, map);
        }
        waiting.push({ batch, op, key, record });
      }
    }

    // 2. Admission against the grid, then rounds of writes: a conditional write that found
    //    another record than the one its rule saw is admitted again against that one.
    const changes = new Map<string, OriginChange[]>();
    let candidates: Candidate[] = [];
    for (const { batch, op, key, record } of waiting) {
      const candidate = this.admit(batch, op, key, record, maps.get(op.map));
      if (candidate !== undefined) candidates.push(candidate);
    }
    for (let round = 1; candidates.length > 0; round++) {
      const retry = await this.writeRound(candidates, maps, changes);
      candidates = [];
      for (const { batch, op, key, record } of retry) {
        if (round === MAX_WRITE_ROUNDS) {
          batch.rejected.push({
            id: op.id,
            reason: 'UNAVAILABLE',
            message: 'the record kept changing while this write was decided: retry',
            retryable: true,
          });
          continue;
        }
        const candidate = this.admit(batch, op, key, record, maps.get(op.map));
        if (candidate !== undefined) candidates.push(candidate);
      }
    }

    for (const batch of group) {
      metrics.opsApplied.inc(batch.acked.length);
      for (const rejection of batch.rejected) metrics.opsRejected.inc({ reason: rejection.reason });
      batch.resolve(batch);
    }
    const committed: GroupChanges = new Map();
    for (const [name, list] of changes)
      committed.set(name, { map: maps.get(name)!, changes: list });
    return committed;
  }

  /**
   * Writes candidates and settles each: stored, refused, answered from the record that won,
   * or returned to be admitted again (its condition met another record).
   */
  private async writeRound(
    candidates: readonly Candidate[],
    maps: ReadonlyMap<string, LWWMap<Value>>,
    changes: Map<string, OriginChange[]>,
  ): Promise<Candidate[]> {
    const { storage, metrics, logger } = this.deps;
    let outcomes: WriteOutcome[];
    try {
      outcomes = await metrics.timeStorage('write_records', () => storage.writeRecords(candidates));
    } catch (error) {
      logger.warn({ err: error }, 'storage unavailable: writes rejected');
      for (const { batch, op } of candidates) {
        batch.rejected.push({
          id: op.id,
          reason: 'UNAVAILABLE',
          message: 'storage is unavailable, retry later',
          retryable: true,
        });
      }
      return [];
    }

    const addChange = (map: string, change: OriginChange) => {
      let list = changes.get(map);
      if (list === undefined) {
        list = [];
        changes.set(map, list);
      }
      list.push(change);
    };

    // After COMMIT: what was stored goes into the grid in bulk (validated when decoded, and
    // committed, so the per-record checks of `merge` would only repeat work).
    const storedByMap = new Map<string, Array<readonly [string, GridRecord]>>();
    const unstored: Candidate[] = [];
    candidates.forEach((candidate, index) => {
      const outcome = outcomes[index]!;
      const { batch, op } = candidate;
      if (outcome.refused !== undefined) {
        batch.rejected.push({
          id: op.id,
          reason: 'VALIDATION',
          message: outcome.refused,
          retryable: false,
        });
        return;
      }
      if (!outcome.stored) {
        unstored.push(candidate);
        return;
      }
      // Merged with the stored record (field writes): what the database now holds.
      const written = outcome.record ?? candidate.record;
      const record: GridRecord =
        outcome.prior === undefined ? written : { ...written, prior: outcome.prior };
      batch.acked.push(op.id);
      if (!this.mayRead(batch, op.map, candidate.key, record)) revoke(batch, op.map, candidate.key);
      addChange(op.map, {
        key: candidate.key,
        record,
        // The op's wire entry is the record's wire form, unless it was merged: not encoded again.
        entry: outcome.record === undefined ? op.entry : toWireEntry(candidate.key, record),
        // Who could see the record it replaced matters only under record-level read rules:
        // read now, not at admission (another group may have committed in between).
        previous: this.deps.permissions.hasRecordLevelReads(op.map)
          ? maps.get(op.map)!.getRecord(candidate.key)
          : undefined,
        origin: batch.peer,
      });
      let list = storedByMap.get(op.map);
      if (list === undefined) {
        list = [];
        storedByMap.set(op.map, list);
      }
      list.push([candidate.key, record]);
    });
    for (const [name, records] of storedByMap) maps.get(name)!.loadRecords(records);

    // Not stored: the stored record won, or the condition met another record. What the grid
    // does not know yet (written by another process, or by an earlier attempt of this very
    // write whose answer was lost) is read back, merged, and broadcast like any change.
    const stale = new Map<string, Map<string, Candidate[]>>();
    for (const candidate of unstored) {
      const { op, key, record } = candidate;
      const current = maps.get(op.map)!.getRecord(key);
      if (current === undefined || mergeRecords(current, record) !== current) {
        const byKey = stale.get(op.map) ?? new Map<string, Candidate[]>();
        byKey.set(key, [...(byKey.get(key) ?? []), candidate]);
        stale.set(op.map, byKey);
      }
    }
    for (const [name, byKey] of stale) {
      const map = maps.get(name)!;
      const fresh = await storage.getRecords(name, [...byKey.keys()]).catch(() => []);
      for (const change of mergeStored(map, fresh)) {
        // A client whose own write this is already holds it: it is not echoed back to it.
        const writer = byKey
          .get(change.key)!
          .find((candidate) => holdsWrite(change.record, candidate.record));
        addChange(name, writer === undefined ? change : { ...change, origin: writer.batch.peer });
      }
    }

    const retry: Candidate[] = [];
    for (const candidate of unstored) {
      const { batch, op, key, record } = candidate;
      const current = maps.get(op.map)!.getRecord(key) as GridRecord | undefined;
      const wins = current === undefined || mergeRecords(current, record) !== current;
      if (wins && candidate.expected !== undefined) {
        // It would change the record, but the record its rule allowed it over is no longer there.
        retry.push(candidate);
        continue;
      }
      if (current === undefined || wins) {
        // Storage kept something this write should have beaten, and it could not be read.
        batch.rejected.push({
          id: op.id,
          reason: 'UNAVAILABLE',
          message: 'storage is unavailable, retry later',
          retryable: true,
        });
        continue;
      }
      // The same write sent again (a lost ack) is a plain ack; one that lost is superseded,
      // and a writer that may not see the record it lost to is told to forget the key.
      batch.acked.push(op.id);
      if (!holdsWrite(current, record)) batch.superseded.push(op.id);
      if (!this.mayRead(batch, op.map, key, current)) revoke(batch, op.map, key);
    }
    return retry;
  }

  /** What the writer of `batch` may read of `map` (null: nothing). */
  private readFilter(batch: Batch, map: string): ReadFilter | null {
    let filter = batch.filters.get(map);
    if (filter === undefined) {
      filter = this.deps.permissions.readFilter(batch.peer.user, map);
      batch.filters.set(map, filter);
    }
    return filter;
  }

  /** Whether the writer of `batch` may see this record (so need not be told to forget it). */
  private mayRead(batch: Batch, map: string, key: string, record: GridRecord): boolean {
    return this.readFilter(batch, map)?.sees(key, record) ?? false;
  }

  /**
   * Refusals that need no map: node id and the time window (of the whole write and of every
   * field write), a map the user may not touch.
   */
  private precheck(batch: Batch, op: Op, record: LWWRecord<Value>): Rejection | undefined {
    if (!isEmptyWrite(record.timestamp)) {
      const refusal = this.checkStamp(batch, op, record.timestamp);
      if (refusal !== undefined) return refusal;
    }
    for (const name in record.fields) {
      const refusal = this.checkStamp(batch, op, record.fields[name]!.timestamp);
      if (refusal !== undefined) return refusal;
    }
    const { permissions } = this.deps;
    if (
      !permissions.mayWriteMap(batch.peer.user, op.map) &&
      this.readFilter(batch, op.map) === null
    )
      return reject(op, 'PERMISSION', `writing ${op.map} is not allowed`);
    return undefined;
  }

  /** Whether one timestamp of a write is the connection's own and within the time window. */
  private checkStamp(batch: Batch, op: Op, timestamp: Timestamp): Rejection | undefined {
    const { clock, maxWriteAgeMs, now } = this.deps;
    const { peer } = batch;
    const { millis, nodeId } = timestamp;
    if (!ownsNodeId(peer.nodeId, nodeId)) {
      return reject(
        op,
        'NODE_ID',
        `the timestamp's node id ${nodeId} is not this connection's (${peer.nodeId})`,
      );
    }
    const floor = now() - maxWriteAgeMs;
    if (millis < floor) {
      return reject(
        op,
        'TOO_OLD',
        `the timestamp (${millis}) is more than ${maxWriteAgeMs} ms before server time: stamp the write again`,
      );
    }
    try {
      assertWithinDrift(clock, { millis, counter: 0, nodeId });
    } catch (error) {
      if (error instanceof ClockDriftError) return reject(op, 'CLOCK_DRIFT', error.message);
      throw error;
    }
    return undefined;
  }

  /**
   * Decides one op against the grid: a candidate write, or its answer recorded in the batch
   * (a rejection, or, for a write that may not replace a record the writer cannot see while
   * it could have created the key, the answer of a write that lost to another: acknowledged,
   * not applied).
   */
  private admit(
    batch: Batch,
    op: Op,
    key: string,
    parsed: LWWRecord<Value>,
    map: LWWMap<Value> | undefined,
  ): Candidate | undefined {
    const { permissions } = this.deps;
    const { peer } = batch;
    if (map === undefined) {
      batch.rejected.push({
        id: op.id,
        reason: 'UNAVAILABLE',
        message: 'storage is unavailable, retry later',
        retryable: true,
      });
      return undefined;
    }
    const stored = map.getRecord(key) as GridRecord | undefined;
    const previous = stored === undefined || stored.value === null ? undefined : stored.value;
    const user = peer.user;
    const conditional = permissions.hasRecordLevelWrites(op.map);
    // A rule that looks at the write (a function) judges the value the record would have
    // (field writes later than a whole write stay on top of it), and for an update its patch;
    // the others need neither, and most writes are judged by them.
    const patch = conditional ? patchOf(parsed) : undefined;
    const value =
      conditional && stored !== undefined ? mergeRecords(stored, parsed).value : parsed.value;
    const context: WriteContext =
      patch === undefined
        ? { user, map: op.map, key, value, previous }
        : { user, map: op.map, key, value, previous, patch };
    if (!permissions.canWrite(context)) {
      const filter = this.readFilter(batch, op.map);
      const readsMap = filter !== null;
      const visible = stored !== undefined && readsMap && filter.sees(key, stored);
      if (stored !== undefined && !visible) {
        // As the writer sees it, the key is absent. Where it could have created it, the
        // truthful answer that tells nothing of the hidden record is that of a write that
        // lost to someone else's: acknowledged as superseded, and the key revoked.
        const creatable =
          previous !== undefined &&
          permissions.canWrite({ ...context, value: parsed.value, previous: undefined });
        if (creatable) {
          batch.acked.push(op.id);
          batch.superseded.push(op.id);
          revoke(batch, op.map, key);
          return undefined;
        }
      }
      // The client rolls back to the record as it may see it (null: absent).
      const current: WireEntry | null | undefined = !readsMap
        ? undefined
        : visible
          ? toWireEntry(key, stored!)
          : null;
      batch.rejected.push({
        ...reject(op, 'PERMISSION', `writing ${op.map}/${key} is not allowed`),
        ...(current === undefined ? {} : { current }),
      });
      return undefined;
    }
    // The grid keeps the record: its node id is the connection's own string, shared by every
    // record the connection writes, instead of one more string per record.
    const { millis, counter, nodeId } = parsed.timestamp;
    const record: LWWRecord<Value> =
      nodeId === peer.nodeId
        ? { ...parsed, timestamp: { millis, counter, nodeId: peer.nodeId } }
        : parsed;
    const keepPrior = record.value === null && permissions.hasRecordLevelReads(op.map);
    return {
      batch,
      op,
      map: op.map,
      key,
      record,
      // Only whole writes use it (field writes alone have none on the wire).
      serializedTimestamp: op.entry[1] ?? '',
      // Always both fields, so every candidate has one shape (no spread of throwaway objects).
      // The condition is the stored record's latest write: an update changes a record without
      // changing its whole write.
      expected: conditional ? (stored === undefined ? null : recordVersion(stored)) : undefined,
      keepPrior,
    };
  }
}

/**
 * The fields an update writes (undefined: removed); undefined for anything but field writes
 * alone: a record with a whole write of its own is judged as that whole write.
 */
function patchOf(
  record: LWWRecord<Value>,
): Readonly<Record<string, Value | undefined>> | undefined {
  if (record.fields === undefined || !isEmptyWrite(record.timestamp)) return undefined;
  const patch: Record<string, Value | undefined> = {};
  for (const name in record.fields) patch[name] = record.fields[name]!.value;
  return patch;
}

function revoke(batch: Batch, map: string, key: string): void {
  if (batch.revoked === NO_REVOKES) batch.revoked = new Map();
  let keys = batch.revoked.get(map);
  if (keys === undefined) {
    keys = new Set();
    batch.revoked.set(map, keys);
  }
  keys.add(key);
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
    revoked: NO_REVOKES,
  };
}
