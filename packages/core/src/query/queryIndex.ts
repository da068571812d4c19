import { LiveQuery, type RecordChange } from './liveQuery.js';
import type { Query, QueryRow } from './queryTypes.js';
import type { Slicer } from './sortInSlices.js';

/** Where one record change moved its row in a {@link QueryIndex}. */
export interface IndexMove<V> {
  readonly key: string;
  /** Its position before the change; -1 when it did not match. */
  readonly from: number;
  /** Its position after the change; -1 when it no longer matches. */
  readonly to: number;
  /** Its row after the change, when it matches. */
  readonly row: QueryRow<V> | undefined;
}

/** How one {@link IndexMove} changed a window of the index. */
export interface WindowChange<V> {
  readonly entered: readonly QueryRow<V>[];
  readonly left: readonly string[];
  /** Rows that stayed in the window with a new value (or a new place in it). */
  readonly updated: readonly QueryRow<V>[];
}

/** The part of a query an index is built for: what matches, in which order, projected how. */
export type IndexedQuery<V> = Omit<Query<V>, 'limit' | 'offset'>;

/**
 * Every record matching a query, in the query's order, kept as records change: the index a
 * server shares between all the subscriptions to one query (whatever their `limit`), each
 * of which holds a window `[start, end)` of it and learns its window's changes from
 * {@link windowChange}. Built in slices like a {@link LiveQuery}.
 */
export class QueryIndex<V> extends LiveQuery<V> {
  /**
   * Builds the index of `query` (its `limit` and `offset` are ignored) in slices.
   * @param maxRows Stop, resolving `undefined`, as soon as more records than this match.
   * @throws {QueryError} when the query is invalid.
   */
  static async buildIndex<V>(
    query: IndexedQuery<V>,
    initial: Iterable<readonly [string, V]>,
    slicer: Slicer,
    maxRows = Number.POSITIVE_INFINITY,
  ): Promise<QueryIndex<V> | undefined> {
    const { where, sort, fields } = query;
    const index = new QueryIndex<V>({
      ...(where === undefined ? {} : { where }),
      ...(sort === undefined ? {} : { sort }),
      ...(fields === undefined ? {} : { fields }),
    });
    return (await index.fill(initial, slicer, maxRows)) ? index : undefined;
  }

  /** Applies one record change; undefined when the record neither matched nor matches. */
  move(change: RecordChange<V>): IndexMove<V> | undefined {
    const { key, value } = change;
    const previous = this.entries.get(key);
    const matches = value !== undefined && this.compiled.matches(value);
    if (previous === undefined && !matches) return undefined;
    const { entry, oldIndex, newIndex } = this.reposition(
      key,
      previous,
      matches ? value : undefined,
    );
    return { key, from: oldIndex, to: newIndex, row: entry?.row };
  }

  /** The rows at positions `start` (inclusive) to `end` (exclusive). */
  rowsBetween(start: number, end: number): QueryRow<V>[] {
    return this.sorted.sliceMapped(start, end, (entry) => entry.row);
  }

  /** The row at `position`, if there is one. */
  rowAt(position: number): QueryRow<V> | undefined {
    return this.sorted.sliceMapped(position, position + 1, (entry) => entry.row)[0];
  }
}

const NOTHING: WindowChange<never> = Object.freeze({ entered: [], left: [], updated: [] });

/**
 * How a move changed the window `[start, end)` of an index (read after the move). Every
 * other row shifts by at most one place, so only those now at `start - 1`, `start`,
 * `end - 1` and `end` can have crossed an edge: a change costs a few lookups per window,
 * whatever its size.
 */
export function windowChange<V>(
  index: Pick<QueryIndex<V>, 'rowAt'>,
  start: number,
  end: number,
  move: IndexMove<V>,
): WindowChange<V> {
  const { from, to, key } = move;
  // Past the window's end, or a removal and an insertion both before its start: no row of
  // the window moves.
  const after = (position: number) => position < 0 || position >= end;
  if ((after(from) && after(to)) || (from >= 0 && to >= 0 && from < start && to < start))
    return NOTHING;
  const inWindow = (position: number) => position >= start && position < end;
  const entered: QueryRow<V>[] = [];
  const left: string[] = [];
  const updated: QueryRow<V>[] = [];
  if (inWindow(from) && inWindow(to)) updated.push(move.row!);
  else if (inWindow(from)) left.push(key);
  else if (inWindow(to)) entered.push(move.row!);

  const candidates = new Set([start - 1, start, end - 1, end]);
  for (const now of candidates) {
    const row = now >= 0 && Number.isFinite(now) ? index.rowAt(now) : undefined;
    if (row === undefined || row.key === key) continue;
    // Its place before: undo the insertion, then the removal.
    const beforeInsertion = to >= 0 && now > to ? now - 1 : now;
    const before = from >= 0 && beforeInsertion >= from ? beforeInsertion + 1 : beforeInsertion;
    if (inWindow(now) && !inWindow(before)) entered.push(row);
    else if (!inWindow(now) && inWindow(before)) left.push(row.key);
  }
  return { entered, left, updated };
}
