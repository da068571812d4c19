import 'fake-indexeddb/auto';
import { TopGunError } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import {
  ClientClosedError,
  type ClientOptions,
  type ClientStorage,
  ConfigurationError,
  createClient,
  createMemoryStorage,
  manualOnlineManager,
  type StorageBatch,
} from '../src/index.js';

/** A client with a server configured but no network: writes wait in the outbox. */
const offline = (options: ClientOptions = {}) =>
  createClient({ url: 'ws://127.0.0.1:9/sync', online: manualOnlineManager(false), ...options });

interface Todo {
  title: string;
  done: boolean;
  note?: string;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('a local-only client', () => {
  it('reads its own writes synchronously, and updates and deletes', async () => {
    const client = createClient({ storage: 'memory' });
    const todos = client.getMap<Todo>('todos');
    todos.set('t1', { title: 'Milk', done: false, note: 'skimmed' });
    expect(todos.get('t1')).toEqual({ title: 'Milk', done: false, note: 'skimmed' });
    todos.update('t1', { done: true, note: undefined });
    expect(todos.get('t1')).toEqual({ title: 'Milk', done: true });
    expect(todos.entries()).toEqual([['t1', { title: 'Milk', done: true }]]);
    expect(todos.entries()).toBe(todos.entries());
    todos.delete('t1');
    expect(todos.has('t1')).toBe(false);
    expect(todos.size).toBe(0);
    await client.close();
  });

  it('refuses invalid writes with a clear error and keeps going', async () => {
    const client = offline({ storage: 'memory' });
    const todos = client.getMap<Todo>('todos');
    expect(() => todos.set('', { title: 'x', done: false })).toThrow(/key/);
    expect(() => todos.set('t', { title: Number.NaN } as unknown as Todo)).toThrow(/finite/);
    expect(client.status.getState().pendingOps).toBe(0);
    todos.set('t', { title: 'ok', done: false });
    expect(client.status.getState().pendingOps).toBe(1);
    await client.close();
  });

  it('notifies map listeners once per tick', async () => {
    const client = createClient({ storage: 'memory' });
    const todos = client.getMap<Todo>('todos');
    let calls = 0;
    todos.subscribe(() => calls++);
    for (let i = 0; i < 100; i++) todos.set(`t${i}`, { title: String(i), done: false });
    await settle();
    expect(calls).toBe(1);
    await client.close();
  });

  it('keeps live query results up to date and stable between changes', async () => {
    const client = createClient({ storage: 'memory' });
    const todos = client.getMap<Todo>('todos');
    todos.set('a', { title: 'A', done: false });
    todos.set('b', { title: 'B', done: true });
    const open = client.query<Todo>('todos', { where: { done: false }, sort: 'title' });
    expect(client.query<Todo>('todos', { sort: 'title', where: { done: false } })).toBe(open);
    let notified = 0;
    const unsubscribe = open.subscribe(() => notified++);
    const first = open.getSnapshot();
    expect(first.data.map((row) => row.key)).toEqual(['a']);
    expect(first.status).toBe('local');
    todos.set('b', { title: 'B', done: true, note: 'still done' });
    await settle();
    expect(open.getSnapshot()).toBe(first);
    expect(notified).toBe(0);
    todos.set('c', { title: 'C', done: false });
    await settle();
    expect(open.getSnapshot().data.map((row) => row.key)).toEqual(['a', 'c']);
    expect(notified).toBe(1);
    unsubscribe();
    await client.close();
  });

  it('keeps data and the outbox across a restart', async () => {
    const storage = createMemoryStorage();
    const first = offline({ storage });
    await first.ready;
    first.getMap<Todo>('todos').set('t1', { title: 'Persisted', done: false });
    await first.close();

    const second = offline({ storage });
    await second.ready;
    expect(second.getMap<Todo>('todos').get('t1')).toEqual({ title: 'Persisted', done: false });
    expect(second.status.getState().pendingOps).toBe(1);
    await second.close();
  });

  it('keeps no outbox when local-only', async () => {
    const storage = createMemoryStorage();
    const client = createClient({ storage });
    client.getMap<Todo>('todos').set('t1', { title: 'local', done: false });
    await client.persisted();
    expect(client.status.getState().pendingOps).toBe(0);
    expect((await storage.load()).outbox).toEqual([]);
    await client.close();
  });

  it('persists to IndexedDB and loads it back', async () => {
    const first = offline({ storage: 'indexeddb', dbName: 'local-idb', multiTab: false });
    first.getMap<Todo>('todos').set('t1', { title: 'In IndexedDB', done: true });
    await first.close();
    const second = offline({ storage: 'indexeddb', dbName: 'local-idb', multiTab: false });
    await second.ready;
    expect(second.getMap<Todo>('todos').get('t1')).toEqual({ title: 'In IndexedDB', done: true });
    expect(second.status.getState().pendingOps).toBe(1);
    await second.close();
  });

  it('never lets the persisted replica overwrite writes made before it finished loading', async () => {
    const storage = createMemoryStorage();
    // A previous session wrote with a clock far ahead of this one.
    const previous = createClient({ storage, now: () => Date.now() + 3_600_000 });
    previous.getMap<Todo>('todos').set('t1', { title: 'old, from the future', done: false });
    await previous.close();

    const client = createClient({ storage });
    const todos = client.getMap<Todo>('todos');
    todos.set('t1', { title: 'new', done: true }); // before `ready`
    await client.ready;
    expect(todos.get('t1')).toEqual({ title: 'new', done: true });
    await client.persisted();
    const reloaded = createClient({ storage });
    await reloaded.ready;
    expect(reloaded.getMap<Todo>('todos').get('t1')).toEqual({ title: 'new', done: true });
    await client.close();
    await reloaded.close();
  });

  it('surfaces storage failures on status and loses neither memory state nor the outbox', async () => {
    const inner = createMemoryStorage();
    let failing = true;
    const flaky: ClientStorage = {
      load: () => inner.load(),
      commit: async (batch: StorageBatch) => {
        if (failing) throw new Error('QuotaExceededError');
        await inner.commit(batch);
      },
      close: () => inner.close(),
    };
    const client = offline({ storage: flaky });
    await client.ready;
    const todos = client.getMap<Todo>('todos');
    todos.set('t1', { title: 'kept', done: false });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(client.status.getState().storageError?.message).toMatch(/QuotaExceededError/);
    expect(todos.get('t1')).toEqual({ title: 'kept', done: false });
    expect(client.status.getState().pendingOps).toBe(1);

    failing = false;
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(client.status.getState().storageError).toBeNull();
    const state = await inner.load();
    expect(state.records.map((stored) => stored.key)).toEqual(['t1']);
    expect(state.outbox).toHaveLength(1);
    await client.close();
  });
});

describe('remembered query results', () => {
  it('paints the last session’s window before the stored replica is loaded', async () => {
    const items = new Map<string, string>();
    const fakeLocalStorage = {
      getItem: (key: string) => items.get(key) ?? null,
      setItem: (key: string, value: string) => void items.set(key, value),
      removeItem: (key: string) => void items.delete(key),
    };
    Object.defineProperty(globalThis, 'localStorage', {
      value: fakeLocalStorage,
      configurable: true,
    });
    try {
      const storage = createMemoryStorage();
      const first = createClient({ storage, cacheQueryResults: true });
      await first.ready;
      first.getMap<Todo>('todos').set('a', { title: 'remembered', done: false });
      const query = first.query<Todo>('todos', { where: { done: false } });
      const stop = query.subscribe(() => {});
      await first.close(); // writes the remembered window
      stop();

      const second = createClient({ storage, cacheQueryResults: true });
      const early = second.query<Todo>('todos', { where: { done: false } }).getSnapshot();
      expect(early.data.map((row) => row.value.title)).toEqual(['remembered']);
      await second.ready;
      await new Promise((resolve) => setTimeout(resolve, 0));
      expect(
        second
          .query<Todo>('todos', { where: { done: false } })
          .getSnapshot()
          .data.map((row) => row.key),
      ).toEqual(['a']);
      await second.close();
    } finally {
      Reflect.deleteProperty(globalThis, 'localStorage');
    }
  });
});

describe('errors a client throws', () => {
  it('are TopGun errors with stable codes', async () => {
    const bad = (options: Parameters<typeof createClient>[0]) => {
      try {
        createClient(options);
      } catch (error) {
        return error;
      }
      return undefined;
    };
    expect(bad({ nodeId: 'no spaces', storage: 'memory' })).toMatchObject({
      name: 'ConfigurationError',
      code: 'CONFIGURATION',
      option: 'nodeId',
    });
    expect(bad({ url: [], storage: 'memory' })).toBeInstanceOf(ConfigurationError);
    const client = createClient({ storage: 'memory' });
    await client.close();
    expect(() => client.getMap<Todo>('todos').set('t', { title: 'late', done: false })).toThrow(
      ClientClosedError,
    );
    const error = (() => {
      try {
        client.getMap<Todo>('todos').delete('t');
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(TopGunError);
    expect(error).toMatchObject({ code: 'CLIENT_CLOSED' });
  });
});
