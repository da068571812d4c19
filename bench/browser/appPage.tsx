/**
 * What an app does on start: create the client syncing with `server`, render a live query
 * (limit 50) and the first-sync progress, and report when things happen (times are
 * `performance.now()`, i.e. ms since navigation start):
 * - `firstRows`: the query's first non-empty rows are in the DOM;
 * - `ready`: `client.ready` resolved (the stored replica is loaded);
 * - `synced`: the first walk with the server ended (`status.lastSyncedAt` set);
 * - `allReceived`: map `todos` holds `records` records; then `done`: `client.persisted()`
 *   resolved after that, with the render counts; and `heap` a second later, if asked;
 * - `progress`, every second until `done`: how far it got, for a run that times out.
 * `window.benchWrites(count, spacingMs)` then times single writes to their local commit.
 */
import { createClient } from '@topgun/client';
import { TopGunProvider, useQuery, useSyncStatus } from '@topgun/react';
import { useLayoutEffect } from 'react';
import { createRoot } from 'react-dom/client';
import { paddedKeyOf, type Todo, todoOf } from '../src/workload.js';
import { report, usedHeapAfterGc } from './benchReport.js';

/** How long after `done` the heap is taken. */
const HEAP_SETTLE_MS = 1_000;

/** Options of the app page (from its URL). */
export interface AppPageOptions {
  /** The sync server's WebSocket URL. */
  readonly server: string;
  /** How many records the server holds: `allReceived` fires when the replica has them all. */
  readonly records: number;
  /** Take the heap after a full collection at start and at `done` (costs a collection each). */
  readonly measureHeap: boolean;
}

/** Starts the app and its reports. */
export function startAppPage({ server, records, measureHeap }: AppPageOptions): void {
  const scriptAt = performance.now();
  const heapAtStart = measureHeap ? usedHeapAfterGc() : undefined;
  // The defaults an app gets (IndexedDB, several tabs sharing the replica).
  const client = createClient({ url: server, dbName: 'bench' });
  const todos = client.getMap<Todo>('todos');
  const probe: Probe = { queryRenders: 0, progressRenders: 0 };
  let allReceivedAt: number | undefined;

  client.ready.then(() => {
    probe.readyAt = performance.now();
    report('ready', { at: probe.readyAt, size: todos.size });
    checkAllReceived();
  });
  const unsubscribeStatus = client.status.subscribe((status) => {
    if (status.lastSyncedAt === null) return;
    unsubscribeStatus();
    report('synced', { at: performance.now(), size: todos.size });
  });
  const progressTimer = setInterval(() => {
    report('progress', {
      at: performance.now(),
      size: todos.size,
      initialSync: client.status.getState().initialSync,
      connection: client.status.getState().connection,
      queryRenders: probe.queryRenders,
    });
  }, 1_000);

  const unsubscribeTodos = todos.subscribe(checkAllReceived);
  function checkAllReceived(): void {
    if (allReceivedAt !== undefined || todos.size < records) return;
    allReceivedAt = performance.now();
    unsubscribeTodos();
    report('allReceived', {
      at: allReceivedAt,
      size: todos.size,
      queryRenders: probe.queryRenders,
    });
    void client.persisted().then(() => {
      const persistedAt = performance.now();
      clearInterval(progressTimer);
      report('done', {
        scriptAt,
        firstRowsAt: probe.firstRowsAt,
        readyAt: probe.readyAt,
        allReceivedAt,
        persistedAt,
        size: todos.size,
        queryRenders: probe.queryRenders,
        progressRenders: probe.progressRenders,
        storageError: client.status.getState().storageError?.message ?? null,
      });
      if (!measureHeap) return;
      // A moment later, when what the sync and the last commits held has become garbage.
      setTimeout(() => {
        usedHeapAfterGc();
        report('heap', { atStart: heapAtStart, atEnd: usedHeapAfterGc() });
      }, HEAP_SETTLE_MS);
    });
  }

  (window as unknown as { benchWrites: typeof timeWrites }).benchWrites = timeWrites;
  /**
   * Overwrites existing records one at a time (the map keeps its size) and times each from
   * `set` to `client.persisted()`; waits for the server's acknowledgement at the end, untimed.
   */
  async function timeWrites(count: number, spacingMs: number): Promise<number[]> {
    const durations: number[] = [];
    const visit = Date.now();
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      todos.set(paddedKeyOf(i), { ...todoOf(i), title: `Task number ${i} (edited ${visit})` });
      await client.persisted();
      durations.push(performance.now() - start);
      await new Promise((resolve) => setTimeout(resolve, spacingMs));
    }
    await client.flush();
    return durations;
  }

  createRoot(document.getElementById('root')!).render(
    <TopGunProvider client={client}>
      <SyncProgress probe={probe} />
      <OpenCount />
      <TodoList probe={probe} />
    </TopGunProvider>,
  );
}

/**
 * What the components count and note for the reports. Written during render on purpose: the
 * count of renders is the measurement.
 */
interface Probe {
  queryRenders: number;
  progressRenders: number;
  firstRowsAt?: number;
  readyAt?: number;
}

function TodoList({ probe }: { readonly probe: Probe }) {
  probe.queryRenders++;
  const { data } = useQuery<Todo>('todos', {
    where: { done: false },
    sort: { field: 'n', direction: 'desc' },
    limit: 50,
  });
  useLayoutEffect(() => {
    if (data.length === 0 || probe.firstRowsAt !== undefined) return;
    probe.firstRowsAt = performance.now();
    // Before `ready`, the rows can only be the remembered window of a previous visit.
    report('firstRows', {
      at: probe.firstRowsAt,
      rows: data.length,
      beforeReady: probe.readyAt === undefined,
    });
  }, [data, probe]);
  return (
    <ul>
      {data.map((row) => (
        <li key={row.key}>{row.value.title}</li>
      ))}
    </ul>
  );
}

/** A dashboard's count: a query without a limit, whose result is every open todo. */
function OpenCount() {
  const { data } = useQuery<Todo>('todos', { where: { done: false } });
  return <p>{`${data.length} open`}</p>;
}

/** The status bar's first-sync progress. */
function SyncProgress({ probe }: { readonly probe: Probe }) {
  probe.progressRenders++;
  const initialSync = useSyncStatus((status) => status.initialSync);
  return (
    <p>
      {initialSync === null
        ? 'up to date'
        : `syncing: ${initialSync.received} of ${initialSync.expected} records`}
    </p>
  );
}
