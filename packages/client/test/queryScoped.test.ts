import {
  encodeHave,
  fromWireEntry,
  type Query,
  QueryError,
  toWireEntry,
  type Value,
} from '@topgun/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClientOptions,
  ConfigurationError,
  createClient,
  createMemoryStorage,
  type QueryHandle,
  type TopGunClient,
} from '../src/index.js';
import { FakeTransport, overFakeTransport } from './fakeTransport.js';

interface Event {
  kind: string;
  at: number;
}

const clients: TopGunClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

/** A client whose server is the test; map `events` is replicated by query. */
function scopedClient(options: Partial<ClientOptions> = {}) {
  const transport = new FakeTransport();
  const client = createClient({
    ...overFakeTransport(transport),
    maps: { events: { replicate: 'queries', maxRecords: 2 } },
    ...options,
  });
  clients.push(client);
  return { client, transport, events: client.getMap<Event>('events') };
}

const at = (millis: number) => ({ millis, counter: 0, nodeId: 'server' });
const entry = (key: string, value: Event | null, millis = 1) =>
  toWireEntry(key, { value, timestamp: at(millis) });

/** Resolves once the handle's snapshot passes `test`. */
async function until<V>(handle: QueryHandle<V>, test: () => boolean): Promise<void> {
  if (test()) return;
  await new Promise<void>((resolve) => {
    const stop = handle.subscribe(() => {
      if (!test()) return;
      stop();
      resolve();
    });
  });
}

const keysOf = (handle: QueryHandle<Event>) => handle.getSnapshot().data.map((row) => row.key);

describe('a map replicated by query', () => {
  it('is never walked: its query answers locally, then from the server, grows by pages and resumes by digest', async () => {
    const { client, transport, events } = scopedClient();
    client.getMap('todos');
    const connection = await transport.connection(0);
    await connection.welcome();
    // Only the whole map is walked.
    const walk = await connection.next('sync');
    expect(walk.map).toBe('todos');
    connection.receive({ type: 'sync_done', map: 'todos', session: walk.session, root: walk.root });
    const query: Query<Event> = { sort: [{ field: 'at', direction: 'desc' }], limit: 2 };
    const feed = client.query<Event>('events', query);
    const stop = feed.subscribe(() => {});
    expect(feed.getSnapshot()).toMatchObject({ data: [], status: 'local', hasMore: false });
    const subscribe = await connection.next('subscribe');
    expect(subscribe).toMatchObject({ map: 'events', query, have: { keys: [] } });

    connection.receive({
      type: 'query_snapshot',
      id: subscribe.id,
      entries: [entry('e3', { kind: 'a', at: 3 }), entry('e2', { kind: 'b', at: 2 })],
      last: true,
      matching: 3,
    });
    await until(feed, () => feed.getSnapshot().status === 'synced');
    expect(keysOf(feed)).toEqual(['e3', 'e2']);
    expect(feed.getSnapshot().hasMore).toBe(true);

    // The next page: asked of the server, which sends only the rows after the last one.
    feed.loadMore();
    expect(await connection.next('query_more')).toEqual({
      type: 'query_more',
      id: subscribe.id,
      limit: 4,
    });
    connection.receive({
      type: 'query_update',
      id: subscribe.id,
      enter: [entry('e1', { kind: 'a', at: 1 })],
      update: [],
      leave: [],
      matching: 3,
    });
    await until(feed, () => keysOf(feed).length === 3);
    expect(keysOf(feed)).toEqual(['e3', 'e2', 'e1']);
    expect(feed.getSnapshot().hasMore).toBe(false);

    // A local write shows at once.
    events.set('e9', { kind: 'c', at: 9 });
    expect(keysOf(feed)).toEqual(['e9', 'e3', 'e2', 'e1']);
    const [written] = (await connection.next('ops')).ops;

    // After a reconnect the query subscribes again with its grown window, naming what it holds.
    connection.drop();
    const again = await transport.connection(1);
    await again.welcome();
    const resumed = await again.next('subscribe');
    expect(resumed.query).toEqual({ ...query, limit: 4 });
    const held = [
      written!.entry,
      entry('e3', { kind: 'a', at: 3 }),
      entry('e2', { kind: 'b', at: 2 }),
      entry('e1', { kind: 'a', at: 1 }),
    ].map((wire) => fromWireEntry<Value>(wire));
    expect(resumed.have).toEqual(encodeHave(held));
    stop();
  });

  it('drops records no live or pinned query holds beyond its budget, and keeps pinned ones across a restart', async () => {
    const storage = createMemoryStorage();
    const { client, transport, events } = scopedClient({ storage });
    const connection = await transport.connection(0);
    await connection.welcome();
    const pinned = client.query<Event>(
      'events',
      { where: { kind: 'a' }, limit: 10 },
      { offline: true },
    );
    const other = client.query<Event>('events', { where: { kind: 'b' }, limit: 10 });
    pinned.subscribe(() => {});
    other.subscribe(() => {});
    const [first, second] = [
      await connection.next('subscribe'),
      await connection.next('subscribe'),
    ];
    connection.receive({
      type: 'query_snapshot',
      id: first.id,
      entries: [entry('a1', { kind: 'a', at: 1 }), entry('a2', { kind: 'a', at: 2 })],
      last: true,
    });
    connection.receive({
      type: 'query_snapshot',
      id: second.id,
      entries: [entry('b1', { kind: 'b', at: 1 }), entry('b2', { kind: 'b', at: 2 })],
      last: true,
    });
    await until(other, () => other.getSnapshot().status === 'synced');
    // A write not yet acknowledged is never dropped.
    events.set('b3', { kind: 'b', at: 3 });
    // Four records and one pending, over a budget of two, all held by live queries: kept.
    expect(events.size).toBe(5);

    other.dispose();
    expect(['a1', 'a2', 'b1', 'b2', 'b3'].filter((key) => events.get(key) !== undefined)).toEqual([
      'a1',
      'a2',
      'b3',
    ]);
    pinned.dispose();
    await client.close();

    // Started again without a network: the pinned query answers from what was stored, and
    // its rows survive another query's end.
    const offline = createClient({
      storage,
      maps: { events: { replicate: 'queries', maxRecords: 0 } },
    });
    clients.push(offline);
    await offline.ready;
    const later = offline.query<Event>('events', { where: { kind: 'b' }, limit: 10 });
    later.subscribe(() => {});
    later.dispose();
    const again = offline.query<Event>(
      'events',
      { where: { kind: 'a' }, limit: 10 },
      { offline: true },
    );
    expect(again.getSnapshot().data.map((row) => row.key)).toEqual(['a1', 'a2']);
  });

  it('connects while the replica loads, and subscribes with what it holds once loaded', async () => {
    const storage = createMemoryStorage();
    await storage.commit({
      records: [
        {
          map: 'events',
          key: 'e1',
          record: {
            value: { kind: 'a', at: 1 },
            timestamp: { millis: 5, counter: 0, nodeId: 'x' },
          },
        },
      ],
    });
    let loaded = () => {};
    const slowLoad = new Promise<void>((resolve) => {
      loaded = resolve;
    });
    const slow = Object.create(storage, {
      load: {
        value: async () => {
          await slowLoad;
          return storage.load();
        },
      },
    }) as typeof storage;
    const { client, transport } = scopedClient({ storage: slow });
    const feed = client.query<Event>('events', { where: { kind: 'a' }, limit: 10 });
    const stop = feed.subscribe(() => {});
    const connection = await transport.connection(0);
    // Welcomed before the replica is loaded: nothing is asked of the server yet.
    await connection.welcome();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(connection.sent.map((message) => message.type)).toEqual([]);
    loaded();
    const subscribe = await connection.next('subscribe');
    expect(subscribe.have?.keys).toEqual(['e1']);
    stop();
  });

  it('says why the server refused a query, and forgets it once the query is served', async () => {
    const { client, transport } = scopedClient();
    const feed = client.query<Event>('events', { sort: 'at', limit: 5 });
    const stop = feed.subscribe(() => {});
    const connection = await transport.connection(0);
    await connection.welcome();
    const subscribe = await connection.next('subscribe');
    connection.receive({
      type: 'query_error',
      id: subscribe.id,
      code: 'LIMIT',
      message: 'the live queries of one connection may index at most 1500 rows',
    });
    await until(feed, () => feed.getSnapshot().error !== null);
    expect(feed.getSnapshot()).toMatchObject({ status: 'local' });
    expect(feed.getSnapshot().error?.message).toContain('may index at most 1500 rows');

    // Served after a reconnect: confirmed, and the refusal forgotten.
    connection.drop();
    const again = await transport.connection(1);
    await again.welcome();
    const resumed = await again.next('subscribe');
    again.receive({ type: 'query_snapshot', id: resumed.id, entries: [], last: true, matching: 0 });
    await until(feed, () => feed.getSnapshot().status === 'synced');
    expect(feed.getSnapshot().error).toBeNull();
    stop();
  });

  it('refuses to be opened in the other mode by the same client', () => {
    const { client } = scopedClient();
    expect(() => client.getMap('events', { replicate: 'map' })).toThrow(ConfigurationError);
    expect(() => client.getMap('events', { replicate: 'queries' })).not.toThrow();
    expect(() => client.getMap('todos', { replicate: 'queries', maxRecords: -1 })).toThrow(
      ConfigurationError,
    );
  });

  it('takes only windows the server can resume: a limit of at most 10 000, no offset', () => {
    const { client } = scopedClient();
    expect(() => client.query('events', {})).toThrow(/limit: .*at most 10000/);
    expect(() => client.query('events', { limit: 10_001 })).toThrow(QueryError);
    expect(() => client.query('events', { limit: 5, offset: 5 })).toThrow(/offset: .*loadMore/);
  });
});

describe('the live-query messages of a connection', () => {
  it('go out at most 40 at once, then 8 a second, as a server admits them', async () => {
    const { client, transport } = scopedClient();
    const connection = await transport.connection(0);
    await connection.welcome();
    const stops = Array.from({ length: 56 }, (_, n) =>
      client.query('events', { where: { n }, limit: 5 }).subscribe(() => {}),
    );
    // Sent as each query starts: the first 40 at once.
    const subscribes = () => connection.sent.filter((message) => message.type === 'subscribe');
    expect(subscribes()).toHaveLength(40);
    // The last query ends while its subscribe still waits: its unsubscribe (after the idle
    // grace) waits behind it, never overtaking it.
    stops.pop()!();
    // The other 16 within 2 s (and a margin for a busy machine).
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(subscribes()).toHaveLength(56);
    const order = connection.sent.map((message) =>
      message.type === 'subscribe' && (message.query.where as { n: number }).n === 55
        ? 'subscribe 55'
        : message.type,
    );
    expect(order.indexOf('unsubscribe')).toBeGreaterThan(order.indexOf('subscribe 55'));
    for (const stop of stops) stop();
  });

  it('subscribe a query the server could not serve again a second later', async () => {
    const { client, transport } = scopedClient();
    const connection = await transport.connection(0);
    await connection.welcome();
    const feed = client.query('events', { limit: 5 });
    feed.subscribe(() => {});
    const { id } = await connection.next('subscribe');
    connection.receive({ type: 'query_error', id, code: 'UNAVAILABLE', message: 'try later' });
    const started = Date.now();
    expect(await connection.next('subscribe')).toMatchObject({ id });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(client.status.getState().lastError?.message).toMatch(/try later/);
  });
});

describe('paging a whole map', () => {
  it('is local: no query_more, and hasMore follows the replica, not the server’s first count', async () => {
    const transport = new FakeTransport();
    const client = createClient(overFakeTransport(transport));
    clients.push(client);
    const todos = client.getMap<{ at: number }>('todos');
    const connection = await transport.connection(0);
    await connection.welcome();
    await connection.endWalk();
    const feed = client.query<{ at: number }>('todos', { sort: 'at', limit: 2 });
    feed.subscribe(() => {});
    const { id } = await connection.next('subscribe');
    connection.receive({ type: 'query_snapshot', id, entries: [], last: true, matching: 0 });
    await until(feed, () => feed.getSnapshot().status === 'synced');
    for (let n = 0; n < 5; n++) todos.set(`t${n}`, { at: n });
    expect(feed.getSnapshot()).toMatchObject({ hasMore: true });
    feed.loadMore();
    expect(feed.getSnapshot().data.map((row) => row.key)).toEqual(['t0', 't1', 't2', 't3']);
    connection.receive({ type: 'ping', time: 1 });
    await connection.next('pong');
    expect(connection.sent.filter((message) => message.type === 'query_more')).toEqual([]);
  });
});
