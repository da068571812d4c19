import 'fake-indexeddb/auto';
import {
  compareTimestamps,
  type FieldWrite,
  formatTimestamp,
  parseTimestamp,
  toWireEntry,
  type Value,
  withFieldWrites,
} from '@topgun/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClientOptions,
  createClient,
  manualOnlineManager,
  type TopGunClient,
} from '../src/index.js';
import { type FakeConnection, FakeTransport } from './fakeTransport.js';

interface Todo {
  title: string;
  done: boolean;
}

const clients: TopGunClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

/** A client whose server the test plays through `transport`. */
function open(transport: FakeTransport, options: Partial<ClientOptions> = {}) {
  const client = createClient({
    url: 'fake://server/sync',
    transport,
    storage: 'memory',
    multiTab: false,
    nodeId: 'profile1',
    online: manualOnlineManager(true),
    minRetryMs: 1,
    maxRetryMs: 5,
    random: () => 0,
    ...options,
  });
  clients.push(client);
  return { client, todos: client.getMap<Todo>('todos') };
}

/** Connection `index` of `transport`, welcomed and walked. */
async function connected(transport: FakeTransport, index = 0): Promise<FakeConnection> {
  const connection = await transport.connection(index);
  await connection.welcome();
  await connection.endWalk();
  return connection;
}

/** Acknowledges the client's next ops; returns them. */
async function acknowledgeNext(connection: FakeConnection) {
  const { ops } = await connection.next('ops');
  connection.receive({ type: 'ack', ids: ops.map((op) => op.id), superseded: [] });
  return ops;
}

describe('ClientMap.update against a server', () => {
  it('sends field writes alone, which stay in the outbox across a reload and go again', async () => {
    const dbName = 'update-outbox-reload';
    const first = new FakeTransport();
    const { client, todos } = open(first, { storage: 'indexeddb', dbName });
    const connection = await connected(first);
    todos.set('t1', { title: 'milk', done: false });
    await acknowledgeNext(connection);
    await client.flush();
    todos.update('t1', { done: true });
    const {
      ops: [sent],
    } = await connection.next('ops');
    expect(sent?.entry).toEqual(['t1', null, null, null, { done: [expect.any(String), true] }]);
    // Closed before the server answered.
    await client.close();
    clients.splice(0);

    const second = new FakeTransport();
    const reopened = open(second, { storage: 'indexeddb', dbName });
    await reopened.client.ready;
    expect(reopened.todos.get('t1')).toEqual({ title: 'milk', done: true });
    expect(reopened.client.status.getState().pendingOps).toBe(1);
    const again = await acknowledgeNext(await connected(second));
    expect(again.map((op) => op.entry)).toEqual([sent?.entry]);
    await reopened.client.flush();
  });

  it('writes an update made before the stored replica loaded as field writes, keeping the stored fields', async () => {
    const dbName = 'update-before-load';
    const first = new FakeTransport();
    const { client, todos } = open(first, { storage: 'indexeddb', dbName });
    const connection = await connected(first);
    todos.set('t1', { title: 'milk', done: false });
    await acknowledgeNext(connection);
    await client.flush();
    await client.close();
    clients.splice(0);

    const second = new FakeTransport();
    const reopened = open(second, { storage: 'indexeddb', dbName });
    reopened.todos.update('t1', { done: true });
    await reopened.client.ready;
    expect(reopened.todos.get('t1')).toEqual({ title: 'milk', done: true });
    const [sent] = await acknowledgeNext(await connected(second));
    expect(sent?.entry).toEqual(['t1', null, null, null, { done: [expect.any(String), true] }]);
    await reopened.client.flush();
  });

  it('stamps a set refused as too old again with the update sent after it, which goes again after it', async () => {
    const transport = new FakeTransport();
    const { client, todos } = open(transport);
    const connection = await connected(transport);
    todos.set('t1', { title: 'milk', done: false });
    todos.update('t1', { done: true });
    const {
      ops: [set, update],
    } = await connection.next('ops');
    // The set is refused before the update, sent with it, is acknowledged.
    connection.receive({
      type: 'reject',
      rejections: [{ id: set!.id, reason: 'TOO_OLD', message: 'old', retryable: false }],
    });
    connection.receive({ type: 'ack', ids: [update!.id], superseded: [] });
    // The set goes again at once; the update once its answer is in (it was on its way).
    const again = [...(await acknowledgeNext(connection)), ...(await acknowledgeNext(connection))];
    expect(again.map((op) => op.entry.length)).toEqual([3, 5]);
    expect(again[0]?.entry[2]).toEqual({ title: 'milk', done: false });
    await client.flush();
    expect(todos.get('t1')).toEqual({ title: 'milk', done: true });
  });

  it('rolls back the fields of a refused update and merges the server record, keeping a later write of another field', async () => {
    const transport = new FakeTransport();
    const { client, todos } = open(transport);
    const connection = await connected(transport);
    todos.set('t1', { title: 'milk', done: false });
    const [created] = await acknowledgeNext(connection);
    todos.update('t1', { done: true });
    const {
      ops: [refused],
    } = await connection.next('ops');
    // Another user renames the todo meanwhile, after this client's update.
    const later = formatTimestamp({ millis: Date.now() + 1_000, counter: 0, nodeId: 'other' });
    connection.receive({
      type: 'changes',
      changes: [{ map: 'todos', entries: [['t1', null, null, null, { title: [later, 'oat'] }]] }],
    });
    expect(todos.get('t1')).toEqual({ title: 'oat', done: true });
    const rejected: string[] = [];
    client.onRejected(({ key, reason }) => rejected.push(`${key} ${reason}`));
    // The server holds the set and a tick of a third user made after it.
    const set = parseTimestamp(created!.entry[1]!);
    const whole = { value: created!.entry[2]!, timestamp: set };
    const tick: Record<string, FieldWrite> = {
      done: { timestamp: { ...set, counter: set.counter + 1, nodeId: 'third' }, value: 'ticked' },
    };
    const current = toWireEntry('t1', withFieldWrites<Value>(whole, tick));
    connection.receive({
      type: 'reject',
      rejections: [
        { id: refused!.id, reason: 'PERMISSION', message: 'no', retryable: false, current },
      ],
    });
    expect(todos.get('t1')).toEqual({ title: 'oat', done: 'ticked' });
    expect(rejected).toEqual(['t1 PERMISSION']);
    expect(client.status.getState().pendingOps).toBe(0);
  });

  it('stamps a refused-as-too-old update again and sends it as field writes alone', async () => {
    const transport = new FakeTransport();
    const { client, todos } = open(transport);
    const connection = await connected(transport);
    todos.set('t1', { title: 'milk', done: false });
    await acknowledgeNext(connection);
    todos.update('t1', { done: true });
    const {
      ops: [old],
    } = await connection.next('ops');
    connection.receive({
      type: 'reject',
      rejections: [{ id: old!.id, reason: 'TOO_OLD', message: 'old', retryable: false }],
    });
    const [again] = await acknowledgeNext(connection);
    const [, , , , fields] = again!.entry;
    expect(again?.entry.slice(0, 4)).toEqual(['t1', null, null, null]);
    expect(fields?.['done']?.[1]).toBe(true);
    const stamp = (op: typeof again) => parseTimestamp(op!.entry[4]!['done']![0]);
    expect(compareTimestamps(stamp(again), stamp(old))).toBeGreaterThan(0);
    await client.flush();
    expect(todos.get('t1')).toEqual({ title: 'milk', done: true });
  });
});
