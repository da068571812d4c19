import type { Message } from '@topgun/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueryHandle } from '../src/index.js';
import { spyingWebSocket, testClient, useServer, waitFor } from './harness.js';

interface Task {
  status: 'open' | 'closed';
  at: number;
  tag?: string;
}

const tasksOf = (handle: QueryHandle<Task>) => handle.getSnapshot().data.map((row) => row.key);

interface Event {
  kind: 'even' | 'odd';
  at: number;
  note?: string;
}

/** Every message the server sent the reader, in order. */
const received: Message[] = [];
const SpyingWebSocket = spyingWebSocket((message) => received.push(message));

const keysOf = (handle: QueryHandle<Event>) => handle.getSnapshot().data.map((row) => row.key);
const key = (n: number) => `e${String(n).padStart(2, '0')}`;

/** The PostgreSQL server of the tests (CI provides one; TOPGUN_REQUIRE_POSTGRES makes it required). */
const POSTGRES_URL =
  process.env['TOPGUN_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

async function postgresAvailable(): Promise<boolean> {
  if (process.env['TOPGUN_REQUIRE_POSTGRES']) return true;
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    console.warn(`PostgreSQL is not reachable at ${POSTGRES_URL}: skipping its run`);
    return false;
  }
}

/** Runs `sql` on the PostgreSQL server's default database. */
async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const database = `topgun_query_scoped_${process.pid}`;
const backends = [
  { name: 'PGlite', storage: undefined },
  ...((await postgresAvailable())
    ? [
        {
          name: 'PostgreSQL',
          storage: {
            kind: 'postgres' as const,
            connectionString: POSTGRES_URL.replace(/\/[^/]*$/, `/${database}`),
          },
        },
      ]
    : []),
];

describe.each(backends)(
  'a map replicated by query, against a real server on $name',
  ({ storage }) => {
    if (storage !== undefined) {
      beforeAll(() => admin(`CREATE DATABASE ${database}`));
      afterAll(() => admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
    }
    const served = useServer(storage === undefined ? {} : { storage });

    it('holds only its windows, resumes by delta, pages, writes offline and drops what no query holds', async () => {
      const writer = testClient(served.url).client;
      const events = writer.getMap<Event>('events');
      for (let n = 0; n < 30; n++) events.set(key(n), { kind: n % 2 ? 'odd' : 'even', at: n });
      await writer.flush();

      const { client: reader, online } = testClient(served.url, {
        WebSocket: SpyingWebSocket,
        maps: { events: { replicate: 'queries', maxRecords: 12 } },
      });
      served.clients.push(writer, reader);
      const feed = reader.query<Event>('events', {
        where: { kind: 'even' },
        sort: [{ field: 'at', direction: 'desc' }],
        limit: 5,
      });
      const stop = feed.subscribe(() => {});
      await waitFor(() => feed.getSnapshot().status === 'synced', 5_000, 'the snapshot');
      expect(keysOf(feed)).toEqual([28, 26, 24, 22, 20].map(key));
      expect(feed.getSnapshot().hasMore).toBe(true);
      const replica = reader.getMap<Event>('events');
      expect(replica.size).toBe(5);

      feed.loadMore();
      await waitFor(() => keysOf(feed).length === 10, 5_000, 'the second page');
      expect(keysOf(feed)).toEqual([28, 26, 24, 22, 20, 18, 16, 14, 12, 10].map(key));
      expect(replica.size).toBe(10);

      // Offline: others change one row, delete one, add one, and change a record elsewhere.
      online.set(false);
      await waitFor(() => reader.status.getState().connection === 'offline', 5_000, 'offline');
      events.set(key(28), { kind: 'even', at: 28, note: 'edited' });
      events.delete(key(26));
      events.set(key(30), { kind: 'even', at: 30 });
      events.set(key(1), { kind: 'odd', at: 1, note: 'elsewhere' });
      await writer.flush();
      // A write of its own while offline shows at once.
      replica.set('mine', { kind: 'even', at: 99 });
      expect(keysOf(feed)[0]).toBe('mine');

      received.length = 0;
      online.set(true);
      await waitFor(() => keysOf(feed).includes(key(30)), 5_000, 'the resumed window');
      await reader.flush();
      await waitFor(() => feed.getSnapshot().status === 'synced', 5_000, 'synced again');
      // Only what entered or changed came back: e30, e28 (edited) and e10 (it moved into the
      // server's window of 10 as e26 left); e26 and the unsent 'mine' were named and absent on
      // the server: revoked (the pending write is kept, and enters once stored).
      const resent = received
        .filter((message) => message.type === 'query_snapshot')
        .flatMap((message) => (message.type === 'query_snapshot' ? message.entries : []))
        .map(([entryKey]) => entryKey)
        .sort();
      expect(resent).toEqual([key(10), key(28), key(30)]);
      expect(received.some((message) => message.type === 'sync')).toBe(false);
      expect(keysOf(feed)).toEqual(['mine', ...[30, 28, 24, 22, 20, 18, 16, 14, 12].map(key)]);
      expect(replica.get(key(28))?.note).toBe('edited');
      expect(replica.get(key(26))).toBeUndefined();
      expect(replica.get(key(1))).toBeUndefined();

      // Its own delete of a row pushes the next one in, from the server.
      replica.delete(key(12));
      await reader.flush();
      await waitFor(() => keysOf(feed).includes(key(10)), 5_000, 'the row pushed in');

      // Another query's rows are dropped once it ends: the budget is 12 records.
      const odd = reader.query<Event>('events', { where: { kind: 'odd' }, limit: 4 });
      const stopOdd = odd.subscribe(() => {});
      await waitFor(() => odd.getSnapshot().status === 'synced', 5_000, 'the odd rows');
      expect(odd.getSnapshot().data).toHaveLength(4);
      stopOdd();
      odd.dispose();
      await waitFor(() => replica.size <= 12, 5_000, 'records dropped');
      for (const row of feed.getSnapshot().data) expect(replica.get(row.key)).toBeDefined();
      stop();
    });

    it('pages by cursor while others insert before and after it: every row once, in order', async () => {
      const writer = testClient(served.url).client;
      const log = writer.getMap<Event>('log');
      for (let n = 0; n < 40; n++) log.set(`l${100 + n * 10}`, { kind: 'even', at: 100 + n * 10 });
      await writer.flush();
      const { client: reader } = testClient(served.url, {
        maps: { log: { replicate: 'queries', maxRecords: 1_000 } },
      });
      served.clients.push(writer, reader);
      const feed = reader.query<Event>('log', {
        sort: [{ field: 'at', direction: 'desc' }],
        limit: 5,
      });
      const stop = feed.subscribe(() => {});
      await waitFor(() => feed.getSnapshot().status === 'synced', 5_000, 'the first page');
      let inserted = 0;
      for (let page = 2; page <= 6; page++) {
        // Between pages, rows are inserted above the window (newer), inside what is shown,
        // just past the cursor and far below it.
        const last = feed.getSnapshot().data.at(-1)!.value.at;
        for (const at of [10_000 + page, last + 1, last - 1, 5 + page]) {
          log.set(`x${at}`, { kind: 'odd', at });
          inserted++;
        }
        await writer.flush();
        feed.loadMore();
        await waitFor(() => keysOf(feed).length === page * 5, 5_000, `page ${page}`);
      }
      // The window is the first 30 rows of the map as it is now, each once, in order.
      const server = [...writer.getMap<Event>('log').entries()]
        .sort(([, a], [, b]) => b.at - a.at)
        .slice(0, 30)
        .map(([rowKey]) => rowKey);
      await waitFor(
        () => keysOf(feed).join() === server.join(),
        5_000,
        `the window to be ${server.join()}; it is ${keysOf(feed).join()}`,
      );
      expect(new Set(keysOf(feed)).size).toBe(30);
      expect(inserted).toBe(20);
      stop();
    });

    it('never shows a held record the server did not put in the window: one pushed out, or kept from an ended query', async () => {
      const writer = testClient(served.url).client;
      const tasks = writer.getMap<Task>('tasks');
      tasks.set('A', { status: 'open', at: 10 });
      tasks.set('B', { status: 'open', at: 9 });
      tasks.set('D', { status: 'open', at: 5 });
      tasks.set('R', { status: 'open', at: 7, tag: 'x' });
      await writer.flush();
      const { client: reader } = testClient(served.url, {
        maps: { tasks: { replicate: 'queries', maxRecords: 100 } },
      });
      served.clients.push(writer, reader);
      const open = reader.query<Task>('tasks', {
        where: { status: 'open' },
        sort: [{ field: 'at', direction: 'desc' }],
        limit: 2,
      });
      open.subscribe(() => {});
      await waitFor(() => open.getSnapshot().status === 'synced', 5_000, 'the open tasks');
      expect(tasksOf(open)).toEqual(['A', 'B']);
      // R is held from a query that ends; the budget keeps it.
      const tagged = reader.query<Task>('tasks', { where: { tag: 'x' }, limit: 5 });
      const stopTagged = tagged.subscribe(() => {});
      await waitFor(() => tagged.getSnapshot().status === 'synced', 5_000, 'the tagged task');
      stopTagged();
      tagged.dispose();

      // C pushes B out (the reader still holds B); then B and R are closed elsewhere, which
      // the server does not tell the reader (outside its window); then C is deleted.
      tasks.set('C', { status: 'open', at: 11 });
      await writer.flush();
      await waitFor(() => tasksOf(open).includes('C'), 5_000, 'C');
      tasks.set('B', { status: 'closed', at: 9 });
      tasks.set('R', { status: 'closed', at: 7, tag: 'x' });
      await writer.flush();
      tasks.delete('C');
      await writer.flush();
      // The server's window is A and D: stale B and R (held, out of date) never show.
      await waitFor(() => tasksOf(open).includes('D'), 5_000, 'D pushed in');
      expect(tasksOf(open)).toEqual(['A', 'D']);
      expect(reader.getMap<Task>('tasks').get('B')?.status).toBe('open');
    });
  },
);
