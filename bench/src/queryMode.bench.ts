/**
 * Query-scoped replication, issue 15's bench: a server process over PostgreSQL holding
 * `BENCH_RECORDS` (default 1,000,000) events in map `events`, and `BENCH_WHOLE_RECORDS`
 * (default 100,000) in map `events100k`.
 * - Node: a client (memory storage) that replicates `events` by query opens a `where` +
 *   `sort` + `limit 50` window. Median of `BENCH_ROUNDS` fresh clients: time to the first
 *   confirmed rows and bytes received; the bytes of resuming after a reconnect, with 1,000
 *   writes elsewhere in the map and 3 inside the window made meanwhile; and the bytes and
 *   records held after paging to 2,000 rows.
 * - Browser: fresh Chromium (empty profile, so empty IndexedDB) opens the page of
 *   `browser/queryModePage.tsx`: time from navigation to the window's first confirmed rows,
 *   WebSocket bytes received, then the records held and the heap after scrolling to 2,000
 *   rows; the same page over `events100k` replicated whole, for contrast.
 * Writes `results/query-mode.json`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ClientOptions,
  createClient,
  manualOnlineManager,
  type QueryHandle,
} from '@topgun/client';
import type { Query } from '@topgun/core';
import WebSocket from 'ws';
import { launchFreshBrowser } from './freshBrowser.js';
import { machineInfo, median } from './measure.js';
import { PageReports } from './pageReports.js';
import {
  createDatabase,
  dropDatabase,
  residentMiB,
  seedDatabase,
  startServer,
  stopServer,
} from './serverProcesses.js';
import { serveStaticPage } from './staticPageServer.js';

interface Event {
  kind: 'order' | 'view' | 'click';
  at: number;
  user: string;
  amount: number;
}

const RECORDS = Number(process.env['BENCH_RECORDS'] ?? 1_000_000);
const WHOLE_RECORDS = Number(process.env['BENCH_WHOLE_RECORDS'] ?? 100_000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const PORT = 18_000 + Math.floor(Math.random() * 1000);

/** Every 20th event is an order: the window's `where` matches 5% of the map. */
const eventOf = (i: number): Event => ({
  kind: i % 20 === 0 ? 'order' : i % 2 ? 'view' : 'click',
  at: i,
  user: `u${i % 1000}`,
  amount: i % 977,
});
const keyOf = (i: number) => `ev${String(i).padStart(8, '0')}`;
const eventEntry = (i: number) => [keyOf(i), { ...eventOf(i) }] as const;
const WINDOW: Query<Event> = {
  where: { kind: 'order' },
  sort: [{ field: 'at', direction: 'desc' }],
  limit: 50,
};

/** Bytes of every frame the server sent through sockets made by this class. */
let bytesIn = 0;
class CountingWebSocket extends WebSocket {
  constructor(address: string | URL, protocols?: string | string[]) {
    super(address, protocols);
    this.on('message', (data: ArrayBuffer | Buffer) => {
      bytesIn += data.byteLength;
    });
  }
}

const options = (url: string, online = manualOnlineManager(true)): ClientOptions => ({
  url,
  storage: 'memory',
  multiTab: false,
  cacheQueryResults: false,
  online,
  minRetryMs: 10,
  maxRetryMs: 100,
  WebSocket: CountingWebSocket as unknown as NonNullable<ClientOptions['WebSocket']>,
  maps: { events: { replicate: 'queries', maxRecords: 5_000 } },
});

async function until(test: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const synced = (handle: QueryHandle<Event>) => handle.getSnapshot().status === 'synced';

interface Round {
  firstRowsMs: number;
  firstBytes: number;
  resumeBytes: number;
  resumeMs: number;
  pagedRows: number;
  pagedRecordsHeld: number;
  pagedBytes: number;
}

async function round(
  url: string,
  writer: ReturnType<typeof createClient>,
  n: number,
): Promise<Round> {
  const online = manualOnlineManager(true);
  bytesIn = 0;
  const started = performance.now();
  const client = createClient(options(url, online));
  const feed = client.query<Event>('events', WINDOW);
  const stop = feed.subscribe(() => {});
  try {
    await until(() => synced(feed) && feed.getSnapshot().data.length === 50, 'the first rows');
    const firstRowsMs = performance.now() - started;
    const firstBytes = bytesIn;

    // Offline while others write: 1,000 events elsewhere (older views and clicks), 3 inside
    // the window (two orders edited, one new order on top).
    online.set(false);
    await until(() => client.status.getState().connection === 'offline', 'offline');
    const events = writer.getMap<Event>('events');
    for (let i = 0; i < 1_000; i++) {
      const j = ((i * 7919 + n * 31) % RECORDS) | 1; // odd: a view, never an order
      events.set(keyOf(j), { ...eventOf(j), amount: n + 1 });
    }
    const top = feed.getSnapshot().data;
    for (const row of [top[3]!, top[7]!]) events.set(row.key, { ...row.value, amount: n + 1 });
    const fresh = RECORDS + n;
    events.set(keyOf(fresh), { ...eventOf(0), at: fresh });
    await writer.flush();
    bytesIn = 0;
    const resumeStart = performance.now();
    online.set(true);
    await until(
      () => synced(feed) && feed.getSnapshot().data[0]?.key === keyOf(fresh),
      'the resumed window',
    );
    // Let anything else the resume sends arrive.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const resumeMs = performance.now() - resumeStart;
    const resumeBytes = bytesIn;

    // Paging to 2,000 rows.
    bytesIn = 0;
    while (feed.getSnapshot().data.length < 2_000 && feed.getSnapshot().hasMore) {
      const before = feed.getSnapshot().data.length;
      feed.loadMore();
      await until(() => feed.getSnapshot().data.length > before, 'the next page');
    }
    return {
      firstRowsMs,
      firstBytes,
      resumeBytes,
      resumeMs,
      pagedRows: feed.getSnapshot().data.length,
      pagedRecordsHeld: client.getMap('events').size,
      pagedBytes: bytesIn,
    };
  } finally {
    stop();
    await client.close();
  }
}

interface BrowserRound {
  /** The page's script started (the bundle fetched and evaluated). */
  scriptMs: number;
  /** The replica loaded from IndexedDB (`client.ready`). */
  readyMs: number;
  /** The socket opening, and the server's welcome (its work done, once the replica loaded). */
  connectingMs: number;
  welcomedMs: number;
  /** With `prefetch`: the window confirmed by the server, before the view could show it. */
  confirmedMs: number;
  firstRowsMs: number;
  /** A whole map: its first walk ended (all of it is here). */
  walkedMs: number | null;
  firstRowsBytes: number;
  heldAtFirstRows: number;
  scrolledRows: number;
  scrolledHeld: number;
  scrolledBytes: number;
  heapAfterScrollBytes: number | null;
}

interface FirstRowsReport {
  at: number;
  rows: number;
  held: number;
}
interface ScrolledReport {
  at: number;
  rows: number;
  held: number;
  heapBytes: number | null;
}

/**
 * One visit of fresh Chromium (a new, empty profile) to the page over `map`: navigation to
 * the first confirmed rows, and scrolling to 2,000 rows.
 */
async function browserRound(
  pageUrl: string,
  server: string,
  map: string,
  replicate: 'queries' | 'whole',
  prefetch = false,
): Promise<BrowserRound> {
  const browser = await launchFreshBrowser();
  try {
    const page = browser.context.pages()[0] ?? (await browser.context.newPage());
    const reports = await PageReports.attach(page);
    let bytes = 0;
    page.on('websocket', (socket) =>
      socket.on('framereceived', ({ payload }) => {
        bytes += typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
      }),
    );
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(
      `${pageUrl}query.html?server=${encodeURIComponent(server)}&map=${map}&replicate=${replicate}${prefetch ? '&prefetch' : ''}`,
    );
    const deadline = () => performance.now() + 300_000;
    const first = await reports.waitFor<FirstRowsReport>('firstRows', deadline());
    if (first === undefined)
      throw new Error(`no first rows: ${reports.failure(300_000)} ${errors.join('; ')}`);
    const firstRowsBytes = bytes;
    // A whole map is scrolled once it is all here, as its app would be.
    const walked =
      replicate === 'whole'
        ? await reports.waitFor<{ at: number }>('walked', deadline())
        : undefined;
    const timeline = await page.evaluate(
      () => (window as unknown as { benchTimeline: Array<[string, number]> }).benchTimeline,
    );
    const when = (state: string) =>
      timeline.find(([name]) => name.startsWith(state))?.[1] ?? Number.NaN;
    await page.evaluate(() =>
      (window as unknown as { benchScroll: (rows: number) => void }).benchScroll(2_000),
    );
    const scrolled = await reports.waitFor<ScrolledReport>('scrolled', deadline());
    if (scrolled === undefined) throw new Error(`no scroll: ${reports.failure(300_000)}`);
    return {
      scriptMs: when('script'),
      readyMs: when('ready'),
      connectingMs: when('connecting'),
      welcomedMs: when('syncing'),
      confirmedMs: when('confirmed'),
      firstRowsMs: first.at,
      walkedMs: walked?.at ?? null,
      firstRowsBytes,
      heldAtFirstRows: first.held,
      scrolledRows: scrolled.rows,
      scrolledHeld: scrolled.held,
      scrolledBytes: bytes,
      heapAfterScrollBytes: scrolled.heapBytes,
    };
  } finally {
    await browser.close();
  }
}

/** Median of each figure of `rounds`. */
function medians<T extends object>(rounds: readonly T[]): Record<keyof T, number | null> {
  const keys = Object.keys(rounds[0] ?? {}) as Array<keyof T>;
  return Object.fromEntries(
    keys.map((key) => {
      const values = rounds
        .map((each) => each[key])
        .filter((v): v is T[keyof T] & number => typeof v === 'number');
      return [key, values.length === 0 ? null : Math.round(median(values))];
    }),
  ) as Record<keyof T, number | null>;
}

const databaseUrl = await createDatabase('_querymode');
let server: Awaited<ReturnType<typeof startServer>> | undefined;
try {
  const seedMs = await seedDatabase(databaseUrl, 'events', RECORDS, eventEntry);
  console.log(`seeded ${RECORDS} events in ${(seedMs / 1000).toFixed(1)} s`);
  await seedDatabase(databaseUrl, 'events100k', WHOLE_RECORDS, eventEntry);
  server = await startServer(databaseUrl, PORT);
  const url = `ws://127.0.0.1:${PORT}/sync`;
  // The first query loads the map into the server's memory, as on a server that has been
  // running: timed apart.
  const warmStart = performance.now();
  const warm = createClient(options(url));
  const warmFeed = warm.query<Event>('events', WINDOW);
  const stopWarm = warmFeed.subscribe(() => {});
  await until(() => synced(warmFeed), 'the warm-up query', 600_000);
  const warmUpMs = performance.now() - warmStart;
  stopWarm();
  await warm.close();
  console.log(`server warm (map loaded) in ${(warmUpMs / 1000).toFixed(1)} s`);

  // The writer replicates the map by query too: it writes without walking a million records.
  const writer = createClient({
    ...options(url),
    WebSocket: WebSocket as unknown as NonNullable<ClientOptions['WebSocket']>,
  });
  const rounds: Round[] = [];
  for (let n = 0; n < ROUNDS; n++) {
    rounds.push(await round(url, writer, n));
    console.log(JSON.stringify(rounds.at(-1)));
  }
  await writer.close();

  // The browser part. The whole-map contrast's map is walked once first by a Node client, so
  // that the server holds it as it holds `events`.
  const wholeWarm = createClient({ ...options(url), maps: {} });
  const wholeFeed = wholeWarm.query<Event>('events100k', WINDOW);
  const stopWholeWarm = wholeFeed.subscribe(() => {});
  await until(() => synced(wholeFeed), 'the whole-map warm-up', 600_000);
  stopWholeWarm();
  await wholeWarm.close();
  const pageServer = await serveStaticPage(
    join(dirname(fileURLToPath(import.meta.url)), '..', 'results', '.browser-build'),
  );
  const browserQuery: BrowserRound[] = [];
  const browserPrefetch: BrowserRound[] = [];
  const browserWhole: BrowserRound[] = [];
  try {
    for (let n = 0; n < ROUNDS; n++) {
      browserQuery.push(await browserRound(pageServer.url, url, 'events', 'queries'));
      console.log('browser, by query:', JSON.stringify(browserQuery.at(-1)));
      browserPrefetch.push(await browserRound(pageServer.url, url, 'events', 'queries', true));
      console.log('browser, by query, prefetched:', JSON.stringify(browserPrefetch.at(-1)));
      browserWhole.push(await browserRound(pageServer.url, url, 'events100k', 'whole'));
      console.log('browser, whole map:', JSON.stringify(browserWhole.at(-1)));
    }
  } finally {
    pageServer.close();
  }
  const byQuery = medians(browserQuery);
  const prefetched = medians(browserPrefetch);
  const whole = medians(browserWhole);
  const serverRssMiB = server.pid === undefined ? undefined : residentMiB(server.pid);
  const mid = (pick: (each: Round) => number) => Math.round(median(rounds.map(pick)));
  const result = {
    what: 'issue 15: clients replicating map events by query over a server process on PostgreSQL (Node and fresh Chromium), and a whole-map contrast in Chromium',
    machine: machineInfo(),
    records: RECORDS,
    query: WINDOW,
    matching: RECORDS / 20,
    rounds: ROUNDS,
    seedMs: Math.round(seedMs),
    serverWarmUpMs: Math.round(warmUpMs),
    serverRssMiB,
    median: {
      firstRowsMs: mid((r) => r.firstRowsMs),
      firstBytes: mid((r) => r.firstBytes),
      resumeBytes: mid((r) => r.resumeBytes),
      resumeMs: mid((r) => r.resumeMs),
      pagedRows: mid((r) => r.pagedRows),
      pagedRecordsHeld: mid((r) => r.pagedRecordsHeld),
      pagedBytes: mid((r) => r.pagedBytes),
    },
    runs: rounds.map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v)])),
    ),
    browser: {
      what: 'fresh Chromium (empty profile): navigation to the first confirmed rows of the window, WebSocket bytes received; then scrolling to 2,000 rows with loadMore',
      byQuery: {
        what: 'the window subscribed when the view first renders (useQuery)',
        map: 'events',
        records: RECORDS,
        median: byQuery,
        runs: browserQuery,
      },
      byQueryPrefetched: {
        what: 'the window started with client.query before React loads, as a route loader would; the view shares it',
        map: 'events',
        records: RECORDS,
        median: prefetched,
        runs: browserPrefetch,
      },
      wholeMap: { map: 'events100k', records: WHOLE_RECORDS, median: whole, runs: browserWhole },
    },
    targets: [
      {
        target:
          'reconnect delta of a limit-50 window after 1,000 writes elsewhere and 3 inside: under 5 KB',
        met: mid((r) => r.resumeBytes) < 5 * 1024,
        value: `${mid((r) => r.resumeBytes)} B`,
      },
      {
        target: `fresh Chromium, ${RECORDS.toLocaleString('en')} records, the query started before React loads: first correct rows under 500 ms and 100 KB`,
        met:
          (prefetched.firstRowsMs ?? Infinity) < 500 &&
          (prefetched.firstRowsBytes ?? Infinity) < 100 * 1024,
        value: `${prefetched.firstRowsMs} ms, ${prefetched.firstRowsBytes} B`,
      },
      {
        target: `fresh Chromium, ${RECORDS.toLocaleString('en')} records, the query started by the view's first render: first correct rows under 500 ms and 100 KB`,
        met:
          (byQuery.firstRowsMs ?? Infinity) < 500 &&
          (byQuery.firstRowsBytes ?? Infinity) < 100 * 1024,
        value: `${byQuery.firstRowsMs} ms, ${byQuery.firstRowsBytes} B (whole map of ${WHOLE_RECORDS.toLocaleString('en')}: ${whole.firstRowsMs} ms, ${whole.firstRowsBytes} B)`,
      },
      {
        target: 'Node client: first correct rows under 500 ms and 100 KB',
        met: mid((r) => r.firstRowsMs) < 500 && mid((r) => r.firstBytes) < 100 * 1024,
        value: `${mid((r) => r.firstRowsMs)} ms, ${mid((r) => r.firstBytes)} B`,
      },
    ],
  };
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'results', 'query-mode.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result.median), JSON.stringify(result.targets));
} finally {
  if (server !== undefined) await stopServer(server);
  await dropDatabase(databaseUrl);
}
