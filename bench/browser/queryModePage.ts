/**
 * Issue 15's browser page (`query.html`): an app whose map `map` is replicated by query
 * (`replicate=queries`) or whole (`replicate=whole`) renders a `where` + `sort` + `limit 50`
 * window of it, and reports (times are `performance.now()`, ms since navigation start):
 * - `window.benchTimeline`, read by the bench rather than reported (a report is a call into
 *   Playwright that costs the page milliseconds): when the script started, the replica
 *   loaded, and each connection state;
 * - `walked`: the first walk of a whole map ended (the map is all here);
 * - `firstRows`: the window's 50 rows are in the DOM and confirmed by the server (`synced`);
 * - `scrolled`, after `window.benchScroll(rows)`: the window paged to `rows` rows with
 *   `loadMore()`, as infinite scroll does, with the records the client holds and the heap
 *   after a full collection.
 * The client starts before React is evaluated (`queryModeClient.ts`, imported first), as an
 * app can do: it connects while React's modules evaluate; with `prefetch`, the window's query
 * starts then too.
 */
import { client, map } from './queryModeClient.js';
import { renderWindow } from './queryModeView.js';

renderWindow(client, map);
