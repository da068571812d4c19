/** Where long work checks in: `due()` when its slice is used up, `pause()` to yield. */
export interface Slicer {
  /** Whether the caller should pause now (called every few hundred items). */
  due(): boolean;
  /** Yields; may reject to abandon the work. */
  pause(): Promise<void>;
}

/** Items sorted per run before runs are merged. */
const RUN = 512;
/** Items handled between two checks of the slicer. */
const CHECK_EVERY = 256;

/**
 * Sorts `items` (in place, and returns them) like `Array.prototype.sort`, but in slices: a
 * bottom-up merge sort of short runs that checks the slicer as it goes, so that sorting a
 * million rows never holds the thread for more than a slice. Stable.
 */
export async function sortInSlices<T>(
  items: T[],
  compare: (a: T, b: T) => number,
  slicer: Slicer,
): Promise<T[]> {
  const length = items.length;
  for (let start = 0; start < length; start += RUN) {
    const run = items.slice(start, start + RUN).sort(compare);
    for (let index = 0; index < run.length; index++) items[start + index] = run[index]!;
    if (slicer.due()) await slicer.pause();
  }
  let source = items;
  let target = new Array<T>(length);
  let since = 0;
  for (let width = RUN; width < length; width *= 2) {
    for (let left = 0; left < length; left += 2 * width) {
      const middle = Math.min(left + width, length);
      const right = Math.min(left + 2 * width, length);
      let i = left;
      let j = middle;
      for (let out = left; out < right; out++) {
        target[out] =
          i < middle && (j >= right || compare(source[i]!, source[j]!) <= 0)
            ? source[i++]!
            : source[j++]!;
        if (++since >= CHECK_EVERY) {
          since = 0;
          if (slicer.due()) await slicer.pause();
        }
      }
    }
    [source, target] = [target, source];
  }
  if (source !== items) for (let index = 0; index < length; index++) items[index] = source[index]!;
  return items;
}
