import 'fake-indexeddb/auto';
import { toWireEntry } from '@topgun/core';
import { afterEach, expect, it } from 'vitest';
import { type ClientOptions, createClient, type TopGunClient } from '../src/index.js';
import { FakeTransport, overFakeTransport } from './fakeTransport.js';
import { sharedLock } from './sharedLock.js';

interface Todo {
  title: string;
}

const clients: TopGunClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

it('hands the connection to the next tab when the leader goes, which sends every unacknowledged write', async () => {
  const transport = new FakeTransport();
  const election = sharedLock();
  const tab = () =>
    tabOf(transport, election, { dbName: 'tabs-over-a-fake-transport', nodeId: 'profile1' });
  const leader = tab();
  const follower = tab();
  const first = await transport.connection(0);
  await first.welcome();
  leader.getMap<Todo>('todos').set('from-leader', { title: 'A' });
  follower.getMap<Todo>('todos').set('from-follower', { title: 'B' });
  await first.endWalk();
  // Both tabs' writes go out through the leader's one connection, and stay unacknowledged.
  const sent = new Set<string>();
  while (sent.size < 2) for (const op of (await first.next('ops')).ops) sent.add(op.entry[0]);
  expect([...sent].sort()).toEqual(['from-follower', 'from-leader']);
  expect(transport.connections).toHaveLength(1);

  await leader.close();
  clients.splice(clients.indexOf(leader), 1);
  const second = await transport.connection(1);
  await second.welcome();
  await second.endWalk();
  const { ops } = await second.next('ops');
  expect(ops.map((op) => op.entry[0]).sort()).toEqual(['from-follower', 'from-leader']);
  const flushed = follower.flush();
  second.receive({ type: 'ack', ids: ops.map((op) => op.id), superseded: [] });
  await flushed;
  expect(follower.status.getState()).toMatchObject({ isLeader: true, pendingOps: 0 });
});

it('subscribes a follower’s query of a map replicated by query through the leader, and again through the next leader', async () => {
  const transport = new FakeTransport();
  const election = sharedLock();
  const tab = () =>
    tabOf(transport, election, {
      dbName: 'scoped-queries-over-tabs',
      nodeId: 'profile2',
      maps: { events: { replicate: 'queries' } },
    });
  const leader = tab();
  const follower = tab();
  const first = await transport.connection(0);
  await first.welcome();
  const query = { where: { kind: 'a' }, limit: 2 };
  const feed = follower.query<{ kind: string }>('events', query);
  feed.subscribe(() => {});
  const subscribe = await first.next('subscribe');
  expect(subscribe).toMatchObject({ map: 'events', query });
  const entry = (key: string) =>
    toWireEntry(key, { value: { kind: 'a' }, timestamp: { millis: 1, counter: 0, nodeId: 's' } });
  first.receive({
    type: 'query_snapshot',
    id: subscribe.id,
    entries: [entry('a1'), entry('a2')],
    last: true,
    matching: 3,
  });
  await until(() => feed.getSnapshot().status === 'synced');
  expect(feed.getSnapshot()).toMatchObject({ hasMore: true });
  expect(feed.getSnapshot().data.map((row) => row.key)).toEqual(['a1', 'a2']);

  feed.loadMore();
  expect(await first.next('query_more')).toMatchObject({ id: subscribe.id, limit: 4 });

  await leader.close();
  clients.splice(clients.indexOf(leader), 1);
  const second = await transport.connection(1);
  await second.welcome();
  expect(await second.next('subscribe')).toMatchObject({
    map: 'events',
    query: { ...query, limit: 4 },
    have: { keys: ['a1', 'a2'] },
  });
});

it('keeps the rows of every tab’s queries when one tab’s query ends, and unsubscribes a closed tab’s', async () => {
  const transport = new FakeTransport();
  const election = sharedLock();
  const maps = { events: { replicate: 'queries' as const, maxRecords: 1 } };
  const tab = () =>
    tabOf(transport, election, { dbName: 'scoped-budget-tabs', nodeId: 'profile3', maps });
  const leader = tab();
  const follower = tab();
  const connection = await transport.connection(0);
  await connection.welcome();
  const mine = leader.query<{ kind: string }>('events', { where: { kind: 'a' }, limit: 10 });
  mine.subscribe(() => {});
  const first = await connection.next('subscribe');
  const theirs = follower.query<{ kind: string }>('events', { where: { kind: 'b' }, limit: 10 });
  theirs.subscribe(() => {});
  const second = await connection.next('subscribe');
  connection.receive({
    type: 'query_snapshot',
    id: first.id,
    entries: [kindEntry('a1', 'a'), kindEntry('a2', 'a')],
    last: true,
  });
  connection.receive({
    type: 'query_snapshot',
    id: second.id,
    entries: [kindEntry('b1', 'b')],
    last: true,
  });
  await until(() => theirs.getSnapshot().data.length === 1);
  // The follower's query ends: over the budget, but the leader's rows stay in every tab.
  theirs.dispose();
  await connection.next('unsubscribe');
  expect(mine.getSnapshot().data.map((row) => row.key)).toEqual(['a1', 'a2']);
  // A follower that closes: the leader stops following its query.
  const again = follower.query<{ kind: string }>('events', { where: { kind: 'z' }, limit: 10 });
  again.subscribe(() => {});
  const third = await connection.next('subscribe');
  await follower.close();
  clients.splice(clients.indexOf(follower), 1);
  expect(await connection.next('unsubscribe')).toMatchObject({ id: third.id });
});

it('tells a follower at once that a query the leader already follows is answered', async () => {
  const transport = new FakeTransport();
  const election = sharedLock();
  const maps = { events: { replicate: 'queries' as const } };
  const tab = () =>
    tabOf(transport, election, { dbName: 'scoped-shared-tabs', nodeId: 'profile4', maps });
  const leader = tab();
  const follower = tab();
  const connection = await transport.connection(0);
  await connection.welcome();
  const query = { where: { kind: 'a' }, limit: 1 };
  const mine = leader.query<{ kind: string }>('events', query);
  mine.subscribe(() => {});
  const { id } = await connection.next('subscribe');
  connection.receive({
    type: 'query_snapshot',
    id,
    entries: [kindEntry('a1', 'a')],
    last: true,
    matching: 5,
  });
  await until(() => mine.getSnapshot().status === 'synced');
  // The leader's word on its own query has reached the follower, which had no such query.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const theirs = follower.query<{ kind: string }>('events', query);
  theirs.subscribe(() => {});
  await until(() => theirs.getSnapshot().status === 'synced');
  expect(theirs.getSnapshot()).toMatchObject({ hasMore: true });
  expect(theirs.getSnapshot().data.map((row) => row.key)).toEqual(['a1']);
});

const kindEntry = (key: string, kind: string) =>
  toWireEntry(key, { value: { kind }, timestamp: { millis: 1, counter: 0, nodeId: 's' } });

/** A tab of one browser profile, its server the test through `transport`. */
function tabOf(
  transport: FakeTransport,
  election: ReturnType<typeof sharedLock>,
  options: Partial<ClientOptions>,
): TopGunClient {
  const client = createClient({
    ...overFakeTransport(transport),
    storage: 'indexeddb',
    multiTab: true,
    leaderElection: election(),
    ...options,
  });
  clients.push(client);
  return client;
}

/** Polls until `test` holds. */
async function until(test: () => boolean): Promise<void> {
  while (!test()) await new Promise((resolve) => setTimeout(resolve, 5));
}

it('follows a follower’s server aggregate through the leader, and again through the next leader', async () => {
  const transport = new FakeTransport();
  const election = sharedLock();
  const tab = () =>
    tabOf(transport, election, {
      dbName: 'server-aggregates-over-tabs',
      nodeId: 'profile5',
      maps: { events: { replicate: 'queries' } },
    });
  const leader = tab();
  const follower = tab();
  const first = await transport.connection(0);
  await first.welcome();
  const query = { groupBy: { kind: 'kind' }, aggregate: { n: 'count' } } as const;
  const handle = follower.aggregate<{ kind: string }>('events', query);
  handle.subscribe(() => {});
  const asked = await first.next('aggregate');
  expect(asked).toMatchObject({ map: 'events', query });
  first.receive({
    type: 'aggregate_rows',
    id: asked.id,
    reset: true,
    rows: [{ key: '["a"]', value: { kind: 'a', n: 2 } }],
    left: [],
    last: true,
  });
  await until(() => handle.getSnapshot().status === 'synced');
  expect(handle.getSnapshot().data).toEqual([{ key: '["a"]', value: { kind: 'a', n: 2 } }]);
  first.receive({
    type: 'aggregate_rows',
    id: asked.id,
    reset: false,
    rows: [{ key: '["b"]', value: { kind: 'b', n: 1 } }],
    left: ['["a"]'],
    last: true,
  });
  await until(() => handle.getSnapshot().data[0]?.key === '["b"]');
  expect(handle.getSnapshot().data).toHaveLength(1);

  await leader.close();
  clients.splice(clients.indexOf(leader), 1);
  const second = await transport.connection(1);
  await second.welcome();
  expect(await second.next('aggregate')).toMatchObject({ map: 'events', query });
});
