/**
 * A CPU profile of the browser client's start, for finding where the time goes (not a bench:
 * profiling slows the page). Syncs `BENCH_PROFILE_RECORDS` todos (default 300,000) into an
 * empty Chromium profile and prints the functions with the most self time, and by file; with
 * `BENCH_PROFILE_PHASE=warm`, profiles the next visit instead (no remembered query window),
 * until the replica is loaded and the first rows are shown. Run after `pnpm bench:browser`
 * has built the page (build it with `--minify false` for readable names):
 * `node --import tsx src/browserProfile.ts` (`BENCH_PROFILE_WRITES=1`: the first visit also makes
 * the bench page's twenty local writes).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchFreshBrowser } from './freshBrowser.js';
import { PageReports } from './pageReports.js';
import { startSeededTodoServer } from './seededTodoServer.js';
import { serveStaticPage } from './staticPageServer.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const RECORDS = Number(process.env['BENCH_PROFILE_RECORDS'] ?? 300_000);
const WARM = process.env['BENCH_PROFILE_PHASE'] === 'warm';
const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'results', '.browser-build');

const server = await startSeededTodoServer(RECORDS, 600_000);
const pages = await serveStaticPage(root);
const browser = await launchFreshBrowser();
try {
  const query = `mode=app&server=${encodeURIComponent(server.url)}&records=${RECORDS}`;
  if (WARM) {
    const first = await browser.context.newPage();
    const reports = await PageReports.attach(first);
    await first.goto(`${pages.url}?${query}`, { waitUntil: 'commit' });
    await reports.waitFor('done', performance.now() + 600_000);
    if (process.env['BENCH_PROFILE_WRITES'] !== undefined) {
      await first.evaluate(() =>
        (
          window as unknown as { benchWrites: (n: number, ms: number) => Promise<number[]> }
        ).benchWrites(20, 50),
      );
    }
    // Idle long enough for background work (compaction) before the visit ends.
    await first.waitForTimeout(3_000);
    await first.evaluate(() => localStorage.clear());
    await first.close();
  }
  const page = await browser.context.newPage();
  const reports = await PageReports.attach(page);
  const cdp = await browser.context.newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: WARM ? 100 : 500 });
  await cdp.send('Profiler.start');
  const start = performance.now();
  await page.goto(`${pages.url}?${query}`, { waitUntil: 'commit' });
  const phaseEnd = WARM ? 'firstRows' : 'done';
  const ended = await reports.waitFor(phaseEnd, performance.now() + 600_000);
  console.log(`${phaseEnd} after ${((performance.now() - start) / 1000).toFixed(1)} s`, ended);
  if (WARM) console.log('ready', reports.get('ready'));
  const { profile } = (await cdp.send('Profiler.stop')) as unknown as { profile: CpuProfile };
  summarize(profile);
} finally {
  await browser.close();
  pages.close();
  await server.stop();
}

/** Prints the functions with the most self time, and the files. */
function summarize(profile: CpuProfile): void {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  const byFile = new Map<string, number>();
  profile.samples.forEach((id, index) => {
    const node = byId.get(id);
    if (node === undefined) return;
    const delta = profile.timeDeltas[index] ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.split('/').at(-1) || '(native)';
    const name = `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`;
    self.set(name, (self.get(name) ?? 0) + delta);
    byFile.set(file, (byFile.get(file) ?? 0) + delta);
  });
  const total = [...self.values()].reduce((sum, value) => sum + value, 0);
  const top = (table: Map<string, number>, count: number) =>
    [...table]
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)
      .map(
        ([name, us]) =>
          `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${name}`,
      )
      .join('\n');
  console.log(
    `sampled ${(total / 1000).toFixed(0)} ms\n-- self time by function --\n${top(self, 40)}`,
  );
  console.log(`-- by file --\n${top(byFile, 10)}`);
}
