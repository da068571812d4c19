import type { Value } from '@topgun/core';
import { createPgDriver, createStorage } from '@topgun/server';
import { RoundRobinBalancer, startServerProcess } from '@topgun/server/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RejectedWrite, TopGunClient } from '../src/index.js';
import { contents, testClient, waitFor } from './harness.js';

/** The PostgreSQL server the tests use, as in the server's suites. */
const TEST_DATABASE_URL =
  process.env['TOPGUN_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Whether PostgreSQL answers; when it does not, the suite is skipped unless CI requires it. */
async function postgresAvailable(): Promise<boolean> {
  if (process.env['TOPGUN_REQUIRE_POSTGRES']) return true;
  const driver = createPgDriver({ connectionString: TEST_DATABASE_URL, maxConnections: 1 });
  try {
    await driver.query('SELECT 1');
    return true;
  } catch {
    console.warn(`PostgreSQL is not reachable at ${TEST_DATABASE_URL}: skipping the failover test`);
    return false;
  } finally {
    await driver.close();
  }
}

/** Runs one statement on the test cluster's administrative database. */
async function administer(statement: string): Promise<void> {
  const driver = createPgDriver({ connectionString: TEST_DATABASE_URL, maxConnections: 1 });
  try {
    await driver.exec(statement);
  } finally {
    await driver.close();
  }
}

interface ServerProcess {
  /** The WebSocket URL clients connect to. */
  readonly url: string;
  /** The HTTP base URL (`/metrics`, `/health`). */
  readonly httpUrl: string;
  readonly kill: () => Promise<void>;
}

/** Runs the `topgun-server` command on `databaseUrl`, anonymous clients allowed, on a free port. */
async function spawnServer(databaseUrl: string): Promise<ServerProcess> {
  const server = await startServerProcess({
    DATABASE_URL: databaseUrl,
    TOPGUN_ALLOW_ANONYMOUS: '1',
  });
  return {
    httpUrl: server.url,
    url: `${server.url.replace('http', 'ws')}/sync`,
    kill: server.kill,
  };
}

/** Kills a server process at once (no shutdown: its sockets simply die) and waits for it. */
function kill(server: ServerProcess): Promise<void> {
  return server.kill();
}

/** A gauge or counter of a server process, read from its `/metrics`. */
async function metric(server: ServerProcess, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** Every live record of a map, read straight from PostgreSQL. */
async function storedValues(databaseUrl: string, map: string): Promise<Map<string, Value>> {
  const storage = await createStorage({ kind: 'postgres', connectionString: databaseUrl });
  const values = new Map<string, Value>();
  try {
    await storage.loadMap(map, (page) => {
      for (const { key, record } of page) if (record.value !== null) values.set(key, record.value);
    });
  } finally {
    await storage.close();
  }
  return values;
}

/** `promise`, or a failure naming `what` once `timeoutMs` have passed. */
async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

interface Note {
  readonly n: number;
}

const available = await postgresAvailable();

describe.runIf(available)(
  'a client given the URLs of two server processes over one database',
  () => {
    const name = `topgun_test_${process.pid}_failover`;
    const databaseUrl = (() => {
      const url = new URL(TEST_DATABASE_URL);
      url.pathname = `/${name}`;
      return url.toString();
    })();
    const cleanups: Array<() => Promise<unknown> | unknown> = [];
    beforeAll(async () => {
      await administer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await administer(`CREATE DATABASE ${name}`);
    });
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });
    afterAll(async () => {
      await administer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    });

    const client = (...args: Parameters<typeof testClient>): TopGunClient => {
      const created = testClient(...args).client;
      cleanups.push(() => created.close());
      return created;
    };

    it('fails over when its process is killed with writes in flight, and loses none of them', async () => {
      const [first, second] = await Promise.all([
        spawnServer(databaseUrl),
        spawnServer(databaseUrl),
      ]);
      cleanups.push(
        () => kill(first),
        () => kill(second),
      );

      // Draws of 0: it starts with the first URL, and reconnects without waiting.
      const writer = client([first.url, second.url], { random: () => 0 });
      const rejected: RejectedWrite[] = [];
      writer.onRejected((write) => rejected.push(write));
      const notes = writer.getMap<Note>('notes');
      const live = writer.query<Note>('notes', { where: { n: { gte: 0 } } });
      cleanups.push(live.subscribe(() => {}));
      await waitFor(
        () => writer.status.getState().connection === 'online',
        10_000,
        'the writer online',
      );
      expect(writer.status.getState().url).toBe(first.url);
      expect(await metric(first, 'topgun_live_queries')).toBe(1);

      // A note the writer's replica lacks, stored through the other process.
      const bystander = client(second.url);
      bystander.getMap<Note>('notes').set('from-second', { n: -1 });
      await bystander.flush();
      await bystander.close();

      const written = new Map<string, Note>();
      const write = () => {
        const n = written.size;
        written.set(`note-${n}`, { n });
        notes.set(`note-${n}`, { n });
      };
      for (let i = 0; i < 50; i++) write();
      await writer.flush();
      // Then one write per turn of the event loop, across the kill and the failover: some are
      // acknowledged, some are on the wire or committed without their ack when the process dies.
      let writing = true;
      cleanups.push(() => {
        writing = false;
      });
      const keepWriting = () => {
        if (!writing) return;
        write();
        setImmediate(keepWriting);
      };
      keepWriting();
      await waitFor(() => written.size >= 300, 10_000, 'writes streaming to the first process');
      for (let i = 0; i < 20; i++) write();
      await kill(first);
      // The last 20 went out after the kill, if at all: none of them can have been acknowledged.
      expect(writer.status.getState().pendingOps).toBeGreaterThanOrEqual(20);

      await waitFor(
        () => writer.status.getState().url === second.url,
        10_000,
        'the writer on the second process',
      );
      await waitFor(() => written.size >= 600, 10_000, 'writes after the failover');
      writing = false;
      await within(writer.flush(), 15_000, 'every write acknowledged by the second process');
      expect(rejected).toEqual([]);
      expect(writer.status.getState()).toMatchObject({ url: second.url, pendingOps: 0 });

      // Everything is in the database...
      const stored = await storedValues(databaseUrl, 'notes');
      expect(stored.size).toBe(written.size + 1);
      for (const [key, value] of written) expect(stored.get(key), key).toEqual(value);
      // ...a fresh client of the surviving process reads it all...
      const reader = client(second.url);
      const read = reader.getMap<Note>('notes');
      await waitFor(() => read.size === written.size + 1, 10_000, 'the reader to walk');
      expect(contents(reader, 'notes')).toEqual(contents(writer, 'notes'));
      // ...the writer holds what was stored through the other process (its walk there brings
      // it, if nothing did before), and its live query was subscribed there again.
      expect(notes.get('from-second')).toEqual({ n: -1 });
      expect(await metric(second, 'topgun_live_queries')).toBe(1);
    }, 30_000);

    it('six clients behind a balancer lose nothing when one of three processes is killed, and converge', async () => {
      const servers = await Promise.all([1, 2, 3].map(() => spawnServer(databaseUrl)));
      cleanups.push(...servers.map((server) => () => kill(server)));
      const balancer = RoundRobinBalancer.of(servers.map((server) => server.httpUrl));
      const balancerUrl = `${(await balancer.start()).replace('http', 'ws')}/sync`;
      cleanups.push(() => balancer.stop());

      const writers = Array.from({ length: 6 }, () => client(balancerUrl));
      const rejected: RejectedWrite[] = [];
      for (const writer of writers) writer.onRejected((write) => rejected.push(write));
      for (const writer of writers) writer.getMap<Note>('board');
      await waitFor(
        () => writers.every((writer) => writer.status.getState().connection === 'online'),
        10_000,
        'six clients online',
      );
      // Round robin: two clients on each process.
      expect(balancer.connections).toEqual([2, 2, 2]);

      // Each writes keys of its own and keys every client writes (concurrent conflicts).
      let writing = true;
      cleanups.push(() => {
        writing = false;
      });
      let round = 0;
      const writeRound = () => {
        if (!writing) return;
        writers.forEach((writer, index) => {
          const board = writer.getMap<Note>('board');
          board.set(`own-${index}-${round}`, { n: round });
          board.set(`shared-${round % 20}`, { n: round * 10 + index });
        });
        round++;
        setTimeout(writeRound, 2);
      };
      writeRound();
      await waitFor(() => round >= 100, 10_000, 'writes streaming');
      await kill(servers[0]!);
      const afterKill = round;
      await waitFor(() => round >= afterKill + 100, 10_000, 'writes after the kill');
      writing = false;
      for (const writer of writers)
        await within(writer.flush(), 15_000, 'every write acknowledged by a surviving process');
      expect(rejected).toEqual([]);
      for (const writer of writers) expect(writer.status.getState().pendingOps).toBe(0);

      // Every acknowledged write is stored...
      const stored = await storedValues(databaseUrl, 'board');
      expect(stored.size).toBe(6 * round + 20);
      for (let index = 0; index < 6; index++)
        for (let r = 0; r < round; r++)
          expect(stored.get(`own-${index}-${r}`), `own-${index}-${r}`).toEqual({ n: r });
      // ...and every replica converges on it, through live changes across processes.
      const expected = [...stored].sort(([a], [b]) => (a < b ? -1 : 1));
      await waitFor(
        () =>
          writers.every(
            (writer) => JSON.stringify(contents(writer, 'board')) === JSON.stringify(expected),
          ),
        15_000,
        'all six replicas to hold what PostgreSQL holds',
      );
      // A fresh client on each surviving process reads the same.
      for (const server of servers.slice(1)) {
        const reader = client(server.url);
        await waitFor(
          () => JSON.stringify(contents(reader, 'board')) === JSON.stringify(expected),
          10_000,
          'a fresh reader to walk',
        );
      }
    }, 60_000);
  },
);
