/**
 * Issue 15's browser page (`query.html`): an app whose map `map` is replicated by query
 * (`replicate=queries`) or whole (`replicate=whole`) renders a `where` + `sort` + `limit 50`
 * window of it, and reports (times are `performance.now()`, ms since navigation start):
 * - `timeline`: when the script started, the replica loaded, and each connection state;
 * - `walked`: the first walk of a whole map ended (the map is all here);
 * - `firstRows`: the window's 50 rows are in the DOM and confirmed by the server (`synced`);
 * - `scrolled`, after `window.benchScroll(rows)`: the window paged to `rows` rows with
 *   `loadMore()`, as infinite scroll does, with the records the client holds and the heap
 *   after a full collection.
 * The client starts before React is loaded, as an app can do: it connects while the view's
 * code is fetched and evaluated; with `prefetch`, the window's query starts then too.
 */
import { createClient } from '@topgun/client';
import { report } from './benchReport.js';
import { type Event, WINDOW } from './queryModeWindow.js';

addEventListener('error', (event) => report('error', String(event.error ?? event.message)));
addEventListener('unhandledrejection', (event) => report('error', String(event.reason)));

const scriptAt = performance.now();
const params = new URLSearchParams(location.search);
const server = params.get('server') ?? '';
const map = params.get('map') ?? 'events';
const byQuery = params.get('replicate') !== 'whole';
const client = createClient({
  url: server,
  dbName: 'bench-query-mode',
  ...(byQuery ? { maps: { [map]: { replicate: 'queries' } } } : {}),
});
const timeline: Array<[string, number]> = [['script', Math.round(scriptAt)]];
client.ready.then(() => {
  timeline.push(['ready', Math.round(performance.now())]);
  report('timeline', timeline);
});
client.status.subscribe((status) => {
  if (timeline.at(-1)?.[0] !== status.connection)
    timeline.push([status.connection, Math.round(performance.now())]);
  report('timeline', timeline);
  if (!byQuery && status.lastSyncedAt !== null) report('walked', { at: performance.now() });
});

// With `prefetch`, the window's query starts now, as a route's loader would start it: it is
// subscribed as soon as the server welcomes the client, while React still loads; the view's
// `useQuery` shares it. Without, it starts when the view first renders.
if (params.has('prefetch')) {
  const window = client.query<Event>(map, WINDOW);
  window.subscribe(() => {
    if (window.getSnapshot().status !== 'synced' || timeline.some(([step]) => step === 'confirmed'))
      return;
    // Confirmed: when the rows could show, had the view been rendered yet.
    timeline.push(['confirmed', Math.round(performance.now())]);
    report('timeline', timeline);
  });
}
const { renderWindow } = await import('./queryModeView.js');
renderWindow(client, map);
