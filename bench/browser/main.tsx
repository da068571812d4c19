/**
 * The browser bench's page (see `src/browser.bench.ts`), one of:
 * - `?mode=app&server=<ws url>&records=<N>[&heap]`: the app (see `appPage.tsx`);
 * - `?mode=raw&format=plain|packed&records=<N>`: the raw IndexedDB floor (see `rawFloorPage.ts`).
 * Issue 15's page is `query.html` (see `queryModePage.ts`).
 */
import { startAppPage } from './appPage.js';
import { report } from './benchReport.js';
import { runRawFloor } from './rawFloorPage.js';

addEventListener('error', (event) => report('error', String(event.error ?? event.message)));
addEventListener('unhandledrejection', (event) => report('error', String(event.reason)));

const params = new URLSearchParams(location.search);
const records = Number(params.get('records') ?? 0);
const mode = params.get('mode');

if (mode === 'app') {
  startAppPage({ server: params.get('server') ?? '', records, measureHeap: params.has('heap') });
} else if (mode === 'raw') {
  const format = params.get('format') === 'packed' ? 'packed' : 'plain';
  runRawFloor(format, records).catch((error: unknown) => report('error', String(error)));
}
