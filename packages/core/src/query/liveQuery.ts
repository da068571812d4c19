import { type CompiledQuery, compileQuery, type SortableRow } from './compileQuery.js';
import type { Query, QueryRow } from './queryTypes.js';
import { SortedList } from './sortedList.js';
import { type Slicer, sortInSlices } from './sortInSlices.js';

/** A change of one record, as the maintainer consumes it (an `LWWMap` change fits). */
export interface RecordChange<V> {
  readonly key: string;
  /** The visible value after the change; `undefined` when the record is now absent. */
  readonly value: V | undefined;
}

/** How one change affected a live query's result. */
export interface LiveQueryDelta<V> {
  /** Whether the visible result (rows, their order or values) changed. */
  readonly changed: boolean;
  /** Rows that entered the result. */
  readonly entered: readonly QueryRow<V>[];
  /** Keys of rows that left the result. */
  readonly left: readonly string[];
  /** Rows that stayed with a new value. */
  readonly updated: readonly QueryRow<V>[];
}

const UNCHANGED: LiveQueryDelta<never> = Object.freeze({
  changed: false,
  entered: [],
  left: [],
  updated: [],
});

export interface Entry<V> extends SortableRow<V> {
  readonly row: QueryRow<V>;
}

const rowOf = <V>(entry: Entry<V>): QueryRow<V> => entry.row;

/**
 * Maintains a query's result incrementally as records change: every matching record is
 * kept in a sorted index (binary search, then insertion), the result is a window of it, and
 * a row leaving a limited window is replaced from the index. `rows` keeps its identity until
 * the result really changes, so it can serve as a React snapshot. A server builds large ones
 * in slices with {@link LiveQuery.build}.
 */
export class LiveResult<V> {
  /** The query, the index of its matching records in order, and their entries by key. */
  protected readonly compiled: CompiledQuery<V>;
  protected readonly sorted: SortedList<Entry<V>>;
  protected readonly entries = new Map<string, Entry<V>>();
  #window: readonly QueryRow<V>[] = [];
  /**
   * Whether `window` lags the index: a whole result, or a grown window, is copied when read,
   * not per change or per growth.
   */
  #windowStale = false;
  /** The window's length: the query's `limit`, until {@link setLimit} grows it. */
  #limit: number;

  /**
   * @param query The query; validated here.
   * @param initial The records to start from, e.g. `map.entries()`.
   * @throws {QueryError} when the query is invalid.
   */
  constructor(query: Query<V>, initial: Iterable<readonly [string, V]> = []) {
    this.compiled = compileQuery(query);
    this.#limit = this.compiled.limit;
    this.sorted = new SortedList<Entry<V>>(this.compiled.compare);
    const matching: Entry<V>[] = [];
    for (const [key, value] of initial) this.collect(key, value, matching);
    matching.sort(this.compiled.compare);
    this.settle(matching);
  }

  /** The current result rows, in order. The same array until the result changes. */
  get rows(): readonly QueryRow<V>[] {
    if (this.#windowStale) {
      this.#windowStale = false;
      this.#window = this.#sliceWindow();
    }
    return this.#window;
  }

  /** Number of matching records, before `offset` and `limit`. */
  get matchingCount(): number {
    return this.sorted.length;
  }

  /** Number of rows in the result (what reading `rows` after a change copies). */
  get resultSize(): number {
    return Math.max(0, Math.min(this.sorted.length - this.compiled.offset, this.#limit));
  }

  /** Applies one record change and reports its effect on the result. */
  apply(change: RecordChange<V>): LiveQueryDelta<V> {
    const { key, value } = change;
    const previous = this.entries.get(key);
    const matches = value !== undefined && this.compiled.matches(value);
    if (previous === undefined && !matches) return UNCHANGED;

    const { offset } = this.compiled;
    const limit = this.#limit;
    const end = offset + limit;
    const wholeResult = offset === 0 && limit === Number.POSITIVE_INFINITY;
    // A limited window is compared with what it was: read (copied, if it lags) before the
    // index changes.
    const before = wholeResult ? [] : this.rows;
    const { entry, oldIndex, newIndex } = this.reposition(
      key,
      previous,
      matches ? value : undefined,
    );
    // Removal and insertion both past the window's end leave the window as it was.
    const touchesWindow = (oldIndex >= 0 && oldIndex < end) || (newIndex >= 0 && newIndex < end);
    if (!touchesWindow) return UNCHANGED;

    if (wholeResult) return this.#applyToWholeResult(previous, entry);
    return this.#diffWindow(before);
  }

  /**
   * Moves `key` in the index: out of its old place (`previous`), into its new one if it
   * matches (`value`). Positions are -1 where it was not, or is not, in the index.
   */
  protected reposition(
    key: string,
    previous: Entry<V> | undefined,
    value: V | undefined,
  ): { entry: Entry<V> | undefined; oldIndex: number; newIndex: number } {
    let oldIndex = -1;
    if (previous !== undefined) {
      oldIndex = this.sorted.remove(previous);
      this.entries.delete(key);
    }
    let newIndex = -1;
    let entry: Entry<V> | undefined;
    if (value !== undefined) {
      entry = this.#createEntry(key, value);
      newIndex = this.sorted.insert(entry);
      this.entries.set(key, entry);
    }
    return { entry, oldIndex, newIndex };
  }

  /**
   * With no offset and no limit the window is the index, so only `key` can change. The rows
   * are copied from the index when next read: a stream of changes (a first sync) costs one
   * copy per read, not one per change.
   */
  #applyToWholeResult(
    previous: Entry<V> | undefined,
    entry: Entry<V> | undefined,
  ): LiveQueryDelta<V> {
    this.#windowStale = true;
    if (previous === undefined) return { ...UNCHANGED, changed: true, entered: [entry!.row] };
    if (entry === undefined) return { ...UNCHANGED, changed: true, left: [previous.key] };
    return { ...UNCHANGED, changed: true, updated: [entry.row] };
  }

  #diffWindow(before: readonly QueryRow<V>[]): LiveQueryDelta<V> {
    const after = this.#sliceWindow();
    const beforeByKey = new Map(before.map((row) => [row.key, row]));
    const afterKeys = new Set(after.map((row) => row.key));
    const entered: QueryRow<V>[] = [];
    const updated: QueryRow<V>[] = [];
    for (const row of after) {
      const old = beforeByKey.get(row.key);
      if (old === undefined) entered.push(row);
      else if (old !== row) updated.push(row);
    }
    const left = before.filter((row) => !afterKeys.has(row.key)).map((row) => row.key);
    // A row that moved has a new value: it is in `updated`.
    const changed = entered.length + left.length + updated.length > 0;
    if (!changed) return UNCHANGED;
    this.#window = after;
    return { changed, entered, left, updated };
  }

  #sliceWindow(): readonly QueryRow<V>[] {
    const { offset } = this.compiled;
    return this.sorted.sliceMapped(offset, offset + this.#limit, rowOf);
  }

  /** The window's length (`limit`, as {@link setLimit} may have grown it). */
  get limit(): number {
    return this.#limit;
  }

  /**
   * Grows the window to `limit` rows: the rows after its old last row enter. A window only
   * grows (a page loaded stays loaded); a smaller `limit` changes nothing.
   */
  setLimit(limit: number): LiveQueryDelta<V> {
    if (!(limit > this.#limit)) return UNCHANGED;
    const { offset } = this.compiled;
    const entered = this.sorted.sliceMapped(offset + this.#limit, offset + limit, rowOf);
    this.#limit = limit;
    if (entered.length === 0) return UNCHANGED;
    // The whole window is copied when next read, not here: a window grown a row at a time
    // costs the rows that enter, not the square of its size.
    this.#windowStale = true;
    return { ...UNCHANGED, changed: true, entered };
  }

  /** Adds the record to `matching` (and to the result's entries) if it matches. */
  protected collect(key: string, value: V, matching: Entry<V>[]): void {
    if (!this.compiled.matches(value)) return;
    const entry = this.#createEntry(key, value);
    matching.push(entry);
    this.entries.set(key, entry);
  }

  /** Makes `matching`, sorted, the whole index. */
  protected settle(matching: Entry<V>[]): void {
    this.sorted.assignSorted(matching);
    // Copied when first read: an index of a whole map is never read as one window.
    this.#windowStale = true;
  }

  #createEntry(key: string, value: V): Entry<V> {
    const { sortValuesOf, toRow } = this.compiled;
    return { key, value, sortValues: sortValuesOf(value), row: toRow(key, value) };
  }
}

/**
 * A {@link LiveResult} that can also be built in slices, as a server builds one for each
 * subscription. Kept apart so that a client, which only maintains results, does not carry
 * the sliced build and its sort in its bundle.
 */
export class LiveQuery<V> extends LiveResult<V> {
  /**
   * Builds a live query like the constructor, but in slices: `slicer.due()` is checked every
   * 16 records (one record may cost a whole query's conditions) and `slicer.pause()` awaited
   * when it says so, so that a large map never holds the caller's thread (a server's event
   * loop) for long.
   * @param maxRows Stop, resolving `undefined`, as soon as more records than this match.
   * @throws {QueryError} when the query is invalid.
   */
  static async build<V>(
    query: Query<V>,
    initial: Iterable<readonly [string, V]>,
    slicer: Slicer,
    maxRows = Number.POSITIVE_INFINITY,
  ): Promise<LiveQuery<V> | undefined> {
    const live = new LiveQuery<V>(query);
    return (await live.fill(initial, slicer, maxRows)) ? live : undefined;
  }

  /** Fills an empty live query in slices ({@link build}); false when more than `maxRows` match. */
  protected async fill(
    initial: Iterable<readonly [string, V]>,
    slicer: Slicer,
    maxRows: number,
  ): Promise<boolean> {
    const matching: Entry<V>[] = [];
    let since = 0;
    for (const [key, value] of initial) {
      this.collect(key, value, matching);
      if (matching.length > maxRows) return false;
      if (++since >= 16) {
        since = 0;
        if (slicer.due()) await slicer.pause();
      }
    }
    await sortInSlices(matching, this.compiled.compare, slicer);
    this.settle(matching);
    return true;
  }
}
