/**
 * Issue 15's browser page: an app whose map `map` is replicated by query (`replicate=queries`)
 * or whole (`replicate=whole`) renders a `where` + `sort` + `limit 50` window of it, and
 * reports (times are `performance.now()`, ms since navigation start):
 * - `firstRows`: the window's 50 rows are in the DOM and confirmed by the server (`synced`);
 * - `scrolled`, after `window.benchScroll(rows)`: the window paged to `rows` rows with
 *   `loadMore()`, as infinite scroll does, with the records the client holds and the heap
 *   after a full collection.
 */
import { createClient } from '@topgun/client';
import { TopGunProvider, useQuery } from '@topgun/react';
import { useLayoutEffect } from 'react';
import { createRoot } from 'react-dom/client';
import { report, usedHeapAfterGc } from './benchReport.js';

/** What the bench's events look like (`src/queryMode.bench.ts`). */
interface Event {
  kind: string;
  at: number;
  user: string;
  amount: number;
}

/** Options of the page (from its URL). */
export interface QueryModePageOptions {
  readonly server: string;
  readonly map: string;
  readonly replicate: 'queries' | 'whole';
}

const WINDOW = {
  where: { kind: 'order' },
  sort: [{ field: 'at', direction: 'desc' }],
  limit: 50,
} as const;

/** Starts the page and its reports. */
export function startQueryModePage({ server, map, replicate }: QueryModePageOptions): void {
  const scriptAt = performance.now();
  const client = createClient({
    url: server,
    dbName: 'bench-query-mode',
    ...(replicate === 'queries' ? { maps: { [map]: { replicate: 'queries' } } } : {}),
  });
  // When the page got to each step: the script, the replica loaded, each connection state.
  const timeline: Array<[string, number]> = [['script', Math.round(scriptAt)]];
  client.ready.then(() => {
    timeline.push(['ready', Math.round(performance.now())]);
    report('timeline', timeline);
  });
  client.status.subscribe((status) => {
    const state = status.connection;
    if (timeline.at(-1)?.[0] !== state) timeline.push([state, Math.round(performance.now())]);
    report('timeline', timeline);
  });
  const pager: Pager = {};
  (window as unknown as { benchScroll: (rows: number) => void }).benchScroll = (rows) => {
    pager.target = rows;
    pager.more?.();
  };
  createRoot(document.getElementById('root')!).render(
    <TopGunProvider client={client}>
      <Window map={map} pager={pager} held={() => client.getMap(map).size} />
    </TopGunProvider>,
  );
}

/** How the bench asks for more rows: `target` rows, by calling `more` while fewer show. */
interface Pager {
  target?: number | undefined;
  /** Rows asked for so far: the next page is asked for once they are all there. */
  requested?: number;
  more?: () => void;
  firstRowsReported?: boolean;
}

function Window({
  map,
  pager,
  held,
}: {
  readonly map: string;
  readonly pager: Pager;
  readonly held: () => number;
}) {
  const { data, status, hasMore, loadMore } = useQuery<Event>(map, WINDOW);
  useLayoutEffect(() => {
    if (!pager.firstRowsReported && status === 'synced' && data.length === WINDOW.limit) {
      pager.firstRowsReported = true;
      report('firstRows', { at: performance.now(), rows: data.length, held: held() });
    }
    pager.more = () => {
      if (pager.target === undefined) return;
      if (data.length >= pager.target || !hasMore) {
        const rows = data.length;
        pager.target = undefined;
        // A moment later, when what paging held has become garbage.
        setTimeout(() => {
          report('scrolled', {
            at: performance.now(),
            rows,
            held: held(),
            heapBytes: usedHeapAfterGc() ?? null,
          });
        }, 500);
      } else if (data.length >= (pager.requested ?? WINDOW.limit)) {
        pager.requested = (pager.requested ?? WINDOW.limit) + WINDOW.limit;
        loadMore();
      }
    };
    // Every page that arrives asks for the next, as a sentinel in view would.
    pager.more();
  }, [data, status, hasMore, loadMore, pager, held]);
  return (
    <ul>
      {data.map((row) => (
        <li key={row.key}>{`${row.value.at} ${row.value.user} ${row.value.amount}`}</li>
      ))}
    </ul>
  );
}
