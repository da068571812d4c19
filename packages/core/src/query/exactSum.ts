/**
 * Numbers of magnitude at or above this are not summed: below it, no sum of fewer than 2^53
 * of them, nor any partial of one, can overflow.
 */
export const MAX_SUMMED_MAGNITUDE = 2 ** 960;

/** Whether an aggregate's `sum` and `avg` count `value`. */
export function isSummable(value: unknown): value is number {
  return (
    typeof value === 'number' && Number.isFinite(value) && Math.abs(value) < MAX_SUMMED_MAGNITUDE
  );
}

/**
 * The exact sum of a multiset of numbers, kept as non-overlapping partials (Shewchuk's
 * algorithm, as Python's `math.fsum`), read correctly rounded. Adding and taking away are
 * exact, so the value depends only on which numbers are in the set, never on the order they
 * came and went in: a live sum always equals one computed from scratch. Numbers must pass
 * {@link isSummable}.
 */
export class ExactSum {
  readonly #partials: number[] = [];

  add(value: number): void {
    const partials = this.#partials;
    let x = value;
    let used = 0;
    for (let i = 0; i < partials.length; i++) {
      let y = partials[i]!;
      if (Math.abs(x) < Math.abs(y)) {
        const larger = y;
        y = x;
        x = larger;
      }
      const high = x + y;
      const low = y - (high - x);
      if (low !== 0) partials[used++] = low;
      x = high;
    }
    partials.length = used;
    if (x !== 0) partials.push(x);
  }

  remove(value: number): void {
    this.add(-value);
  }

  /** The sum, correctly rounded (0, never -0, for an empty set). */
  get value(): number {
    const partials = this.#partials;
    let n = partials.length;
    if (n === 0) return 0;
    let high = partials[--n]!;
    let low = 0;
    while (n > 0) {
      const x = high;
      const y = partials[--n]!;
      high = x + y;
      low = y - (high - x);
      if (low !== 0) break;
    }
    // Half-way between two doubles: the partials below decide which way it rounds.
    if (n > 0 && ((low < 0 && partials[n - 1]! < 0) || (low > 0 && partials[n - 1]! > 0))) {
      const y = low * 2;
      const x = high + y;
      if (y === x - high) high = x;
    }
    return high + 0;
  }
}
