import type { Message } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { spyingWebSocket, testClient, useServer, waitFor } from './harness.js';

interface Todo {
  title: string;
  done: boolean;
}

/** What the server sent the reader, in order. */
const received: Message['type'][] = [];
const SpyingWebSocket = spyingWebSocket((message) => received.push(message.type));

// The client walks every map it queries, so the server sends it the map's changes and no
// query_update for its live queries: the query must stay current, and be confirmed, anyway.
describe('a live query over a map the client syncs', () => {
  const served = useServer();

  it('is confirmed and follows other clients’ writes from changes alone', async () => {
    const writer = testClient(served.url).client;
    const reader = testClient(served.url, { WebSocket: SpyingWebSocket }).client;
    served.clients.push(writer, reader);
    const todos = writer.getMap<Todo>('todos');
    todos.set('t1', { title: 'milk', done: false });
    await writer.flush();

    const query = reader.query<Todo>('todos', { where: { done: false } });
    const stop = query.subscribe(() => {});
    await waitFor(() => query.getSnapshot().status === 'synced', 5_000, 'the query confirmed');
    await waitFor(() => query.getSnapshot().data.length === 1, 5_000, 'the first todo');
    // Walked: from now on the server sends it the map's changes.
    await waitFor(() => reader.status.getState().connection === 'online', 5_000, 'the walk');

    todos.set('t2', { title: 'bread', done: false });
    todos.set('t1', { title: 'milk', done: true });
    await writer.flush();
    await waitFor(
      () =>
        query
          .getSnapshot()
          .data.map((row) => row.key)
          .join() === 't2',
      5_000,
      'the query to follow the writes',
    );
    expect(received).toContain('query_snapshot');
    expect(received).toContain('changes');
    expect(received).not.toContain('query_update');
    stop();
  });
});
