/**
 * The React part of the query-mode page (`queryModePage.ts`): the window of map `map`, its
 * reports, and infinite scroll driven by the bench. Loaded after the client has started, so
 * that the client connects while React is fetched and evaluated.
 */
import type { TopGunClient } from '@topgun/client';
import { TopGunProvider, useQuery } from '@topgun/react';
import { useLayoutEffect } from 'react';
import { createRoot } from 'react-dom/client';
import { report, usedHeapAfterGc } from './benchReport.js';
import { type Event, WINDOW } from './queryModeWindow.js';

/** Renders the window of `map` into `#root`. */
export function renderWindow(client: TopGunClient, map: string): void {
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
