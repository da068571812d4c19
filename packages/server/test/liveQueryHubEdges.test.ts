/**
 * Edges of shared live-query indexes, found by attacking them: builds abandoned or refused,
 * budgets of indexes that grow, charges passed between connections, netting a batch, and
 * what each user may be told.
 */
import { evaluateQuery, type Message, type Query, QueryIndex, type Value } from '@topgun/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WorkAbandonedError, type WorkSlicer } from '../src/cpuBudget.js';
import { FakePeer } from './fakePeer.js';
import { hubWith, records, windowOf } from './liveQueryHarness.js';

/**
 * A slicer whose pauses wait until the gate is opened (then only yield), and which abandons
 * the work once its peer is closed, as a connection's does.
 */
class Gate {
  pauses = 0;
  #open!: () => void;
  readonly #opened = new Promise<void>((resolve) => {
    this.#open = resolve;
  });

  slicer(peer: FakePeer): WorkSlicer {
    const check = () => {
      if (!peer.isOpen()) throw new WorkAbandonedError();
    };
    return {
      due: () => true,
      pause: async () => {
        this.pauses++;
        await this.#opened;
        await new Promise((resolve) => setImmediate(resolve));
        check();
      },
      io: async (waiting) => {
        try {
          return await waiting;
        } finally {
          check();
        }
      },
    };
  }

  open(): void {
    this.#open();
  }

  /** Resolves once some work waits at the gate. */
  async reached(): Promise<void> {
    await vi.waitFor(() => expect(this.pauses).toBeGreaterThan(0));
  }
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** Subscribes through a gate, then closes the peer as its socket would while the build waits. */
async function closeWhileBuilding(
  env: ReturnType<typeof hubWith>,
  query: Query<Value>,
): Promise<void> {
  const peer = new FakePeer();
  const gate = new Gate();
  const subscribing = env
    .subscribe(peer, 1, 'events', query, gate.slicer(peer))
    .catch((error: unknown) => error);
  await gate.reached();
  // The socket closes: the connection ends its subscriptions; its pending work is abandoned.
  peer.open = false;
  env.hub.removePeer(peer);
  gate.open();
  expect(await subscribing).toBeInstanceOf(WorkAbandonedError);
}

describe('a connection that closes while its query builds', () => {
  it('leaves no index entry behind to collect the map’s later changes', async () => {
    const env = hubWith();
    await env.commit('events', records(200));
    await closeWhileBuilding(env, { where: { kind: 'a' }, limit: 5 });
    for (let i = 0; i < 50; i++) await env.commit('events', [[`n${i}`, { kind: 'b', at: i }]]);
    const left = [...env.internals().byKey.values()].map((shared) => ({
      subscribers: shared.subscribers.size,
      missed: shared.missed.size,
    }));
    expect(left).toEqual([]);
  });

  it('leaves nothing stale for a later subscriber: its window is the map’s as it is', async () => {
    const env = hubWith();
    await env.commit('events', records(200));
    const query = {
      where: { kind: 'a' },
      sort: [{ field: 'at', direction: 'desc' }],
      limit: 3,
    } as const;
    await closeWhileBuilding(env, query);
    // Kept in the orphan's `missed`.
    await env.commit('events', [['top', { kind: 'a', at: 1_000 }]]);
    // Nothing holds the map: it leaves the grid; another process then writes to it (this one
    // is not told: it does not hold the map).
    expect(env.grid.evictIdle(0)).toBe(1);
    env.commitElsewhere('events', [['top', { kind: 'b', at: 1_000 }]]);

    const reader = new FakePeer();
    await env.subscribe(reader, 1, 'events', query);
    const data = await env.grid.get('events');
    const expected = evaluateQuery(query, data.entries()).map((row) => row.key);
    expect(expected).toEqual(['e199', 'e198', 'e197']);
    // Changes missed by an abandoned build, replayed over the map reloaded, would roll it back.
    expect([...windowOf(reader, 1).keys()]).toEqual(expected);
  });
});

describe('another subscriber waits on a build whose connection closes', () => {
  it('the waiter builds the index itself, with the changes committed meanwhile', async () => {
    const env = hubWith();
    await env.commit('events', records(200));
    const query = {
      where: { kind: 'a' },
      sort: [{ field: 'at', direction: 'desc' }],
      limit: 3,
    } as const;
    const [builder, waiter] = [new FakePeer(), new FakePeer()];
    const gate = new Gate();
    const building = env
      .subscribe(builder, 1, 'events', query, gate.slicer(builder))
      .catch((error: unknown) => error);
    await gate.reached();
    const waiting = env.subscribe(waiter, 1, 'events', query);
    await env.commit('events', [['top', { kind: 'a', at: 1_000 }]]);
    builder.open = false;
    env.hub.removePeer(builder);
    gate.open();
    expect(await building).toBeInstanceOf(WorkAbandonedError);
    await waiting;
    expect([...windowOf(waiter, 1).keys()]).toEqual(['top', 'e199', 'e198']);
  });

  it('when the waiter closes too, no entry is left', async () => {
    const env = hubWith();
    await env.commit('events', records(200));
    const query = { where: { kind: 'a' }, limit: 3 };
    const [builder, waiter] = [new FakePeer(), new FakePeer()];
    const gate = new Gate();
    const building = env
      .subscribe(builder, 1, 'events', query, gate.slicer(builder))
      .catch((error: unknown) => error);
    await gate.reached();
    const waiting = env
      .subscribe(waiter, 1, 'events', query, gate.slicer(waiter))
      .catch((error: unknown) => error);
    await new Promise((resolve) => setImmediate(resolve));
    for (const peer of [waiter, builder]) {
      peer.open = false;
      env.hub.removePeer(peer);
    }
    gate.open();
    await Promise.all([building, waiting]);
    await env.commit('events', [['n', { kind: 'b', at: 0 }]]);
    expect([...env.internals().byKey.values()].map((shared) => shared.missed.size)).toEqual([]);
  });
});

describe('a build another connection runs slowly', () => {
  it('is built again by a subscriber that waited long enough; the first to finish is kept', async () => {
    const env = hubWith({}, 30_000, 50);
    await env.commit('events', records(200));
    const query = { where: { kind: 'a' }, sort: 'at', limit: 5 };
    const [slow, victim] = [new FakePeer(), new FakePeer()];
    // The slow connection's budget is spent: its slices wait at the gate.
    const gate = new Gate();
    const slowSubscribe = env.subscribe(slow, 1, 'events', query, gate.slicer(slow));
    await gate.reached();
    await env.subscribe(victim, 1, 'events', query);
    expect([...windowOf(victim, 1).keys()]).toEqual(['e0', 'e1', 'e2', 'e3', 'e4']);
    await env.commit('events', [['e-1', { kind: 'a', at: -1 }]]);
    gate.open();
    await slowSubscribe;
    // The slow build's result is dropped: one index, current for both.
    expect([...windowOf(slow, 1).keys()]).toEqual(['e-1', 'e0', 'e1', 'e2', 'e3']);
    expect(env.internals().byKey.size).toBe(1);
    expect(await env.gauge('topgun_query_index_rows')).toBe(201);
  });
});

describe('index rows are checked as changes grow them', () => {
  it('indexes of `limit: 1` queries growing past the index budgets end their subscriptions', async () => {
    const env = hubWith({ maxQueryIndexRowsPerConnection: 100, maxLiveQueryRows: 200 });
    await env.commit('events', [['seed', { kind: 'x', at: 0 }]]);
    const peer = new FakePeer();
    // Five shapes, each its own index, each empty when built.
    for (let id = 1; id <= 5; id++)
      await env.subscribe(peer, id, 'events', { where: { kind: 'a', at: { gte: id } }, limit: 1 });
    expect(peer.messages('query_snapshot')).toHaveLength(5);
    await env.commit('events', records(1_000));
    const indexRows = await env.gauge('topgun_query_index_rows');
    const charged = env.internals().rowsByPeer.get(peer);
    // Not only when built: thousands of rows could be charged to a connection of budget 100.
    expect({ indexRows, charged, errors: peer.messages('query_error').length }).toMatchObject({
      indexRows: expect.toSatisfy((rows: number) => rows <= 200),
    });
  });
});

describe('builds that run at once', () => {
  it('are checked again once built: none is kept past the process budget', async () => {
    const env = hubWith({ maxLiveQueryRows: 150, maxQueryIndexRowsPerConnection: 1_000 });
    await env.commit('events', records(100));
    const gate = new Gate();
    const shapes: Query<Value>[] = [
      { where: { kind: 'a' }, sort: 'at', limit: 1 },
      { where: { kind: 'a' }, sort: [{ field: 'at', direction: 'desc' }], limit: 1 },
      { where: { kind: 'a' }, limit: 1 },
    ];
    const peers = shapes.map(() => new FakePeer());
    const subscribing = shapes.map((query, i) =>
      env.subscribe(peers[i]!, 1, 'events', query, gate.slicer(peers[i]!)),
    );
    await vi.waitFor(() => expect(gate.pauses).toBeGreaterThanOrEqual(3));
    gate.open();
    await Promise.all(subscribing);
    const indexRows = await env.gauge('topgun_query_index_rows');
    const errors = peers.flatMap((peer) => peer.messages('query_error'));
    // Each saw room for itself before the others were built.
    expect({ indexRows, errors: errors.length }).toMatchObject({
      indexRows: expect.toSatisfy((rows: number) => rows <= 150),
    });
  });
});

describe('charges moved to a connection are checked against its budget', () => {
  it('rejoining an index kept for nobody is refused past the connection’s room', async () => {
    const env = hubWith({ maxQueryIndexRowsPerConnection: 150 });
    await env.commit('events', records(100));
    const peer = new FakePeer();
    const q1 = { where: { kind: 'a' }, sort: 'at', limit: 1 };
    const q2 = {
      where: { kind: 'a' },
      sort: [{ field: 'at', direction: 'desc' }],
      limit: 1,
    } as const;
    await env.subscribe(peer, 1, 'events', q1);
    env.hub.unsubscribe(peer, 1); // kept for nobody: charged to nobody
    await env.subscribe(peer, 2, 'events', q2); // room 150: built, 100 rows
    await env.subscribe(peer, 3, 'events', q1); // the kept one would take it past its room
    expect(peer.messages('query_error')).toMatchObject([{ id: 3, code: 'LIMIT' }]);
    expect(env.internals().rowsByPeer.get(peer)).toBeLessThanOrEqual(150);
  });

  it('an index whose builder leaves goes to a subscriber with room, or to nobody', async () => {
    const env = hubWith({ maxQueryIndexRowsPerConnection: 150 });
    await env.commit('events', records(100));
    const [builder, heir] = [new FakePeer(), new FakePeer()];
    const q1 = { where: { kind: 'a' }, sort: 'at', limit: 1 };
    const q2 = {
      where: { kind: 'a' },
      sort: [{ field: 'at', direction: 'desc' }],
      limit: 1,
    } as const;
    await env.subscribe(builder, 1, 'events', q1);
    await env.subscribe(heir, 1, 'events', q1); // joins: charged nothing
    await env.subscribe(heir, 2, 'events', q2); // builds: 100 of its 150
    env.hub.removePeer(builder);
    expect(env.internals().rowsByPeer.get(heir)).toBeLessThanOrEqual(150);
  });
});

describe('netting a batch per window', () => {
  it('a row that changed out of the window, then changed again, is sent in `update`', async () => {
    const env = hubWith();
    await env.commit('events', [
      ['a1', { kind: 'a', at: 1 }],
      ['a2', { kind: 'a', at: 2 }],
      ['a3', { kind: 'a', at: 3 }],
      ['a4', { kind: 'a', at: 4 }],
    ]);
    const peer = new FakePeer();
    await env.subscribe(peer, 1, 'events', { where: { kind: 'a' }, sort: 'at', limit: 2 });
    await env.commit('events', [
      ['a1', { kind: 'a', at: 10 }],
      ['a1', { kind: 'a', at: 11 }],
    ]);
    const [update] = peer.messages('query_update');
    expect(update!.leave).toEqual(['a1']);
    expect(update!.enter.map(([key]) => key)).toEqual(['a3']);
    // protocol.md "Changed records that leave": its new version goes in `update`.
    expect(update!.update.map(([key, , value]) => [key, value])).toEqual([
      ['a1', { kind: 'a', at: 11 }],
    ]);
  });

  it('one change that moves a row out sends it in `update`', async () => {
    const env = hubWith();
    await env.commit('events', [
      ['a1', { kind: 'a', at: 1 }],
      ['a2', { kind: 'a', at: 2 }],
      ['a3', { kind: 'a', at: 3 }],
    ]);
    const peer = new FakePeer();
    await env.subscribe(peer, 1, 'events', { where: { kind: 'a' }, sort: 'at', limit: 2 });
    await env.commit('events', [['a1', { kind: 'a', at: 10 }]]);
    const [update] = peer.messages('query_update');
    expect(update!.update.map(([key]) => key)).toEqual(['a1']);
  });
});

describe('query_more', () => {
  it('growing a window past its last row is answered, with `matching`', async () => {
    const env = hubWith();
    await env.commit('events', records(3));
    const peer = new FakePeer();
    await env.subscribe(peer, 1, 'events', { where: { kind: 'a' }, limit: 5 });
    expect(env.hub.grows(peer, 1, 10)).toBe(true);
    await env.hub.more(peer, 1, 10, env.cpu.slicer());
    // Answered though no row entered: with `matching`.
    expect(peer.messages('query_update')).toEqual([
      { type: 'query_update', id: 1, enter: [], update: [], leave: [], matching: 3 },
    ]);
  });
});

describe('revokes and updates', () => {
  it('a record hidden then shown again in one batch is sent after its revoke', async () => {
    const env = hubWith();
    await env.commit('mine', [
      ['a1', { kind: 'x', at: 1, owner: 'alice' }],
      ['a2', { kind: 'x', at: 2, owner: 'alice' }],
    ]);
    const alice = new FakePeer('alice');
    await env.subscribe(alice, 1, 'mine', { sort: 'at', limit: 5 });
    await env.commit('mine', [
      ['a1', { kind: 'x', at: 1, owner: 'bob' }],
      ['a1', { kind: 'x', at: 1, owner: 'alice' }],
    ]);
    // "A revoke never follows a record it contradicts": the revoke, then the record.
    const revokedAt = alice.received.findIndex(
      (message) => message.type === 'revoke' && message.keys.includes('a1'),
    );
    const sentAt = alice.received.findLastIndex(
      (message) => message.type === 'query_update' && message.update.some(([key]) => key === 'a1'),
    );
    expect(revokedAt).toBeGreaterThanOrEqual(0);
    expect(sentAt).toBeGreaterThan(revokedAt);
  });
});

describe('windows a change does not reach', () => {
  it('cost no index lookups', async () => {
    const env = hubWith();
    await env.commit('events', records(1_000));
    const peers = Array.from({ length: 50 }, () => new FakePeer());
    for (const peer of peers)
      await env.subscribe(peer, 1, 'events', { where: { kind: 'a' }, sort: 'at', limit: 5 });
    const lookups = vi.spyOn(QueryIndex.prototype, 'rowAt');
    await env.commit('events', [['e900', { kind: 'a', at: 901.5 }]]);
    // A row that moves from 900 to 901, far past every window.
    expect(lookups.mock.calls.length).toBe(0);
  });
});

/** Every key a message to a peer names (entries, `leave`, `revoke`). */
function namedKeys(peer: FakePeer): string[] {
  const keys: string[] = [];
  for (const message of peer.received as Message[]) {
    if (message.type === 'query_snapshot') keys.push(...message.entries.map(([key]) => key));
    if (message.type === 'query_update')
      keys.push(
        ...message.enter.map(([key]) => key),
        ...message.update.map(([key]) => key),
        ...message.leave,
      );
    if (message.type === 'revoke') keys.push(...message.keys);
  }
  return keys;
}

/**
 * Changes of `count` keys (a `null` value deletes the record) and windows `[offset, limit]`
 * of at most the given sizes.
 */
function arbitraries<V extends Value>(
  count: number,
  value: fc.Arbitrary<V>,
  most: { offset: number; limit: number; windows: number },
) {
  const keys = Array.from({ length: count }, (_, i) => `k${i}`);
  return {
    change: fc.tuple(fc.constantFrom(...keys), fc.option(value)),
    windows: fc.array(
      fc.tuple(fc.integer({ min: 0, max: most.offset }), fc.integer({ min: 1, max: most.limit })),
      { minLength: 1, maxLength: most.windows },
    ),
  };
}

describe('properties', () => {
  it('a user is never named a key of a record it could not read (shared, per-user indexes)', async () => {
    const { change, windows: windowsOf } = arbitraries(
      10,
      fc.record({ owner: fc.constantFrom('alice', 'bob'), at: fc.integer({ min: 0, max: 5 }) }),
      { offset: 3, limit: 4, windows: 3 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(change, { maxLength: 10 }),
        windowsOf,
        fc.array(fc.array(change, { minLength: 1, maxLength: 3 }), { maxLength: 10 }),
        async (initial, windows, batches) => {
          const env = hubWith();
          await env.commit('mine', initial);
          const ever = { alice: new Set<string>(), bob: new Set<string>() };
          const see = async () => {
            const data = await env.grid.get('mine');
            for (const [key, v] of data.entries())
              ever[(v as { owner: 'alice' | 'bob' }).owner].add(key);
          };
          await see();
          const users = ['alice', 'bob'] as const;
          const peers = users.flatMap((user) => windows.map(() => new FakePeer(user)));
          for (const [i, peer] of peers.entries()) {
            const [offset, limit] = windows[i % windows.length]!;
            await env.subscribe(peer, 1, 'mine', { sort: 'at', offset, limit });
          }
          for (const batch of batches) {
            // Each change's record was readable by its owner, if only within the batch.
            for (const [key, v] of batch)
              if (v !== null) ever[(v as { owner: 'alice' | 'bob' }).owner].add(key);
            await env.commit('mine', batch);
            await see();
          }
          for (const peer of peers) {
            const user = peer.user.id as 'alice' | 'bob';
            for (const key of namedKeys(peer)) expect(ever[user].has(key)).toBe(true);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('windows with an offset, grown by query_more, equal the query’s result as records change', async () => {
    const { change, windows: windowsOf } = arbitraries(
      12,
      fc.record({ kind: fc.constantFrom('a', 'b'), at: fc.integer({ min: 0, max: 6 }) }),
      { offset: 4, limit: 5, windows: 4 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(change, { maxLength: 10 }),
        windowsOf,
        fc.array(
          fc.oneof(
            fc.array(change, { minLength: 1, maxLength: 3 }),
            fc.tuple(fc.nat(3), fc.integer({ min: 1, max: 4 })),
          ),
          { maxLength: 12 },
        ),
        async (initial, windows, steps) => {
          const env = hubWith();
          await env.commit('events', initial);
          const query = { where: { kind: 'a' }, sort: ['at'] } as const;
          const peers = windows.map(() => new FakePeer());
          const limits = windows.map(([, limit]) => limit);
          for (const [i, peer] of peers.entries())
            await env.subscribe(peer, 1, 'events', {
              ...query,
              offset: windows[i]![0],
              limit: limits[i]!,
            });
          for (const step of steps) {
            if (Array.isArray(step[0]) || typeof step[0] === 'string') {
              await env.commit('events', step as Array<[string, Value | null]>);
            } else {
              const [which, by] = step as [number, number];
              const i = which % peers.length;
              limits[i] = limits[i]! + by;
              await env.hub.more(peers[i]!, 1, limits[i]!, env.cpu.slicer());
            }
            const live = [...(await env.grid.get('events')).entries()];
            for (const [i, peer] of peers.entries()) {
              const expected = evaluateQuery(
                { ...query, offset: windows[i]![0], limit: limits[i]! },
                live,
              );
              expect(windowOf(peer, 1)).toEqual(
                new Map(expected.map((row) => [row.key, row.value])),
              );
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
