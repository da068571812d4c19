import {
  type AggregateQuery,
  type AggregateRow,
  evaluateAggregate,
  MAX_GROUPS,
  type Value,
} from '@topgun/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AggregateHub } from '../src/aggregateHub.js';
import { CpuBudget, type WorkSlicer } from '../src/cpuBudget.js';
import { DEFAULT_LIMITS, type ServerLimits } from '../src/options.js';
import { FakePeer } from './fakePeer.js';
import { clock, gridWith, harnessPermissions } from './liveQueryHarness.js';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

function aggregateHubWith(limits: Partial<ServerLimits> = {}) {
  let hub: AggregateHub | undefined;
  // Stored records reach the hub as they are stored; it tells its subscribers on the next turn.
  const harness = gridWith(() => new Promise((resolve) => setImmediate(resolve)));
  hub = new AggregateHub({
    grid: harness.grid,
    permissions: harnessPermissions(),
    metrics: harness.metrics,
    limits: { ...DEFAULT_LIMITS, ...limits },
    now: clock.now,
    fresh: async () => {},
  });
  const cpu = new CpuBudget(1e9, 1e9, 10, 1e9);
  const subscribe = (
    peer: FakePeer,
    id: number,
    map: string,
    query: AggregateQuery<Value>,
    slicer: WorkSlicer = cpu.slicer(),
  ) => hub.subscribe(peer, id, map, query, slicer);
  /** The live records of a map a user may read, as the oracle takes them. */
  const visible = async (map: string, user: string | null = null) => {
    const data = await harness.grid.get(map);
    return [...data.entries()].filter(
      ([, value]) => map !== 'mine' || (value as { owner?: string }).owner === user,
    );
  };
  return { hub, subscribe, visible, ...harness };
}

/**
 * What a client holds of aggregate `id`, told only its `aggregate_rows`; checks that every
 * result starts with `reset` and that rows arrive only between a reset and its `last`.
 */
function resultOf(peer: FakePeer, id: number): Map<string, AggregateRow['value']> {
  const rows = new Map<string, AggregateRow['value']>();
  for (const message of peer.messages('aggregate_rows')) {
    if (message.id !== id) continue;
    if (message.reset) rows.clear();
    for (const key of message.left) rows.delete(key);
    for (const row of message.rows) rows.set(row.key, row.value);
  }
  return rows;
}

const asMap = (rows: readonly AggregateRow[]) => new Map(rows.map((row) => [row.key, row.value]));

const BY_KIND: AggregateQuery<Value> = {
  groupBy: { kind: 'kind' },
  aggregate: { n: 'count', total: { sum: 'at' }, last: { max: 'at' } },
};

describe('live aggregates on the server', () => {
  it('sends the result, then the groups each commit changes, equal to a fresh evaluation', async () => {
    const { subscribe, commit, visible } = aggregateHubWith();
    await commit('events', [
      ['e1', { kind: 'a', at: 1 }],
      ['e2', { kind: 'b', at: 2 }],
      ['e3', { kind: 'a', at: 3 }],
    ]);
    const peer = new FakePeer();
    await subscribe(peer, 1, 'events', BY_KIND);
    const [first] = peer.messages('aggregate_rows');
    expect(first).toMatchObject({ id: 1, reset: true, last: true, left: [] });
    expect(resultOf(peer, 1)).toEqual(asMap(evaluateAggregate(BY_KIND, await visible('events'))));
    const sent = peer.received.length;
    // A change that moves no figure sends nothing.
    await commit('events', [['e2', { kind: 'b', at: 2, note: 'x' }]]);
    expect(peer.received.length).toBe(sent);
    await commit('events', [
      ['e2', null],
      ['e4', { kind: 'c', at: 10 }],
      ['e1', { kind: 'a', at: 7 }],
    ]);
    const [, update] = peer.messages('aggregate_rows');
    expect(update).toMatchObject({ reset: false, left: ['["b"]'], last: true });
    expect(update!.rows.map((row) => row.key).sort()).toEqual(['["a"]', '["c"]']);
    expect(resultOf(peer, 1)).toEqual(asMap(evaluateAggregate(BY_KIND, await visible('events'))));
  });

  it('stays equal to a fresh evaluation for every subscriber through random commits', async () => {
    const queries: AggregateQuery<Value>[] = [
      BY_KIND,
      {
        where: { at: { gte: 3 } },
        groupBy: { kind: 'kind', bucket: { field: 'at', bucket: '1m' } },
        aggregate: { n: 'count', least: { min: 'at' } },
        sort: [{ field: 'n', direction: 'desc' }],
        limit: 2,
      },
      { aggregate: { n: 'count', mean: { avg: 'at' } } },
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.array(
            fc.tuple(
              fc.constantFrom('k1', 'k2', 'k3', 'k4', 'k5'),
              fc.option(
                fc.record({
                  kind: fc.constantFrom('a', 'b', 'c'),
                  at: fc.integer({ min: 0, max: 200_000 }),
                }),
                { nil: null },
              ),
            ),
            { minLength: 1, maxLength: 4 },
          ),
          { maxLength: 12 },
        ),
        async (batches) => {
          const { subscribe, commit, visible } = aggregateHubWith();
          await commit('events', [['k1', { kind: 'a', at: 1 }]]);
          const peers = queries.map(() => new FakePeer());
          for (const [index, query] of queries.entries())
            await subscribe(peers[index]!, index + 1, 'events', query);
          for (const batch of batches) {
            await commit('events', batch as Array<[string, Value | null]>);
            const records = await visible('events');
            for (const [index, query] of queries.entries())
              expect(resultOf(peers[index]!, index + 1)).toEqual(
                asMap(evaluateAggregate(query, records)),
              );
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('counts only the records each user may read, and shares one aggregate per view', async () => {
    const { hub, subscribe, commit, visible } = aggregateHubWith();
    await commit('mine', [
      ['m1', { owner: 'ann', kind: 'a', at: 1 }],
      ['m2', { owner: 'bob', kind: 'a', at: 2 }],
      ['m3', { owner: 'ann', kind: 'b', at: 3 }],
    ]);
    const builds = vi.spyOn(hub as unknown as { build: () => Promise<void> }, 'build');
    const [ann, ann2, bob] = [new FakePeer('ann'), new FakePeer('ann'), new FakePeer('bob')];
    await subscribe(ann, 1, 'mine', BY_KIND);
    await subscribe(ann2, 1, 'mine', BY_KIND);
    await subscribe(bob, 1, 'mine', BY_KIND);
    // One build per view: ann's two subscriptions share one.
    expect(builds).toHaveBeenCalledTimes(2);
    // Bob's record given to ann: it leaves bob's counts and joins ann's.
    await commit('mine', [['m2', { owner: 'ann', kind: 'a', at: 2 }]]);
    for (const [peer, user] of [
      [ann, 'ann'],
      [ann2, 'ann'],
      [bob, 'bob'],
    ] as const)
      expect(resultOf(peer, 1)).toEqual(
        asMap(evaluateAggregate(BY_KIND, await visible('mine', user))),
      );
    expect(resultOf(bob, 1).size).toBe(0);
    expect(resultOf(ann, 1).get('["a"]')).toMatchObject({ n: 2 });
  });

  it('counts every change committed while it is built exactly once', async () => {
    const { subscribe, commit, visible } = aggregateHubWith();
    await commit(
      'events',
      Array.from({ length: 5_000 }, (_, i): [string, Value] => [
        `e${i}`,
        { kind: `k${i % 7}`, at: i },
      ]),
    );
    // A slicer that yields every 512 records, letting commits in between.
    const slicer: WorkSlicer = {
      due: () => true,
      pause: () => new Promise((resolve) => setTimeout(resolve, 0)),
      io: (waiting: Promise<unknown>) => waiting,
      finish: () => {},
    } as unknown as WorkSlicer;
    const peer = new FakePeer();
    const subscribing = subscribe(peer, 1, 'events', BY_KIND, slicer);
    for (let round = 0; round < 15; round++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      await commit('events', [
        [`e${round * 300}`, null],
        [`e${round * 300 + 1}`, { kind: 'moved', at: round }],
        [`new${round}`, { kind: 'k1', at: 10_000 + round }],
      ]);
    }
    await subscribing;
    await commit('events', [['late', { kind: 'k2', at: 1 }]]);
    expect(resultOf(peer, 1)).toEqual(asMap(evaluateAggregate(BY_KIND, await visible('events'))));
  });

  it('takes expired records out when they expire', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { subscribe, commit } = aggregateHubWith();
    await commit('events', [['e1', { kind: 'a', at: 1 }]]);
    await commit('events', [['t1', { kind: 'a', at: 2 }]], 1_000);
    const peer = new FakePeer();
    await subscribe(peer, 1, 'events', BY_KIND);
    expect(resultOf(peer, 1).get('["a"]')).toMatchObject({ n: 2 });
    clock.advance(1_000);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(resultOf(peer, 1).get('["a"]')).toMatchObject({ n: 1, total: 1 });
  });

  it('splits a large result into frames: reset on the first, last on the last', async () => {
    const { subscribe, commit, visible } = aggregateHubWith({ chunkRecords: 100 });
    await commit(
      'events',
      Array.from({ length: 350 }, (_, i): [string, Value] => [`e${i}`, { kind: `k${i}`, at: i }]),
    );
    const peer = new FakePeer();
    await subscribe(peer, 1, 'events', BY_KIND);
    const frames = peer.messages('aggregate_rows');
    expect(frames.map((frame) => [frame.reset, frame.last, frame.rows.length])).toEqual([
      [true, false, 100],
      [false, false, 100],
      [false, false, 100],
      [false, true, 50],
    ]);
    expect(resultOf(peer, 1)).toEqual(asMap(evaluateAggregate(BY_KIND, await visible('events'))));
  });

  it('stops sending after unsubscribe, and frees the aggregate with its last subscriber', async () => {
    const { hub, subscribe, commit, gauge } = aggregateHubWith();
    const peer = new FakePeer();
    await subscribe(peer, 1, 'events', BY_KIND);
    await subscribe(peer, 2, 'events', { aggregate: { n: 'count' } });
    expect(await gauge('topgun_aggregates')).toBe(2);
    hub.unsubscribe(peer, 1);
    const before = peer.messages('aggregate_rows').length;
    await commit('events', [['e1', { kind: 'a', at: 1 }]]);
    expect(
      peer
        .messages('aggregate_rows')
        .slice(before)
        .map((message) => message.id),
    ).toEqual([2]);
    hub.removePeer(peer);
    expect(await gauge('topgun_aggregates')).toBe(0);
    expect((hub as unknown as { byKey: Map<string, unknown> }).byKey.size).toBe(0);
  });
});

describe('live aggregates are bounded', () => {
  it('refuses a map the user may not read', async () => {
    const { hub, subscribe } = aggregateHubWith();
    (hub as unknown as { deps: { permissions: unknown } }).deps.permissions = {
      readFilter: () => null,
    };
    const peer = new FakePeer();
    await subscribe(peer, 1, 'events', BY_KIND);
    expect(peer.messages('query_error')).toEqual([
      { type: 'query_error', id: 1, code: 'PERMISSION', message: 'reading events is not allowed' },
    ]);
  });

  it('refuses aggregates past the limits per connection and per process', async () => {
    const { subscribe } = aggregateHubWith({ maxLiveQueries: 2, maxAggregates: 3 });
    const [one, two] = [new FakePeer(), new FakePeer()];
    for (const id of [1, 2, 3])
      await subscribe(one, id, 'events', { aggregate: { [`n${id}`]: 'count' } });
    expect(one.messages('query_error')).toEqual([
      expect.objectContaining({
        id: 3,
        code: 'LIMIT',
        message: 'at most 2 aggregates per connection',
      }),
    ]);
    await subscribe(two, 1, 'events', { aggregate: { n3: 'count' } });
    await subscribe(two, 2, 'events', { aggregate: { n4: 'count' } });
    // The same query as another's shares its aggregate: not one more.
    await subscribe(new FakePeer(), 1, 'events', { aggregate: { n1: 'count' } });
    expect(two.messages('query_error')).toEqual([
      expect.objectContaining({
        id: 2,
        code: 'LIMIT',
        message: expect.stringMatching(/as many aggregates/),
      }),
    ]);
  });

  it('ends an aggregate whose groups go over the budget of the process or past 10,000', async () => {
    const { subscribe, commit } = aggregateHubWith({ maxAggregateGroups: 5 });
    await commit('events', [
      ['e1', { kind: 'a', at: 1 }],
      ['e2', { kind: 'b', at: 2 }],
    ]);
    const [peer, other] = [new FakePeer(), new FakePeer()];
    await subscribe(peer, 1, 'events', BY_KIND);
    await subscribe(other, 1, 'events', BY_KIND);
    await commit('events', [
      ['e3', { kind: 'c', at: 3 }],
      ['e4', { kind: 'd', at: 4 }],
      ['e5', { kind: 'e', at: 5 }],
      ['e6', { kind: 'f', at: 6 }],
    ]);
    for (const each of [peer, other])
      expect(each.messages('query_error')).toEqual([
        expect.objectContaining({
          id: 1,
          code: 'LIMIT',
          message: expect.stringMatching(/aggregate groups/),
        }),
      ]);
    const sent = peer.received.length;
    await commit('events', [['e7', { kind: 'g', at: 7 }]]);
    expect(peer.received.length).toBe(sent);

    const { subscribe: subscribeMany, commit: commitMany } = aggregateHubWith();
    await commitMany(
      'events',
      Array.from({ length: MAX_GROUPS + 1 }, (_, i): [string, Value] => [
        `e${i}`,
        { kind: `k${i}`, at: i },
      ]),
    );
    const many = new FakePeer();
    await subscribeMany(many, 1, 'events', BY_KIND);
    expect(many.messages('query_error')).toEqual([
      expect.objectContaining({
        id: 1,
        code: 'LIMIT',
        message: expect.stringMatching(/more than 10000 groups/),
      }),
    ]);
  });
});
