import { type Query, toWireEntry } from '@topgun/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type ClientStorage,
  type Connection,
  type ConnectionEvents,
  createClient,
  createMemoryStorage,
  type TopGunClient,
} from '../src/index.js';
import { connectEarly } from '../src/sync/earlyConnection.js';
import { FakeTransport, overFakeTransport } from './fakeTransport.js';

interface Event {
  kind: string;
  at: number;
}

const WINDOW: Query<Event> = {
  where: { kind: 'order' },
  sort: [{ field: 'at', direction: 'desc' }],
  limit: 2,
};
const entry = (key: string, at: number) =>
  toWireEntry(key, {
    value: { kind: 'order', at },
    timestamp: { millis: at, counter: 0, nodeId: 'server' },
  });

const clients: TopGunClient[] = [];
let items: Map<string, string>;
beforeEach(() => {
  // A localStorage: where the client id is kept, and how a first visit is told apart.
  items = new Map();
  Object.defineProperty(globalThis, 'localStorage', {
    value: {
      getItem: (key: string) => items.get(key) ?? null,
      setItem: (key: string, value: string) => void items.set(key, value),
      removeItem: (key: string) => void items.delete(key),
    },
    configurable: true,
  });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  Reflect.deleteProperty(globalThis, 'localStorage');
  Reflect.deleteProperty(globalThis, 'navigator');
});

/** A storage whose load waits for `release()`, as IndexedDB keeps a fresh browser waiting. */
function slowStorage(inner: ClientStorage = createMemoryStorage()) {
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const storage: ClientStorage = {
    ...inner,
    load: async () => {
      await released;
      return inner.load();
    },
  };
  return { storage, release };
}

/** A client of map `events` replicated by query, whose server is the test. */
function scopedClient(storage: ClientStorage) {
  const transport = new FakeTransport();
  const client = createClient({
    ...overFakeTransport(transport),
    storage,
    maps: { events: { replicate: 'queries' } },
  });
  clients.push(client);
  return { client, transport };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * A client whose slow stored replica holds event `key`, following the window, welcomed by
 * the test (its replica still loading until `release()`).
 */
async function welcomedHolding(key: string) {
  const inner = createMemoryStorage();
  const timestamp = { millis: 1, counter: 0, nodeId: 'server' };
  await inner.commit({
    records: [{ map: 'events', key, record: { value: { kind: 'order', at: 1 }, timestamp } }],
  });
  const { storage, release } = slowStorage(inner);
  const { client, transport } = scopedClient(storage);
  const stop = client.query<Event>('events', WINDOW).subscribe(() => {});
  const connection = await transport.connection(0);
  await connection.welcome();
  return { client, transport, connection, stop, release };
}

describe('a first visit (no client id stored)', () => {
  it('subscribes a query of a map replicated by query on the welcome, before the replica loads, and applies its rows once it has', async () => {
    const { storage, release } = slowStorage();
    const { client, transport } = scopedClient(storage);
    const window = client.query<Event>('events', WINDOW);
    const stop = window.subscribe(() => {});
    const connection = await transport.connection(0);
    await connection.welcome();
    const subscribe = await connection.next('subscribe');
    expect(subscribe).toMatchObject({ map: 'events', query: WINDOW });
    connection.receive({
      type: 'query_snapshot',
      id: subscribe.id,
      entries: [entry('e2', 2), entry('e1', 1)],
      last: true,
    });
    await tick();
    // The answer waits for the replica, like the welcome.
    expect(window.getSnapshot()).toMatchObject({ data: [], status: 'local' });
    expect(client.status.getState().connection).toBe('connecting');
    release();
    await client.ready;
    await tick();
    expect(window.getSnapshot().data.map((row) => row.key)).toEqual(['e2', 'e1']);
    expect(window.getSnapshot().status).toBe('synced');
    expect(client.status.getState().connection).not.toBe('connecting');
    // Subscribed once: the welcome, once processed, leaves it be.
    expect(connection.sent.filter((message) => message.type === 'subscribe')).toEqual([]);
    stop();
  });

  it('sends a query started between the welcome and the load at once too, and ends one stopped meanwhile', async () => {
    const { storage, release } = slowStorage();
    const { client, transport } = scopedClient(storage);
    const connection = await transport.connection(0);
    await connection.welcome();
    await tick();
    const stop = client.query<Event>('events', WINDOW).subscribe(() => {});
    const subscribe = await connection.next('subscribe');
    stop(); // ended after the handle's grace of 1 s
    expect(await connection.next('unsubscribe')).toEqual({ type: 'unsubscribe', id: subscribe.id });
    release();
    await client.ready;
    await tick();
    expect(connection.sent.filter((message) => message.type === 'subscribe')).toEqual([]);
  });

  it('subscribes again, naming them, when the replica held records after all (localStorage alone was cleared)', async () => {
    const { client, transport, connection, stop, release } = await welcomedHolding('old');
    const early = await connection.next('subscribe');
    expect(early.have?.keys ?? []).toEqual([]);
    release();
    await client.ready;
    expect(await connection.next('unsubscribe')).toEqual({ type: 'unsubscribe', id: early.id });
    const again = await connection.next('subscribe');
    expect(again.id).toBe(early.id);
    expect(again.have?.keys).toEqual(['old']);
    // A reconnect, the replica loaded: one subscribe naming what it holds, nothing twice.
    connection.drop();
    const next = await transport.connection(1);
    await next.welcome();
    expect((await next.next('subscribe')).have?.keys).toEqual(['old']);
    await tick();
    expect(next.sent.filter((message) => message.type !== 'sync')).toEqual([]);
    stop();
  });

  it('answers an error at once while the welcome waits for the replica', async () => {
    const { storage, release } = slowStorage();
    const { client, transport } = scopedClient(storage);
    const connection = await transport.connection(0);
    await connection.welcome();
    connection.receive({
      type: 'error',
      code: 'TOKEN_EXPIRED',
      message: 'the token expired',
      retryable: false,
    });
    await tick();
    const { lastError } = client.status.getState();
    release();
    expect(lastError?.message).toBe('the token expired');
  });
});

describe('a later visit (a client id stored)', () => {
  it('subscribes once the replica is loaded, naming the records it holds', async () => {
    items.set('topgun:topgun:clientId', 'storedClient');
    const { client, connection, stop, release } = await welcomedHolding('e1');
    await tick();
    expect(connection.sent.filter((message) => message.type === 'subscribe')).toEqual([]);
    release();
    await client.ready;
    const subscribe = await connection.next('subscribe');
    expect(subscribe.have).toBeDefined();
    stop();
  });
});

/** A Web Locks stand-in the test answers: `grant()` runs the requests asked so far. */
function fakeLocks(heldByAnotherTab: boolean) {
  const asked: Array<() => void> = [];
  const locks = {
    request(
      name: string,
      options: { ifAvailable?: boolean },
      callback: (lock: { name: string } | null) => unknown,
    ) {
      return new Promise((resolve) => {
        asked.push(() => {
          if (options.ifAvailable && heldByAnotherTab) resolve(callback(null));
          else if (!heldByAnotherTab) resolve(callback({ name }));
          // else: waits for the other tab, which never leaves
        });
      });
    },
  };
  Object.defineProperty(globalThis, 'navigator', { value: { locks }, configurable: true });
  return {
    grant: () => {
      for (const answer of asked.splice(0)) answer();
    },
  };
}

describe('a tab waiting for the election', () => {
  it('opens its socket meanwhile, and says hello on it once elected', async () => {
    const locks = fakeLocks(false);
    const transport = new FakeTransport();
    clients.push(createClient({ ...overFakeTransport(transport), multiTab: true }));
    const connection = await transport.connection(0);
    (connection as unknown as { events: ConnectionEvents }).events.open();
    await tick();
    expect(connection.sent).toEqual([]);
    locks.grant();
    expect(await connection.next('hello')).toMatchObject({ type: 'hello' });
    expect(transport.connections).toHaveLength(1);
  });

  it('closes the socket it opened when another tab leads', async () => {
    const locks = fakeLocks(true);
    const transport = new FakeTransport();
    clients.push(createClient({ ...overFakeTransport(transport), multiTab: true }));
    const connection = await transport.connection(0);
    locks.grant();
    await vi.waitFor(() => expect(connection.closed).toBe(true));
    expect(connection.sent).toEqual([]);
  });
});

describe('connectEarly', () => {
  /** A transport recording its connections, each with its events. */
  function recordingTransport() {
    const made: Array<{ url: string; events: ConnectionEvents; closed: boolean }> = [];
    const transport = {
      connect(url: string, events: ConnectionEvents): Connection {
        const record = { url, events, closed: false };
        made.push(record);
        return {
          send() {},
          close() {
            record.closed = true;
          },
        };
      },
    };
    return { transport, made };
  }

  it('replays what the early connection reported, in order, to whoever takes it, after the take', async () => {
    const { transport, made } = recordingTransport();
    const early = connectEarly(transport, 'ws://a');
    made[0]!.events.open();
    made[0]!.events.frame(new Uint8Array([1]));
    const seen: string[] = [];
    early.connect('ws://a', {
      open: () => seen.push('open'),
      frame: (data) => seen.push(`frame ${data[0]}`),
      close: (code) => seen.push(`close ${code}`),
    });
    expect(seen).toEqual([]);
    made[0]!.events.frame(new Uint8Array([2]));
    await tick();
    made[0]!.events.close(1006, '');
    expect(seen).toEqual(['open', 'frame 1', 'frame 2', 'close 1006']);
    expect(made).toHaveLength(1);
  });

  it('drops one that closed before it was taken: the first connect opens a new one', () => {
    const { transport, made } = recordingTransport();
    const early = connectEarly(transport, 'ws://a');
    made[0]!.events.close(1006, 'gone');
    early.connect('ws://a', { open() {}, frame() {}, close() {} });
    expect(made.map(({ url, closed }) => [url, closed])).toEqual([
      ['ws://a', true],
      ['ws://a', false],
    ]);
  });

  it('closes it for a connection to another server, and when nobody takes it within 5 s', () => {
    vi.useFakeTimers();
    try {
      const { transport, made } = recordingTransport();
      const other = connectEarly(transport, 'ws://a');
      other.connect('ws://b', { open() {}, frame() {}, close() {} });
      expect(made.map(({ url, closed }) => [url, closed])).toEqual([
        ['ws://a', true],
        ['ws://b', false],
      ]);
      connectEarly(transport, 'ws://c');
      vi.advanceTimersByTime(4_999);
      expect(made[2]!.closed).toBe(false);
      vi.advanceTimersByTime(1);
      expect(made[2]!.closed).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
