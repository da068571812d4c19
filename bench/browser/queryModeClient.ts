/**
 * The client of the query-mode page (`queryModePage.ts`), started when this module is
 * evaluated: before React's modules are, so that the socket and the storage open while
 * they evaluate.
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
(window as unknown as { benchTimeline: typeof timeline }).benchTimeline = timeline;
client.ready.then(() => timeline.push(['ready', Math.round(performance.now())]));
let walked = false;
client.status.subscribe((status) => {
  if (timeline.at(-1)?.[0] !== status.connection)
    timeline.push([status.connection, Math.round(performance.now())]);
  if (!byQuery && !walked && status.lastSyncedAt !== null) {
    walked = true;
    report('walked', { at: performance.now() });
  }
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
  });
}

export { client, map };
