import { afterEach, describe, expect, it, vi } from 'vitest';
import { createClient, type TopGunClient } from '../src/index.js';
import { FakeTransport, overFakeTransport } from './fakeTransport.js';

interface Todo {
  owner: string;
  done: boolean;
}

const clients: TopGunClient[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

const BY_OWNER = {
  where: { done: false },
  groupBy: { owner: 'owner' },
  aggregate: { open: 'count' },
} as const;

describe('client.aggregate', () => {
  it('counts the replica within the tick of a local write, and is synced once the map is reconciled', async () => {
    const transport = new FakeTransport();
    const client = createClient(overFakeTransport(transport));
    clients.push(client);
    const todos = client.getMap<Todo>('todos');
    const handle = client.aggregate<Todo>('todos', BY_OWNER);
    const told = vi.fn();
    const stop = handle.subscribe(told);
    expect(handle.getSnapshot()).toEqual({ data: [], status: 'local', error: null });
    todos.set('a', { owner: 'ann', done: false });
    await Promise.resolve();
    expect(told).toHaveBeenCalledTimes(1);
    expect(handle.getSnapshot().data).toEqual([
      { key: '["ann"]', value: { owner: 'ann', open: 1 } },
    ]);
    const connection = await transport.connection(0);
    await connection.welcome();
    const walk = await connection.next('sync');
    const { map, session, root } = walk;
    connection.receive({ type: 'sync_done', map, session, root, syncedAt: Date.now() });
    await vi.waitFor(() => expect(handle.getSnapshot().status).toBe('synced'));
    // An aggregate opened after the map was reconciled starts synced.
    expect(
      client.aggregate<Todo>('todos', { aggregate: { n: 'count' } }).getSnapshot().status,
    ).toBe('synced');
    stop();
  });

  it('takes a record out when it expires, and tells its listeners', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const client = createClient({ storage: 'memory' });
    clients.push(client);
    const todos = client.getMap<Todo>('todos');
    todos.set('a', { owner: 'ann', done: false }, { ttlMs: 500 });
    todos.set('b', { owner: 'ann', done: false });
    const handle = client.aggregate<Todo>('todos', BY_OWNER);
    const told = vi.fn();
    const stop = handle.subscribe(told);
    expect(handle.getSnapshot().data[0]?.value).toEqual({ owner: 'ann', open: 2 });
    todos.set('c', { owner: 'bob', done: false }, { ttlMs: 200 });
    await vi.advanceTimersByTimeAsync(150);
    expect(handle.getSnapshot().data.map((row) => row.value)).toEqual([
      { owner: 'ann', open: 2 },
      { owner: 'bob', open: 1 },
    ]);
    await vi.advanceTimersByTimeAsync(100);
    expect(handle.getSnapshot().data.map((row) => row.value)).toEqual([{ owner: 'ann', open: 2 }]);
    const calls = told.mock.calls.length;
    await vi.advanceTimersByTimeAsync(300);
    expect(handle.getSnapshot().data.map((row) => row.value)).toEqual([{ owner: 'ann', open: 1 }]);
    expect(told.mock.calls.length).toBe(calls + 1);
    stop();
  });

  it('shares one handle between equal aggregates while used, and lets it go after', async () => {
    vi.useFakeTimers();
    const client = createClient({ storage: 'memory' });
    clients.push(client);
    const handle = client.aggregate<Todo>('todos', BY_OWNER);
    const stop = handle.subscribe(() => {});
    expect(client.aggregate<Todo>('todos', { ...BY_OWNER })).toBe(handle);
    stop();
    vi.advanceTimersByTime(1_500);
    expect(handle.active).toBe(false);
    expect(client.aggregate<Todo>('todos', BY_OWNER)).not.toBe(handle);
  });

  it('reports more than 10,000 groups as its error, with no rows', async () => {
    const client = createClient({ storage: 'memory' });
    clients.push(client);
    const todos = client.getMap<Todo>('todos');
    for (let i = 0; i < 10_000; i++) todos.set(`t${i}`, { owner: `o${i}`, done: false });
    const handle = client.aggregate<Todo>('todos', BY_OWNER);
    const stop = handle.subscribe(() => {});
    expect(handle.getSnapshot().data).toHaveLength(10_000);
    todos.set('one more', { owner: 'new', done: false });
    await Promise.resolve();
    expect(handle.getSnapshot()).toMatchObject({ data: [], error: { path: 'groupBy' } });
    stop();
  });
});
