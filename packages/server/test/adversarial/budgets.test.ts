import {
  encodeHave,
  encodeMessage,
  formatTimestamp,
  type LWWRecord,
  type MessageOf,
  rootBytes,
  type Value,
} from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../postgres.js';
import { eventually } from '../serverHarness.js';
import { replicaOf, TestClient } from '../testClient.js';
import {
  answersSubscription,
  budgetExceeded,
  longestRoundTrip,
  metricValue,
  seedMap,
  startPinger,
  usePostgresServer,
} from './adversarialKit.js';

const available = await postgresAvailable();

// The budgets not covered by a named attack: each is hit on purpose, answered as the spec
// says, counted in `topgun_budget_exceeded_total`, and costs no other client anything.
describe.runIf(available)('per-connection and per-process budgets', () => {
  describe('maps, subscriptions and received bytes', () => {
    const served = usePostgresServer({
      auth: { allowAnonymous: true },
      limits: {
        mapLoadsPerSecond: 1,
        mapLoadsBurst: 20,
        subscribesPerSecond: 1,
        subscribesBurst: 10,
      },
      seed: (storage) => seedMap(storage, 'sorted', 5_000, (index) => ({ rank: index })),
    });

    it('refuses ops that would load more maps than the connection may, as retryable', async () => {
      const client = await TestClient.connect(served.url);
      const ops: MessageOf<'ops'>['ops'] = Array.from({ length: 50 }, (_, id) => ({
        id,
        map: `made-up-${id}`,
        entry: ['k', toStamp(client), 1],
      }));
      const { ack, reject } = await client.sendOps(ops);
      expect(ack?.ids.length).toBeGreaterThanOrEqual(20);
      expect(ack?.ids.length).toBeLessThan(25);
      const refused = reject?.rejections ?? [];
      expect(refused.length).toBe(50 - (ack?.ids.length ?? 0));
      for (const rejection of refused)
        expect(rejection).toMatchObject({ reason: 'RATE_LIMIT', retryable: true });
      expect(await budgetExceeded(served.server, 'map_loads')).toBeGreaterThan(0);
      client.close();
    });

    it('refuses subscriptions beyond the rate with `limit`, answering every one', async () => {
      const client = await TestClient.connect(served.url);
      for (let id = 1; id <= 15; id++)
        client.send({ type: 'subscribe', id, map: 'sorted', query: { sort: 'rank', limit: 1 } });
      await eventually(() => client.received.filter(answersSubscription()).length === 15, 10_000);
      const refused = client.pending('query_error');
      expect(refused.length).toBeGreaterThanOrEqual(4);
      for (const error of refused)
        expect(error).toMatchObject({
          code: 'LIMIT',
          message: expect.stringMatching(/per second/),
        });
      expect(await budgetExceeded(served.server, 'subscribe_rate')).toBeGreaterThanOrEqual(4);
      client.close();
    });

    it('counts query_more with subscriptions: beyond the rate the query ends with `limit`', async () => {
      const client = await TestClient.connect(served.url);
      client.send({ type: 'subscribe', id: 1, map: 'sorted', query: { sort: 'rank', limit: 1 } });
      await client.next(answersSubscription(1));
      const refusedBefore = await budgetExceeded(served.server, 'subscribe_rate');
      // A page at a time, far faster than one per second: the burst's 9 other tokens go.
      for (let limit = 2; limit <= 20; limit++) client.send({ type: 'query_more', id: 1, limit });
      // Handled in order: the pong follows every answer.
      client.send({ type: 'ping', time: 1 });
      await client.next('pong');
      const grown = client.pending('query_update');
      expect(grown.length).toBeGreaterThanOrEqual(9);
      expect(grown.length).toBeLessThan(19);
      expect(grown.map(({ enter }) => enter.map(([key]) => key))).toEqual(
        grown.map((_, index) => [`r${index + 1}`]),
      );
      // Refused once: the query ended, and the query_more after it name an unknown id.
      expect(client.pending('query_error')).toEqual([
        {
          type: 'query_error',
          id: 1,
          code: 'LIMIT',
          message: expect.stringMatching(/per second/),
        },
      ]);
      expect(await budgetExceeded(served.server, 'subscribe_rate')).toBe(refusedBefore + 1);
      client.close();
    });
  });

  describe('event-loop time', () => {
    const served = usePostgresServer({
      auth: { allowAnonymous: true },
      // A connection may use 20 ms per second of the event loop, and queue 64 KiB unhandled.
      limits: { cpuMsPerSecond: 20, cpuBurstMs: 20, receiveHighWaterMark: 64 * 1024 },
      seed: (storage) => seedMap(storage, 'heavy', 20_000, (index) => ({ rank: index % 977 })),
    });

    it('makes a client over its budget wait, stops reading its socket, and serves the others', async () => {
      const pinger = startPinger(served.url);
      await pinger.ready;
      const attacker = await TestClient.connect(served.url);
      // Each sorted build of 20 000 records costs far more than 20 ms; sent many at once, they
      // wait on the budget while the frames behind them pile up to the high-water mark.
      const frame = encodeMessage({
        type: 'subscribe',
        id: 1,
        map: 'heavy',
        query: { sort: 'rank', limit: 5, where: { note: { nin: padding() } } },
      });
      for (let round = 0; round < 40; round++) attacker.sendRaw(frame);
      await eventually(
        async () => (await budgetExceeded(served.server, 'receive_queue')) > 0,
        10_000,
      );
      await eventually(async () => (await budgetExceeded(served.server, 'cpu')) > 0, 10_000);
      expect(
        await metricValue(served.server, 'topgun_connection_cpu_seconds_total'),
      ).toBeGreaterThan(0.02);
      const roundTrips = await pinger.stop();
      expect(longestRoundTrip(roundTrips)).toBeLessThan(500);
      // Shutting down does not wait for the work a spent budget holds back.
      const closing = performance.now();
      await served.server.close();
      expect(performance.now() - closing).toBeLessThan(5_000);
      expect(await attacker.closed()).toBe(1001);
    });
  });

  describe('walks and maps nobody uses', () => {
    const served = usePostgresServer({
      auth: { allowAnonymous: true },
      idleMapMs: 100,
      limits: { walkIdleMs: 200 },
    });

    it('ends a walk the client abandoned, and lets idle maps leave memory but not storage', async () => {
      const client = await TestClient.connect(served.url);
      await client.write('idle', [['k', 'kept']]);
      // Opens a walk and never answers the server's reply.
      const replica = replicaOf();
      replica.set('other', 'x');
      client.send({
        type: 'sync',
        map: 'idle',
        session: 77,
        width: 4,
        root: rootBytes(replica.merkleTree),
        marks: new Uint8Array(0),
        hashes: replica.merkleTree.childHashes([], 4),
        digestSizes: [],
        digestKeys: [],
        digestStamps: new Uint8Array(0),
        nodeIds: [],
        wants: new Uint8Array(0),
        records: [],
      });
      await client.next((message) => message.type === 'sync' && message.session === 77);
      expect(await metricValue(served.server, 'topgun_sync_sessions_active')).toBe(1);
      await eventually(
        async () => (await metricValue(served.server, 'topgun_sync_sessions_active')) === 0,
        5_000,
      );
      await eventually(
        async () => (await metricValue(served.server, 'topgun_grid_maps')) === 0,
        5_000,
      );
      const fresh = replicaOf('fresh');
      expect((await client.sync('idle', fresh)).converged).toBe(true);
      expect(fresh.get('k')).toBe('kept');
      client.close();
    });
  });
});

describe.runIf(available)('one message over its CPU limit', () => {
  const served = usePostgresServer({
    auth: { allowAnonymous: true },
    limits: { maxMessageCpuMs: 1, workSliceMs: 1 },
    seed: (storage) => seedMap(storage, 'large', 30_000, (index) => ({ rank: index })),
  });

  it('ends a walk refused for its CPU limit at once, keeping nothing of it', async () => {
    const client = await TestClient.connect(served.url);
    const walk = await client.sync('large', replicaOf());
    expect(walk.done).toMatchObject({ type: 'sync_error', code: 'LIMIT' });
    expect(await budgetExceeded(served.server, 'message_cpu')).toBeGreaterThan(0);
    // Not left for the idle sweep (60 s): the walk and its slot are gone now.
    expect(await metricValue(served.server, 'topgun_sync_sessions_active')).toBe(0);
    client.close();
  });
});

describe.runIf(available)('hashing the records a query-scoped client holds', () => {
  /** The records of `held` as stored: 40 of 256 KiB, tens of milliseconds to hash. */
  const held: Array<readonly [string, LWWRecord<Value>]> = [];
  const served = usePostgresServer({
    auth: { allowAnonymous: true },
    limits: { maxMessageCpuMs: 10, workSliceMs: 1 },
    seed: async (storage) => {
      await seedMap(storage, 'held', 40, (index) => ({
        n: index,
        text: String(index)
          .repeat(256 * 1024)
          .slice(0, 256 * 1024),
      }));
      await storage.loadMap('held', (page) => {
        for (const { key, record } of page) held.push([key, record]);
      });
    },
  });

  it('runs in slices, within the CPU limit of the subscribe that asks for it', async () => {
    const client = await TestClient.connect(served.url);
    // Nothing matches: every key named is outside the result, each hashed.
    const query = { where: { missing: true } };
    client.send({ type: 'subscribe', id: 1, map: 'held', query });
    expect(await client.next(answersSubscription(1))).toMatchObject({
      type: 'query_snapshot',
      entries: [],
    });
    client.send({ type: 'subscribe', id: 2, map: 'held', query, have: encodeHave(held) });
    expect(await client.next(answersSubscription(2))).toMatchObject({
      type: 'query_error',
      code: 'LIMIT',
      message: expect.stringMatching(/more than 10 ms of server time/),
    });
    expect(await budgetExceeded(served.server, 'message_cpu')).toBe(1);
    expect(await metricValue(served.server, 'topgun_live_queries')).toBe(1);
    client.close();
  });
});

/** A timestamp of the client's node, now. */
function toStamp(client: TestClient): string {
  const { millis, counter, nodeId } = client.hlc.now();
  return formatTimestamp({ millis, counter, nodeId });
}

/** A list of values no record holds, to make a query cost a little more per record. */
function padding(): string[] {
  return Array.from({ length: 200 }, (_, index) => `absent-${index}`);
}
