import {
  evaluateQuery,
  type Message,
  type Query,
  QueryIndex,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CommittedChange } from '../src/changeFanout.js';
import { CpuBudget } from '../src/cpuBudget.js';
import { LiveQueryHub } from '../src/liveQueryHub.js';
import { type GridRecord, MapGrid } from '../src/mapGrid.js';
import { ServerMetrics } from '../src/metrics.js';
import { DEFAULT_LIMITS } from '../src/options.js';
import { Permissions, type ReadContext } from '../src/permissions.js';
import { FakePeer } from './fakePeer.js';

/** `mine` records are read by their owner only. */
const ownerOnly = ({ user, value }: ReadContext) =>
  value === undefined || (value as { owner?: string }).owner === user.id;

let millis = 1_000;

/** A hub over an in-memory grid, and a way to commit records into it. */
function hubWith(indexLingerMs = 30_000) {
  const metrics = new ServerMetrics();
  const grid = new MapGrid({
    storage: { loadMap: async () => {} },
    metrics,
    nodeId: 'server',
    now: () => millis,
  });
  const hub = new LiveQueryHub({
    grid,
    permissions: new Permissions([
      { map: 'events', read: true, write: true },
      { map: 'mine', read: ownerOnly, write: true },
    ]),
    fanout: { follows: () => false },
    metrics,
    limits: DEFAULT_LIMITS,
    now: () => millis,
    fresh: async () => {},
    indexLingerMs,
  });
  const cpu = new CpuBudget(1e9, 1e9, 10, 1e9);
  const subscribe = (peer: FakePeer, id: number, map: string, query: Query<Value>) =>
    hub.subscribe(peer, id, map, query, cpu.slicer());
  /** Commits records (a `null` value deletes) and feeds them to the hub, as a commit does. */
  const commit = async (map: string, writes: ReadonlyArray<[string, Value | null]>) => {
    const data = await grid.get(map);
    const changes: CommittedChange[] = [];
    for (const [key, value] of writes) {
      const previous = data.getRecord(key) as GridRecord | undefined;
      const record: GridRecord = {
        value,
        timestamp: { millis: millis++, counter: 0, nodeId: 'w' },
      };
      data.merge(key, record);
      changes.push({ key, record, entry: toWireEntry(key, record), previous });
    }
    await hub.onChanges(map, changes);
  };
  return { hub, grid, metrics, subscribe, commit };
}

/** What a client holds of subscription `id`, told only its snapshot and updates. */
function windowOf(peer: FakePeer, id: number): Map<string, Value> {
  const rows = new Map<string, Value>();
  const enter = (entries: readonly WireEntry[]) => {
    for (const [key, , value] of entries) rows.set(key, value as Value);
  };
  for (const message of peer.received as Message[]) {
    if (message.type === 'query_snapshot' && message.id === id) enter(message.entries);
    if (message.type !== 'query_update' || message.id !== id) continue;
    for (const key of message.leave) rows.delete(key);
    enter(message.enter);
    for (const [key, , value] of message.update) if (rows.has(key)) rows.set(key, value as Value);
  }
  return rows;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('live queries share one index per query', () => {
  it('builds the index once for every subscription to the query, whatever its window', async () => {
    const { subscribe, commit, metrics } = hubWith();
    await commit(
      'events',
      Array.from({ length: 500 }, (_, i): [string, Value] => [
        `e${i}`,
        { kind: i % 5 === 0 ? 'a' : 'b', at: i },
      ]),
    );
    const builds = vi.spyOn(QueryIndex, 'buildIndex');
    const query = { where: { kind: 'a' }, sort: [{ field: 'at', direction: 'desc' }] } as const;
    const peers = [new FakePeer(), new FakePeer(), new FakePeer()];
    await subscribe(peers[0]!, 1, 'events', { ...query, limit: 5 });
    await subscribe(peers[1]!, 1, 'events', { ...query, limit: 20 });
    await subscribe(peers[2]!, 7, 'events', query);
    expect(builds).toHaveBeenCalledTimes(1);
    expect([...windowOf(peers[0]!, 1).keys()]).toEqual(['e495', 'e490', 'e485', 'e480', 'e475']);
    expect(windowOf(peers[1]!, 1).size).toBe(20);
    expect(windowOf(peers[2]!, 7).size).toBe(100);
    // One index of 100 rows; windows of 5, 20 and 100.
    const gauge = async (name: string) =>
      (await metrics.registry.getSingleMetric(name)!.get()).values[0]!.value;
    expect(await gauge('topgun_query_index_rows')).toBe(100);
    expect(await gauge('topgun_live_query_rows')).toBe(125);

    // Another sort is another index.
    await subscribe(peers[0]!, 2, 'events', { ...query, sort: 'at', limit: 5 });
    expect(builds).toHaveBeenCalledTimes(2);
  });

  it('keeps an index a while after its last subscriber left, then drops it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const { hub, subscribe, commit } = hubWith(1_000);
      await commit('events', [['e1', { kind: 'a', at: 1 }]]);
      const builds = vi.spyOn(QueryIndex, 'buildIndex');
      const peer = new FakePeer();
      const query = { where: { kind: 'a' }, limit: 10 };
      await subscribe(peer, 1, 'events', query);
      hub.unsubscribe(peer, 1);
      // Changed while kept for nobody: the index learns it.
      await commit('events', [['e2', { kind: 'a', at: 2 }]]);
      await subscribe(peer, 2, 'events', query);
      expect(builds).toHaveBeenCalledTimes(1);
      expect([...windowOf(peer, 2).keys()].sort()).toEqual(['e1', 'e2']);
      hub.unsubscribe(peer, 2);
      vi.advanceTimersByTime(1_001);
      await subscribe(peer, 3, 'events', query);
      expect(builds).toHaveBeenCalledTimes(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('shares an index between users only where the map reads no record', async () => {
    const { subscribe, commit } = hubWith();
    await commit('mine', [
      ['a1', { kind: 'x', at: 1, owner: 'alice' }],
      ['b1', { kind: 'x', at: 2, owner: 'bob' }],
    ]);
    const builds = vi.spyOn(QueryIndex, 'buildIndex');
    const [alice, bob, aliceAgain] = [
      new FakePeer('alice'),
      new FakePeer('bob'),
      new FakePeer('alice'),
    ];
    for (const peer of [alice, bob, aliceAgain])
      await subscribe(peer, 1, 'mine', { sort: 'at', limit: 5 });
    expect(builds).toHaveBeenCalledTimes(2);
    expect([...windowOf(alice, 1).keys()]).toEqual(['a1']);
    expect([...windowOf(bob, 1).keys()]).toEqual(['b1']);
    await commit('mine', [['a2', { kind: 'x', at: 0, owner: 'alice' }]]);
    expect([...windowOf(aliceAgain, 1).keys()].sort()).toEqual(['a1', 'a2']);
    expect(JSON.stringify(bob.received)).not.toContain('a2');
  });

  it('keeps every window of a shared index equal to the query’s result as records change', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    const value = fc.record({
      kind: fc.constantFrom('a', 'b'),
      at: fc.integer({ min: 0, max: 6 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(...keys), fc.option(value)), { maxLength: 10 }),
        fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 4 }),
        fc.array(
          fc.array(fc.tuple(fc.constantFrom(...keys), fc.option(value)), {
            minLength: 1,
            maxLength: 3,
          }),
          { maxLength: 12 },
        ),
        async (initial, limits, batches) => {
          const { subscribe, commit, grid } = hubWith();
          await commit('events', initial);
          const query = { where: { kind: 'a' }, sort: ['at'] } as const;
          const peers = limits.map(() => new FakePeer());
          for (const [index, peer] of peers.entries())
            await subscribe(peer, 1, 'events', { ...query, limit: limits[index]! });
          for (const batch of batches) {
            await commit('events', batch);
            const data = await grid.get('events');
            const live = [...data.entries()];
            for (const [index, peer] of peers.entries()) {
              const expected = evaluateQuery({ ...query, limit: limits[index]! }, live);
              const held = windowOf(peer, 1);
              expect(new Map(expected.map((row) => [row.key, row.value]))).toEqual(held);
            }
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
