/**
 * Issue 12 in real Chromium against a real server process over PostgreSQL, per size N:
 * - cold start: an empty profile opens the app (`browser/appPage.tsx`) and syncs N todos:
 *   navigation to the first rendered rows, to all N in the replica, and to `client.persisted()`
 *   after that; the heap after a full collection; renders of the query component;
 * - the raw floor: the same N records written straight into IndexedDB by the same browser,
 *   one `put` per record (`plain`) and one MessagePack value per 1 000 records (`packed`);
 * - warm start with the N records stored (same profile, new page): navigation to the first
 *   rendered rows and to `client.ready`, with the query window remembered from the last visit
 *   and with localStorage cleared first (no remembered window);
 * - one local write with N stored: `set` to `client.persisted()`, over 20 writes 50 ms apart.
 * Each figure is the median of several runs, each on a fresh profile. Writes
 * `results/browser.json`.
 *
 * Environment: `BENCH_BROWSER_RECORDS` (sizes, comma-separated; default `100000`, e.g.
 * `100000,1000000`), `BENCH_BROWSER_RUNS` (default 3), `BENCH_BROWSER_TIMEOUT_S` (the most any
 * one phase may take before it is reported as timed out; default 600), `BENCH_BROWSER_OUT`
 * (default `results/browser.json`); `TOPGUN_CHROMIUM` and `BENCH_DATABASE_URL` as elsewhere.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from '@playwright/test';
import { type FreshBrowser, launchFreshBrowser } from './freshBrowser.js';
import { machineInfo, median } from './measure.js';
import { PageReports } from './pageReports.js';
import { type SeededTodoServer, startSeededTodoServer } from './seededTodoServer.js';
import { serveStaticPage } from './staticPageServer.js';

const SIZES = (process.env['BENCH_BROWSER_RECORDS'] ?? '100000')
  .split(',')
  .map((size) => Number(size.trim()));
const RUNS = Number(process.env['BENCH_BROWSER_RUNS'] ?? 3);
const TIMEOUT_MS = Number(process.env['BENCH_BROWSER_TIMEOUT_S'] ?? 600) * 1000;
const WRITES = 20;
const WRITE_SPACING_MS = 50;
/**
 * How long a visit stays open after its measurements: the client remembers its query
 * windows at most once a second, and a real visit lasts longer than that.
 */
const VISIT_TAIL_MS = 1_500;

const here = dirname(fileURLToPath(import.meta.url));
const OUT = resolve(
  process.env['BENCH_BROWSER_OUT'] ?? join(here, '..', 'results', 'browser.json'),
);

for (const size of SIZES) {
  if (!Number.isInteger(size) || size < 1) throw new Error(`bad BENCH_BROWSER_RECORDS: ${size}`);
}

// ---- what the page reports (see browser/appPage.tsx and browser/rawFloorPage.ts) ----

interface At {
  readonly at: number;
}
interface FirstRowsReport extends At {
  readonly rows: number;
  readonly beforeReady: boolean;
}
interface DoneReport {
  readonly scriptAt: number;
  readonly firstRowsAt: number | undefined;
  readonly readyAt: number | undefined;
  readonly allReceivedAt: number;
  readonly persistedAt: number;
  readonly size: number;
  readonly queryRenders: number;
  readonly progressRenders: number;
  readonly storageError: string | null;
}
interface HeapReport {
  readonly atStart: number | undefined;
  readonly atEnd: number | undefined;
}
interface ReadyReport extends At {
  readonly size: number;
}
interface RawReport {
  readonly records: number;
  readonly values: number;
  readonly writeMs: number;
  readonly openMs: number;
  readonly sinceNavigationMs: number;
}

// ---- one run's figures ----

interface ColdStart {
  readonly firstRowsMs: number;
  readonly allReceivedMs: number;
  readonly syncedAndPersistedMs: number;
  readonly walkEndedMs: number;
  readonly heapBytes: number | null;
  readonly heapPerRecordBytes: number | null;
  readonly queryRenders: number;
  readonly queryRendersPerSecond: number;
  readonly progressRenders: number;
}
interface WarmStart {
  readonly firstRowsMs: number;
  readonly readyMs: number;
  readonly firstRowsFromRememberedWindow: boolean;
}
/** The visits of one profile; after a failure, the phases that came before it. */
interface ClientVisits {
  readonly cold: ColdStart;
  readonly warm?: WarmStart;
  readonly writesMs?: readonly number[];
  readonly warmNoRememberedWindow?: WarmStart;
  readonly failure?: PhaseFailed;
}
/** A phase that did not finish: why, and how far it got. */
class PhaseFailed extends Error {
  constructor(
    readonly phase: string,
    readonly reason: string,
    readonly lastReports: Record<string, unknown>,
  ) {
    super(`${phase}: ${reason}`);
  }
}

const pageServer = await serveStaticPage(join(here, '..', 'results', '.browser-build'));
let browserVersion = 'unknown';
const sections: SizeSection[] = [];
try {
  for (const records of SIZES) sections.push(await measureSize(records));
} finally {
  pageServer.close();
}
const targets = targetsOf(sections);
console.log('\ntargets:');
for (const target of targets) {
  const verdict = target.met === null ? 'NOT RUN' : target.met ? 'MET    ' : 'NOT MET';
  console.log(`  ${verdict} ${target.target}  ${target.value}`);
}
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(
  OUT,
  `${JSON.stringify({ machine: machineInfo(), browser: browserVersion, runs: RUNS, timeoutS: TIMEOUT_MS / 1000, sizes: sections, targets }, null, 2)}\n`,
);
console.log(`wrote ${OUT}`);

// ---- one size ----

type SizeSection = Awaited<ReturnType<typeof measureSize>>;

async function measureSize(records: number) {
  console.log(`\n== ${records.toLocaleString('en')} records, ${RUNS} run(s)`);
  const server = await startSeededTodoServer(records, TIMEOUT_MS);
  console.log(
    `server: seeded PostgreSQL in ${seconds(server.seedMs)}, a Node client synced it all in ${seconds(server.warmUpMs)}`,
  );
  const plain: RawReport[] = [];
  const packed: RawReport[] = [];
  const visits: ClientVisits[] = [];
  const failures: Array<{ run: number; phase: string; reason: string; lastReports: unknown }> = [];
  try {
    // A phase that failed is not tried again: another run would only time out again.
    const givenUp = new Set<string>();
    const giveUp = (run: number, failure: PhaseFailed, kind: string) => {
      console.log(
        `run ${run}: ${failure.message}; last reports ${JSON.stringify(failure.lastReports)}`,
      );
      failures.push({
        run,
        phase: failure.phase,
        reason: failure.reason,
        lastReports: failure.lastReports,
      });
      givenUp.add(kind);
    };
    const attempt = async <T>(run: number, kind: string, work: () => Promise<T>) => {
      if (givenUp.has(kind)) return undefined;
      try {
        return await work();
      } catch (error) {
        if (!(error instanceof PhaseFailed)) throw error;
        giveUp(run, error, kind);
        return undefined;
      }
    };
    for (let run = 1; run <= RUNS; run++) {
      for (const [format, runs] of [
        ['plain', plain],
        ['packed', packed],
      ] as const) {
        const raw = await attempt(run, format, () => measureRawFloor(format, records));
        if (raw === undefined) continue;
        runs.push(raw);
        console.log(
          `run ${run}: raw floor, ${format === 'plain' ? 'one put per record' : 'MessagePack per 1,000 records'}: ${ms(raw.writeMs)}`,
        );
      }
      const visit = await attempt(run, 'client', () => measureClientVisits(records, server));
      if (visit === undefined) continue;
      visits.push(visit);
      const { cold, warm, warmNoRememberedWindow: bare, writesMs } = visit;
      console.log(
        `run ${run}: cold start: first rows ${ms(cold.firstRowsMs)}, all ${records} received ${ms(cold.allReceivedMs)}, synced and persisted ${ms(cold.syncedAndPersistedMs)}, walk ended ${ms(cold.walkEndedMs)}; heap ${mib(cold.heapBytes)} (${cold.heapPerRecordBytes?.toFixed(0) ?? '?'} B/record); ${cold.queryRenders} query renders (${cold.queryRendersPerSecond.toFixed(1)}/s), ${cold.progressRenders} progress renders`,
      );
      if (warm !== undefined)
        console.log(
          `run ${run}: warm start: first rows ${ms(warm.firstRowsMs)}${warm.firstRowsFromRememberedWindow ? ' (remembered window)' : ''}, ready ${ms(warm.readyMs)}`,
        );
      if (writesMs !== undefined)
        console.log(
          `run ${run}: one local write: median ${ms(median(writesMs))} of ${writesMs.length} (${writesMs.map((value) => value.toFixed(1)).join(', ')})`,
        );
      if (bare !== undefined)
        console.log(
          `run ${run}: warm start without a remembered window: first rows ${ms(bare.firstRowsMs)}, ready ${ms(bare.readyMs)}`,
        );
      if (visit.failure !== undefined) giveUp(run, visit.failure, 'client');
    }
  } finally {
    await server.stop();
  }
  const colds = visits.map((visit) => visit.cold);
  const writes = visits.flatMap((visit) => (visit.writesMs === undefined ? [] : [visit.writesMs]));
  const figure = <T>(values: readonly T[], pick: (value: T) => number | null) => {
    const picked = values.map(pick).filter((value): value is number => value !== null);
    return {
      median: picked.length === 0 ? null : round(median(picked)),
      runs: picked.map(round),
    };
  };
  const warmOf = (all: ReadonlyArray<WarmStart | undefined>) => {
    const warms = all.filter((warm) => warm !== undefined);
    return {
      firstRowsMs: figure(warms, (warm) => warm.firstRowsMs),
      readyMs: figure(warms, (warm) => warm.readyMs),
      firstRowsFromRememberedWindow: warms.map((warm) => warm.firstRowsFromRememberedWindow),
    };
  };
  const rawOf = (runs: readonly RawReport[]) => {
    const writeMs = figure(runs, (raw) => raw.writeMs);
    return {
      ms: writeMs,
      usPerRecord: writeMs.median === null ? null : round((writeMs.median * 1000) / records),
      openMs: figure(runs, (raw) => raw.openMs),
    };
  };
  return {
    records,
    server: { seedMs: round(server.seedMs), warmUpMs: round(server.warmUpMs) },
    rawFloor: {
      /** The raw floor of the targets. */
      onePutPerRecord: rawOf(plain),
      msgpackPer1000Records: rawOf(packed),
    },
    coldStart: {
      firstRowsMs: figure(colds, (cold) => cold.firstRowsMs),
      allReceivedMs: figure(colds, (cold) => cold.allReceivedMs),
      syncedAndPersistedMs: figure(colds, (cold) => cold.syncedAndPersistedMs),
      walkEndedMs: figure(colds, (cold) => cold.walkEndedMs),
      heapBytes: figure(colds, (cold) => cold.heapBytes),
      heapPerRecordBytes: figure(colds, (cold) => cold.heapPerRecordBytes),
      queryRenders: figure(colds, (cold) => cold.queryRenders),
      queryRendersPerSecond: figure(colds, (cold) => cold.queryRendersPerSecond),
      progressRenders: figure(colds, (cold) => cold.progressRenders),
    },
    warmStart: warmOf(visits.map((visit) => visit.warm)),
    warmStartNoRememberedWindow: warmOf(visits.map((visit) => visit.warmNoRememberedWindow)),
    localWrite: {
      medianMs: figure(writes, median),
      writesMs: writes.map((run) => run.map(round)),
    },
    failures,
  };
}

// ---- the phases ----

/** Writes the records straight into IndexedDB on a fresh profile. */
async function measureRawFloor(format: 'plain' | 'packed', records: number): Promise<RawReport> {
  const browser = await launch();
  try {
    const deadline = performance.now() + TIMEOUT_MS;
    const { reports } = await openPage(
      browser.context,
      `mode=raw&format=${format}&records=${records}`,
    );
    const raw = await reports.waitFor<RawReport>('raw', deadline);
    if (raw === undefined) throw failed(`raw floor (${format})`, reports);
    const expected = format === 'plain' ? records : Math.ceil(records / 1000);
    if (raw.values !== expected) throw new Error(`raw floor stored ${raw.values} values`);
    return raw;
  } finally {
    await browser.close();
  }
}

/**
 * On one fresh profile: the cold start, then a warm start with the remembered query window
 * and the writes, then a warm start with localStorage cleared.
 */
async function measureClientVisits(
  records: number,
  server: SeededTodoServer,
): Promise<ClientVisits> {
  const browser = await launch();
  const app = `mode=app&server=${encodeURIComponent(server.url)}&records=${records}`;
  try {
    const { context } = browser;

    let deadline = performance.now() + TIMEOUT_MS;
    const coldPage = await openPage(context, `${app}&heap`);
    const done = await coldPage.reports.waitFor<DoneReport>('done', deadline);
    // The walk ends after the last records came: until then the next visit would walk again.
    const walkEnded = await coldPage.reports.waitFor<At>('synced', deadline);
    const heap = await coldPage.reports.waitFor<HeapReport>('heap', deadline);
    if (done === undefined || walkEnded === undefined || heap === undefined)
      throw failed('cold start', coldPage.reports);
    if (done.firstRowsAt === undefined) throw new Error('cold start: no rows were rendered');
    if (done.storageError !== null) throw new Error(`cold start: ${done.storageError}`);
    const syncMs = done.persistedAt;
    const heapBytes = heap.atEnd ?? null;
    const cold: ColdStart = {
      firstRowsMs: done.firstRowsAt,
      allReceivedMs: done.allReceivedAt,
      syncedAndPersistedMs: done.persistedAt,
      walkEndedMs: walkEnded.at,
      heapBytes,
      heapPerRecordBytes:
        heapBytes === null || heap.atStart === undefined
          ? null
          : (heapBytes - heap.atStart) / records,
      queryRenders: done.queryRenders,
      queryRendersPerSecond: done.queryRenders / (syncMs / 1000),
      progressRenders: done.progressRenders,
    };
    await endVisit(coldPage.page);

    let warm: WarmStart | undefined;
    let writesMs: number[] | undefined;
    try {
      deadline = performance.now() + TIMEOUT_MS;
      const warmPage = await openPage(context, app);
      warm = await warmStartOf(records, warmPage.reports, deadline, 'warm start');
      if ((await warmPage.reports.waitFor('synced', deadline)) === undefined)
        throw failed('warm start (sync)', warmPage.reports);
      writesMs = await withDeadline(
        warmPage.page.evaluate(
          ([count, spacingMs]) =>
            (
              window as unknown as {
                benchWrites: (count: number, spacingMs: number) => Promise<number[]>;
              }
            ).benchWrites(count, spacingMs),
          [WRITES, WRITE_SPACING_MS] as const,
        ),
        deadline,
      );
      if (writesMs === undefined) throw failed('local writes', warmPage.reports);
      await endVisit(warmPage.page);

      deadline = performance.now() + TIMEOUT_MS;
      const barePage = await openPage(context, app, () => localStorage.clear());
      const warmNoRememberedWindow = await warmStartOf(
        records,
        barePage.reports,
        deadline,
        'warm start without a remembered window',
      );
      await barePage.page.close();
      return { cold, warm, writesMs, warmNoRememberedWindow };
    } catch (error) {
      if (!(error instanceof PhaseFailed)) throw error;
      return {
        cold,
        ...(warm === undefined ? {} : { warm }),
        ...(writesMs === undefined ? {} : { writesMs }),
        failure: error,
      };
    }
  } finally {
    await browser.close();
  }
}

async function warmStartOf(
  records: number,
  reports: PageReports,
  deadline: number,
  phase: string,
): Promise<WarmStart> {
  const firstRows = await reports.waitFor<FirstRowsReport>('firstRows', deadline);
  const ready = await reports.waitFor<ReadyReport>('ready', deadline);
  if (firstRows === undefined || ready === undefined) throw failed(phase, reports);
  // Every record synced before must be back from IndexedDB.
  if (ready.size !== records)
    throw new Error(`${phase}: ${ready.size} of ${records} records loaded`);
  return {
    firstRowsMs: firstRows.at,
    readyMs: ready.at,
    firstRowsFromRememberedWindow: firstRows.beforeReady,
  };
}

// ---- plumbing ----

async function launch(): Promise<FreshBrowser> {
  const browser = await launchFreshBrowser();
  browserVersion = browser.version;
  return browser;
}

/**
 * Opens the bench page with `query` in a new page of `context`, reports attached; `init`
 * runs in the page before its scripts.
 */
async function openPage(
  context: BrowserContext,
  query: string,
  init?: () => void,
): Promise<{ page: Page; reports: PageReports }> {
  const opened = await context.newPage();
  // The blank page a persistent context starts with: one page at a time.
  for (const other of context.pages()) if (other !== opened) await other.close();
  const reports = await PageReports.attach(opened);
  if (init !== undefined) await opened.addInitScript(init);
  await opened.goto(`${pageServer.url}?${query}`, { waitUntil: 'commit' });
  return { page: opened, reports };
}

/** Leaves a page the way a visit ends: after a moment, so the client remembers its windows. */
async function endVisit(visited: Page): Promise<void> {
  await visited.waitForTimeout(VISIT_TAIL_MS);
  await visited.close();
}

function failed(phase: string, reports: PageReports): PhaseFailed {
  const last: Record<string, unknown> = {};
  for (const name of ['error', 'progress', 'firstRows', 'ready', 'allReceived', 'synced']) {
    const value = reports.get(name);
    if (value !== undefined) last[name] = value;
  }
  const error = reports.get<string>('error');
  return new PhaseFailed(phase, error ?? reports.failure(TIMEOUT_MS), last);
}

/** `work`'s result, or undefined when `deadline` passes first. */
async function withDeadline<T>(work: Promise<T>, deadline: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, deadline - performance.now()));
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- targets ----

interface Target {
  readonly target: string;
  /** null: the size it is about was not run. */
  readonly met: boolean | null;
  readonly value: string;
}

function targetsOf(measured: readonly SizeSection[]): Target[] {
  const bySize = (records: number) => measured.find((section) => section.records === records);
  const notRun = (target: string, records: number): Target => ({
    target,
    met: null,
    value: `not run (BENCH_BROWSER_RECORDS=${SIZES.join(',')}; this needs ${records})`,
  });
  const check = (
    target: string,
    records: number,
    value: (section: SizeSection) => number | null,
    meets: (value: number, section: SizeSection) => boolean,
    format: (value: number, section: SizeSection) => string,
  ): Target => {
    const section = bySize(records);
    if (section === undefined) return notRun(target, records);
    const measuredValue = value(section);
    if (measuredValue === null) {
      const failures = section.failures.map(({ phase, reason }) => `${phase}: ${reason}`);
      return { target, met: false, value: failures.join('; ') || 'no value' };
    }
    return {
      target,
      met: meets(measuredValue, section),
      value: format(measuredValue, section),
    };
  };
  const coldMs = (section: SizeSection) => section.coldStart.syncedAndPersistedMs.median;
  return [
    check('cold start with 100,000 records < 3 s', 100_000, coldMs, (value) => value < 3_000, ms),
    check(
      'cold start ≤ 2× the raw floor (100,000 records, per record: one IndexedDB put each)',
      100_000,
      coldMs,
      (value, section) =>
        section.rawFloor.onePutPerRecord.usPerRecord !== null &&
        (value * 1000) / section.records <= 2 * section.rawFloor.onePutPerRecord.usPerRecord,
      (value, section) => {
        const perRecord = (value * 1000) / section.records;
        const floor = section.rawFloor.onePutPerRecord.usPerRecord;
        return floor === null
          ? `${perRecord.toFixed(1)} µs/record, no raw floor`
          : `${perRecord.toFixed(1)} µs/record against ${floor.toFixed(1)} µs/record (${(perRecord / floor).toFixed(1)}×)`;
      },
    ),
    check(
      'warm start, first rendered query < 300 ms (100,000 records)',
      100_000,
      (section) => section.warmStart.firstRowsMs.median,
      (value) => value < 300,
      ms,
    ),
    check(
      'warm start, first rendered query < 300 ms with no remembered query window (100,000 records)',
      100_000,
      (section) => section.warmStartNoRememberedWindow.firstRowsMs.median,
      (value) => value < 300,
      ms,
    ),
    check(
      'warm start, full replica loaded < 1 s (100,000 records)',
      100_000,
      (section) => section.warmStart.readyMs.median,
      (value) => value < 1_000,
      ms,
    ),
    check(
      'one local write to persisted < 5 ms (100,000 records stored)',
      100_000,
      (section) => section.localWrite.medianMs.median,
      (value) => value < 5,
      (value) => `${value.toFixed(2)} ms`,
    ),
    check(
      'cold start with 1,000,000 records < 30 s (report)',
      1_000_000,
      coldMs,
      (value) => value < 30_000,
      ms,
    ),
  ];
}

// ---- figures ----

/** To 0.01: the figures are not more precise than that. */
function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function ms(value: number): string {
  return value >= 10_000 ? seconds(value) : `${value.toFixed(0)} ms`;
}

function seconds(value: number): string {
  return `${(value / 1000).toFixed(1)} s`;
}

function mib(bytes: number | null): string {
  return bytes === null ? '? MiB' : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
