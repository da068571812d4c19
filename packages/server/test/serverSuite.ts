import {
  decodeMessage,
  encodeHave,
  formatTimestamp,
  fromWireEntry,
  PROTOCOL_VERSION,
  type Query,
  rootHashHex,
  toWireEntry,
  type Value,
  withFieldWrites,
} from '@topgun/core';
import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlDriver } from '../src/storage/sqlDriver.js';
import { SqlStorage } from '../src/storage/sqlStorage.js';
import type { RecordWrite, Storage } from '../src/storage/storage.js';
import { eventually, startServer } from './serverHarness.js';
import { replicaOf, TestClient, updateEntry } from './testClient.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const secretKey = new TextEncoder().encode(SECRET);

async function token(
  subject: string,
  options: {
    expiresIn?: string | number;
    algorithm?: string;
    claims?: Record<string, unknown>;
  } = {},
) {
  const jwt = new SignJWT({ ...options.claims })
    .setProtectedHeader({ alg: options.algorithm ?? 'HS256' })
    .setSubject(subject)
    .setIssuedAt();
  if (options.expiresIn !== undefined) jwt.setExpirationTime(options.expiresIn);
  return jwt.sign(secretKey);
}

/** The server's behaviour over a real WebSocket, run against one storage backend. */
export function runServerSuite(
  backend: string,
  openDriver: () => Promise<{ driver: SqlDriver; dispose: () => Promise<void> }>,
) {
  describe(`sync server on ${backend}`, () => {
    let driver: SqlDriver;
    let dispose: () => Promise<void>;
    let storage: SqlStorage;

    beforeAll(async () => {
      ({ driver, dispose } = await openDriver());
      storage = new SqlStorage(driver);
      await storage.migrate();
      await driver.query('TRUNCATE topgun_records, topgun_prunes');
    });
    afterAll(async () => {
      await dispose();
    });

    describe('handshake and auth', () => {
      let url: string;
      let close: () => Promise<void>;
      beforeAll(async () => {
        const started = await startServer({ storage, auth: { secret: SECRET } });
        url = started.url;
        close = () => started.server.close();
      });
      afterAll(() => close());

      it('admits a valid token and names the user', async () => {
        const client = await TestClient.open(url);
        const welcome = await client.hello(await token('alice', { expiresIn: '1h' }));
        expect(welcome).toMatchObject({
          type: 'welcome',
          protocol: PROTOCOL_VERSION,
          userId: 'alice',
          maxBatchOps: 1000,
          maxFrameBytes: 1024 * 1024,
        });
        client.close();
      });

      it.each([
        ['a missing token', async () => undefined, 'ANONYMOUS_NOT_ALLOWED'],
        [
          'an expired token',
          async () => token('bob', { expiresIn: Math.floor(Date.now() / 1000) - 60 }),
          'EXPIRED_TOKEN',
        ],
        [
          'a token signed with another algorithm',
          async () => token('bob', { algorithm: 'HS512' }),
          'INVALID_TOKEN',
        ],
        [
          'an unsigned token',
          async () => new UnsecuredJWT({}).setSubject('bob').encode(),
          'INVALID_TOKEN',
        ],
        [
          'a token signed with another secret',
          async () =>
            new SignJWT({})
              .setProtectedHeader({ alg: 'HS256' })
              .setSubject('x')
              .sign(new TextEncoder().encode('another-secret-of-32-bytes-length!!')),
          'INVALID_TOKEN',
        ],
        ['garbage', async () => 'not.a.jwt', 'INVALID_TOKEN'],
      ])('refuses %s and closes', async (_name, makeToken, code) => {
        const client = await TestClient.open(url);
        const answer = await client.hello(await makeToken());
        expect(answer).toMatchObject({ type: 'auth_error', code });
        expect(await client.closed()).toBe(4401);
      });

      it('refuses another protocol version', async () => {
        const client = await TestClient.open(url);
        const answer = await client.hello(undefined, PROTOCOL_VERSION + 1);
        expect(answer).toMatchObject({ type: 'error', code: 'PROTOCOL_VERSION' });
        expect(await client.closed()).toBe(1002);
      });

      it('tells a client of protocol 5 (no cursors) that it must be upgraded', async () => {
        const client = await TestClient.open(url);
        const answer = await client.hello(undefined, 5);
        expect(answer).toMatchObject({ type: 'error', code: 'PROTOCOL_VERSION', retryable: false });
        expect((answer as { message: string }).message).toMatch(
          /^upgrade required: .*protocol 6, the client 5/,
        );
        expect(await client.closed()).toBe(1002);
      });

      it('requires hello first', async () => {
        const client = await TestClient.open(url);
        client.send({ type: 'ping', time: 1 });
        expect(await client.next('error')).toMatchObject({ code: 'UNAUTHENTICATED' });
        expect(await client.closed()).toBe(1002);
      });
    });

    describe('token expiry during a session', () => {
      it('ends the session when its token expires, even if the client sends nothing', async () => {
        const { server, url } = await startServer({ storage, auth: { secret: SECRET } });
        const client = await TestClient.open(url);
        const expiresAt = Math.floor(Date.now() / 1000) + 2;
        await client.hello(await token('carol', { expiresIn: expiresAt }));
        client.send({ type: 'ping', time: 1 });
        expect(await client.next('pong')).toMatchObject({ time: 1 });
        // A listener that never writes still loses the session at expiry.
        expect(await client.next('error', 5_000)).toMatchObject({ code: 'TOKEN_EXPIRED' });
        expect(Date.now()).toBeGreaterThanOrEqual(expiresAt * 1000);
        expect(await client.closed()).toBe(4401);
        await server.close();
      });
    });

    describe('writes, sync, fan-out', () => {
      let url: string;
      let server: Awaited<ReturnType<typeof startServer>>['server'];
      beforeAll(async () => {
        ({ server, url } = await startServer({ storage, auth: { allowAnonymous: true } }));
      });
      afterAll(() => server.close());

      it('acknowledges after commit and keeps data across a restart', async () => {
        const client = await TestClient.connect(url);
        const { ack } = await client.write('durable', [
          ['a', { title: 'A', done: false }],
          ['b', { title: 'B', done: true }],
        ]);
        expect(ack).toMatchObject({
          ids: [expect.any(Number), expect.any(Number)],
          superseded: [],
        });
        // Committed: another storage handle sees it at once.
        expect((await storage.getRecords('durable', ['a', 'b'])).length).toBe(2);
        client.close();

        const restarted = await startServer({ storage, auth: { allowAnonymous: true } });
        const reader = await TestClient.connect(restarted.url);
        const replica = replicaOf();
        const result = await reader.sync('durable', replica);
        expect(result.converged).toBe(true);
        expect(replica.get('a')).toEqual({ title: 'A', done: false });
        expect(replica.get('b')).toEqual({ title: 'B', done: true });
        reader.close();
        await restarted.server.close();
      });

      it('acknowledges a re-sent op again and changes nothing', async () => {
        const client = await TestClient.connect(url);
        const watcher = await TestClient.connect(url);
        await watcher.sync('resend', replicaOf());
        const entry = ['k', formatTimestamp(client.hlc.now()), { v: 1 }] as const;
        const first = await client.sendOps([{ id: 100, map: 'resend', entry: [...entry] }]);
        expect(first.ack).toMatchObject({ ids: [100], superseded: [] });
        await watcher.next('changes');
        const again = await client.sendOps([{ id: 101, map: 'resend', entry: [...entry] }]);
        expect(again.ack).toMatchObject({ ids: [101], superseded: [] });
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(watcher.pending('changes')).toHaveLength(0);
        client.close();
        watcher.close();
      });

      it('acknowledges a stale write as superseded without storing it', async () => {
        const client = await TestClient.connect(url);
        const older = client.hlc.now();
        await client.write('stale', [['k', 'newer']]);
        const result = await client.write('stale', [['k', 'older']], () => older);
        expect(result.ack?.superseded).toEqual(result.ids);
        expect((await storage.getRecords('stale', ['k']))[0]!.record.value).toBe('newer');
        client.close();
      });

      it('answers a batch whose commit is quick before an earlier one still committing, and holds later messages for both', async () => {
        // Writes to map `gate` wait for the test to open the gate; other maps commit at once.
        let open: () => void = () => {};
        const gate = new Promise<void>((resolve) => {
          open = resolve;
        });
        const gated: Storage = Object.create(storage, {
          writeConcurrency: { value: 2 },
          writeRecords: {
            value: async (writes: readonly RecordWrite[]) => {
              if (writes.some((write) => write.map === 'gate')) await gate;
              return storage.writeRecords(writes);
            },
          },
        });
        const started = await startServer({ storage: gated, auth: { allowAnonymous: true } });
        const client = await TestClient.connect(started.url);
        const order: string[] = [];
        client.send({
          type: 'ops',
          ops: [
            {
              id: 9_999,
              map: 'gate',
              entry: toWireEntry('k', { value: 'slow', timestamp: client.hlc.now() }),
            },
          ],
        });
        const slow = client
          .next((message) => message.type === 'ack' && message.ids.includes(9_999))
          .then(() => order.push('slow ack'));
        await new Promise((resolve) => setTimeout(resolve, 50));
        await client.write('free', [['k', 'quick']]);
        order.push('quick ack');
        // A message other than ops waits until the batches before it are answered.
        client.send({ type: 'ping', time: 1 });
        const pong = client.next('pong').then(() => order.push('pong'));
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(order).toEqual(['quick ack']);
        open();
        await Promise.all([slow, pong]);
        expect(order).toEqual(['quick ack', 'slow ack', 'pong']);
        client.close();
        await started.server.close();
      });

      it('fans changes out to other syncing clients, batched, not back to the writer', async () => {
        const writer = await TestClient.connect(url);
        const reader = await TestClient.connect(url);
        await writer.sync('fanout', replicaOf());
        await reader.sync('fanout', replicaOf());
        await writer.write('fanout', [
          ['x', 1],
          ['y', 2],
        ]);
        const changes = await reader.next('changes');
        expect(changes).toMatchObject({
          changes: [{ map: 'fanout', entries: [expect.any(Array), expect.any(Array)] }],
        });
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(writer.pending('changes')).toHaveLength(0);
        writer.close();
        reader.close();
      });

      it('concurrent writers converge to the last write on every replica', async () => {
        const clients = await Promise.all([0, 1, 2].map(() => TestClient.connect(url)));
        await Promise.all(
          clients.map((client, index) =>
            Promise.all(
              Array.from({ length: 10 }, (_, round) =>
                client.write('race', [
                  ['shared', { by: index, round }],
                  [`own-${index}`, round],
                ]),
              ),
            ),
          ),
        );
        const replicas = await Promise.all(
          clients.map(async (client) => {
            const replica = replicaOf(`r-${client.nodeId}`);
            const result = await client.sync('race', replica);
            expect(result.converged).toBe(true);
            return replica;
          }),
        );
        const roots = replicas.map((replica) => rootHashHex(replica.merkleTree));
        expect(new Set(roots).size).toBe(1);
        expect(replicas[0]!.get('shared')).toEqual(replicas[2]!.get('shared'));
        expect(replicas[0]!.size).toBe(4);
        for (const client of clients) client.close();
      });

      it('reconciles a diverged replica through the Merkle walk, both ways', async () => {
        const client = await TestClient.connect(url);
        const writes: Array<[string, Value]> = Array.from({ length: 2_000 }, (_, index) => [
          `item-${index}`,
          { index },
        ]);
        for (let start = 0; start < writes.length; start += 500)
          await client.write('walk', writes.slice(start, start + 500));
        const replica = replicaOf();
        const first = await client.sync('walk', replica);
        expect(first.converged).toBe(true);
        expect(replica.size).toBe(2_000);

        // Diverge: the server changes 20 records; the client changes 5 of its own.
        const other = await TestClient.connect(url);
        await other.write(
          'walk',
          Array.from(
            { length: 20 },
            (_, index) => [`item-${index * 50}`, { changed: true }] as [string, Value],
          ),
        );
        for (let index = 0; index < 5; index++) {
          replica.merge(`mine-${index}`, { value: { mine: index }, timestamp: client.hlc.now() });
        }
        const second = await client.sync('walk', replica);
        expect(second.converged).toBe(true);
        expect(second.received).toBe(20);
        expect(replica.get('item-50')).toEqual({ changed: true });
        expect((await storage.getRecords('walk', ['mine-3']))[0]?.record.value).toEqual({
          mine: 3,
        });
        client.close();
        other.close();
      });

      it('streams a large initial sync in bounded chunks with the total for progress', async () => {
        const client = await TestClient.connect(url);
        const writes: Array<[string, Value]> = Array.from({ length: 5_000 }, (_, index) => [
          `bulk-${index}`,
          { index },
        ]);
        for (let start = 0; start < writes.length; start += 1_000)
          await client.write('bulk', writes.slice(start, start + 1_000));
        const reader = await TestClient.connect(url);
        const replica = replicaOf();
        const chunks: number[] = [];
        let total: number | undefined;
        // Decoded here: the reader hands a message to a waiting `next` and forgets it at once.
        reader.socket.on('message', (data) => {
          const message = decodeMessage(new Uint8Array(data as Buffer));
          if (message.type === 'sync_records') {
            chunks.push(message.records.length);
            total ??= message.total;
          }
        });
        const result = await reader.sync('bulk', replica);
        expect(result.converged).toBe(true);
        expect(replica.size).toBe(5_000);
        expect(total).toBe(5_000);
        expect(Math.max(...chunks)).toBeLessThanOrEqual(1_000);
        client.close();
        reader.close();
      });

      it('merges updates of different fields from two clients: both survive, on every replica', async () => {
        const alice = await TestClient.connect(url);
        const bob = await TestClient.connect(url);
        const watcher = await TestClient.connect(url);
        await alice.write('fields', [['t', { title: 'draft', done: false }]]);
        const watched = replicaOf('watched');
        await watcher.sync('fields', watched);
        // Alice ticks the todo while Bob renames it: neither has seen the other's write.
        const [tick, rename] = await Promise.all([
          alice.sendOps([
            { id: 1, map: 'fields', entry: updateEntry('t', { done: true }, alice.hlc.now()) },
          ]),
          bob.sendOps([
            { id: 1, map: 'fields', entry: updateEntry('t', { title: 'final' }, bob.hlc.now()) },
          ]),
        ]);
        expect(tick.ack).toMatchObject({ ids: [1], superseded: [] });
        expect(rename.ack).toMatchObject({ ids: [1], superseded: [] });
        expect((await storage.getRecords('fields', ['t']))[0]!.record.value).toEqual({
          title: 'final',
          done: true,
        });
        // Fanned out as records the watcher merges.
        await eventually(() => {
          for (const message of watcher.pending('changes').splice(0))
            for (const change of message.changes)
              for (const entry of change.entries) watched.merge(...fromWireEntry<Value>(entry));
          const value = watched.get('t') as { title?: string; done?: boolean } | undefined;
          return value?.title === 'final' && value.done === true;
        });
        expect(watched.get('t')).toEqual({ title: 'final', done: true });
        // A fresh replica gets the record with its field writes through the walk, and both
        // hold the same tree.
        const fresh = replicaOf('fresh');
        expect((await (await TestClient.connect(url)).sync('fields', fresh)).converged).toBe(true);
        expect(fresh.getRecord('t')).toEqual(watched.getRecord('t'));
        expect(rootHashHex(fresh.merkleTree)).toBe(rootHashHex(watched.merkleTree));
        alice.close();
        bob.close();
        watcher.close();
      });

      it('acknowledges an update sent again as applied, and one that lost as superseded', async () => {
        const client = await TestClient.connect(url);
        await client.write('fields-again', [['t', { n: 0 }]]);
        const entry = updateEntry('t', { n: 1 }, client.hlc.now());
        const older = updateEntry('t', { n: -1 }, client.hlc.now());
        const later = updateEntry('t', { n: 2 }, client.hlc.now());
        expect((await client.sendOps([{ id: 1, map: 'fields-again', entry }])).ack).toMatchObject({
          superseded: [],
        });
        expect((await client.sendOps([{ id: 2, map: 'fields-again', entry }])).ack).toMatchObject({
          superseded: [],
        });
        expect(
          (await client.sendOps([{ id: 3, map: 'fields-again', entry: later }])).ack,
        ).toMatchObject({ superseded: [] });
        expect(
          (await client.sendOps([{ id: 4, map: 'fields-again', entry: older }])).ack,
        ).toMatchObject({ ids: [4], superseded: [4] });
        expect((await storage.getRecords('fields-again', ['t']))[0]!.record.value).toEqual({
          n: 2,
        });
        client.close();
      });

      it('rejects ops stamped with another node id or too far in the future', async () => {
        const client = await TestClient.connect(url);
        // Every write in an op is the connection's own: a field write too.
        const mixed = await client.sendOps([
          {
            id: 3,
            map: 'checks',
            entry: toWireEntry(
              'k',
              withFieldWrites(
                { value: { a: 1 }, timestamp: client.hlc.now() },
                {
                  b: {
                    timestamp: { millis: Date.now() + 1, counter: 0, nodeId: 'someone-else' },
                    value: 2,
                  },
                },
              ),
            ),
          },
        ]);
        expect(mixed.reject?.rejections[0]).toMatchObject({ id: 3, reason: 'NODE_ID' });
        const foreign = await client.sendOps([
          {
            id: 1,
            map: 'checks',
            entry: [
              'k',
              formatTimestamp({ millis: Date.now(), counter: 0, nodeId: 'someone-else' }),
              1,
            ],
          },
        ]);
        expect(foreign.reject?.rejections[0]).toMatchObject({
          id: 1,
          reason: 'NODE_ID',
          retryable: false,
        });
        const future = await client.sendOps([
          {
            id: 2,
            map: 'checks',
            entry: [
              'k',
              formatTimestamp({ millis: Date.now() + 120_000, counter: 0, nodeId: client.nodeId }),
              1,
            ],
          },
        ]);
        expect(future.reject?.rejections[0]).toMatchObject({ id: 2, reason: 'CLOCK_DRIFT' });
        expect(await storage.getRecords('checks', ['k'])).toEqual([]);
        client.close();
      });
    });

    describe('live queries', () => {
      let url: string;
      let close: () => Promise<void>;
      beforeAll(async () => {
        const started = await startServer({
          storage,
          auth: { allowAnonymous: true },
          limits: { maxLiveQueries: 2 },
        });
        url = started.url;
        close = () => started.server.close();
      });
      afterAll(() => close());

      it('sends the snapshot, then enter, update and leave', async () => {
        const writer = await TestClient.connect(url);
        await writer.write('tasks', [
          ['t1', { done: false, rank: 1 }],
          ['t2', { done: true, rank: 2 }],
          ['t3', { done: false, rank: 3 }],
        ]);
        const subscriber = await TestClient.connect(url);
        subscriber.send({
          type: 'subscribe',
          id: 7,
          map: 'tasks',
          query: { where: { done: false }, sort: 'rank', limit: 2 },
        });
        const snapshot = await subscriber.next('query_snapshot');
        expect(snapshot).toMatchObject({ id: 7, last: true });
        if (snapshot.type !== 'query_snapshot') throw new Error();
        expect(snapshot.entries.map(([key]) => key)).toEqual(['t1', 't3']);

        await writer.write('tasks', [['t0', { done: false, rank: 0 }]]);
        expect(await subscriber.next('query_update')).toMatchObject({
          id: 7,
          enter: [['t0', expect.any(String), { done: false, rank: 0 }]],
          leave: ['t3'],
        });
        await writer.write('tasks', [['t1', { done: false, rank: 1, note: 'edited' }]]);
        expect(await subscriber.next('query_update')).toMatchObject({
          update: [['t1', expect.any(String), { done: false, rank: 1, note: 'edited' }]],
        });
        await writer.write('tasks', [['t2', { done: true, rank: 9 }]]); // outside the result
        await writer.write('tasks', [['t0', null]]);
        const leave = await subscriber.next('query_update');
        expect(leave).toMatchObject({
          leave: ['t0'],
          enter: [['t3', expect.any(String), expect.anything()]],
        });

        // An update moves a record in and out of the result: it enters whole (its fields
        // written by the update and the others), as the merged record.
        const tick = (key: string, done: boolean) =>
          writer.sendOps([
            {
              id: 900 + (done ? 1 : 0),
              map: 'tasks',
              entry: updateEntry(key, { done }, writer.hlc.now()),
            },
          ]);
        await tick('t1', true);
        const left = await subscriber.next('query_update');
        expect(left).toMatchObject({ leave: ['t1'], enter: [] });
        await tick('t1', false);
        const entered = await subscriber.next('query_update');
        if (entered.type !== 'query_update') throw new Error();
        const [entry] = entered.enter;
        expect(entry![0]).toBe('t1');
        expect(fromWireEntry<Value>(entry!)[1].value).toEqual({
          done: false,
          rank: 1,
          note: 'edited',
        });

        subscriber.send({ type: 'unsubscribe', id: 7 });
        await new Promise((resolve) => setTimeout(resolve, 50));
        await writer.write('tasks', [['t5', { done: false, rank: -1 }]]);
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(subscriber.pending('query_update')).toHaveLength(0);
        writer.close();
        subscriber.close();
      });

      it('resumes a query-scoped window by digest: only what entered, changed or left', async () => {
        const writer = await TestClient.connect(url);
        await writer.write(
          'events',
          Array.from({ length: 8 }, (_, i) => [`e${i}`, { kind: 'x', at: i }] as [string, Value]),
        );
        const query: Query = {
          where: { kind: 'x' },
          sort: [{ field: 'at', direction: 'desc' }],
          limit: 4,
        };
        const first = await TestClient.connect(url);
        first.send({ type: 'subscribe', id: 1, map: 'events', query });
        const snapshot = await first.next('query_snapshot');
        if (snapshot.type !== 'query_snapshot') throw new Error();
        expect(snapshot).toMatchObject({ last: true, matching: 8 });
        const held = snapshot.entries.map((entry) => fromWireEntry<Value>(entry));
        expect(held.map(([key]) => key)).toEqual(['e7', 'e6', 'e5', 'e4']);
        first.close();

        // Offline meanwhile: e6 changes, e5 is deleted, e9 enters; e0 changes outside the window.
        await writer.write('events', [
          ['e6', { kind: 'x', at: 6, seen: true }],
          ['e5', null],
          ['e9', { kind: 'x', at: 9 }],
          ['e0', { kind: 'x', at: 0, seen: true }],
        ]);
        // The client also holds e1 from before (its local result would still show it).
        const stale = fromWireEntry<Value>(
          toWireEntry('e1', {
            value: { kind: 'x', at: 100 },
            timestamp: { millis: 1, counter: 0, nodeId: 'old' },
          }),
        );
        const again = await TestClient.connect(url);
        again.send({
          type: 'subscribe',
          id: 1,
          map: 'events',
          query,
          have: encodeHave([stale, ...held]),
        });
        const revoke = await again.next('revoke');
        expect(revoke).toEqual({ type: 'revoke', map: 'events', keys: ['e5'] });
        const delta = await again.next('query_snapshot');
        if (delta.type !== 'query_snapshot') throw new Error();
        // e9 entered, e6 changed; e7 and e4 were held as they are; e1's current version takes
        // it out of the client's result; e0 (outside, not named) is not sent.
        expect(delta.entries.map(([key]) => key).sort()).toEqual(['e1', 'e6', 'e9']);
        expect(delta).toMatchObject({ last: true, matching: 8 });
        writer.close();
        again.close();
      });

      it('grows a window with query_more: only the rows after its last one, once', async () => {
        const writer = await TestClient.connect(url);
        await writer.write(
          'pages',
          Array.from({ length: 7 }, (_, i) => [`p${i}`, { n: i }] as [string, Value]),
        );
        const reader = await TestClient.connect(url);
        reader.send({ type: 'subscribe', id: 2, map: 'pages', query: { sort: 'n', limit: 3 } });
        const snapshot = await reader.next('query_snapshot');
        expect(snapshot).toMatchObject({ matching: 7 });
        reader.send({ type: 'query_more', id: 2, limit: 6 });
        const more = await reader.next('query_update');
        if (more.type !== 'query_update') throw new Error();
        expect(more.enter.map(([key]) => key)).toEqual(['p3', 'p4', 'p5']);
        expect(more).toMatchObject({ update: [], leave: [], matching: 7 });
        // The grown window is live: a row inserted before the cursor enters, the last leaves.
        await writer.write('pages', [['q', { n: 1.5 }]]);
        expect(await reader.next('query_update')).toMatchObject({
          enter: [['q', expect.any(String), { n: 1.5 }]],
          leave: ['p5'],
          matching: 8,
        });
        // The same limit again is not answered; past 10 000 rows the query ends.
        reader.send({ type: 'query_more', id: 2, limit: 6 });
        reader.send({ type: 'query_more', id: 2, limit: 10_001 });
        expect(await reader.next('query_error')).toMatchObject({ id: 2, code: 'LIMIT' });
        expect(reader.pending('query_update')).toHaveLength(0);
        writer.close();
        reader.close();
      });

      it('answers nothing to a query_more that grows no window, whatever its limit', async () => {
        const writer = await TestClient.connect(url);
        await writer.write('shelves', [
          ['b1', { n: 1 }],
          ['b2', { n: 2 }],
        ]);
        const reader = await TestClient.connect(url);
        // Without a limit, and with a window at the 10 000 rows' end: neither grows.
        reader.send({ type: 'subscribe', id: 1, map: 'shelves', query: { sort: 'n' } });
        reader.send({
          type: 'subscribe',
          id: 2,
          map: 'shelves',
          query: { sort: 'n', offset: 9_999, limit: 1 },
        });
        for (const id of [1, 2])
          await reader.next((message) => message.type === 'query_snapshot' && message.id === id);
        reader.send({ type: 'query_more', id: 1, limit: 10_001 });
        reader.send({ type: 'query_more', id: 2, limit: 1 });
        reader.send({ type: 'ping', time: 1 });
        await reader.next('pong');
        expect(reader.pending('query_error')).toEqual([]);
        expect(reader.pending('query_update')).toEqual([]);
        // Both still live.
        await writer.write('shelves', [['b0', { n: 0 }]]);
        expect(await reader.next('query_update')).toMatchObject({
          id: 1,
          enter: [['b0', expect.any(String), { n: 0 }]],
        });
        writer.close();
        reader.close();
      });

      it('tells a client that does not follow the map what its own writes push in, and when more rows follow', async () => {
        const client = await TestClient.connect(url);
        await client.write('slots', [
          ['s1', { n: 1 }],
          ['s2', { n: 2 }],
          ['s3', { n: 3 }],
        ]);
        client.send({ type: 'subscribe', id: 3, map: 'slots', query: { sort: 'n', limit: 2 } });
        expect(await client.next('query_snapshot')).toMatchObject({ matching: 3 });
        // Its own delete of s1 pushes s3 in: it does not hold s3's record otherwise.
        await client.write('slots', [['s1', null]]);
        const pushed = await client.next('query_update');
        expect(pushed).toMatchObject({ leave: ['s1'], matching: 2 });
        if (pushed.type !== 'query_update') throw new Error();
        expect(pushed.enter.map(([key]) => key)).toEqual(['s3']);
        // The tombstone of the record that left, as it changed.
        expect(pushed.update.map(([key, , value]) => [key, value])).toEqual([['s1', null]]);
        // A record past the window: no row changes, but now more rows follow it.
        await client.write('slots', [['s4', { n: 4 }]]);
        expect(await client.next('query_update')).toEqual({
          type: 'query_update',
          id: 3,
          enter: [],
          update: [],
          leave: [],
          matching: 3,
        });
        // Another one past it changes nothing a client shows: no message.
        await client.write('slots', [['s5', { n: 5 }]]);
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(client.pending('query_update')).toHaveLength(0);
        client.close();
      });

      it('limits live queries per connection', async () => {
        const client = await TestClient.connect(url);
        for (const id of [1, 2, 3]) client.send({ type: 'subscribe', id, map: 'tasks', query: {} });
        expect(await client.next('query_error')).toMatchObject({ id: 3, code: 'LIMIT' });
        client.close();
      });
    });

    describe('permissions', () => {
      let url: string;
      let close: () => Promise<void>;
      beforeAll(async () => {
        const started = await startServer({
          storage,
          auth: { secret: SECRET },
          permissions: [
            { map: 'public', read: true, write: 'authenticated' },
            { map: 'readonly', read: true, write: false },
            {
              // Tasks: created by their owner; others may only tick them.
              map: 'tasks',
              read: true,
              write: ({ user, value, previous, patch }) => {
                const owner = (previous as { owner?: string } | undefined)?.owner;
                if (previous === undefined)
                  return (value as { owner?: string } | null)?.owner === user.id;
                if (owner === user.id) return true;
                return patch !== undefined && Object.keys(patch).every((name) => name === 'done');
              },
            },
            {
              map: 'notes/*',
              read: ({ user, value }) =>
                value === undefined || (value as { owner?: string }).owner === user.id,
              write: ({ user, value, previous }) =>
                (previous === undefined || (previous as { owner?: string }).owner === user.id) &&
                (value === null || (value as { owner?: string }).owner === user.id),
            },
          ],
        });
        url = started.url;
        close = () => started.server.close();
      });
      afterAll(() => close());

      it('rejects denied writes per op, stores and broadcasts nothing', async () => {
        const alice = await TestClient.connect(url, await token('alice'));
        const bob = await TestClient.connect(url, await token('bob'));
        await bob.sync('readonly', replicaOf());
        const result = await alice.write('readonly', [['k', 'nope']]);
        expect(result.reject?.rejections[0]).toMatchObject({ reason: 'PERMISSION', current: null });
        expect(await storage.getRecords('readonly', ['k'])).toEqual([]);
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(bob.pending('changes')).toHaveLength(0);

        const unknown = await alice.write('unlisted-map', [['k', 1]]);
        expect(unknown.reject?.rejections[0]?.reason).toBe('PERMISSION');
        alice.close();
        bob.close();
      });

      it('shows a write rule the patch of an update, the previous value and the value it makes', async () => {
        const alice = await TestClient.connect(url, await token('alice'));
        const bob = await TestClient.connect(url, await token('bob'));
        await alice.write('tasks', [['k', { owner: 'alice', title: 'write spec', done: false }]]);
        const tick = await bob.sendOps([
          { id: 1, map: 'tasks', entry: updateEntry('k', { done: true }, bob.hlc.now()) },
        ]);
        expect(tick.ack).toMatchObject({ ids: [1], superseded: [] });
        const rename = await bob.sendOps([
          {
            id: 2,
            map: 'tasks',
            entry: updateEntry('k', { title: 'mine now', done: false }, bob.hlc.now()),
          },
        ]);
        // Refused with the record as stored, to roll back to: the tick is in it.
        const [refusal] = rename.reject!.rejections;
        expect(refusal).toMatchObject({ id: 2, reason: 'PERMISSION' });
        expect(fromWireEntry<Value>(refusal!.current!)[1].value).toEqual({
          owner: 'alice',
          title: 'write spec',
          done: true,
        });
        // A whole write carrying a field write is judged as the whole write it is, not as a
        // patch of that field.
        const now = bob.hlc.now();
        const disguised = await bob.sendOps([
          {
            id: 4,
            map: 'tasks',
            entry: toWireEntry(
              'k',
              withFieldWrites(
                { value: { owner: 'bob', title: 'mine', done: true }, timestamp: now },
                { done: { timestamp: bob.hlc.now(), value: true } },
              ),
            ),
          },
        ]);
        expect(disguised.reject?.rejections[0]).toMatchObject({ id: 4, reason: 'PERMISSION' });
        // The owner may update any field.
        const own = await alice.sendOps([
          {
            id: 3,
            map: 'tasks',
            entry: updateEntry('k', { title: 'spec written' }, alice.hlc.now()),
          },
        ]);
        expect(own.ack).toMatchObject({ ids: [3], superseded: [] });
        expect((await storage.getRecords('tasks', ['k']))[0]!.record.value).toEqual({
          owner: 'alice',
          title: 'spec written',
          done: true,
        });
        alice.close();
        bob.close();
      });

      it('applies record-level rules to writes, sync, changes and live queries', async () => {
        const alice = await TestClient.connect(url, await token('alice'));
        const bob = await TestClient.connect(url, await token('bob'));
        expect(
          (await alice.write('notes/all', [['a1', { owner: 'alice', text: 'secret' }]])).ack,
        ).toBeDefined();
        expect(
          (await bob.write('notes/all', [['b1', { owner: 'bob', text: 'mine' }]])).ack,
        ).toBeDefined();
        // Bob may not take over Alice's note. As Bob may not see it, he is answered as for a
        // key someone else took: acknowledged as superseded (not applied), and told to forget it.
        const takeover = await bob.write('notes/all', [['a1', { owner: 'bob', text: 'stolen' }]]);
        expect(takeover.reject).toBeUndefined();
        expect(takeover.ack).toMatchObject({ ids: takeover.ids, superseded: takeover.ids });
        expect(await bob.next('revoke')).toMatchObject({ map: 'notes/all', keys: ['a1'] });
        expect((await storage.getRecords('notes/all', ['a1']))[0]!.record.value).toEqual({
          owner: 'alice',
          text: 'secret',
        });

        const bobReplica = replicaOf('bob-replica');
        const result = await bob.sync('notes/all', bobReplica);
        expect(result.converged).toBe(true);
        expect([...bobReplica.entries()].map(([key]) => key)).toEqual(['b1']);

        await alice.write('notes/all', [['a2', { owner: 'alice', text: 'also secret' }]]);
        await bob.write('notes/all', [['b2', { owner: 'bob', text: 'visible' }]]);
        alice.send({ type: 'subscribe', id: 1, map: 'notes/all', query: {} });
        const snapshot = await alice.next('query_snapshot');
        if (snapshot.type !== 'query_snapshot') throw new Error();
        expect(snapshot.entries.map(([key]) => key).sort()).toEqual(['a1', 'a2']);
        await new Promise((resolve) => setTimeout(resolve, 100));
        const leaked = bob
          .pending('changes')
          .flatMap((message) =>
            message.changes.flatMap((change) => change.entries.map(([key]) => key)),
          );
        expect(leaked).not.toContain('a2');
        alice.close();
        bob.close();
      });

      it('refuses walks and live queries of maps the user may not read', async () => {
        const client = await TestClient.connect(url, await token('eve'));
        const walk = await client.sync('forbidden', replicaOf());
        expect(walk.done).toMatchObject({ type: 'sync_error', code: 'PERMISSION' });
        client.send({ type: 'subscribe', id: 9, map: 'forbidden', query: {} });
        expect(await client.next('query_error')).toMatchObject({ id: 9, code: 'PERMISSION' });
        client.close();
      });
    });

    describe('pruning and reset', () => {
      it('sends a reset to a client whose last sync predates pruning, never resurrecting deletes', async () => {
        let time = Date.now();
        const { server, url } = await startServer({
          storage,
          auth: { allowAnonymous: true },
          now: () => time,
          pruneHorizonMs: 1_000,
        });
        const client = await TestClient.connect(url);
        await client.write('pruned', [
          ['keep', 1],
          ['gone', 2],
        ]);
        const replica = replicaOf();
        const first = await client.sync('pruned', replica);
        if (first.done.type !== 'sync_done') throw new Error('walk failed');
        const lastSync = first.done.syncedAt!;
        await client.write('pruned', [['gone', null]]);
        time += 5_000;
        expect(await server.prune()).toBeGreaterThanOrEqual(1);
        expect(await storage.getRecords('pruned', ['gone'])).toEqual([]);

        const stale = await client.sync('pruned', replica, { lastSync });
        expect(stale.done).toMatchObject({ type: 'sync_reset', reason: 'PRUNED' });
        const fresh = replicaOf('fresh');
        const resynced = await client.sync('pruned', fresh);
        expect(resynced.converged).toBe(true);
        expect(fresh.has('gone')).toBe(false);
        expect(fresh.get('keep')).toBe(1);
        client.close();
        await server.close();
      });
    });

    describe('staying up', () => {
      let url: string;
      let server: Awaited<ReturnType<typeof startServer>>['server'];
      beforeAll(async () => {
        ({ server, url } = await startServer({
          storage,
          auth: { allowAnonymous: true },
          heartbeatMs: 200,
          limits: {
            maxFrameBytes: 64 * 1024,
            maxViolations: 5,
            opsPerSecond: 100,
            opsBurst: 200,
            upgradesPerSecond: 1,
            upgradesBurst: 40,
          },
        }));
      });
      afterAll(() => server.close());

      it('answers every bad frame with an error and keeps serving others', async () => {
        const attacker = await TestClient.connect(url);
        const bystander = await TestClient.connect(url);
        attacker.sendRaw(new Uint8Array([0xc1]));
        expect(await attacker.next('error')).toMatchObject({ code: 'MALFORMED' });
        attacker.sendRaw(
          new Uint8Array([0x81, 0xa9, ...new TextEncoder().encode('__proto__'), 0x01]),
        );
        expect(await attacker.next('error')).toMatchObject({ code: 'MALFORMED' });
        attacker.sendRaw('a text frame');
        expect(await attacker.next('error')).toMatchObject({ code: 'MALFORMED' });
        bystander.send({ type: 'ping', time: 42 });
        expect(await bystander.next('pong')).toMatchObject({ time: 42 });
        attacker.close();
        bystander.close();
      });

      it('closes a client that keeps violating with 1008; others are unaffected', async () => {
        const attacker = await TestClient.connect(url);
        const bystander = await TestClient.connect(url);
        for (let i = 0; i < 20; i++) attacker.sendRaw(new Uint8Array([0xc1, i]));
        expect(await attacker.closed()).toBe(1008);
        bystander.send({ type: 'ping', time: 1 });
        expect(await bystander.next('pong')).toBeDefined();
        bystander.close();
      });

      it('closes on a frame over the size limit', async () => {
        const client = await TestClient.connect(url);
        client.sendRaw(new Uint8Array(100 * 1024));
        expect(await client.closed()).toBe(1009);
      });

      it('rate-limits ops per connection', async () => {
        const client = await TestClient.connect(url);
        const result = await client.write(
          'flood',
          Array.from({ length: 250 }, (_, index) => [`k${index}`, index] as [string, Value]),
        );
        expect(result.reject?.rejections[0]).toMatchObject({
          reason: 'RATE_LIMIT',
          retryable: true,
        });
        client.close();
      });

      it('drops a connection that stops answering pings within two intervals', async () => {
        const silent = await TestClient.open(url, undefined, { autoPong: false });
        await silent.hello();
        const started = Date.now();
        await silent.closed(3_000);
        expect(Date.now() - started).toBeLessThan(1_000);
      });

      it('limits WebSocket upgrades per address', async () => {
        const attempts = await Promise.allSettled(
          Array.from({ length: 60 }, () => TestClient.open(url)),
        );
        const refused = attempts.filter((attempt) => attempt.status === 'rejected');
        expect(refused.length).toBeGreaterThan(0);
        expect(String((refused[0] as PromiseRejectedResult).reason)).toContain('429');
        for (const attempt of attempts) if (attempt.status === 'fulfilled') attempt.value.close();
      });
    });

    describe('slow readers', () => {
      it('disconnects a client too slow to read instead of buffering without bound', async () => {
        // Heartbeats off the path: this client is alive, only slow.
        const { server, url } = await startServer({
          storage,
          auth: { allowAnonymous: true },
          heartbeatMs: 60_000,
          limits: { sendHighWaterMark: 256 * 1024, bytesPerSecond: 1e9, bytesBurst: 1e9 },
        });
        const writer = await TestClient.connect(url);
        const slow = await TestClient.connect(url);
        await slow.sync('firehose', replicaOf());
        (slow.socket as unknown as { _socket: { pause(): void } })._socket.pause();
        const big = 'x'.repeat(200_000);
        const slowConsumers = async () =>
          /kind="slow_consumer"\} [1-9]/.test(
            await server.metrics.registry.getSingleMetricAsString('topgun_violations_total'),
          );
        // Kernel socket buffers absorb a few MB first; then the server's queue grows.
        for (let round = 0; round < 100 && !(await slowConsumers()); round++) {
          await writer.write(
            'firehose',
            Array.from({ length: 4 }, (_, index) => [`r${round}-${index}`, big] as [string, Value]),
          );
        }
        (slow.socket as unknown as { _socket: { resume(): void } })._socket.resume();
        // A client that does not read cannot read the close frame either: it sees 4408 or 1006.
        expect([4408, 1006]).toContain(await slow.closed(5_000));
        expect(
          await server.metrics.registry.getSingleMetricAsString('topgun_violations_total'),
        ).toMatch(/kind="slow_consumer"\} [1-9]/);
        writer.close();
        await server.close();
      });
    });

    describe('graceful shutdown', () => {
      it('acknowledges in-flight batches, then closes sockets with 1001', async () => {
        const { server, url } = await startServer({ storage, auth: { allowAnonymous: true } });
        const client = await TestClient.connect(url);
        const writes = Array.from(
          { length: 300 },
          (_, index) => [`s${index}`, index] as [string, Value],
        );
        const pending = client.write('shutdown', writes);
        await new Promise((resolve) => setTimeout(resolve, 5));
        const closing = server.close();
        const { ack } = await pending;
        expect(ack?.ids).toHaveLength(300);
        expect(await client.next('error')).toMatchObject({
          code: 'SHUTTING_DOWN',
          retryable: true,
        });
        expect(await client.closed()).toBe(1001);
        await closing;
        expect((await storage.getRecords('shutdown', ['s299']))[0]?.record.value).toBe(299);
      });
    });

    describe('metrics and health', () => {
      it('exposes health, readiness and Prometheus metrics', async () => {
        const { server, url } = await startServer({ storage, auth: { allowAnonymous: true } });
        const client = await TestClient.connect(url);
        await client.write('metered', [['k', 1]]);
        expect(await (await fetch(`${url}/health`)).json()).toEqual({ status: 'ok' });
        const ready = await fetch(`${url}/ready`);
        expect(ready.status).toBe(200);
        const metrics = await (await fetch(`${url}/metrics`)).text();
        expect(metrics).toMatch(/topgun_connections 1/);
        expect(metrics).toMatch(/topgun_ops_applied_total 1/);
        expect(metrics).toMatch(/topgun_ack_latency_seconds_count 1/);
        expect(metrics).toMatch(
          /topgun_storage_latency_seconds_count\{operation="write_records"\} 1/,
        );
        client.close();
        await eventually(async () =>
          /topgun_connections 0/.test(await (await fetch(`${url}/metrics`)).text()),
        );
        await server.close();
      });
    });
  });
}
