/** How a bench page tells the bench what happened (see `src/pageReports.ts`). */

interface BenchWindow {
  /** The bench's binding; absent when the page is opened by hand. */
  benchReport?: (name: string, value: unknown) => Promise<void>;
  /** Present when Chromium runs with `--js-flags=--expose-gc`. */
  gc?: () => void;
}

interface PerformanceMemory {
  readonly usedJSHeapSize: number;
}

const bench = window as unknown as BenchWindow;

/** Reports `value` (JSON-like) under `name`; also logged, for runs by hand. */
export function report(name: string, value: unknown): void {
  if (bench.benchReport === undefined) console.log(name, value);
  else void bench.benchReport(name, value);
}

/**
 * The JavaScript heap in use after a full collection, in bytes: undefined where Chromium
 * runs without `--expose-gc` or `performance.memory` is missing, as a figure taken without a
 * collection would count garbage.
 */
export function usedHeapAfterGc(): number | undefined {
  const memory = (performance as unknown as { memory?: PerformanceMemory }).memory;
  if (bench.gc === undefined || memory === undefined) return undefined;
  bench.gc();
  return memory.usedJSHeapSize;
}
