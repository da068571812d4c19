/** Largest block before it is split in two. */
const MAX_BLOCK = 256;

/**
 * A sorted sequence kept as a list of sorted blocks of at most 256 items. Inserting or
 * removing moves at most one block's items instead of the whole sequence, which keeps a
 * live query's index fast at tens of thousands of rows (a flat array's `splice` moves every
 * following item, with a GC write barrier each).
 */
export class SortedList<T> {
  #blocks: T[][] = [];
  #size = 0;

  readonly #compare: (a: T, b: T) => number;

  /** @param compare A strict total order: distinct items never compare 0. */
  constructor(compare: (a: T, b: T) => number) {
    this.#compare = compare;
  }

  /** Replaces the contents with `items`, which must already be sorted. */
  assignSorted(items: readonly T[]): void {
    this.#blocks = [];
    for (let start = 0; start < items.length; start += MAX_BLOCK / 2) {
      this.#blocks.push(items.slice(start, start + MAX_BLOCK / 2));
    }
    this.#size = items.length;
  }

  /** Number of items. */
  get length(): number {
    return this.#size;
  }

  /** The least item, if any. */
  first(): T | undefined {
    return this.#blocks[0]?.[0];
  }

  /** The greatest item, if any. */
  last(): T | undefined {
    return this.#blocks.at(-1)?.at(-1);
  }

  /** Inserts `item` and returns its index. */
  insert(item: T): number {
    if (this.#blocks.length === 0) {
      this.#blocks.push([item]);
      this.#size = 1;
      return 0;
    }
    const blockIndex = Math.min(this.#blockFor(item), this.#blocks.length - 1);
    const block = this.#blocks[blockIndex]!;
    const index = this.#lowerBound(block, item);
    block.splice(index, 0, item);
    this.#size++;
    const position = this.#offsetOf(blockIndex) + index;
    if (block.length > MAX_BLOCK) {
      this.#blocks.splice(blockIndex + 1, 0, block.splice(MAX_BLOCK / 2));
    }
    return position;
  }

  /** Removes `item`, which must be present, and returns the index it had. */
  remove(item: T): number {
    const blockIndex = this.#blockFor(item);
    const block = this.#blocks[blockIndex];
    const index = block === undefined ? -1 : this.#lowerBound(block, item);
    if (block === undefined || index >= block.length || this.#compare(block[index]!, item) !== 0) {
      throw new Error('SortedList.remove: the item is not in the list');
    }
    const position = this.#offsetOf(blockIndex) + index;
    block.splice(index, 1);
    this.#size--;
    if (block.length === 0) this.#blocks.splice(blockIndex, 1);
    return position;
  }

  /** The items at indexes `start` (inclusive) to `end` (exclusive), through `map`. */
  sliceMapped<R>(start: number, end: number, map: (item: T) => R): R[] {
    const result: R[] = [];
    let offset = 0;
    for (const block of this.#blocks) {
      if (offset >= end) break;
      const next = offset + block.length;
      if (next > start) {
        const from = Math.max(0, start - offset);
        const to = Math.min(block.length, end - offset);
        for (let index = from; index < to; index++) result.push(map(block[index]!));
      }
      offset = next;
    }
    return result;
  }

  /** Index of the first block whose last item orders at or after `item` (blocks.length if none). */
  #blockFor(item: T): number {
    let low = 0;
    let high = this.#blocks.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const block = this.#blocks[middle]!;
      if (this.#compare(block[block.length - 1]!, item) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  #lowerBound(block: readonly T[], item: T): number {
    let low = 0;
    let high = block.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#compare(block[middle]!, item) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  #offsetOf(blockIndex: number): number {
    let offset = 0;
    for (let index = 0; index < blockIndex; index++) offset += this.#blocks[index]!.length;
    return offset;
  }
}
