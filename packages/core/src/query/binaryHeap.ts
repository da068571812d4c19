/**
 * Items kept so that the first in an order is at hand: adding costs O(log n) (O(1) on
 * average for items in random order), taking the first O(log n).
 */
export class BinaryHeap<T> {
  #items: T[] = [];
  readonly #before: (a: T, b: T) => boolean;

  /** @param before Whether `a` comes before `b`. */
  constructor(before: (a: T, b: T) => boolean) {
    this.#before = before;
  }

  get size(): number {
    return this.#items.length;
  }

  /** The first item, if any. */
  get first(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const items = this.#items;
    let index = items.length;
    items.push(item);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const above = items[parent]!;
      if (!this.#before(item, above)) break;
      items[index] = above;
      index = parent;
    }
    items[index] = item;
  }

  /** Takes the first item out. */
  pop(): T | undefined {
    const items = this.#items;
    const first = items[0];
    const last = items.pop();
    const size = items.length;
    if (size === 0 || last === undefined) return first;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= size) break;
      const right = left + 1;
      const child = right < size && this.#before(items[right]!, items[left]!) ? right : left;
      if (!this.#before(items[child]!, last)) break;
      items[index] = items[child]!;
      index = child;
    }
    items[index] = last;
    return first;
  }

  /** Every item, in no particular order. */
  items(): readonly T[] {
    return this.#items;
  }

  /** Replaces the items with `sorted`, which must be in order (a sorted array is a heap). */
  assignSorted(sorted: T[]): void {
    this.#items = sorted;
  }
}
