/**
 * The three systems the peers benchmark compares, behind one shape: a sync server in its own
 * process, and Node clients with memory storage that write records, see them arrive, go
 * offline and come back. Every client's WebSocket counts the bytes of the messages it sends
 * and receives (payloads, without WebSocket framing or the HTTP upgrade).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, manualOnlineManager, type TopGunClient } from '@topgun/client';
import { createMergeableStore, type MergeableStore } from 'tinybase';
import {
  createWsSynchronizer,
  type WsSynchronizer,
} from 'tinybase/synchronizers/synchronizer-ws-client';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import {
  createDatabase,
  dropDatabase,
  SERVER_CLI,
  startServer,
  stopServer,
} from '../serverProcesses.js';

const here = dirname(fileURLToPath(import.meta.url));

/** A record the benchmark writes. */
export interface Row {
  readonly n: number;
  readonly text: string;
}

/** Message bytes one client sent and received. */
export class Traffic {
  sent = 0;
  received = 0;
  reset(): void {
    this.sent = 0;
    this.received = 0;
  }
  get total(): number {
    return this.sent + this.received;
  }
}

export function byteLength(data: unknown): number {
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  if (Array.isArray(data)) return data.reduce((sum: number, part) => sum + byteLength(part), 0);
  if (typeof data === 'string') return Buffer.byteLength(data);
  return 0;
}

/** The `ws` WebSocket, counting message bytes into `traffic`. */
export function countingWebSocket(traffic: Traffic): typeof WebSocket {
  return class CountingWebSocket extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      this.on('message', (data: unknown) => {
        traffic.received += byteLength(data);
      });
    }

    override send(data: unknown, ...rest: unknown[]): void {
      traffic.sent += byteLength(data);
      (super.send as (...all: unknown[]) => void)(data, ...rest);
    }
  } as typeof WebSocket;
}

/** One client of one map (a Yjs document, a TinyBase path). */
export interface PeerClient {
  readonly traffic: Traffic;
  /** Writes one record. */
  write(key: string, row: Row): void;
  /** Writes many records, as the system's API does best (one Yjs transaction). */
  writeMany(rows: ReadonlyArray<readonly [string, Row]>): void;
  get(key: string): Row | undefined;
  readonly size: number;
  /** Calls `listener` with the keys that changed, as they arrive. */
  onChange(listener: (keys: Iterable<string>) => void): void;
  /** Resolves once the server holds everything written so far (or as near as one can tell). */
  settled(): Promise<void>;
  /** Disconnects, keeping the local data. */
  goOffline(): Promise<void>;
  /** Reconnects; resolves once synced again. */
  goOnline(): Promise<void>;
  close(): Promise<void>;
}

/** A system: its server, and clients of it. */
export interface PeerSystem {
  readonly name: string;
  /** Starts its server; `variant` options are TopGun's only. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The server process. */
  readonly pid: number;
  /** A client of map `map`, connected and synced. */
  client(map: string): Promise<PeerClient>;
}

/** Resolves once `done()` holds, polling; rejects after `timeoutMs`. */
export async function until(what: string, done: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

let nextPort = 19_400 + (process.pid % 400) * 10;

// ---- TopGun -------------------------------------------------------------------------------

/**
 * TopGun's server process on PostgreSQL (a fresh database), or on its embedded PGlite when
 * `pglite`; `environment` adds to its configuration.
 */
export class TopGunSystem implements PeerSystem {
  #server: ChildProcess | undefined;
  #database: string | undefined;
  #dataDir: string | undefined;
  #url = '';

  constructor(
    readonly name = 'TopGun',
    private readonly environment: Record<string, string> = {},
    private readonly pglite = false,
  ) {}

  get pid(): number {
    return this.#server!.pid!;
  }

  async start(): Promise<void> {
    const port = nextPort++;
    if (this.pglite) {
      this.#dataDir = mkdtempSync(join(tmpdir(), 'topgun-peers-'));
      this.#server = await startServer(undefined, port, SERVER_CLI, {
        ...this.environment,
        TOPGUN_DATA_DIR: this.#dataDir,
      });
    } else {
      this.#database = await createDatabase(`_peers_${port}`);
      this.#server = await startServer(this.#database, port, SERVER_CLI, this.environment);
    }
    this.#url = `ws://127.0.0.1:${port}/sync`;
  }

  async stop(): Promise<void> {
    if (this.#server !== undefined) await stopServer(this.#server);
    if (this.#database !== undefined) await dropDatabase(this.#database);
    if (this.#dataDir !== undefined) rmSync(this.#dataDir, { recursive: true, force: true });
  }

  async client(map: string): Promise<PeerClient> {
    const traffic = new Traffic();
    const online = manualOnlineManager(true);
    const client = createClient({
      url: this.#url,
      storage: 'memory',
      multiTab: false,
      WebSocket: countingWebSocket(traffic) as never,
      online,
      minRetryMs: 10,
    });
    const handle = client.getMap<Row>(map);
    const synced = () => client.status.getState().connection === 'online';
    // Told by the status store, as Yjs's provider tells its 'sync': polling would add up to a
    // timer's millisecond to the fixed cost.
    await new Promise<void>((resolve, reject) => {
      if (synced()) return resolve();
      const timeout = setTimeout(() => reject(new Error('TopGun never synced')), 120_000);
      const unsubscribe = client.status.subscribe(() => {
        if (!synced()) return;
        unsubscribe();
        clearTimeout(timeout);
        resolve();
      });
    });
    return new TopGunClientOf(client, handle, online, traffic, synced);
  }
}

class TopGunClientOf implements PeerClient {
  constructor(
    private readonly client: TopGunClient,
    private readonly map: ReturnType<TopGunClient['getMap']> & {
      set(key: string, value: Row): void;
      get(key: string): Row | undefined;
    },
    private readonly online: ReturnType<typeof manualOnlineManager>,
    readonly traffic: Traffic,
    private readonly synced: () => boolean,
  ) {}

  write(key: string, row: Row): void {
    this.map.set(key, row);
  }

  writeMany(rows: ReadonlyArray<readonly [string, Row]>): void {
    for (const [key, row] of rows) this.map.set(key, row);
  }

  get(key: string): Row | undefined {
    return this.map.get(key) as Row | undefined;
  }

  get size(): number {
    return this.map.size;
  }

  onChange(listener: (keys: Iterable<string>) => void): void {
    // ClientMap tells that something changed, not what: the caller checks its keys.
    this.map.subscribe(() => listener([]));
  }

  settled(): Promise<void> {
    return this.client.flush();
  }

  async goOffline(): Promise<void> {
    this.online.set(false);
    await until('TopGun offline', () => this.client.status.getState().connection === 'offline');
  }

  async goOnline(): Promise<void> {
    this.online.set(true);
    await until('TopGun reconnecting', () => !this.synced(), 50).catch(() => undefined);
    await until('TopGun synced again', this.synced);
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

// ---- peers' servers -----------------------------------------------------------------------

/** A peer's server (src/peers/peerServer.ts) in its own process. */
export abstract class PeerServerSystem implements PeerSystem {
  #server: ChildProcess | undefined;
  protected url = '';

  constructor(
    readonly name: string,
    private readonly kind: 'yjs' | 'tinybase' | 'automerge',
  ) {}

  get pid(): number {
    return this.#server!.pid!;
  }

  async start(): Promise<void> {
    const port = nextPort++;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, 'peerServer.ts'), this.kind, String(port)],
      { stdio: ['ignore', 'pipe', 'inherit'], cwd: join(here, '../..') },
    );
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`${this.kind} server exited (${code})`)));
      child.stdout!.on('data', (data: Buffer) => {
        if (data.toString().includes('ready')) resolve();
      });
    });
    this.#server = child;
    this.url = `ws://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    if (this.#server !== undefined) await stopServer(this.#server);
  }

  abstract client(map: string): Promise<PeerClient>;
}

export class YjsSystem extends PeerServerSystem {
  constructor() {
    super('Yjs + y-websocket', 'yjs');
  }

  async client(map: string): Promise<PeerClient> {
    // Each provider listens for the process's exit, and the bench holds hundreds at once.
    process.setMaxListeners(0);
    const traffic = new Traffic();
    const doc = new Y.Doc();
    const provider = new WebsocketProvider(this.url, map, doc, {
      WebSocketPolyfill: countingWebSocket(traffic) as never,
      disableBc: true,
      resyncInterval: -1,
    });
    await untilSynced(provider);
    return new YjsClient(doc, provider, traffic);
  }
}

function untilSynced(provider: WebsocketProvider): Promise<void> {
  if (provider.synced) return Promise.resolve();
  return new Promise((resolve) => {
    const onSync = (synced: boolean) => {
      if (!synced) return;
      provider.off('sync', onSync);
      resolve();
    };
    provider.on('sync', onSync);
  });
}

class YjsClient implements PeerClient {
  readonly #rows: Y.Map<Row>;

  constructor(
    private readonly doc: Y.Doc,
    private readonly provider: WebsocketProvider,
    readonly traffic: Traffic,
  ) {
    this.#rows = doc.getMap<Row>('rows');
  }

  write(key: string, row: Row): void {
    this.#rows.set(key, row);
  }

  writeMany(rows: ReadonlyArray<readonly [string, Row]>): void {
    this.doc.transact(() => {
      for (const [key, row] of rows) this.#rows.set(key, row);
    });
  }

  get(key: string): Row | undefined {
    return this.#rows.get(key);
  }

  get size(): number {
    return this.#rows.size;
  }

  onChange(listener: (keys: Iterable<string>) => void): void {
    this.#rows.observe((event) => listener(event.keysChanged));
  }

  async settled(): Promise<void> {
    // y-websocket sends each update as it is made and acknowledges nothing: wait until the
    // socket's buffer is written out.
    const socket = this.provider.ws as unknown as WebSocket | null;
    await until('Yjs socket drained', () => socket === null || socket.bufferedAmount === 0);
  }

  async goOffline(): Promise<void> {
    this.provider.disconnect();
  }

  async goOnline(): Promise<void> {
    this.provider.connect();
    await until('Yjs reconnecting', () => !this.provider.synced, 50).catch(() => undefined);
    await untilSynced(this.provider);
  }

  async close(): Promise<void> {
    this.provider.destroy();
    this.doc.destroy();
  }
}

/**
 * How long a TinyBase client of the large map waits for the server's answer to one of its
 * requests: with TinyBase's default, 1 s, the answers about a path of 100,000 rows come too
 * late and the client's sync stays incomplete for good. Other clients keep the default (a
 * client of an empty path waits that long for an answer that does not come).
 */
const TINYBASE_LARGE_REQUEST_TIMEOUT_S = 120;

export class TinyBaseSystem extends PeerServerSystem {
  constructor() {
    super('TinyBase + WsServer', 'tinybase');
  }

  async client(map: string): Promise<PeerClient> {
    const traffic = new Traffic();
    const store = createMergeableStore();
    const client = new TinyBaseClient(
      store,
      `${this.url}/${map}`,
      traffic,
      map === 'large' ? TINYBASE_LARGE_REQUEST_TIMEOUT_S : undefined,
    );
    await client.goOnline();
    return client;
  }
}

class TinyBaseClient implements PeerClient {
  #synchronizer: WsSynchronizer<WebSocket> | undefined;

  constructor(
    private readonly store: MergeableStore,
    private readonly url: string,
    readonly traffic: Traffic,
    private readonly requestTimeoutSeconds: number | undefined,
  ) {}

  write(key: string, row: Row): void {
    this.store.setRow('rows', key, { n: row.n, text: row.text });
  }

  writeMany(rows: ReadonlyArray<readonly [string, Row]>): void {
    this.store.transaction(() => {
      for (const [key, row] of rows) this.write(key, row);
    });
  }

  get(key: string): Row | undefined {
    if (!this.store.hasRow('rows', key)) return undefined;
    return this.store.getRow('rows', key) as unknown as Row;
  }

  get size(): number {
    return this.store.getRowCount('rows');
  }

  onChange(listener: (keys: Iterable<string>) => void): void {
    this.store.addRowListener('rows', null, (_store, _table, key) => listener([key]));
  }

  async settled(): Promise<void> {
    const socket = this.#synchronizer?.getWebSocket();
    await until(
      'TinyBase socket drained',
      () => socket === undefined || socket.bufferedAmount === 0,
    );
  }

  async goOffline(): Promise<void> {
    await this.#synchronizer?.destroy();
    this.#synchronizer = undefined;
  }

  async goOnline(): Promise<void> {
    const Socket = countingWebSocket(this.traffic);
    this.#synchronizer = await createWsSynchronizer(
      this.store,
      new Socket(this.url),
      this.requestTimeoutSeconds,
    );
    await this.#synchronizer.startSync();
  }

  async close(): Promise<void> {
    await this.goOffline();
  }
}
