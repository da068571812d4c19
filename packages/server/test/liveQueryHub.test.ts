import { evaluateQuery, QueryIndex, type Value } from '@topgun/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakePeer } from './fakePeer.js';
import { hubWith, windowOf } from './liveQueryHarness.js';

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
      const { hub, subscribe, commit } = hubWith({}, 1_000);
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
