/**
 * Client start-up in a real browser (Chromium): 100 000 records in IndexedDB, time from
 * navigation start to the first rendered rows of a live query, median of several cold loads.
 * Writes `results/browser.json`.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from '@playwright/test';
import { machineInfo } from './measure.js';

const RECORDS = Number(process.env['BENCH_BROWSER_RECORDS'] ?? 100_000);
const LOADS = 5;
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', 'results', '.browser-build');
const types: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.map': 'application/json',
};

const http = createHttpServer(async (request, response) => {
  const path = new URL(request.url ?? '/', 'http://x').pathname;
  const file = join(root, path === '/' ? 'index.html' : path);
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
  response.end(body);
});
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/`;

const executablePath =
  process.env['TOPGUN_CHROMIUM'] ??
  (existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : undefined);
const browser = await chromium.launch({
  ...(executablePath === undefined ? {} : { executablePath }),
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update'],
});
try {
  const context = await browser.newContext();
  const seeding = await context.newPage();
  const seedStart = performance.now();
  await seeding.goto(`${url}?seed=${RECORDS}`);
  await seeding.waitForFunction(
    () => (window as unknown as { seeded?: number }).seeded !== undefined,
    undefined,
    { timeout: 300_000 },
  );
  console.log(
    `seeded ${RECORDS} records into IndexedDB in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`,
  );
  await seeding.close();
  // Let the browser finish writing behind the seeding (compaction) as it would between visits.
  await new Promise((resolve) =>
    setTimeout(resolve, Number(process.env['BENCH_BROWSER_SETTLE_MS'] ?? 0)),
  );

  const profile = await context.newPage();
  await profile.goto(`${url}?profile`);
  await profile.waitForFunction(
    () => (window as unknown as { storageLoadMs?: number }).storageLoadMs !== undefined,
    undefined,
    { timeout: 60_000 },
  );
  const { storageLoadMs, rawMs, rawCount, openMs } = await profile.evaluate(() => {
    const w = window as unknown as {
      storageLoadMs: number;
      rawMs: number;
      rawCount: number;
      openMs: number;
    };
    return {
      storageLoadMs: w.storageLoadMs,
      rawMs: w.rawMs,
      rawCount: w.rawCount,
      openMs: w.openMs,
    };
  });
  console.log(
    `IndexedDB: first open ${openMs.toFixed(0)} ms, then getAll of ${rawCount} values ${rawMs.toFixed(0)} ms; storage.load() of the replica ${storageLoadMs.toFixed(0)} ms`,
  );
  await profile.close();

  const loads: Array<{
    firstRowsAt: number;
    readyAt: number;
    replicaSize: number;
    clientCreatedAt: number;
  }> = [];
  for (let load = 0; load < LOADS; load++) {
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction(
      () => {
        const w = window as unknown as { firstRowsAt?: number; readyAt?: number };
        return w.firstRowsAt !== undefined && w.readyAt !== undefined;
      },
      undefined,
      { timeout: 60_000 },
    );
    const result = await page.evaluate(() => {
      const w = window as unknown as {
        firstRowsAt: number;
        readyAt: number;
        replicaSize: number;
        clientCreatedAt: number;
      };
      return {
        firstRowsAt: w.firstRowsAt,
        readyAt: w.readyAt,
        replicaSize: w.replicaSize,
        clientCreatedAt: w.clientCreatedAt,
      };
    });
    loads.push(result);
    // A visit lasts a little: long enough for the client to remember its query results.
    await page.waitForTimeout(1_500);
    await page.close();
  }
  const sorted = [...loads].sort((a, b) => a.firstRowsAt - b.firstRowsAt);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  console.log(
    `first rendered rows per load (ms): ${loads.map((load) => load.firstRowsAt.toFixed(0)).join(', ')} (the first load has no remembered window yet)`,
  );
  console.log(
    `first rendered query: ${median.firstRowsAt.toFixed(0)} ms after navigation start, median of ${LOADS} (script ran at ${median.clientCreatedAt.toFixed(0)} ms; the replica of ${RECORDS} records was loaded at ${median.readyAt.toFixed(0)} ms)`,
  );
  const target = {
    target: 'first rendered query < 500 ms with 100,000 records',
    met: median.firstRowsAt < 500,
    value: `${median.firstRowsAt.toFixed(0)} ms`,
  };
  console.log(`  ${target.met ? 'MET    ' : 'NOT MET'} ${target.target}  ${target.value}`);
  const out = join(here, '..', 'results', 'browser.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ machine: machineInfo(), browser: browser.version(), records: RECORDS, openMs, rawMs, storageLoadMs, loads, median, targets: [target] }, null, 2)}\n`,
  );
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  http.close();
}
