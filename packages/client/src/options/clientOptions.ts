import { ConfigurationError } from '../clientErrors.js';
import type { MapOptions } from '../replica/replicaStore.js';
import type { ClientStorage } from '../storage/clientStorage.js';
import { createIndexedDbStorage } from '../storage/indexedDbStorage.js';
import { createMemoryStorage } from '../storage/memoryStorage.js';
import type { OnlineManager } from '../sync/onlineManager.js';
import type { Transport } from '../sync/transport.js';
import type { WebSocketConstructor } from '../sync/webSocketTransport.js';
import type { LeaderElection } from '../tabs/leaderElection.js';

/** Options of `createClient`. */
export interface ClientOptions {
  /**
   * The sync server's WebSocket URL (`ws(s)://host/sync`), or the URLs of several processes
   * of one server (over one database, any of which serves any client). With several, the
   * client starts from one picked at random (`random`) and each reconnect goes to the next
   * in the list, wrapping around, under the same backoff: a failed or dropped connection is
   * followed by an attempt on the next server, and unacknowledged writes, live queries and
   * walks carry over to it. A single URL or a list of one behave alike; an empty list is
   * refused. Omitted: local-only (writes are kept in the replica, and no outbox is kept since
   * no server will acknowledge them).
   */
  readonly url?: string | readonly string[];
  /**
   * Where the replica lives: `'indexeddb'`, `'memory'`, or any `ClientStorage`.
   * Default: IndexedDB where available (browsers), memory otherwise (Node).
   */
  readonly storage?: 'indexeddb' | 'memory' | ClientStorage;
  /** IndexedDB database name; tabs using the same name share the replica. Default: `topgun`. */
  readonly dbName?: string;
  /** A JWT, or a function returning one (called again on every reconnect). */
  readonly token?: string | (() => string | undefined | Promise<string | undefined>);
  /**
   * This client's node id (1-40 characters from `A-Z a-z 0-9 _`); each tab stamps writes with
   * `<nodeId>-<tab>`. It belongs to the first user who connects with it: give each user a
   * database of their own (`dbName`). Default: random, kept in localStorage per database
   * where available.
   */
  readonly nodeId?: string;
  /** Share the replica with other tabs (BroadcastChannel + Web Locks). Default: true with IndexedDB. */
  readonly multiTab?: boolean;
  /**
   * Remember each live query's last result window (localStorage) and paint it on the next
   * start while the replica loads. Default: true with IndexedDB storage.
   */
  readonly cacheQueryResults?: boolean;
  /** Network availability. Default: the browser's online/offline events. */
  readonly online?: OnlineManager;
  /** Leader election between tabs. Default: Web Locks. */
  readonly leaderElection?: LeaderElection;
  /** WebSocket implementation. Default: the global one, else the `ws` package. */
  readonly WebSocket?: WebSocketConstructor;
  /**
   * How to reach the server, for another carrier than WebSocket or a test's fake server.
   * Default: WebSocket (`WebSocket` above).
   */
  readonly transport?: Transport;
  /** Reconnect delay bounds in ms (exponential backoff with full jitter). Default: 500 and 30 000. */
  readonly minRetryMs?: number;
  readonly maxRetryMs?: number;
  /**
   * Delay before a walk the server refused, or whose messages were lost, starts again; it
   * doubles with each such walk of a map in a row, up to 64 times. Default: 5000 ms.
   */
  readonly walkRetryMs?: number;
  /**
   * How maps are replicated, by name (maps not named: whole). See {@link MapOptions}; a map
   * may also be declared by `client.getMap(name, options)`.
   */
  readonly maps?: Readonly<Record<string, MapOptions>>;
  /** This machine's wall clock. Default: `Date.now`. */
  readonly now?: () => number;
  /**
   * Uniform random numbers in [0, 1), for the server to start from (when `url` lists several)
   * and the reconnect jitter. Default: `Math.random`.
   */
  readonly random?: () => number;
}

export type { MapOptions };

const NODE_ID = /^[A-Za-z0-9_]{1,40}$/;

/** What the options come to once defaults are applied and they are checked. */
export interface ResolvedClientOptions {
  readonly dbName: string;
  /** The servers to sync with; undefined for a local-only client. */
  readonly urls: readonly [string, ...string[]] | undefined;
  /** The node id the connection announces (shared by this profile's tabs). */
  readonly nodeId: string;
  /**
   * This profile had no node id stored for the database: a first visit, as far as this start
   * can tell without reading the storage (which may still hold records, when localStorage
   * alone was cleared, or the storage is the app's own).
   */
  readonly fresh: boolean;
  readonly storage: ClientStorage;
  /** Whether the storage is IndexedDB (the defaults of tabs and remembered windows follow). */
  readonly indexedDb: boolean;
}

/**
 * Applies the defaults of `options` and checks them.
 * @throws {ConfigurationError} when `nodeId` is malformed or `url` is an empty list.
 */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  const { storage } = options;
  const dbName = options.dbName ?? 'topgun';
  if (options.nodeId !== undefined && !NODE_ID.test(options.nodeId)) {
    throw new ConfigurationError('nodeId', 'expected 1-40 characters from A-Z a-z 0-9 _');
  }
  const indexedDb =
    storage === 'indexeddb' || (storage === undefined && typeof indexedDB !== 'undefined');
  const stored = options.nodeId === undefined ? persistentNodeId(dbName) : undefined;
  return {
    dbName,
    urls: serverUrls(options.url),
    nodeId: options.nodeId ?? stored?.nodeId ?? randomId(16),
    fresh: stored?.created ?? false,
    storage: indexedDb
      ? createIndexedDbStorage(dbName)
      : storage === 'memory' || storage === undefined
        ? createMemoryStorage()
        : storage,
    indexedDb,
  };
}

/** The `url` option as a list (copied: the caller may change theirs), or undefined for none. */
function serverUrls(url: ClientOptions['url']): readonly [string, ...string[]] | undefined {
  if (url === undefined) return undefined;
  if (typeof url === 'string') return [url];
  const [first, ...rest] = url;
  if (first === undefined) throw new ConfigurationError('url', 'expected at least one server');
  return [first, ...rest];
}

/** `length` random characters from A-Z a-z 0-9. */
export function randomId(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = new Uint8Array(length);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => alphabet[byte % alphabet.length]).join('');
}

/**
 * A node id kept per database in localStorage (synchronously, so writes can start at once),
 * and whether it was created now; undefined where there is no localStorage.
 */
function persistentNodeId(dbName: string): { nodeId: string; created: boolean } | undefined {
  const storageKey = `topgun:${dbName}:clientId`;
  try {
    const storage = globalThis.localStorage;
    if (storage === undefined) return undefined;
    const existing = storage.getItem(storageKey);
    if (existing !== null && NODE_ID.test(existing)) return { nodeId: existing, created: false };
    const nodeId = randomId(16);
    storage.setItem(storageKey, nodeId);
    return { nodeId, created: true };
  } catch {
    return undefined;
  }
}
