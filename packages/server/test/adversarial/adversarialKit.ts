import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import {
  encodeMessage,
  formatTimestamp,
  fromSyncWire,
  fromWireEntry,
  type LWWMap,
  type Message,
  PROTOCOL_VERSION,
  rootBytes,
  SyncSession,
  toSyncWire,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, expect, onTestFinished } from 'vitest';
import type { ServerOptions, TopGunServer } from '../../src/index.js';
import type { ReadContext, WriteContext } from '../../src/permissions.js';
import { createStorage } from '../../src/storage/createStorage.js';
import type { Storage } from '../../src/storage/storage.js';
import {
  type ServerProcess,
  startServerProcess as startProcess,
} from '../../src/testing/serverProcess.js';
import { createTestDatabase } from '../postgres.js';
import { startServer } from '../serverHarness.js';
import { hasRoot, replicaOf, type TestClient } from '../testClient.js';

/** The HS256 secret the servers of the adversarial suites verify tokens with. */
export const TOKEN_SECRET = 'an-adversarial-test-secret-of-32-bytes!';

const secretKey = new TextEncoder().encode(TOKEN_SECRET);

/**
 * A token signed with {@link TOKEN_SECRET} whose payload is exactly `claims` plus `iat`:
 * unlike jose's `setSubject`, a `sub` of any type is signed as given.
 */
export function signToken(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().sign(secretKey);
}

/** A token for `subject`, signed with {@link TOKEN_SECRET}, valid for an hour. */
export function tokenFor(subject: string): Promise<string> {
  return signToken({ sub: subject, exp: Math.floor(Date.now() / 1000) + 3600 });
}

/** The fields of a record that {@link readByOwnerOrShared} and {@link writtenByOwner} look at. */
interface Owned {
  readonly owner?: unknown;
  readonly shared?: unknown;
}

/**
 * A read rule: a record is read by the user its `owner` names, or by everyone once its
 * `shared` is true; the map itself may be read by all.
 */
export function readByOwnerOrShared({ user, value }: ReadContext): boolean {
  const record = value as Owned | null | undefined;
  return value === undefined || record?.owner === user.id || record?.shared === true;
}

/**
 * A write rule: anyone may create a record, only the user its `owner` names may change or
 * delete it, and a record written must name its writer as `owner`.
 */
export function writtenByOwner({ user, value, previous }: WriteContext): boolean {
  const ownerOf = (record: Value | null | undefined) => (record as Owned | null | undefined)?.owner;
  return (
    (previous === undefined || ownerOf(previous) === user.id) &&
    (value === null || ownerOf(value) === user.id)
  );
}

/** A PostgreSQL database that lives as long as the `describe` that asked for it. */
export interface PostgresDatabase {
  /** Its connection string. */
  readonly url: string;
  /**
   * Starts a server on it that opens (and closes) a storage of its own, with these options
   * (all of `createServer`'s but `storage`); the caller closes the server.
   */
  startServer(options: Omit<ServerOptions, 'storage'>): ReturnType<typeof startServer>;
}

/**
 * Creates a fresh PostgreSQL database before the calling `describe`'s tests and drops it after
 * them (registering `beforeAll`/`afterAll` there), for files whose tests start their own
 * servers. Its members throw when used before that `beforeAll` ran.
 */
export function usePostgresDatabase(): PostgresDatabase {
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });
  const url = () => setInBeforeAll(database, 'the test database').url;
  return {
    get url() {
      return url();
    },
    startServer: (options) =>
      startServer({ ...options, storage: { kind: 'postgres', connectionString: url() } }),
  };
}

/** Options of {@link usePostgresServer}: those of `createServer` but its storage, and these. */
export interface PostgresServerOptions extends Omit<ServerOptions, 'storage'> {
  /** The database to serve. Default: a fresh one for the calling `describe`. */
  readonly database?: PostgresDatabase;
  /**
   * Writes what the tests need before the server starts, through a storage opened and
   * migrated for it, which the server is then given (and which is closed after the server).
   * Default: none, and the server opens its own storage.
   */
  readonly seed?: (storage: Storage) => Promise<void>;
  /**
   * Wraps that opened storage before the server is given it (to count or fail its calls).
   * Giving this opens the storage as {@link PostgresServerOptions.seed} does. Default: none.
   */
  readonly wrapStorage?: (storage: Storage) => Storage;
}

/** The server {@link usePostgresServer} keeps for a `describe`. */
export interface PostgresServer {
  readonly server: TopGunServer;
  /** The server's base URL (`http://127.0.0.1:<port>`). */
  readonly url: string;
  /** The database it serves. */
  readonly database: PostgresDatabase;
}

/**
 * Starts one server on PostgreSQL before the calling `describe`'s tests and closes it after
 * them (registering `beforeAll`/`afterAll` there); the database is fresh unless `database` is
 * given. `server` and `url` throw when read before that `beforeAll` ran.
 */
export function usePostgresServer(options: PostgresServerOptions = {}): PostgresServer {
  const { database: given, seed, wrapStorage, ...serverOptions } = options;
  // Registered first, its afterAll runs last (vitest runs after-hooks as a stack): the
  // database is dropped only once the server and storage below are closed.
  const database = given ?? usePostgresDatabase();
  let started: Awaited<ReturnType<typeof startServer>> | undefined;
  let opened: Storage | undefined;
  beforeAll(async () => {
    if (seed === undefined && wrapStorage === undefined) {
      started = await database.startServer(serverOptions);
      return;
    }
    opened = await openStorage(database.url);
    await seed?.(opened);
    started = await startServer({ ...serverOptions, storage: wrapStorage?.(opened) ?? opened });
  });
  afterAll(async () => {
    await started?.server.close();
    await opened?.close();
  });
  return {
    get server() {
      return setInBeforeAll(started, 'the test server').server;
    },
    get url() {
      return setInBeforeAll(started, 'the test server').url;
    },
    database,
  };
}

/** `value`, which a `beforeAll` sets: reading it earlier is a mistake in the suite. */
function setInBeforeAll<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} exists only once its beforeAll ran`);
  return value;
}

/** Opens and migrates a PostgreSQL storage; the caller closes it (after the servers using it). */
export async function openStorage(connectionString: string): Promise<Storage> {
  const storage = await createStorage({ kind: 'postgres', connectionString });
  await storage.migrate();
  return storage;
}

/**
 * Writes `count` records of `map` straight to storage (keys `${prefix}${index}`, values from
 * `valueAt`), far faster than through clients: for maps an attack needs to be large.
 */
export async function seedMap(
  storage: Storage,
  map: string,
  count: number,
  valueAt: (index: number) => Value,
  prefix = 'r',
): Promise<void> {
  const millis = Date.now() - 1_000;
  const chunk = 5_000;
  for (let start = 0; start < count; start += chunk) {
    const writes = [];
    for (let index = start; index < Math.min(count, start + chunk); index++) {
      const timestamp = { millis, counter: index % 65_536, nodeId: 'seed' };
      writes.push({
        map,
        key: `${prefix}${index}`,
        record: { value: valueAt(index), timestamp },
        serializedTimestamp: formatTimestamp(timestamp),
      });
    }
    await storage.writeRecords(writes);
  }
}

/**
 * The value of an unlabelled metric of a server in another process, read from its
 * `/metrics` (0 when absent).
 */
export async function metricValueAt(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

/** The value of one Prometheus sample of the server (0 when it was never set). */
export async function metricValue(
  server: TopGunServer,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const metric = await server.metrics.registry.getSingleMetric(name)?.get();
  const sample = metric?.values.find((candidate) =>
    Object.entries(labels).every(
      ([label, value]) => (candidate.labels as Record<string, unknown>)[label] === value,
    ),
  );
  return sample?.value ?? 0;
}

/** How often a budget of the server was exceeded (`topgun_budget_exceeded_total`). */
export function budgetExceeded(server: TopGunServer, budget: string): Promise<number> {
  return metricValue(server, 'topgun_budget_exceeded_total', { budget });
}

/**
 * Whether a message answers a subscription (its last snapshot chunk or its refusal): the
 * subscription `id`, or any when `id` is omitted.
 */
export function answersSubscription(id?: number): (message: Message) => boolean {
  return (message) =>
    ((message.type === 'query_snapshot' && message.last) || message.type === 'query_error') &&
    (id === undefined || message.id === id);
}

export type { ServerProcess };

/**
 * `startServerProcess` of `@topgun/server/testing` on `databaseUrl`, with anonymous clients
 * off and JWTs signed with {@link TOKEN_SECRET}; `environment` adds or overrides variables.
 */
export function startServerProcess(
  databaseUrl: string,
  environment: Record<string, string> = {},
): Promise<ServerProcess> {
  return startProcess({ DATABASE_URL: databaseUrl, JWT_SECRET: TOKEN_SECRET, ...environment });
}

/**
 * {@link startServerProcess}, killed when the calling test finishes: for attacks whose client
 * side is heavy itself, so that what a bystander waits for is the server's work alone.
 */
export async function spawnServer(
  databaseUrl: string,
  environment: Record<string, string> = {},
): Promise<ServerProcess> {
  const server = await startServerProcess(databaseUrl, environment);
  onTestFinished(() => server.kill());
  return server;
}

/** The longest of a bystander's round trips; there must have been some. */
export function longestRoundTrip(roundTrips: readonly number[]): number {
  expect(roundTrips.length, 'the bystander pinged').toBeGreaterThan(0);
  return Math.max(...roundTrips);
}

/** A bystander pinging the server from a thread of its own; see {@link startPinger}. */
export interface Pinger {
  /** Resolves once the bystander is admitted and pinging. */
  readonly ready: Promise<void>;
  /**
   * Stops pinging; resolves with every round trip in ms, the one still waiting for its pong
   * counted as far as it got.
   */
  stop(): Promise<number[]>;
}

// The bystander runs in a worker so that its clock keeps running while the server's thread
// (this one: servers under test run in the test process) is busy: a ping waits exactly as
// long as the server makes it wait.
const PINGER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const WebSocket = require(workerData.wsPath);
const socket = new WebSocket(workerData.url);
const roundTrips = [];
let sentAt;
let admitted = false;
let stopped = false;
const ping = () => {
  if (stopped) return;
  sentAt = performance.now();
  socket.send(workerData.ping);
};
socket.on('open', () => socket.send(workerData.hello));
socket.on('message', () => {
  if (!admitted) {
    admitted = true;
    parentPort.postMessage({ type: 'ready' });
  } else if (sentAt !== undefined) {
    roundTrips.push(performance.now() - sentAt);
    sentAt = undefined;
  }
  setTimeout(ping, workerData.intervalMs);
});
socket.on('error', (error) => parentPort.postMessage({ type: 'error', message: String(error) }));
parentPort.on('message', () => {
  stopped = true;
  if (sentAt !== undefined) roundTrips.push(performance.now() - sentAt);
  parentPort.postMessage({ type: 'done', roundTrips });
  socket.terminate();
});
`;

/**
 * Starts a bystander that says hello (anonymously, or with `token`) and then pings every `intervalMs`
 * (default 20), one ping at a time, measuring each round trip: how long another client waits
 * while an attack runs.
 */
export function startPinger(url: string, intervalMs = 20, token?: string): Pinger {
  const worker = new Worker(PINGER_SOURCE, {
    eval: true,
    workerData: {
      url: `${url.replace('http', 'ws')}/sync`,
      wsPath: createRequire(import.meta.url).resolve('ws'),
      intervalMs,
      hello: encodeMessage({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        nodeId: `pinger${Math.random().toString(36).slice(2, 10)}`,
        ...(token === undefined ? {} : { token }),
      }),
      ping: encodeMessage({ type: 'ping', time: 0 }),
    },
  });
  let fail: (error: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  failed.catch(() => {});
  worker.on('error', (error) => fail(error));
  const answer = (type: string) =>
    Promise.race([
      new Promise<{ roundTrips?: number[] }>((resolve) => {
        const listener = (message: { type: string; message?: string; roundTrips?: number[] }) => {
          if (message.type === 'error') fail(new Error(`pinger: ${message.message}`));
          if (message.type !== type) return;
          worker.off('message', listener);
          resolve(message);
        };
        worker.on('message', listener);
      }),
      failed,
    ]);
  const ready = answer('ready').then(() => undefined);
  return {
    ready,
    async stop() {
      const done = answer('done');
      worker.postMessage('stop');
      const { roundTrips = [] } = await done;
      await worker.terminate();
      return roundTrips;
    },
  };
}

/** Removes and returns the messages `client` received and no test consumed yet that match. */
export function takeReceived(client: TestClient, match: (message: Message) => boolean): Message[] {
  const taken = client.received.filter(match);
  for (const message of taken) client.received.splice(client.received.indexOf(message), 1);
  return taken;
}

/** The entries of `map` that reached `client` in `changes` so far (consuming those messages). */
export function takeChangedEntries(client: TestClient, map: string): WireEntry[] {
  return takeReceived(client, (message) => message.type === 'changes').flatMap((message) =>
    message.type === 'changes'
      ? message.changes.filter((change) => change.map === map).flatMap((change) => change.entries)
      : [],
  );
}

// Far above the sessions `TestClient.sync` numbers from 1, so that both may walk one socket.
let nextWalkSession = 10_000;

/** How a walk of {@link walkLikeAClient} ended. */
export interface ClientWalk {
  /** The message that ended it: `sync_done`, `sync_reset` or `sync_error`. */
  readonly done: Message;
  /** Records the server sent. */
  readonly received: number;
  /** Keys the server revoked during the walk (dropped from the replica). */
  readonly revoked: readonly string[];
  /** Whether the server's final root equals the replica's when `sync_done` arrives. */
  readonly converged: boolean;
  /** The replica walked, as the walk left it. */
  readonly replica: LWWMap<Value>;
}

/**
 * Runs a Merkle walk of `map` as a client does: records arriving are merged; keys the server
 * revokes are dropped from the replica without tombstones; convergence is judged, as
 * `@topgun/client` judges it, when the server's `sync_done` arrives (its root against the
 * replica's at that moment). With `framing: 'client'` (the default) the walk is framed as
 * `@topgun/client` frames it: its answers as `sync` messages, the records the server lacks as
 * `sync_records` before them, and `sync_done` when it has nothing left to say. With
 * `'inline'`, those records ride in the `sync` answer itself (as `TestClient.sync` sends them).
 * The replica defaults to an empty one.
 */
export async function walkLikeAClient(
  client: TestClient,
  map: string,
  replica: LWWMap<Value> = replicaOf(),
  options: { lastSync?: number; framing?: 'client' | 'inline' } = {},
): Promise<ClientWalk> {
  const inline = options.framing === 'inline';
  const session = nextWalkSession++;
  const walk = new SyncSession(replica, { width: 4 });
  const revoked: string[] = [];
  let received = 0;
  client.send(toSyncWire(map, session, walk.open(), options.lastSync));
  for (;;) {
    const message = await client.next(
      (candidate) =>
        (candidate.type === 'revoke' && candidate.map === map) ||
        ('session' in candidate && candidate.session === session && candidate.map === map),
    );
    switch (message.type) {
      case 'revoke':
        for (const key of message.keys) replica.restore(key, undefined);
        revoked.push(...message.keys);
        continue;
      case 'sync_records':
        for (const entry of message.records) replica.merge(...fromWireEntry<Value>(entry));
        received += message.records.length;
        continue;
      case 'sync_done': {
        const converged = hasRoot(replica, message.root);
        return { done: message, received, revoked, converged, replica };
      }
      case 'sync': {
        const incoming = fromSyncWire<Value>(message);
        for (const [key, record] of incoming.records) replica.merge(key, record);
        received += incoming.records.length;
        const answer = walk.receive(incoming);
        const bulk = [...walk.bulkRecords(answer.bulk)];
        // The client sends its bulk records before its answer (protocol.md), so the server
        // has taken them, and revoked what it must, before it answers.
        if (bulk.length > 0 && !(inline && answer.message !== undefined)) {
          const records = bulk.map(([key, record]) => toWireEntry(key, record));
          client.send({ type: 'sync_records', map, session, records, last: true });
        }
        if (answer.message !== undefined) {
          const records = inline ? [...answer.message.records, ...bulk] : answer.message.records;
          client.send(toSyncWire(map, session, { ...answer.message, records }));
        }
        if (answer.message === undefined)
          client.send({ type: 'sync_done', map, session, root: rootBytes(replica.merkleTree) });
        continue;
      }
      default:
        return { done: message, received, revoked, converged: false, replica };
    }
  }
}
