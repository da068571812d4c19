import { cpus, totalmem } from 'node:os';

declare const gc: () => void;

/** Runs `work` `rounds` times (plus one warm-up) and returns the median duration in ms. */
export function medianMs(rounds: number, work: () => void, setup?: () => void): number {
  const durations: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    setup?.();
    gc();
    const start = performance.now();
    work();
    const elapsed = performance.now() - start;
    if (round > 0) durations.push(elapsed);
  }
  durations.sort((a, b) => a - b);
  return durations[Math.floor(durations.length / 2)]!;
}

/**
 * Memory growth, in bytes, of keeping what `build` returns alive: the JavaScript heap plus
 * memory outside it (WebAssembly memories and array buffers, where Automerge keeps its data).
 */
export function retainedBytes(build: () => unknown): number {
  gc();
  gc();
  const before = usedBytes();
  const kept = build();
  gc();
  gc();
  const after = usedBytes();
  // Keep `kept` reachable until after the measurement.
  if (kept === undefined) throw new Error('build returned nothing');
  return after - before;
}

function usedBytes(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

/** Where the figures were measured. */
export function machineInfo() {
  const cpu = cpus();
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    date: new Date().toISOString(),
  };
}

/** Formats a rate as e.g. `1.23M/s`. */
export function formatRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M/s`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k/s`;
  return `${perSecond.toFixed(0)}/s`;
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
