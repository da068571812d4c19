import { HLC, LWWMap, type QueryRow, type Value } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { QueryRegistry } from '../src/queries/queryRegistry.js';

function registry(loaded = true) {
  const replica = new LWWMap<Value>(new HLC({ nodeId: 'tab', now: () => 1_000 }));
  const written = new Map<string, readonly QueryRow<unknown>[]>();
  const events: string[] = [];
  const queries = new QueryRegistry({
    replica: () => replica,
    isLoaded: () => loaded,
    resultCache: {
      read: () => [{ key: 'remembered', value: { n: 0 } }],
      write: (key, rows) => written.set(key, rows),
    },
    scoped: () => false,
    subscribed: ({ id, map }) => events.push(`+${id} ${map}`),
    unsubscribed: (id) => events.push(`-${id}`),
    grew: (id, limit) => events.push(`more ${id} ${limit}`),
    settled: () => {},
    storePin: () => {},
  });
  return { replica, queries, written, events };
}

describe('the query registry', () => {
  it('gives equal queries one handle, subscribed on the server while it is followed', () => {
    const { queries, events } = registry();
    const first = queries.query<{ n: number }>('todos', { where: { n: { gt: 1 } }, limit: 5 });
    expect(queries.query('todos', { limit: 5, where: { n: { gt: 1 } } })).toBe(first);
    expect(queries.active()).toEqual([]);
    const stop = first.subscribe(() => {});
    expect(queries.active()).toEqual([
      { id: 1, map: 'todos', query: { where: { n: { gt: 1 } }, limit: 5 } },
    ]);
    expect(events).toEqual(['+1 todos']);
    stop();
    queries.dispose();
    expect(events).toEqual(['+1 todos', '-1']);
  });

  it('marks the queries of a confirmed map synced, those made later too', () => {
    const { queries } = registry();
    const before = queries.query('todos', {});
    before.subscribe(() => {});
    expect(before.getSnapshot().status).toBe('local');
    queries.confirmMap('todos');
    expect(before.getSnapshot().status).toBe('synced');
    const after = queries.query('todos', { limit: 1 });
    expect(after.getSnapshot().status).toBe('synced');
    expect(queries.query('other', {}).getSnapshot().status).toBe('local');
    queries.dispose();
  });

  it('shows the remembered window until the replica is loaded, then remembers the new one', () => {
    const { queries, replica, written } = registry(false);
    const handle = queries.query('todos', {});
    handle.subscribe(() => {});
    expect(handle.getSnapshot().data.map((row) => row.key)).toEqual(['remembered']);
    replica.set('a', { n: 1 });
    queries.loaded();
    queries.writeResults();
    expect([...written.values()].map((rows) => rows.map((row) => row.key))).toEqual([['a']]);
    queries.dispose();
  });
});
