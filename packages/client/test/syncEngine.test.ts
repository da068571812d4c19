import {
  CLOSE_CODES,
  decodeMessage,
  encodeMessage,
  type LWWMap,
  type Message,
  type MessageOf,
  rootBytes,
  toWireEntry,
  type Value,
} from '@topgun/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ConfigurationError,
  createClient,
  manualOnlineManager,
  type WebSocketConstructor,
  webSocketTransport,
} from '../src/index.js';
import { SyncEngine, type SyncEngineOptions } from '../src/sync/syncEngine.js';
import { welcomeMessage } from './fakeTransport.js';
import { clientRooms } from './rooms.js';

/** A WebSocket the test plays the server of, one frame at a time. */
class FakeSocket {
  static readonly opened: FakeSocket[] = [];
  readyState = 0;
  binaryType = 'blob';
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: ArrayBuffer }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  readonly sent: Message[] = [];

  constructor(readonly url: string) {
    FakeSocket.opened.push(this);
  }

  send(frame: Uint8Array): void {
    this.sent.push(decodeMessage(frame));
  }

  close(): void {
    this.readyState = 3;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }

  receive(message: Message): void {
    const frame = encodeMessage(message);
    this.onmessage?.({ data: frame.slice().buffer as ArrayBuffer });
  }

  closeFromServer(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }

  /** Sessions of the walks of `map` this client opened, in order. */
  walksOf(map: string): number[] {
    const sessions = this.sent
      .filter((message): message is MessageOf<'sync'> => message.type === 'sync')
      .filter((message) => message.map === map)
      .map((message) => message.session);
    return [...new Set(sessions)];
  }

  /** The client's `sync_done` messages (walks it ended itself). */
  ended(): number[] {
    return this.sent
      .filter((message): message is MessageOf<'sync_done'> => message.type === 'sync_done')
      .map((message) => message.session);
  }
}

function lastSocket(): FakeSocket {
  const socket = FakeSocket.opened.at(-1);
  if (socket === undefined) throw new Error('no socket was opened');
  return socket;
}

/** Answers `values` in turn, then the last of them again; counts the draws. */
function scriptedRandom(...values: number[]) {
  let draws = 0;
  const random = () => values[Math.min(draws++, values.length - 1)] ?? 0;
  return { random, draws: () => draws };
}

/**
 * An engine over the client's real rooms (memory storage, no tabs) holding maps `maps`;
 * `welcome` plays the server of its latest socket up to the welcome. Options given replace
 * the defaults.
 */
function connectedEngine(maps: readonly string[], options: Partial<SyncEngineOptions> = {}) {
  const { status, outbox, clock, replicas, writes, queries, marks } = clientRooms();
  for (const map of maps) replicas.entry(map);
  const replica = (map: string): LWWMap<Value> => replicas.entry(map).replica;
  const errors: string[] = [];
  status.subscribe((state, previous) => {
    if (state.lastError !== null && state.lastError !== previous.lastError)
      errors.push(state.lastError.message);
  });
  const online = manualOnlineManager(true);
  const engine = new SyncEngine(
    { replicas, writes, outbox, queries, marks, clock, status },
    {
      urls: ['ws://server.test/sync'],
      nodeId: 'client',
      transport: webSocketTransport(FakeSocket as unknown as WebSocketConstructor),
      online,
      minRetryMs: 100,
      maxRetryMs: 100_000,
      walkRetryMs: 100,
      now: () => Date.now(),
      random: () => 0.5,
      ...options,
    },
  );
  const welcome = () => {
    vi.advanceTimersByTime(0);
    const socket = lastSocket();
    socket.open();
    socket.receive(welcomeMessage());
    return socket;
  };
  const converged = (map: string, session: number): Message => ({
    type: 'sync_done',
    map,
    session,
    root: rootBytes(replica(map).merkleTree),
    syncedAt: Date.now(),
  });
  const refused = (map: string, session: number): Message => ({
    type: 'sync_error',
    map,
    session,
    code: 'LIMIT',
    message: 'busy: retry later',
  });
  return {
    engine,
    marks,
    status,
    online,
    errors,
    replica,
    writes,
    outbox,
    queries,
    welcome,
    converged,
    refused,
  };
}

describe('the sync engine against a scripted server', () => {
  let stop: (() => void) | undefined;
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.opened.length = 0;
  });
  afterEach(() => {
    stop?.();
    stop = undefined;
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  it('walks a refused map again later, each time later, and says online only when no walk waits', () => {
    const { engine, status, welcome, converged, refused } = connectedEngine(['a', 'b']);
    stop = () => engine.stop();
    const socket = welcome();
    const [walkA] = socket.walksOf('a');
    const [walkB] = socket.walksOf('b');
    socket.receive(refused('a', walkA ?? -1));
    socket.receive(converged('b', walkB ?? -1));
    // The initial walks have ended, but one waits to start again.
    expect(status.getState().connection).toBe('syncing');
    for (const [attempt, delay] of [100, 200, 400, 800].entries()) {
      vi.advanceTimersByTime(delay - 1);
      expect(socket.walksOf('a')).toHaveLength(attempt + 1);
      vi.advanceTimersByTime(1);
      expect(socket.walksOf('a')).toHaveLength(attempt + 2);
      const session = socket.walksOf('a').at(-1) ?? -1;
      if (attempt < 3) socket.receive(refused('a', session));
      else socket.receive(converged('a', session));
    }
    expect(status.getState().connection).toBe('online');
    // Converged: the next refusal starts the backoff over.
    engine.walkMap('b');
    socket.receive(refused('b', socket.walksOf('b').at(-1) ?? -1));
    vi.advanceTimersByTime(100);
    expect(socket.walksOf('b')).toHaveLength(3);
  });

  it('opens its walks right behind hello, before the welcome, and only once', () => {
    const { engine, status, converged } = connectedEngine(['a', 'b']);
    stop = () => engine.stop();
    vi.advanceTimersByTime(0);
    const socket = lastSocket();
    socket.open();
    expect(socket.sent.map((message) => message.type)).toEqual(['hello', 'sync', 'sync']);
    socket.receive(welcomeMessage());
    expect(socket.sent).toHaveLength(3);
    socket.receive(converged('a', socket.walksOf('a')[0] ?? -1));
    socket.receive(converged('b', socket.walksOf('b')[0] ?? -1));
    expect(status.getState().connection).toBe('online');
  });

  it('opens its walks again when the welcome says the server takes smaller frames than assumed', () => {
    const { engine } = connectedEngine(['a']);
    stop = () => engine.stop();
    vi.advanceTimersByTime(0);
    const socket = lastSocket();
    socket.open();
    const [early] = socket.walksOf('a');
    socket.receive({ ...(welcomeMessage() as MessageOf<'welcome'>), maxFrameBytes: 64 * 1024 });
    expect(socket.ended()).toEqual([early]);
    expect(socket.walksOf('a')).toHaveLength(2);
  });

  it('walks a replica still loading only once it is loaded, after the welcome', async () => {
    let load = () => {};
    const loaded = new Promise<void>((resolve) => {
      load = resolve;
    });
    const { engine } = connectedEngine(['a'], { loaded });
    stop = () => engine.stop();
    vi.advanceTimersByTime(0);
    const socket = lastSocket();
    socket.open();
    socket.receive(welcomeMessage());
    expect(socket.walksOf('a')).toHaveLength(0);
    load();
    await vi.advanceTimersByTimeAsync(0);
    expect(socket.walksOf('a')).toHaveLength(1);
  });

  it('resumes a map from its cursor on its first walk of a session, and walks when that is refused', () => {
    const { engine, marks, online, welcome, converged } = connectedEngine(['a']);
    stop = () => engine.stop();
    marks.set('a', 1_000, 'c1');
    let socket = welcome();
    const resumed = socket.sent.find((message) => message.type === 'sync');
    expect(resumed).toMatchObject({ cursor: 'c1', lastSync: 1_000, hashes: new Uint8Array(0) });
    // Refused (its root alone, apart): the next walk is a Merkle walk.
    socket.receive({ type: 'sync_done', map: 'a', session: 1, root: new Uint8Array(8).fill(7) });
    const walked = socket.sent.filter((message) => message.type === 'sync').at(-1);
    expect(walked).not.toHaveProperty('cursor');
    socket.receive({
      ...(converged('a', socket.walksOf('a')[1] ?? -1) as MessageOf<'sync_done'>),
      cursor: 'c2',
    });
    expect(marks.cursor('a')).toBe('c2');
    // The next session resumes from the new cursor.
    online.set(false);
    online.set(true);
    vi.advanceTimersByTime(100);
    socket = welcome();
    expect(socket.sent.find((message) => message.type === 'sync')).toMatchObject({
      cursor: 'c2',
    });
  });

  it('walks a map whose resume was refused even when the roots are equal, and resumes again after a refusal of the walk itself', () => {
    const { engine, marks, welcome, replica } = connectedEngine(['a']);
    stop = () => engine.stop();
    marks.set('a', 1_000, 'c1');
    const socket = welcome();
    // Refused with the walk limit: tried again later, still resuming.
    socket.receive({ type: 'sync_error', map: 'a', session: 1, code: 'LIMIT', message: 'busy' });
    vi.advanceTimersByTime(100);
    expect(socket.sent.filter((message) => message.type === 'sync').at(-1)).toMatchObject({
      cursor: 'c1',
    });
    // Refused, its root equal: it walks all the same (nothing vouched for the map).
    socket.receive({
      type: 'sync_done',
      map: 'a',
      session: 2,
      root: rootBytes(replica('a').merkleTree),
    });
    expect(socket.walksOf('a')).toHaveLength(3);
    expect(socket.sent.filter((message) => message.type === 'sync').at(-1)).not.toHaveProperty(
      'cursor',
    );
  });

  it('walks after a resume served but apart by writes still to be sent (the walk pushes them), not trusting its cursor', () => {
    const { engine, marks, welcome, writes, replica } = connectedEngine(['a']);
    stop = () => engine.stop();
    marks.set('a', 1_000, 'c1');
    writes.write('a', 'offline', (held) => held.set('offline', { n: 1 }));
    const socket = welcome();
    socket.receive({
      type: 'sync_done',
      map: 'a',
      session: 1,
      root: new Uint8Array(8),
      syncedAt: 2_000,
      cursor: 'c2',
    });
    expect(socket.walksOf('a')).toHaveLength(2);
    expect(socket.sent.filter((message) => message.type === 'sync').at(-1)).not.toHaveProperty(
      'cursor',
    );
    expect(marks.cursor('a')).toBe('c1');
    expect(replica('a').get('offline')).toEqual({ n: 1 });
  });

  it('moves a map’s cursor on with the server’s changes only once this session reconciled it', () => {
    const { engine, marks, online, welcome, converged } = connectedEngine(['a']);
    stop = () => engine.stop();
    const changes = (cursor: string): Message => ({
      type: 'changes',
      changes: [{ map: 'a', entries: [], cursor }],
    });
    let socket = welcome();
    socket.receive(changes('early'));
    expect(marks.cursor('a')).toBeUndefined();
    socket.receive({
      ...(converged('a', socket.walksOf('a')[0] ?? -1) as MessageOf<'sync_done'>),
      cursor: 'c1',
    });
    socket.receive(changes('c2'));
    expect(marks.cursor('a')).toBe('c2');
    // A new session: not until its walk converged again.
    online.set(false);
    online.set(true);
    vi.advanceTimersByTime(100);
    socket = welcome();
    socket.receive(changes('c3'));
    expect(marks.cursor('a')).toBe('c2');
    socket.receive({
      ...(converged('a', socket.walksOf('a')[0] ?? -1) as MessageOf<'sync_done'>),
      cursor: 'c4',
    });
    socket.receive(changes('c5'));
    expect(marks.cursor('a')).toBe('c5');
    // A walk of it that ends apart: the changes no longer move it.
    engine.walkMap('a');
    socket.receive({
      type: 'sync_done',
      map: 'a',
      session: socket.walksOf('a').at(-1) ?? -1,
      root: new Uint8Array(8).fill(1),
    });
    socket.receive(changes('c6'));
    expect(marks.cursor('a')).toBe('c5');
  });

  it('runs at most four walks at once, the server’s limit, starting the others as they end', () => {
    const maps = ['a', 'b', 'c', 'd', 'e', 'f'];
    const { engine, status, welcome, converged, refused } = connectedEngine(maps);
    stop = () => engine.stop();
    const socket = welcome();
    const walking = () => maps.filter((map) => socket.walksOf(map).length > 0);
    expect(walking()).toEqual(['a', 'b', 'c', 'd']);
    socket.receive(converged('a', socket.walksOf('a')[0] ?? -1));
    expect(walking()).toEqual(['a', 'b', 'c', 'd', 'e']);
    socket.receive(refused('b', socket.walksOf('b')[0] ?? -1));
    expect(walking()).toEqual(maps);
    for (const map of ['c', 'd', 'e', 'f'])
      socket.receive(converged(map, socket.walksOf(map)[0] ?? -1));
    // b waits for its retry.
    expect(status.getState().connection).toBe('syncing');
    vi.advanceTimersByTime(100);
    socket.receive(converged('b', socket.walksOf('b')[1] ?? -1));
    expect(status.getState().connection).toBe('online');
  });

  it('counts as progress only records that changed the replica', () => {
    const { engine, replica, welcome } = connectedEngine(['a']);
    stop = () => engine.stop();
    replica('a').set('k', { n: 1 });
    const held = replica('a').getRecord('k');
    if (held === undefined) throw new Error('no record');
    const socket = welcome();
    // A server that sends, walk after walk, a record the client already holds, and never
    // agrees on the root.
    for (let answered = 0; answered < 70; answered++) {
      const session = socket.walksOf('a')[answered];
      if (session === undefined) break;
      socket.receive({
        type: 'sync_records',
        map: 'a',
        session,
        records: [toWireEntry('k', held)],
        total: 1,
        last: true,
      });
      socket.receive({ type: 'sync_done', map: 'a', session, root: new Uint8Array(8) });
    }
    // One walk, one with wider hashes, then nothing until the backoff.
    expect(socket.walksOf('a')).toHaveLength(2);
    vi.advanceTimersByTime(100);
    expect(socket.walksOf('a')).toHaveLength(3);
  });

  it('starts again only a walk that went silent', () => {
    const { engine, errors, welcome } = connectedEngine(['a', 'b']);
    stop = () => engine.stop();
    const socket = welcome();
    const [walkA] = socket.walksOf('a');
    const [walkB] = socket.walksOf('b');
    vi.advanceTimersByTime(20_000);
    socket.receive({
      type: 'sync_records',
      map: 'b',
      session: walkB ?? -1,
      records: [],
      last: false,
    });
    // The watchdog runs every 15 s; by 45 s walk a has been silent for 45 s, walk b for 25 s.
    vi.advanceTimersByTime(25_000);
    expect(socket.ended()).toEqual([walkA]);
    expect(errors.some((error) => /no answer/.test(error))).toBe(true);
    vi.advanceTimersByTime(100);
    expect(socket.walksOf('a')).toHaveLength(2);
    expect(socket.walksOf('b')).toHaveLength(1);
  });

  it('forgets the walk retries and their backoff of a connection that dropped', () => {
    const { engine, status, welcome, converged, refused } = connectedEngine(['a'], {
      random: () => 0,
    });
    stop = () => engine.stop();
    const first = welcome();
    first.receive(refused('a', first.walksOf('a')[0] ?? -1));
    vi.advanceTimersByTime(100);
    first.receive(refused('a', first.walksOf('a')[1] ?? -1));
    vi.advanceTimersByTime(50);
    // A retry is due in 150 ms when the connection drops.
    first.closeFromServer(1006);
    const second = welcome();
    expect(second).not.toBe(first);
    second.receive(refused('a', second.walksOf('a')[0] ?? -1));
    vi.advanceTimersByTime(99);
    expect(second.walksOf('a')).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(second.walksOf('a')).toHaveLength(2);
    second.receive(converged('a', second.walksOf('a')[1] ?? -1));
    expect(status.getState().connection).toBe('online');
    vi.advanceTimersByTime(1_000);
    expect(second.walksOf('a')).toHaveLength(2);
    expect(status.getState().connection).toBe('online');
  });

  it('forgets an expired token once the connection is dropped by going offline', () => {
    const { engine, online, welcome } = connectedEngine([]);
    stop = () => engine.stop();
    const first = welcome();
    first.receive({
      type: 'error',
      code: 'TOKEN_EXPIRED',
      message: 'the token expired',
      retryable: true,
    });
    online.set(false);
    online.set(true);
    const second = welcome();
    expect(FakeSocket.opened).toHaveLength(2);
    // Refused for its token: backing off (half of 100 ms × 2^4 here), not reconnecting at once.
    second.closeFromServer(CLOSE_CODES.unauthorized);
    vi.advanceTimersByTime(799);
    expect(FakeSocket.opened).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.opened).toHaveLength(3);
  });

  it('starts from a random URL and tries the next after each failed or dropped connection, backing off across the list until one welcomes it', () => {
    const urls = ['ws://a.test/sync', 'ws://b.test/sync', 'ws://c.test/sync'] as const;
    const { engine, status, welcome } = connectedEngine([], { urls: [...urls] });
    stop = () => engine.stop();
    const opened = () => FakeSocket.opened.map((socket) => socket.url);
    // The first draw (0.5) picks b; every delay is then half its bound of 100 ms × 2^attempt.
    vi.advanceTimersByTime(0);
    expect(opened()).toEqual([urls[1]]);
    expect(status.getState()).toMatchObject({ connection: 'connecting', url: urls[1] });
    for (const [delay, next] of [
      [50, urls[2]],
      [100, urls[0]],
      [200, urls[1]],
    ] as const) {
      lastSocket().closeFromServer(1006);
      expect(status.getState()).toMatchObject({ connection: 'offline', url: null });
      const before = FakeSocket.opened.length;
      vi.advanceTimersByTime(delay - 1);
      expect(FakeSocket.opened).toHaveLength(before);
      vi.advanceTimersByTime(1);
      expect(FakeSocket.opened.at(-1)?.url).toBe(next);
    }
    expect(opened()).toEqual([urls[1], urls[2], urls[0], urls[1]]);
    welcome();
    expect(status.getState()).toMatchObject({ connection: 'online', url: urls[1] });
    // Connected once: the backoff starts over, and the drop moves on to the next server.
    lastSocket().closeFromServer(1006);
    vi.advanceTimersByTime(49);
    expect(FakeSocket.opened).toHaveLength(4);
    vi.advanceTimersByTime(1);
    expect(opened()).toEqual([urls[1], urls[2], urls[0], urls[1], urls[2]]);
  });

  it('with a list of one URL, reconnects to it under the same backoff and draws no number to pick it', () => {
    const { random, draws } = scriptedRandom(0.5);
    const { engine, welcome } = connectedEngine([], { urls: ['ws://only.test/sync'], random });
    stop = () => engine.stop();
    vi.advanceTimersByTime(0);
    expect(draws()).toBe(0);
    for (const delay of [50, 100, 200]) {
      lastSocket().closeFromServer(1006);
      vi.advanceTimersByTime(delay - 1);
      const before = FakeSocket.opened.length;
      vi.advanceTimersByTime(1);
      expect(FakeSocket.opened).toHaveLength(before + 1);
    }
    // One draw per reconnect, for its jitter only.
    expect(draws()).toBe(3);
    welcome().closeFromServer(1006);
    vi.advanceTimersByTime(50);
    expect(FakeSocket.opened.map((socket) => socket.url)).toEqual(
      Array(5).fill('ws://only.test/sync'),
    );
  });

  it('sends the writes in flight on a dropped connection again, with the live queries, to the next server', () => {
    const { engine, welcome, converged, writes, outbox, queries } = connectedEngine([], {
      urls: ['ws://a.test/sync', 'ws://b.test/sync'],
      random: () => 0,
    });
    for (const [index, key] of ['k1', 'k2'].entries())
      writes.write('notes', key, (replica) => replica.set(key, { n: index }));
    const written = outbox.inOrder();
    const settled: string[] = [];
    writes.acknowledged = (ids) => {
      settled.push(...ids);
      outbox.settle(ids);
    };
    queries.query('notes', { where: { n: 1 } }).subscribe(() => {});
    stop = () => engine.stop();
    const sentOps = (socket: FakeSocket) =>
      socket.sent
        .filter((message): message is MessageOf<'ops'> => message.type === 'ops')
        .flatMap((message) => message.ops);
    // Each connection walks the map first; its writes follow.
    const walked = (socket: FakeSocket) => {
      socket.receive(converged('notes', socket.walksOf('notes')[0] ?? -1));
      return socket;
    };
    const first = walked(welcome());
    expect(first.url).toBe('ws://a.test/sync');
    expect(sentOps(first).map((op) => op.entry[0])).toEqual(['k1', 'k2']);
    // The server dies with both writes unanswered.
    first.closeFromServer(1006);
    const second = walked(welcome());
    expect(second.url).toBe('ws://b.test/sync');
    expect(second.sent.filter((message) => message.type === 'subscribe')).toEqual([
      { type: 'subscribe', id: expect.any(Number), map: 'notes', query: { where: { n: 1 } } },
    ]);
    const resent = sentOps(second);
    expect(resent.map((op) => op.entry)).toEqual(
      written.map((entry) => toWireEntry(entry.key, entry.record)),
    );
    second.receive({ type: 'ack', ids: resent.map((op) => op.id), superseded: [] });
    expect(settled).toEqual(['client-tab/1', 'client-tab/2']);
    expect(outbox.size).toBe(0);
  });
});

describe('the url option', () => {
  beforeEach(() => {
    FakeSocket.opened.length = 0;
  });

  const connect = async (url: string | readonly string[], random = () => 0) => {
    const client = createClient({
      url,
      storage: 'memory',
      multiTab: false,
      WebSocket: FakeSocket as unknown as WebSocketConstructor,
      online: manualOnlineManager(true),
      random,
    });
    await vi.waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
    return client;
  };

  it('takes one URL as a string or as a list of one', async () => {
    for (const url of ['ws://one.test/sync', ['ws://one.test/sync']]) {
      FakeSocket.opened.length = 0;
      const client = await connect(url);
      expect(lastSocket().url).toBe('ws://one.test/sync');
      expect(client.status.getState().url).toBe('ws://one.test/sync');
      await client.close();
    }
  });

  it('starts from the URL the random draw picks, from a copy of the list', async () => {
    const urls = ['ws://a.test/sync', 'ws://b.test/sync', 'ws://c.test/sync'];
    // 0.99 picks the third; 0 makes the reconnect immediate.
    const client = await connect(urls, scriptedRandom(0.99, 0).random);
    urls.length = 0;
    expect(lastSocket().url).toBe('ws://c.test/sync');
    expect(client.status.getState().url).toBe('ws://c.test/sync');
    lastSocket().closeFromServer(1006);
    await vi.waitFor(() => expect(FakeSocket.opened).toHaveLength(2));
    expect(lastSocket().url).toBe('ws://a.test/sync');
    await client.close();
  });

  it('refuses an empty list', () => {
    expect(() => createClient({ url: [], storage: 'memory' })).toThrow(ConfigurationError);
  });
});
