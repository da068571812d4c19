import {
  CLOSE_CODES,
  decodeMessage,
  encodeMessage,
  HLC,
  LWWMap,
  type Message,
  type MessageOf,
  PROTOCOL_VERSION,
  rootBytes,
  toWireEntry,
  type Value,
} from '@topgun/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { manualOnlineManager } from '../src/index.js';
import { SyncEngine, type SyncHost, type WebSocketConstructor } from '../src/syncEngine.js';
import { createSyncStatusStore } from '../src/syncStatus.js';

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

/** An engine over replicas of `maps`, connected and welcomed. */
function connectedEngine(maps: readonly string[]) {
  const hlc = new HLC({ nodeId: 'client-tab', now: () => Date.now() });
  const replicas = new Map(maps.map((map) => [map, new LWWMap<Value>(hlc)]));
  const replica = (map: string): LWWMap<Value> => {
    const found = replicas.get(map);
    if (found === undefined) throw new Error(`no replica of ${map}`);
    return found;
  };
  const errors: string[] = [];
  const status = createSyncStatusStore();
  const host: SyncHost = {
    status,
    nodeId: 'client',
    openMaps: () => [...replicas.keys()],
    replica,
    mergeRemote: (map, entries) => {
      let changed = 0;
      for (const [key, record] of entries) if (replica(map).merge(key, record)) changed++;
      return changed;
    },
    resetMap: () => {},
    revoke: () => {},
    restampWrite: () => {},
    outbox: () => [],
    acknowledged: () => {},
    rejected: () => {},
    setClockOffset: () => {},
    clockAheadOf: () => false,
    repairClock: () => {},
    adoptForeignWrites: () => {},
    lastSync: () => undefined,
    setLastSync: () => {},
    serverQueries: () => [],
    queryConfirmed: () => {},
    serverError: (message) => errors.push(message),
  };
  const online = manualOnlineManager(true);
  const engine = new SyncEngine(host, {
    url: 'ws://server.test/sync',
    WebSocket: FakeSocket as unknown as WebSocketConstructor,
    online,
    minRetryMs: 100,
    maxRetryMs: 100_000,
    walkRetryMs: 100,
    now: () => Date.now(),
  });
  const welcome = () => {
    vi.advanceTimersByTime(0);
    const socket = lastSocket();
    socket.open();
    socket.receive({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      nodeId: 'server',
      userId: null,
      serverTime: Date.now(),
      heartbeatMs: 30_000,
      maxBatchOps: 1000,
      maxFrameBytes: 1024 * 1024,
    });
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
    code: 'limit',
    message: 'busy: retry later',
  });
  return { engine, host, online, errors, replica, welcome, converged, refused };
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
    const { engine, host, welcome, converged, refused } = connectedEngine(['a', 'b']);
    stop = () => engine.stop();
    const socket = welcome();
    const [walkA] = socket.walksOf('a');
    const [walkB] = socket.walksOf('b');
    socket.receive(refused('a', walkA ?? -1));
    socket.receive(converged('b', walkB ?? -1));
    // The initial walks have ended, but one waits to start again.
    expect(host.status.getState().connection).toBe('syncing');
    for (const [attempt, delay] of [100, 200, 400, 800].entries()) {
      vi.advanceTimersByTime(delay - 1);
      expect(socket.walksOf('a')).toHaveLength(attempt + 1);
      vi.advanceTimersByTime(1);
      expect(socket.walksOf('a')).toHaveLength(attempt + 2);
      const session = socket.walksOf('a').at(-1) ?? -1;
      if (attempt < 3) socket.receive(refused('a', session));
      else socket.receive(converged('a', session));
    }
    expect(host.status.getState().connection).toBe('online');
    // Converged: the next refusal starts the backoff over.
    engine.syncMap('b');
    socket.receive(refused('b', socket.walksOf('b').at(-1) ?? -1));
    vi.advanceTimersByTime(100);
    expect(socket.walksOf('b')).toHaveLength(3);
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
    const { engine, host, welcome, converged, refused } = connectedEngine(['a']);
    stop = () => engine.stop();
    vi.spyOn(Math, 'random').mockReturnValue(0);
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
    expect(host.status.getState().connection).toBe('online');
    vi.advanceTimersByTime(1_000);
    expect(second.walksOf('a')).toHaveLength(2);
    expect(host.status.getState().connection).toBe('online');
  });

  it('forgets an expired token once the connection is dropped by going offline', () => {
    const { engine, online, welcome } = connectedEngine([]);
    stop = () => engine.stop();
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
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
});
