/** A live-query hub over an in-memory grid, for tests of live queries without sockets. */
import { type Message, type Query, toWireEntry, type Value, type WireEntry } from '@topgun/core';
import type { CommittedChange } from '../src/changeFanout.js';
import { CpuBudget, type WorkSlicer } from '../src/cpuBudget.js';
import { LiveQueryHub } from '../src/liveQueryHub.js';
import { type GridRecord, MapGrid } from '../src/mapGrid.js';
import { ServerMetrics } from '../src/metrics.js';
import { DEFAULT_LIMITS, type ServerLimits } from '../src/options.js';
import { Permissions, type ReadContext } from '../src/permissions.js';
import type { StoredRecord } from '../src/storage/storage.js';
import type { FakePeer } from './fakePeer.js';

/** `mine` records are read by their owner only. */
export const ownerOnly = ({ user, value }: ReadContext) =>
  value === undefined || (value as { owner?: string }).owner === user.id;

let millis = 1_000;

/** The registry's private state, read by the tests. */
interface Internals {
  byKey: Map<string, { missed: Set<CommittedChange[]>; subscribers: Set<unknown>; rows: number }>;
  rowsByPeer: Map<FakePeer, number>;
  totalRows: number;
}

/**
 * An in-memory grid backed by an in-memory "storage" (so that a map evicted from the grid
 * loads again with what was stored), a way to commit records (fed to `onChanges`, as a
 * commit is), and a way to write records as another process would while the map is not
 * loaded (no `onChanges`).
 */
export function gridWith(
  onChanges: (map: string, changes: CommittedChange[]) => Promise<void>,
  metrics = new ServerMetrics(),
) {
  const stored = new Map<string, Map<string, StoredRecord>>();
  const storedMap = (map: string) => {
    let records = stored.get(map);
    if (records === undefined) {
      records = new Map();
      stored.set(map, records);
    }
    return records;
  };
  const grid = new MapGrid({
    storage: {
      loadMap: async (map, onPage) => {
        onPage([...storedMap(map).values()]);
      },
    },
    metrics,
    nodeId: 'server',
    now: () => millis,
  });
  /** Commits records (a `null` value deletes) and feeds them on, as a commit does. */
  const commit = async (
    map: string,
    writes: ReadonlyArray<[string, Value | null]>,
    ttlMs?: number,
  ) => {
    const data = await grid.get(map);
    const changes: CommittedChange[] = [];
    for (const [key, value] of writes) {
      const previous = data.getRecord(key) as GridRecord | undefined;
      const record: GridRecord = {
        value,
        timestamp: { millis: millis++, counter: 0, nodeId: 'w' },
        ...(ttlMs === undefined ? {} : { ttlMs }),
      };
      data.merge(key, record);
      storedMap(map).set(key, { key, record });
      changes.push({ key, record, entry: toWireEntry(key, record), previous });
    }
    await onChanges(map, changes);
  };
  /** Another process's commit to a map this one has not loaded: storage only. */
  const commitElsewhere = (map: string, writes: ReadonlyArray<[string, Value | null]>) => {
    for (const [key, value] of writes) {
      const record: GridRecord = {
        value,
        timestamp: { millis: millis++, counter: 0, nodeId: 'x' },
      };
      storedMap(map).set(key, { key, record });
    }
  };
  const gauge = async (name: string) =>
    (await metrics.registry.getSingleMetric(name)!.get()).values[0]?.value ?? 0;
  return { grid, metrics, commit, commitElsewhere, gauge };
}

/** The clock of the harness's grid and commits. */
export const clock = {
  now: () => millis,
  advance: (ms: number) => {
    millis += ms;
  },
};

/** The permissions of the harness: `events` read by all, `mine` by each record's owner. */
export const harnessPermissions = () =>
  new Permissions([
    { map: 'events', read: true, write: true },
    { map: 'mine', read: ownerOnly, write: true },
  ]);

/** A live-query hub over {@link gridWith}'s grid. */
export function hubWith(
  limits: Partial<ServerLimits> = {},
  indexLingerMs = 30_000,
  buildWaitMs?: number,
) {
  let hub: LiveQueryHub | undefined;
  const { grid, metrics, commit, commitElsewhere, gauge } = gridWith((map, changes) =>
    hub!.onChanges(map, changes),
  );
  hub = new LiveQueryHub({
    grid,
    permissions: harnessPermissions(),
    fanout: { follows: () => false },
    metrics,
    limits: { ...DEFAULT_LIMITS, ...limits },
    now: () => millis,
    fresh: async () => {},
    indexLingerMs,
    ...(buildWaitMs === undefined ? {} : { buildWaitMs }),
  });
  const cpu = new CpuBudget(1e9, 1e9, 10, 1e9);
  const subscribe = (
    peer: FakePeer,
    id: number,
    map: string,
    query: Query<Value>,
    slicer: WorkSlicer = cpu.slicer(),
  ) => hub.subscribe(peer, id, map, query, slicer);
  const internals = () => (hub as unknown as { indexes: Internals }).indexes;
  return { hub, grid, metrics, subscribe, commit, commitElsewhere, internals, gauge, cpu };
}

/** What a client holds of subscription `id`, told only its snapshot, updates and revokes. */
export function windowOf(peer: FakePeer, id: number, map = 'events'): Map<string, Value> {
  const rows = new Map<string, Value>();
  const enter = (entries: readonly WireEntry[]) => {
    for (const [key, , value] of entries) rows.set(key, value as Value);
  };
  for (const message of peer.received as Message[]) {
    if (message.type === 'revoke' && message.map === map)
      for (const key of message.keys) rows.delete(key);
    if (message.type === 'query_snapshot' && message.id === id) enter(message.entries);
    if (message.type !== 'query_update' || message.id !== id) continue;
    for (const key of message.leave) rows.delete(key);
    enter(message.enter);
    for (const [key, , value] of message.update) if (rows.has(key)) rows.set(key, value as Value);
  }
  return rows;
}

export const records = (count: number, kind = 'a'): Array<[string, Value]> =>
  Array.from({ length: count }, (_, i) => [`e${i}`, { kind, at: i }]);
