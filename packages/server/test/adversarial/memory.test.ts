import {
  encodeMessage,
  formatTimestamp,
  type Message,
  SyncSession,
  toSyncWire,
  toWireEntry,
  type Value,
} from '@topgun/core';
import { describe, expect, it } from 'vitest';
import type { Storage } from '../../src/storage/storage.js';
import { postgresAvailable } from '../postgres.js';
import { eventually } from '../serverHarness.js';
import { replicaOf, TestClient } from '../testClient.js';
import {
  answersSubscription,
  budgetExceeded,
  metricValue,
  seedMap,
  usePostgresServer,
} from './adversarialKit.js';

const available = await postgresAvailable();

const BIG_RECORDS = 30_000;
/** Room for three windows over the whole big map, not four; and for three indexes of it. */
const MAX_ROWS_PER_CONNECTION = 100_000;
const SEND_HIGH_WATER_MARK = 64 * 1024;
const MAX_WALKS_PER_CONNECTION = 4;

/**
 * `storage`, noting every map it starts loading in `loadedMaps` and in `loaded` once done;
 * a load waits while `held()` gives a promise.
 */
function countingLoads(
  storage: Storage,
  loadedMaps: string[],
  loaded: string[],
  held: () => Promise<void> | undefined,
): Storage {
  return Object.create(storage, {
    loadMap: {
      value: async (map: string, onPage: Parameters<Storage['loadMap']>[1]) => {
        loadedMaps.push(map);
        try {
          await held();
          return await storage.loadMap(map, onPage);
        } finally {
          loaded.push(map);
        }
      },
    },
  });
}

/**
 * Opens walks of the map `walked` from a replica that differs from what the server shows
 * this client: each walk gets a first answer and then waits for one the attacker never sends.
 */
class Walker {
  private readonly replica = replicaOf('walker');

  constructor(private readonly client: TestClient) {
    this.replica.merge('own', { value: { hidden: false }, timestamp: client.hlc.now() });
  }

  /** Sends the opening of walk `session`; returns the session. */
  open(session: number): number {
    this.client.send(toSyncWire('walked', session, new SyncSession(this.replica).open()));
    return session;
  }

  /** The server's first answer to walk `session`: `sync` (the walk is open) or `sync_error`. */
  answerTo(session: number): Promise<Message> {
    return this.client.next(
      (message) =>
        (message.type === 'sync' || message.type === 'sync_error') && message.session === session,
    );
  }
}

describe.runIf(available)('an attacker cannot make the server hold memory without bound', () => {
  const loadedMaps: string[] = [];
  const loaded: string[] = [];
  let holdLoads: Promise<void> | undefined;
  const target = usePostgresServer({
    seed: async (storage) => {
      // Values large enough that a walk of the map overflows the kernel's socket buffers.
      await seedMap(storage, 'big', BIG_RECORDS, (index) => ({
        rank: index,
        payload: `${index}`.padEnd(400, '.'),
      }));
      await seedMap(storage, 'walked', 40, (index) => ({ hidden: index % 4 === 0, index }));
    },
    wrapStorage: (storage) => countingLoads(storage, loadedMaps, loaded, () => holdLoads),
    auth: { allowAnonymous: true },
    permissions: [
      { map: 'big', read: true, write: true },
      {
        map: 'walked',
        read: ({ value }) => value === undefined || (value as { hidden?: boolean }).hidden !== true,
        write: true,
      },
      { map: 'scratch', read: true, write: true },
      { map: 'big-never-*', read: true, write: true },
    ],
    limits: {
      maxLiveQueryRowsPerConnection: MAX_ROWS_PER_CONNECTION,
      maxQueryIndexRowsPerConnection: MAX_ROWS_PER_CONNECTION,
      sendHighWaterMark: SEND_HIGH_WATER_MARK,
      maxWalksPerConnection: MAX_WALKS_PER_CONNECTION,
    },
  });

  it('keeps nothing of a subscription whose client left while its map was loading', async () => {
    const before = await metricValue(target.server, 'topgun_live_queries');
    const connections = await metricValue(target.server, 'topgun_connections');
    let release = () => {};
    holdLoads = new Promise((resolve) => {
      release = resolve;
    });
    const maps = Array.from({ length: 20 }, (_, round) => `big-never-${round}`);
    try {
      const quitters = await Promise.all(maps.map(() => TestClient.connect(target.url)));
      // Maps nobody loaded yet: each subscription waits on the database while its client goes.
      quitters.forEach((quitter, index) => {
        quitter.send({ type: 'subscribe', id: 1, map: maps[index]!, query: {} });
      });
      await eventually(() => maps.every((map) => loadedMaps.includes(map)));
      for (const quitter of quitters) quitter.socket.terminate();
      await eventually(
        async () => (await metricValue(target.server, 'topgun_connections')) === connections,
      );
    } finally {
      holdLoads = undefined;
      release();
    }
    // Every load done, and a round trip after it: a subscription kept would be counted now.
    await eventually(() => maps.every((map) => loaded.includes(map)));
    const bystander = await TestClient.connect(target.url);
    bystander.send({ type: 'ping', time: 1 });
    await bystander.next('pong');
    bystander.close();
    expect(await metricValue(target.server, 'topgun_live_queries')).toBe(before);
    expect(await metricValue(target.server, 'topgun_live_query_rows')).toBe(0);
  });

  it('refuses live queries past the rows the windows of one connection may hold', async () => {
    const attacker = await TestClient.connect(target.url);
    for (let id = 1; id <= 100; id++)
      attacker.send({ type: 'subscribe', id, map: 'big', query: {} });
    // The first answers are enough: every window over the whole map holds BIG_RECORDS rows.
    const answersAwaited = 12;
    await eventually(
      () => attacker.received.filter(answersSubscription()).length >= answersAwaited,
      20_000,
    );
    const answers = attacker.received.filter(answersSubscription()).slice(0, answersAwaited);
    const accepted = Math.floor(MAX_ROWS_PER_CONNECTION / BIG_RECORDS);
    const heldRows = await metricValue(target.server, 'topgun_live_query_rows');

    expect(
      answers.map((answer) => answer.type),
      `live-query rows held: ${heldRows}`,
    ).toEqual([
      ...Array<string>(accepted).fill('query_snapshot'),
      ...Array<string>(answersAwaited - accepted).fill('query_error'),
    ]);
    for (const answer of answers.slice(accepted)) expect(answer).toMatchObject({ code: 'LIMIT' });
    expect(heldRows).toBeLessThanOrEqual(MAX_ROWS_PER_CONNECTION);
    expect(heldRows).toBe(accepted * BIG_RECORDS);
    // One query: its windows share one index.
    expect(await metricValue(target.server, 'topgun_query_index_rows')).toBe(BIG_RECORDS);
    expect(await budgetExceeded(target.server, 'live_query_rows')).toBeGreaterThanOrEqual(
      answersAwaited - accepted,
    );
    attacker.close();
    await eventually(
      async () => (await metricValue(target.server, 'topgun_live_query_rows')) === 0,
    );
  });

  it('shares one index between the windows of a query, and bounds the indexes a connection builds', async () => {
    // Indexes earlier tests left, kept a while for nobody.
    const lingering = await metricValue(target.server, 'topgun_query_index_rows');
    const attacker = await TestClient.connect(target.url);
    // Within the burst of subscriptions a connection may send.
    const windows = 40;
    for (let id = 1; id <= windows; id++)
      attacker.send({ type: 'subscribe', id, map: 'big', query: { sort: 'rank', limit: 1 } });
    // Queries that each need an index of their own, of about BIG_RECORDS rows.
    const shapes = 5;
    for (let shape = 1; shape <= shapes; shape++)
      attacker.send({
        type: 'subscribe',
        id: windows + shape,
        map: 'big',
        query: { where: { rank: { gte: shape } }, limit: 1 },
      });
    await eventually(
      () => attacker.received.filter(answersSubscription()).length >= windows + shapes,
      20_000,
    );
    const answers = attacker.received.filter(answersSubscription());
    const indexRows = (await metricValue(target.server, 'topgun_query_index_rows')) - lingering;
    // Room for three indexes: the windows' one and two more.
    expect(
      answers.map((answer) => answer.type),
      `index rows: ${indexRows}`,
    ).toEqual([
      ...Array<string>(windows + 2).fill('query_snapshot'),
      ...Array<string>(shapes - 2).fill('query_error'),
    ]);
    for (const answer of answers.slice(windows + 2))
      expect(answer).toMatchObject({ code: 'LIMIT' });
    expect(await metricValue(target.server, 'topgun_live_query_rows')).toBe(windows + 2);
    expect(indexRows).toBeLessThanOrEqual(MAX_ROWS_PER_CONNECTION);
    expect(indexRows).toBeGreaterThanOrEqual(3 * (BIG_RECORDS - shapes));
    expect(await budgetExceeded(target.server, 'query_index_rows')).toBeGreaterThanOrEqual(
      shapes - 2,
    );
    attacker.close();
    await eventually(
      async () => (await metricValue(target.server, 'topgun_live_query_rows')) === 0,
    );
  });

  it('caps the walks one connection keeps open over a map with record-level reads', async () => {
    const attacker = await TestClient.connect(target.url);
    const walker = new Walker(attacker);
    const answers: Message[] = [];
    for (let session = 1; session <= MAX_WALKS_PER_CONNECTION + 2; session++)
      answers.push(await walker.answerTo(walker.open(session)));
    expect(
      answers.map((answer) => answer.type),
      `${answers.filter((answer) => answer.type === 'sync').length} walks held open`,
    ).toEqual([
      ...Array<string>(MAX_WALKS_PER_CONNECTION).fill('sync'),
      'sync_error',
      'sync_error',
    ]);
    for (const answer of answers.slice(MAX_WALKS_PER_CONNECTION))
      expect(answer).toMatchObject({ code: 'LIMIT' });
    attacker.close();
  });

  // Walks run on chains of their own: openings sent together must not all pass the cap
  // before any of them is counted.
  it('caps the walks one connection keeps open also when it opens them all at once', async () => {
    const attacker = await TestClient.connect(target.url);
    const walker = new Walker(attacker);
    const walks = MAX_WALKS_PER_CONNECTION * 4;
    const sessions = Array.from({ length: walks }, (_, index) => walker.open(index + 1));
    const answers = await Promise.all(sessions.map((session) => walker.answerTo(session)));
    const opened = answers.filter((answer) => answer.type === 'sync').length;
    expect(opened, `${opened} of ${walks} walks held open`).toBe(MAX_WALKS_PER_CONNECTION);
    for (const answer of answers.filter((answer) => answer.type === 'sync_error'))
      expect(answer).toMatchObject({ code: 'LIMIT' });
    attacker.close();
  });

  it('encodes each frame into memory of its own, not a view of the encoder’s shared buffer', () => {
    encodeMessage({
      type: 'changes',
      changes: [
        {
          map: 'big',
          entries: [
            ['k', formatTimestamp({ millis: 1, counter: 0, nodeId: 'n' }), 'x'.repeat(8 << 20)],
          ],
        },
      ],
    });
    const small = encodeMessage({ type: 'ping', time: 1 });
    expect(small.buffer.byteLength).toBe(small.byteLength);
  });

  it('disconnects a client that never reads but keeps sending, once its queue passes the mark', async () => {
    const attacker = await TestClient.connect(target.url);
    const socket = (attacker.socket as unknown as { _socket: { pause(): void; resume(): void } })
      ._socket;
    // A walk from an empty replica streams the whole map, which this client never reads.
    attacker.send(toSyncWire('big', 1, new SyncSession(replicaOf('never-reads')).open()));
    socket.pause();
    const slowConsumers = () =>
      metricValue(target.server, 'topgun_violations_total', { kind: 'slow_consumer' });
    const before = await slowConsumers();
    const pinging = setInterval(() => attacker.send({ type: 'ping', time: Date.now() }), 20);
    try {
      await eventually(async () => (await slowConsumers()) > before, 15_000);
    } finally {
      clearInterval(pinging);
    }
    socket.resume();
    // A client that does not read cannot read the close frame either: it sees 4408 or 1006.
    expect([4408, 1006]).toContain(await attacker.closed(5_000));
  });

  it('refuses as malformed a value of a million empty maps, and stores nothing', async () => {
    const attacker = await TestClient.connect(target.url);
    const value = Object.fromEntries(
      Array.from({ length: 50 }, (_, index) => [
        `a${index}`,
        Array.from({ length: 20_000 }, () => ({})),
      ]),
    ) as Value;
    const frame = encodeMessage({
      type: 'ops',
      ops: [
        {
          id: 1,
          map: 'scratch',
          entry: toWireEntry('k', { value, timestamp: attacker.hlc.now() }),
        },
      ],
    });
    expect(frame.length).toBeLessThan(1024 * 1024);
    attacker.sendRaw(frame);
    const answer = await attacker.next((message) =>
      ['error', 'ack', 'reject'].includes(message.type),
    );
    expect(answer).toMatchObject({ type: 'error', code: 'MALFORMED' });
    expect(await target.server.storage.getRecords('scratch', ['k'])).toEqual([]);
    attacker.close();
  });

  it('loads no map for ops to maps the user may neither read nor write', async () => {
    const attacker = await TestClient.connect(target.url);
    const before = loadedMaps.length;
    const result = await attacker.sendOps(
      Array.from({ length: 200 }, (_, index) => ({
        id: index,
        map: `forbidden-${index}`,
        entry: toWireEntry('k', { value: 1, timestamp: attacker.hlc.now() }),
      })),
    );
    expect(result.ack).toBeUndefined();
    expect(result.reject?.rejections.map((rejection) => rejection.reason)).toEqual(
      Array<string>(200).fill('PERMISSION'),
    );
    const loaded = loadedMaps.slice(before);
    expect(loaded, `${loaded.length} maps loaded`).toEqual([]);
    attacker.close();
  });
});
