/**
 * The built demo app, opened as a new user would: a server process over PostgreSQL holding
 * `BENCH_DEMO_RECORDS` todos (default 100,000) serves the demo, and a fresh Chromium profile
 * opens its dashboard. Measures navigation → the dashboard's counts adding up to every todo
 * (the open and done counts are live queries without a limit), median of
 * `BENCH_DEMO_RUNS` (default 3); writes `results/demo.json` (or `BENCH_DEMO_OUT`). Screenshots
 * of the loaded dashboard (desktop and 375 px wide) go to `BENCH_DEMO_SCREENSHOTS` if set.
 * With `BENCH_DEMO_BEFORE_CLI` (another tree's `packages/server/dist/cli.js`) and
 * `BENCH_DEMO_BEFORE_DIST` (its `apps/demo/dist`), that build is measured too, run for run.
 * `pnpm bench:demo` builds this tree's demo and server first.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchFreshBrowser } from './freshBrowser.js';
import { machineInfo, median } from './measure.js';
import { type SeededTodoServer, startSeededTodoServer } from './seededTodoServer.js';
import { SERVER_CLI } from './serverProcesses.js';

const RECORDS = Number(process.env['BENCH_DEMO_RECORDS'] ?? 100_000);
const RUNS = Number(process.env['BENCH_DEMO_RUNS'] ?? 3);
const TIMEOUT_MS = Number(process.env['BENCH_DEMO_TIMEOUT_S'] ?? 300) * 1000;
const SCREENSHOTS = process.env['BENCH_DEMO_SCREENSHOTS'];
const here = dirname(fileURLToPath(import.meta.url));
const demoDist = resolve(here, '..', '..', 'apps', 'demo', 'dist');
const out = process.env['BENCH_DEMO_OUT'] ?? join(here, '..', 'results', 'demo.json');

if (!existsSync(join(demoDist, 'index.html'))) {
  throw new Error(`no built demo in ${demoDist}: run pnpm --filter @topgun/demo build`);
}

interface Run {
  /** Navigation → the counts add up to every todo (ms), or null on timeout. */
  readonly countsMs: number | null;
  /** The JS heap after the counts were complete, and a collection. */
  readonly heapBytes: number;
}

const seededAt = Date.now();
/** Todo `i` as the demo stores it (its `Todo` type); a third of them done. */
const demoTodo = (i: number) => {
  const at = seededAt - (RECORDS - i) * 1_000;
  return {
    title: `Task number ${i}`,
    done: i % 3 === 0,
    createdAt: at,
    updatedAt: at,
    updatedBy: 'seed',
    ...(i % 3 === 0 ? { completedAt: at } : {}),
  };
};
/** What is measured: this tree's build, and another (`BENCH_DEMO_BEFORE_*`) to compare. */
const builds = [
  ...(process.env['BENCH_DEMO_BEFORE_CLI'] === undefined
    ? []
    : [
        {
          name: 'before',
          cli: process.env['BENCH_DEMO_BEFORE_CLI'],
          dist: process.env['BENCH_DEMO_BEFORE_DIST'] ?? demoDist,
        },
      ]),
  { name: 'this tree', cli: SERVER_CLI, dist: demoDist },
];
const servers: SeededTodoServer[] = [];
const runs = new Map<string, Run[]>(builds.map((build) => [build.name, []]));
try {
  for (const build of builds) {
    servers.push(
      await startSeededTodoServer(
        RECORDS,
        TIMEOUT_MS,
        { TOPGUN_STATIC_DIR: build.dist },
        demoTodo,
        build.cli,
      ),
    );
  }
  // Runs alternate between the builds, so that the machine's drift falls on both.
  for (let run = 1; run <= RUNS; run++) {
    for (const [index, build] of builds.entries()) {
      const measured = await measure(servers[index]!.url, run === 1 && index === builds.length - 1);
      runs.get(build.name)!.push(measured);
      console.log(
        `${build.name}, run ${run}: dashboard counts add up to ${RECORDS} after ${measured.countsMs === null ? `more than ${TIMEOUT_MS / 1000} s` : `${(measured.countsMs / 1000).toFixed(2)} s`}; heap ${(measured.heapBytes / 2 ** 20).toFixed(0)} MiB`,
      );
    }
  }
} finally {
  for (const server of servers) await server.stop();
}

/** One visit on a fresh profile; `screenshots` takes them (if asked for) once loaded. */
async function measure(syncUrl: string, screenshots: boolean): Promise<Run> {
  const base = syncUrl.replace('ws://', 'http://').replace(/\/sync$/, '');
  const browser = await launchFreshBrowser();
  try {
    const page = await browser.context.newPage();
    await page.addInitScript(() => localStorage.setItem('topgun-demo:user', 'bench'));
    // The wait runs in the page: the time it reports counts from the navigation's start.
    await page.goto(`${base}/#dashboard`, { waitUntil: 'domcontentloaded' });
    const countsMs = await page
      .waitForFunction(
        // No inner functions: tsx would name them with a helper the page does not have.
        (total) =>
          Number(document.querySelector('[data-testid="count-open"]')?.textContent ?? Number.NaN) +
            Number(
              document.querySelector('[data-testid="count-done"]')?.textContent ?? Number.NaN,
            ) ===
          total
            ? performance.now()
            : false,
        RECORDS,
        { polling: 'raf', timeout: TIMEOUT_MS },
      )
      .then((handle) => handle.jsonValue() as Promise<number>)
      .catch((error: unknown) => {
        console.log(String(error).split('\n')[0]);
        return null;
      });
    const heapBytes = await page.evaluate(() => {
      (globalThis as unknown as { gc?: () => void }).gc?.();
      return (
        (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory
          ?.usedJSHeapSize ?? 0
      );
    });
    if (screenshots && SCREENSHOTS !== undefined && countsMs !== null) {
      mkdirSync(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: join(SCREENSHOTS, 'dashboard.png') });
      await page.getByRole('button', { name: 'Todos', exact: true }).click();
      await page.getByTestId('todo-list').waitFor();
      await page.screenshot({ path: join(SCREENSHOTS, 'todos.png') });
      await page.setViewportSize({ width: 375, height: 800 });
      await page.screenshot({ path: join(SCREENSHOTS, 'todos-375.png') });
    }
    await page.close();
    return { countsMs, heapBytes };
  } finally {
    await browser.close();
  }
}

const result = {
  machine: machineInfo(),
  records: RECORDS,
  builds: builds.map((build) => {
    const measured = runs.get(build.name)!;
    const completed = measured.flatMap((run) => (run.countsMs === null ? [] : [run.countsMs]));
    const summary = {
      build: build.name,
      runs: measured,
      countsMs: completed.length === measured.length ? median(completed) : null,
      heapPerRecordBytes: median(measured.map((run) => run.heapBytes)) / RECORDS,
    };
    console.log(
      `${build.name}: median ${summary.countsMs === null ? 'n/a (a run timed out)' : `${(summary.countsMs / 1000).toFixed(2)} s`} to the full counts; heap ${summary.heapPerRecordBytes.toFixed(0)} B/record`,
    );
    return summary;
  }),
};
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
console.log(`wrote ${out}`);
