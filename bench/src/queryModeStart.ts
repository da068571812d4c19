/**
 * The start of fresh Chromium on the query-mode page (`query.html`): where the time to the
 * window's first rows goes, and builds of the page compared side by side. Seeds
 * `BENCH_PROFILE_RECORDS` events (default 100,000) into a server process on PostgreSQL and
 * visits the page `BENCH_PROFILE_ROUNDS` times (default 3) per build, the builds in turn
 * (`BENCH_PROFILE_BUILDS`: comma-separated folders of `vite build browser` output; default
 * `results/.browser-build`, which `pnpm bench:query-mode` builds). Prints each visit's
 * timeline and the fetches of its scripts, then, by `BENCH_PROFILE_MODE`: `trace` (default)
 * the renderer main thread's tasks longer than 4 ms with what they ran, `cpu` the functions
 * with the most time, `none` nothing more (timings undisturbed); then each build's median.
 * `BENCH_PROFILE_PREFETCH=1`: the page's `prefetch` variant; `BENCH_PROFILE_LATENCY_MS=40`:
 * the server reached through a proxy that holds every chunk 40 ms each way, as a network
 * would; `BENCH_PROFILE_RESULT=file.json`: the medians appended there.
 * `node --import tsx src/queryModeStart.ts`
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as connectTcp, createServer, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchFreshBrowser } from './freshBrowser.js';
import { machineInfo, median } from './measure.js';
import { PageReports } from './pageReports.js';
import {
  createDatabase,
  dropDatabase,
  seedDatabase,
  startServer,
  stopServer,
} from './serverProcesses.js';
import { serveStaticPage } from './staticPageServer.js';

interface CpuProfile {
  nodes: Array<{
    id: number;
    children?: number[];
    callFrame: { functionName: string; url: string; lineNumber: number };
  }>;
  samples: number[];
  timeDeltas: number[];
}

interface TraceEvent {
  name: string;
  cat: string;
  ph: string;
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: { name?: string; data?: Record<string, unknown> };
}

const RECORDS = Number(process.env['BENCH_PROFILE_RECORDS'] ?? 100_000);
const ROUNDS = Number(process.env['BENCH_PROFILE_ROUNDS'] ?? 3);
const PREFETCH = process.env['BENCH_PROFILE_PREFETCH'] !== undefined;
/**
 * `trace` (default): the main thread's long tasks; `cpu`: a CPU profile, the functions with the
 * most time, self and inclusive; `none`: only the timings, undisturbed.
 */
const MODE = process.env['BENCH_PROFILE_MODE'] ?? 'trace';
const CPU = MODE === 'cpu';
const TRACE = MODE === 'trace';
const PORT = 19_000 + Math.floor(Math.random() * 1000);
/** One-way delay added to the server's connection (a TCP proxy), as a network would. */
const LATENCY_MS = Number(process.env['BENCH_PROFILE_LATENCY_MS'] ?? 0);
/** A JSON file the medians of each build are appended to (`runs`), with the settings. */
const RESULT = process.env['BENCH_PROFILE_RESULT'];
const CATEGORIES = [
  'devtools.timeline',
  'disabled-by-default-devtools.timeline',
  'v8.execute',
  'blink.user_timing',
  'loading',
  'navigation',
  'IndexedDB',
].join(',');

const databaseUrl = await createDatabase('_querymodeprofile');
let server: Awaited<ReturnType<typeof startServer>> | undefined;
try {
  await seedDatabase(databaseUrl, 'events', RECORDS, (i) => [
    `ev${String(i).padStart(8, '0')}`,
    {
      kind: i % 20 === 0 ? 'order' : i % 2 ? 'view' : 'click',
      at: i,
      user: `u${i % 1000}`,
      amount: i % 977,
    },
  ]);
  server = await startServer(databaseUrl, PORT);
  const serverUrl = `ws://127.0.0.1:${LATENCY_MS > 0 ? await delayingProxy(PORT, LATENCY_MS) : PORT}/sync`;
  // Each visit goes to the next build: two builds (`BENCH_PROFILE_BUILDS=before,after`, paths)
  // are compared side by side in one run.
  const builds = (
    process.env['BENCH_PROFILE_BUILDS'] ??
    join(dirname(fileURLToPath(import.meta.url)), '..', 'results', '.browser-build')
  ).split(',');
  const pages = await Promise.all(builds.map((root) => serveStaticPage(root)));
  try {
    const firstRows = builds.map((): Array<[number, number]> => []);
    await visit(pages[0]!.url, serverUrl, false);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [index, page] of pages.entries()) {
        if (builds.length > 1) console.log(`\n-- ${builds[index]}`);
        firstRows[index]!.push(await visit(page.url, serverUrl, true));
      }
    }
    const result = builds.map((build, index) => ({
      build,
      firstRowsMs: Math.round(median(firstRows[index]!.map(([at]) => at))),
      sinceScriptMs: Math.round(median(firstRows[index]!.map(([, since]) => since))),
      runs: firstRows[index]!.map(([at]) => Math.round(at)),
    }));
    if (RESULT !== undefined) {
      const entry = {
        latencyMs: LATENCY_MS,
        prefetch: PREFETCH,
        records: RECORDS,
        rounds: ROUNDS,
        builds: result,
      };
      const previous = existsSync(RESULT)
        ? (JSON.parse(readFileSync(RESULT, 'utf8')) as { runs: unknown[] })
        : undefined;
      writeFileSync(
        RESULT,
        `${JSON.stringify({ machine: machineInfo(), runs: [...(previous?.runs ?? []), entry] }, null, 2)}\n`,
      );
    }
    for (const [index, build] of builds.entries())
      console.log(
        `\nfirst rows of ${build}, median of ${ROUNDS}: ${Math.round(median(firstRows[index]!.map(([at]) => at)))} ms since navigation (${firstRows[index]!.map(([at]) => Math.round(at)).join(', ')}), ${Math.round(median(firstRows[index]!.map(([, since]) => since)))} ms since the script started`,
      );
  } finally {
    for (const page of pages) page.close();
  }
} finally {
  if (server !== undefined) await stopServer(server);
  await dropDatabase(databaseUrl);
}

/** One visit; resolves when the first rows showed (ms since navigation start), and since the script started. */
async function visit(
  pageUrl: string,
  serverUrl: string,
  print: boolean,
): Promise<[number, number]> {
  const browser = await launchFreshBrowser();
  try {
    const page = browser.context.pages()[0] ?? (await browser.context.newPage());
    const reports = await PageReports.attach(page);
    const cdp = await browser.context.newCDPSession(page);
    const events: TraceEvent[] = [];
    cdp.on('Tracing.dataCollected', ({ value }) =>
      events.push(...(value as unknown as TraceEvent[])),
    );
    const complete = new Promise<void>((resolve) =>
      cdp.once('Tracing.tracingComplete', () => resolve()),
    );
    if (CPU) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
      await cdp.send('Profiler.start');
    } else if (TRACE)
      await cdp.send('Tracing.start', { categories: CATEGORIES, transferMode: 'ReportEvents' });
    await page.goto(
      `${pageUrl}query.html?server=${encodeURIComponent(serverUrl)}&map=events${PREFETCH ? '&prefetch' : ''}`,
    );
    const first = await reports.waitFor<{ at: number }>('firstRows', performance.now() + 120_000);
    if (first === undefined) throw new Error(`no first rows: ${reports.failure(120_000)}`);
    const timing = await page.evaluate(() => ({
      navigation: performance.getEntriesByType('navigation').map((entry) => entry.toJSON()),
      resources: performance
        .getEntriesByType('resource')
        .map((entry) => [
          entry.name.split('/').at(-1),
          Math.round(entry.startTime),
          Math.round((entry as PerformanceResourceTiming).responseEnd),
        ]),
    }));
    let profile: CpuProfile | undefined;
    if (CPU)
      profile = ((await cdp.send('Profiler.stop')) as unknown as { profile: CpuProfile }).profile;
    else if (TRACE) {
      await cdp.send('Tracing.end');
      await complete;
    }
    const timeline = await page.evaluate(
      () => (window as unknown as { benchTimeline: Array<[string, number]> }).benchTimeline,
    );
    const result: [number, number] = [first.at, first.at - (timeline[0]?.[1] ?? 0)];
    if (!print) return result;
    const nav = timing.navigation[0] as Record<string, number>;
    console.log(
      `\n== first rows at ${Math.round(first.at)} ms; timeline ${JSON.stringify(timeline)}`,
    );
    console.log(
      `document: response ${Math.round(nav['responseEnd'] ?? 0)} ms, interactive ${Math.round(nav['domInteractive'] ?? 0)} ms; fetches [name, start, end]: ${JSON.stringify(timing.resources)}`,
    );
    if (profile !== undefined) summarizeCpu(profile);
    else if (TRACE) summarize(events);
    return result;
  } finally {
    await browser.close();
  }
}

/** The renderer main thread's long tasks, in ms since navigation start, with their largest parts. */
function summarize(events: TraceEvent[]): void {
  const threadName = new Map<string, string>();
  for (const event of events)
    if (event.ph === 'M' && event.name === 'thread_name')
      threadName.set(`${event.pid}:${event.tid}`, event.args?.name ?? '');
  const navigation = events.find(
    (event) => event.name === 'navigationStart' && event.args?.data?.['isLoadingMainFrame'],
  );
  const origin = navigation?.ts ?? Math.min(...events.filter((e) => e.ts > 0).map((e) => e.ts));
  const main = events.filter(
    (event) => event.ph === 'X' && threadName.get(`${event.pid}:${event.tid}`) === 'CrRendererMain',
  );
  const runTasks = main.filter((event) => event.name === 'RunTask');
  // Top-level tasks only: a task inside another is the outer one's part.
  const tasks = runTasks.filter(
    (task) =>
      (task.dur ?? 0) > 4000 &&
      !runTasks.some(
        (outer) =>
          outer !== task &&
          outer.ts <= task.ts &&
          outer.ts + (outer.dur ?? 0) >= task.ts + (task.dur ?? 0),
      ),
  );
  for (const task of tasks) {
    const end = task.ts + (task.dur ?? 0);
    const parts = main
      .filter(
        (event) =>
          event.ts >= task.ts &&
          event.ts < end &&
          (event.dur ?? 0) > 1000 &&
          /^(v8\.|FunctionCall|EvaluateScript|IDB|Layout|MajorGC|MinorGC|ParseHTML|TimerFire|EventDispatch|RunMicrotasks|Paint|CommitNavigation)/.test(
            event.name,
          ),
      )
      .map((event) => {
        const data = event.args?.data ?? {};
        const what =
          (data['url'] as string | undefined)?.split('/').at(-1) ??
          (data['functionName'] as string | undefined) ??
          '';
        return `${event.name}${what ? `(${what})` : ''} ${((event.dur ?? 0) / 1000).toFixed(1)}`;
      });
    console.log(
      `  ${((task.ts - origin) / 1000).toFixed(0).padStart(5)} ms +${((task.dur ?? 0) / 1000).toFixed(1).padStart(5)}: ${parts.slice(0, 8).join(', ')}`,
    );
  }
}

/** The functions with the most self time, and with the most time including their callees. */
function summarizeCpu(profile: CpuProfile): void {
  const parent = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const name = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    return `${functionName || '(anonymous)'} ${url.split('/').at(-1) || '(native)'}:${lineNumber + 1}`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  profile.samples.forEach((id, index) => {
    const delta = profile.timeDeltas[index] ?? 0;
    self.set(name(id), (self.get(name(id)) ?? 0) + delta);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const each = name(at);
      if (seen.has(each)) continue;
      seen.add(each);
      total.set(each, (total.get(each) ?? 0) + delta);
    }
  });
  const top = (table: Map<string, number>, count: number) =>
    [...table]
      .filter(([each]) => !/^\((root|program|idle)\)/.test(each))
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)
      .map(([each, us]) => `${(us / 1000).toFixed(1).padStart(7)} ms  ${each}`)
      .join('\n');
  console.log(`-- self --\n${top(self, 25)}\n-- inclusive --\n${top(total, 60)}`);
}

/** A TCP proxy to `port` that holds every chunk `delayMs` in each direction; resolves its port. */
async function delayingProxy(port: number, delayMs: number): Promise<number> {
  const pipe = (from: Socket, to: Socket) => {
    from.on('data', (chunk) => setTimeout(() => to.write(chunk), delayMs));
    from.on('end', () => setTimeout(() => to.end(), delayMs));
    from.on('error', () => to.destroy());
  };
  const proxy = createServer((client) => {
    const upstream = connectTcp(port, '127.0.0.1');
    pipe(client, upstream);
    pipe(upstream, client);
  });
  proxy.unref();
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return (proxy.address() as { port: number }).port;
}
