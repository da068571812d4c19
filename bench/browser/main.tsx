/**
 * Start-up bench page. `?seed=N` fills the IndexedDB replica with N todos; without it the
 * page does what an app does on start: create the client, render a live query (limit 50),
 * and record when the first rows are on screen.
 */
import { createClient, createIndexedDbStorage } from '@topgun/client';
import { TopGunProvider, useQuery } from '@topgun/react';
import { useLayoutEffect } from 'react';
import { createRoot } from 'react-dom/client';

interface Todo {
  title: string;
  done: boolean;
  n: number;
}

const results = window as unknown as Record<string, unknown>;
const seed = Number(new URLSearchParams(location.search).get('seed') ?? 0);
const client = createClient({ dbName: 'bench', multiTab: false });

if (new URLSearchParams(location.search).has('profile')) {
  void (async () => {
    const { createStore, entries, get } = await import('idb-keyval');
    const openStart = performance.now();
    await get('missing', createStore('bench', 'topgun'));
    results['openMs'] = performance.now() - openStart;
    const rawStart = performance.now();
    const raw = await entries(createStore('bench', 'topgun'));
    results['rawMs'] = performance.now() - rawStart;
    results['rawCount'] = raw.length;
    const start = performance.now();
    const state = await createIndexedDbStorage('bench').load();
    results['storageLoadMs'] = performance.now() - start;
    results['records'] = state.records.length;
  })();
} else if (seed > 0) {
  const todos = client.getMap<Todo>('todos');
  void (async () => {
    await client.ready;
    for (let i = 0; i < seed; i++) {
      todos.set(`todo-${String(i).padStart(6, '0')}`, {
        title: `Task number ${i}`,
        done: i % 3 === 0,
        n: i,
      });
      if (i % 10_000 === 9_999) await client.persisted();
    }
    await client.persisted();
    results['seeded'] = todos.size;
  })();
} else {
  const createdAt = performance.now();
  client.ready.then(() => {
    results['readyAt'] = performance.now();
  });
  function Open() {
    const { data } = useQuery<Todo>('todos', {
      where: { done: false },
      sort: { field: 'n', direction: 'desc' },
      limit: 50,
    });
    useLayoutEffect(() => {
      if (data.length > 0 && results['firstRowsAt'] === undefined) {
        results['firstRowsAt'] = performance.now();
        results['clientCreatedAt'] = createdAt;
        results['rows'] = data.length;
        results['replicaSize'] = client.getMap('todos').size;
      }
    }, [data]);
    return (
      <ul>
        {data.map((row) => (
          <li key={row.key}>{row.value.title}</li>
        ))}
      </ul>
    );
  }
  createRoot(document.getElementById('root')!).render(
    <TopGunProvider client={client}>
      <Open />
    </TopGunProvider>,
  );
}
