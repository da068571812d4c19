import type { TopGunServer } from '@topgun/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStorage, type RejectedWrite, type TopGunClient } from '../src/index.js';
import { contents, startServer, testClient, waitFor } from './harness.js';

interface Todo {
  title: string;
  done?: boolean;
}

describe('client and server', () => {
  let server: TopGunServer;
  let url: string;
  const clients: TopGunClient[] = [];
  const track = <T extends { client: TopGunClient }>(created: T): T => {
    clients.push(created.client);
    return created;
  };

  beforeAll(async () => {
    ({ server, url } = await startServer({
      permissions: [
        { map: 'readonly', read: true, write: false },
        { map: '*', read: true, write: true },
      ],
    }));
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await server.close();
  });

  it('two clients converge: adds, edits and deletes flow both ways', async () => {
    const a = track(testClient(url)).client;
    const b = track(testClient(url)).client;
    const todosA = a.getMap<Todo>('converge');
    const todosB = b.getMap<Todo>('converge');
    await waitFor(
      () =>
        a.status.getState().connection === 'online' && b.status.getState().connection === 'online',
    );
    todosA.set('t1', { title: 'from A' });
    await waitFor(() => todosB.get('t1')?.title === 'from A', 5_000, 'B to see A');
    todosB.update('t1', { done: true });
    await waitFor(() => todosA.get('t1')?.done === true, 5_000, 'A to see B');
    todosB.delete('t1');
    await waitFor(() => !todosA.has('t1'), 5_000, 'A to see the delete');
    await a.flush();
    expect(a.status.getState().pendingOps).toBe(0);
  });

  it('delivers edits made offline after reconnecting', async () => {
    const { client: a, online } = track(testClient(url));
    const b = track(testClient(url)).client;
    const todosA = a.getMap<Todo>('offline');
    const todosB = b.getMap<Todo>('offline');
    await waitFor(
      () =>
        a.status.getState().connection === 'online' && b.status.getState().connection === 'online',
    );
    online.set(false);
    expect(a.status.getState().connection).toBe('offline');
    todosA.set('o1', { title: 'written offline' });
    todosA.set('o2', { title: 'also offline' });
    expect(todosA.get('o1')?.title).toBe('written offline');
    expect(a.status.getState().pendingOps).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(todosB.has('o1')).toBe(false);
    online.set(true);
    await waitFor(
      () => todosB.get('o2')?.title === 'also offline',
      5_000,
      'B to receive offline edits',
    );
    await a.flush();
  });

  it('resolves concurrent offline edits by last write wins, identically everywhere', async () => {
    const { client: a, online: onlineA } = track(testClient(url));
    const { client: b, online: onlineB } = track(testClient(url));
    const todosA = a.getMap<Todo>('conflict');
    const todosB = b.getMap<Todo>('conflict');
    await waitFor(
      () =>
        a.status.getState().connection === 'online' && b.status.getState().connection === 'online',
    );
    todosA.set('c', { title: 'base' });
    await waitFor(() => todosB.get('c')?.title === 'base');
    onlineA.set(false);
    onlineB.set(false);
    todosA.set('c', { title: 'A wins?' });
    await new Promise((resolve) => setTimeout(resolve, 5));
    todosB.set('c', { title: 'B wrote last' });
    onlineB.set(true);
    onlineA.set(true);
    await waitFor(
      () => todosA.get('c')?.title === 'B wrote last' && todosB.get('c')?.title === 'B wrote last',
      5_000,
      'both to settle on the last write',
    );
    await Promise.all([a.flush(), b.flush()]);
    expect(contents(a, 'conflict')).toEqual(contents(b, 'conflict'));
  });

  it('keeps data and the outbox across a client restart, then delivers', async () => {
    const storage = createMemoryStorage();
    const { client: first, online } = testClient(url, { storage });
    online.set(false);
    await first.ready;
    first.getMap<Todo>('restart').set('r1', { title: 'before restart' });
    await first.close();

    const second = track(testClient(url, { storage })).client;
    const watcher = track(testClient(url)).client;
    const watched = watcher.getMap<Todo>('restart');
    await second.ready;
    expect(second.getMap<Todo>('restart').get('r1')?.title).toBe('before restart');
    await waitFor(
      () => watched.get('r1')?.title === 'before restart',
      5_000,
      'the restarted outbox to be delivered',
    );
    await second.flush();
    expect(second.status.getState().pendingOps).toBe(0);
  });

  it('rolls back a write the server refuses and reports it', async () => {
    const client = track(testClient(url)).client;
    const readonly = client.getMap<Todo>('readonly');
    const rejected: RejectedWrite[] = [];
    client.onRejected((event) => rejected.push(event));
    await waitFor(() => client.status.getState().connection === 'online');
    readonly.set('x', { title: 'not allowed' });
    expect(readonly.get('x')?.title).toBe('not allowed');
    await client.flush();
    expect(readonly.has('x')).toBe(false);
    expect(rejected).toEqual([
      expect.objectContaining({ map: 'readonly', key: 'x', reason: 'PERMISSION' }),
    ]);
  });

  it('syncs correctly with a wall clock 10 minutes fast', async () => {
    const fast = () => Date.now() + 10 * 60_000;
    const { client: skewed, online } = track(testClient(url, { now: fast }));
    online.set(false);
    const notes = skewed.getMap<Todo>('skew');
    await skewed.ready;
    notes.set('early', { title: 'written offline with a fast clock' });
    online.set(true);
    const honest = track(testClient(url)).client;
    const honestNotes = honest.getMap<Todo>('skew');
    await waitFor(
      () => honestNotes.get('early') !== undefined,
      5_000,
      'the skewed write to be accepted',
    );
    notes.set('later', { title: 'written online' });
    await skewed.flush();
    await waitFor(() => honestNotes.get('later') !== undefined, 5_000, 'the next write');
    // A later write from a correct clock still wins over the skewed client's.
    honestNotes.set('later', { title: 'honest edit' });
    await waitFor(
      () => notes.get('later')?.title === 'honest edit',
      5_000,
      'the honest edit to win',
    );
  });

  it('reports initial-sync progress and confirms live queries once synced', async () => {
    const seeder = track(testClient(url)).client;
    const big = seeder.getMap<{ n: number }>('big');
    for (let n = 0; n < 3_000; n++) big.set(`k${n}`, { n });
    await seeder.flush();

    const fresh = track(testClient(url)).client;
    const progress: Array<{ received: number; expected: number }> = [];
    fresh.status.subscribe((state) => {
      if (state.initialSync !== null) progress.push(state.initialSync);
    });
    const query = fresh.query<{ n: number }>('big', { where: { n: { lt: 10 } }, sort: 'n' });
    expect(query.getSnapshot().status).toBe('local');
    await waitFor(() => fresh.getMap('big').size === 3_000, 10_000, 'the full download');
    await waitFor(
      () => query.getSnapshot().status === 'synced',
      5_000,
      'the query to be confirmed',
    );
    expect(query.getSnapshot().data.map((row) => row.value.n)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    ]);
    expect(progress.at(-1)).toEqual({ received: 3_000, expected: 3_000 });
    expect(progress.length).toBeGreaterThan(1);
    await waitFor(() => fresh.status.getState().connection === 'online', 5_000, 'the walk to end');
    expect(fresh.status.getState().initialSync).toBeNull();
  });
});
