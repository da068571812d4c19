import type { MapChange } from '../lwwMap.js';
import type { LWWRecord } from '../lwwRecord.js';
import type { AggregateQuery, AggregateRow, AggregateValue } from './aggregateTypes.js';
import { BinaryHeap } from './binaryHeap.js';
import {
  type CompiledAggregate,
  type CompiledFigure,
  compileAggregate,
  groupKeyText,
  isRanked,
  MAX_GROUPS,
} from './compileAggregate.js';
import { tooManyGroups } from './evaluateAggregate.js';
import { ExactSum, isSummable } from './exactSum.js';
import type { LiveQueryDelta } from './liveQuery.js';
import type { QueryError } from './queryError.js';
import { SortedList } from './sortedList.js';

/** How one change affected a live aggregate's result: groups that entered, left or changed. */
export type AggregateDelta = LiveQueryDelta<AggregateValue>;

const UNCHANGED: AggregateDelta = Object.freeze({
  changed: false,
  entered: [],
  left: [],
  updated: [],
});

/**
 * A multiset kept in a heap with the values taken out of it, but not yet off its top, in a
 * second heap: a value is dropped from both once it comes first in both, and all of them at
 * once when they grow to half the first's size. Adding and taking out cost O(log n), amortized.
 */
class LazyHeap<T extends number | string> {
  readonly #held: BinaryHeap<T>;
  readonly #gone: BinaryHeap<T>;
  readonly #before: (a: T, b: T) => boolean;

  constructor(before: (a: T, b: T) => boolean) {
    this.#before = before;
    this.#held = new BinaryHeap(before);
    this.#gone = new BinaryHeap(before);
  }

  get first(): T | undefined {
    return this.#held.first;
  }

  add(value: T): void {
    this.#held.push(value);
  }

  /** Takes out one of `value`, which must be held. */
  remove(value: T): void {
    const held = this.#held;
    const gone = this.#gone;
    if (held.first !== value) {
      gone.push(value);
      if (gone.size > 64 && 2 * gone.size > held.size) this.#compact();
      return;
    }
    held.pop();
    while (gone.size > 0 && gone.first === held.first) {
      gone.pop();
      held.pop();
    }
  }

  /** Drops every value taken out. */
  #compact(): void {
    const order = (a: T, b: T) => (this.#before(a, b) ? -1 : this.#before(b, a) ? 1 : 0);
    const held = [...this.#held.items()].sort(order);
    const gone = [...this.#gone.items()].sort(order);
    const kept: T[] = [];
    let at = 0;
    for (const value of held) {
      if (at < gone.length && gone[at] === value) at++;
      else kept.push(value);
    }
    this.#held.assignSorted(kept);
    this.#gone.assignSorted([]);
  }
}

/**
 * The values a `min` or `max` ranks, numbers before strings, as many times as records hold
 * them: adding or taking out one costs O(log n), amortized.
 */
class RankedValues {
  readonly #numbers: LazyHeap<number>;
  readonly #strings: LazyHeap<string>;
  readonly #greatest: boolean;

  constructor(greatest: boolean) {
    this.#greatest = greatest;
    this.#numbers = new LazyHeap(greatest ? (a, b) => a > b : (a, b) => a < b);
    this.#strings = new LazyHeap(greatest ? (a, b) => a > b : (a, b) => a < b);
  }

  add(value: number | string): void {
    if (typeof value === 'number') this.#numbers.add(value);
    else this.#strings.add(value);
  }

  remove(value: number | string): void {
    if (typeof value === 'number') this.#numbers.remove(value);
    else this.#strings.remove(value);
  }

  /** The least value (the greatest, for a `max`). */
  get best(): number | string | null {
    return this.#greatest
      ? (this.#strings.first ?? this.#numbers.first ?? null)
      : (this.#numbers.first ?? this.#strings.first ?? null);
  }
}

/** One group's running figures. */
interface Group {
  readonly key: string;
  readonly keys: readonly unknown[];
  count: number;
  /** Per figure: the exact sum of its summed values (`sum`, `avg`). */
  readonly sums: Array<ExactSum | undefined>;
  /** Per figure: how many values it summed. */
  readonly summed: number[];
  /** Per figure: its ranked values (`min`, `max`). */
  readonly ranked: Array<RankedValues | undefined>;
  /** Its row in the result order; undefined before it is placed. */
  row: AggregateRow | undefined;
}

/**
 * A change of one record, as an aggregate may count it: the records before and after (a
 * tombstone, or none, when absent; none either when its reader may not see it). Records that
 * expire count until they do. A map's {@link MapChange} is one.
 */
export interface AggregateChange<V> {
  readonly key: string;
  readonly record: LWWRecord<V> | undefined;
  readonly previousRecord: LWWRecord<V> | undefined;
}

/** A counted record that expires: the value it was counted with, and when it expires. */
interface Expiring<V> {
  readonly value: V;
  readonly at: number;
}

/**
 * An aggregate query's result kept up to date as records change: per group, the count, the
 * exact sum and the number of summed values, and the ranked values in order, so that a
 * change costs O(1) per affected group for `count`, `sum` and `avg` and O(log n) for `min`
 * and `max`. It keeps nothing per record but those that expire: a change takes its previous
 * record's figures out and puts its new record's in, so memory grows with the groups, not
 * the records. Rows are settled when read: a change only marks its groups, and however
 * many changes come between two reads, each group touched is settled once (its row kept
 * when its figures came back to what they were). {@link delta} tells what changed since it
 * was last asked. Once {@link expire}d to `now`, its rows equal `evaluateAggregate` over
 * the records live at `now`.
 */
export class LiveAggregate<V> {
  readonly #compiled: CompiledAggregate<V>;
  readonly #matches: (value: V) => boolean;
  readonly #readers: readonly ((value: V) => unknown)[];
  readonly #figures: readonly CompiledFigure[];
  /** The groups by key text. */
  readonly #groups = new Map<string, Group>();
  /**
   * The groups whose key values are all primitive, by their values (nested, for two keys):
   * found without building their text.
   */
  readonly #byValue = new Map<unknown, unknown>();
  /** The group of every matching record, when there is no `groupBy`. */
  readonly #only: Group | undefined;
  /** Counted records that expire, by key, and when each does. */
  readonly #expiring = new Map<string, Expiring<V>>();
  readonly #expiries = new BinaryHeap<{ readonly at: number; readonly key: string }>(
    (a, b) => a.at < b.at,
  );
  /** Records that expire by then are no longer counted. */
  #now: number;
  /** Groups changed since their rows were settled. */
  readonly #dirty = new Set<Group>();
  /**
   * The groups in result order, kept when the result is limited (a change then moves groups
   * across its end); without a limit they are sorted when read (`#rows`, kept until a group
   * changes).
   */
  readonly #sorted: SortedList<AggregateRow> | undefined;
  #rows: AggregateRow[] | undefined;
  /** The result as {@link delta} last told it, by group key. */
  #shown = new Map<string, AggregateRow>();
  /** Keys of the groups whose rows changed since {@link delta} was last asked. */
  readonly #moved = new Set<string>();
  #failure: QueryError | undefined;

  /**
   * @param initial The records of the map (tombstones and expired records are skipped).
   * @param now The time: records that expire by then do not count.
   * @throws {QueryError} when the query is invalid or the records fall into too many groups.
   */
  constructor(
    query: AggregateQuery<V>,
    initial: Iterable<readonly [string, LWWRecord<V>]> = [],
    now = Date.now(),
  ) {
    const compiled = compileAggregate(query);
    this.#compiled = compiled;
    this.#matches = compiled.matches;
    this.#readers = compiled.groupReaders;
    this.#figures = compiled.figures.filter(({ kind }) => kind !== 'count');
    this.#now = now;
    if (compiled.groupNames.length === 0) this.#only = this.#newGroup([], groupKeyText([]));
    for (const [key, record] of initial) {
      const value = this.#counted(key, record);
      if (value === undefined) continue;
      this.#enter(this.#groupOf(value, true)!, value);
    }
    for (const group of this.#groups.values()) group.row = this.#rowOf(group);
    if (Number.isFinite(compiled.limit)) {
      this.#sorted = new SortedList(compiled.compare);
      this.#sorted.assignSorted(this.#sortedRows());
    }
    for (const row of this.rows) this.#shown.set(row.key, row);
  }

  /** The result: the first `limit` groups. */
  get rows(): AggregateRow[] {
    this.#settle();
    if (this.#sorted !== undefined)
      return this.#sorted.sliceMapped(0, this.#compiled.limit, (row) => row);
    this.#rows ??= this.#sortedRows();
    return [...this.#rows];
  }

  /** How many groups the matching records fall into. */
  get groupCount(): number {
    return this.#groups.size;
  }

  /**
   * Applies one record change; whether it changed a group (whose figures may still have come
   * back to what they were: {@link delta} tells).
   * @throws {QueryError} (path `groupBy`) once the records fall into more than 10,000
   *   groups: the aggregate stops there, and every later change throws it too.
   */
  apply(change: AggregateChange<V>): boolean {
    if (this.#failure !== undefined) throw this.#failure;
    const { key, record, previousRecord: previous } = change;
    // What was counted: an expiring record as it was kept (its change may have gone
    // untold once it had expired), any other as its change says.
    let before: V | undefined;
    const expiring = this.#expiring.size > 0 ? this.#expiring.get(key) : undefined;
    if (expiring !== undefined) {
      before = expiring.value;
      this.#expiring.delete(key);
    } else if (
      previous !== undefined &&
      previous.ttlMs === undefined &&
      previous.value !== null &&
      this.#matches(previous.value)
    )
      before = previous.value;
    const after = record === undefined ? undefined : this.#counted(key, record);
    if (before === undefined && after === undefined) return false;
    const from = before === undefined ? undefined : this.#groupOf(before, false)!;
    const to = after === undefined ? undefined : this.#groupOf(after, true, from);
    if (from === to) return this.#shift(from!, before!, after!);
    if (to !== undefined) this.#enter(to, after!);
    if (from !== undefined) this.#leave(from, before!);
    return true;
  }

  /**
   * Stops counting the records that expire by `now`; whether a group changed. Changes
   * applied later count a record only if it expires after the latest `now`.
   */
  expire(now: number): boolean {
    if (now <= this.#now) return false;
    this.#now = now;
    let changed = false;
    const expiries = this.#expiries;
    while (expiries.first !== undefined && expiries.first.at <= now) {
      const due = expiries.pop()!;
      const expiring = this.#expiring.get(due.key);
      if (expiring === undefined || expiring.at !== due.at) continue;
      this.#expiring.delete(due.key);
      this.#leave(this.#groupOf(expiring.value, false)!, expiring.value);
      changed = true;
    }
    return changed;
  }

  /** When the next counted record expires (or a little before), if one does. */
  get nextExpiry(): number | undefined {
    return this.#expiries.first?.at;
  }

  /**
   * How the result changed since this was last asked (or since it was built): the groups
   * that entered it, left it, or stayed with new figures.
   */
  delta(): AggregateDelta {
    this.#settle();
    const entered: AggregateRow[] = [];
    const left: string[] = [];
    const updated: AggregateRow[] = [];
    if (this.#sorted === undefined) {
      // Unlimited: only the groups whose rows changed can differ.
      for (const key of this.#moved) {
        const was = this.#shown.get(key);
        const now = this.#groups.get(key)?.row;
        if (was === now) continue;
        if (now === undefined) {
          left.push(key);
          this.#shown.delete(key);
        } else {
          (was === undefined ? entered : updated).push(now);
          this.#shown.set(key, now);
        }
      }
    } else {
      // Limited: groups also cross the end of the window as others move.
      const shown = new Map<string, AggregateRow>();
      for (const row of this.rows) {
        shown.set(row.key, row);
        const was = this.#shown.get(row.key);
        if (was === undefined) entered.push(row);
        else if (was !== row) updated.push(row);
      }
      for (const key of this.#shown.keys()) if (!shown.has(key)) left.push(key);
      this.#shown = shown;
    }
    this.#moved.clear();
    if (entered.length === 0 && left.length === 0 && updated.length === 0) return UNCHANGED;
    return { changed: true, entered, left, updated };
  }

  #sortedRows(): AggregateRow[] {
    const rows: AggregateRow[] = [];
    for (const group of this.#groups.values()) rows.push(group.row!);
    return rows.sort(this.#compiled.compare);
  }

  /**
   * Settles the rows of the groups changed since the last time: a new row when its figures
   * changed (moved in the result order), none when it lost its last record (it was dropped
   * then). Every old row leaves the order before any new one enters it: a group dropped and
   * made again under the same key has two rows that compare equal.
   */
  #settle(): void {
    if (this.#dirty.size === 0) return;
    const grouped = this.#compiled.groupNames.length > 0;
    const entering: AggregateRow[] = [];
    for (const group of this.#dirty) {
      const before = group.row;
      let after: AggregateRow | undefined;
      if (!grouped || group.count > 0) {
        after = this.#rowOf(group);
        if (before !== undefined && sameFigures(before, after, this.#compiled)) continue;
      }
      group.row = after;
      if (before !== undefined) this.#sorted?.remove(before);
      if (after !== undefined) entering.push(after);
      this.#moved.add(group.key);
      this.#rows = undefined;
    }
    if (this.#sorted !== undefined) for (const row of entering) this.#sorted.insert(row);
    this.#dirty.clear();
  }

  /**
   * The value a record counts with, if it counts: live (expiring after {@link #now}, kept
   * then) and matching.
   */
  #counted(key: string, record: LWWRecord<V>): V | undefined {
    const value = record.value;
    if (value === null || !this.#matches(value)) return undefined;
    if (record.ttlMs !== undefined) {
      const at = record.timestamp.millis + record.ttlMs;
      if (at <= this.#now) return undefined;
      this.#expiring.set(key, { value, at });
      this.#expiries.push({ at, key });
      // Entries of records changed since pile up in the queue: dropped once they outnumber
      // the records that expire.
      if (this.#expiries.size > 2 * this.#expiring.size + 1024) {
        const current = this.#expiries
          .items()
          .filter((due) => this.#expiring.get(due.key)?.at === due.at)
          .sort((a, b) => a.at - b.at);
        this.#expiries.assignSorted(current);
      }
    }
    return value;
  }

  /**
   * The group of a counted value: found, or made when `create` (unless the records would
   * then fall into too many groups; `freeing` may lose its last record meanwhile).
   */
  #groupOf(value: V, create: boolean, freeing?: Group): Group | undefined {
    if (this.#only !== undefined) return this.#only;
    const readers = this.#readers;
    const first = readers[0]!(value);
    const second = readers.length > 1 ? readers[1]!(value) : undefined;
    const primitive = !isObject(first) && !isObject(second);
    let group: Group | undefined;
    if (primitive) {
      const level = this.#byValue.get(first);
      group = (
        readers.length > 1 ? (level as Map<unknown, Group> | undefined)?.get(second) : level
      ) as Group | undefined;
    } else group = this.#groups.get(groupKeyText(readers.length > 1 ? [first, second] : [first]));
    if (group !== undefined || !create) return group;
    const freed = freeing !== undefined && freeing.count === 1 ? 1 : 0;
    if (this.#groups.size - freed >= MAX_GROUPS) {
      this.#failure = tooManyGroups();
      throw this.#failure;
    }
    const keys = readers.length > 1 ? [first, second] : [first];
    group = this.#newGroup(keys, groupKeyText(keys));
    if (primitive) {
      if (readers.length === 1) this.#byValue.set(first, group);
      else {
        let level = this.#byValue.get(first) as Map<unknown, Group> | undefined;
        if (level === undefined) {
          level = new Map();
          this.#byValue.set(first, level);
        }
        level.set(second, group);
      }
    }
    return group;
  }

  #newGroup(keys: readonly unknown[], text: string): Group {
    const { figures } = this.#compiled;
    const group: Group = {
      key: text,
      keys,
      count: 0,
      sums: figures.map(({ kind }) =>
        kind === 'sum' || kind === 'avg' ? new ExactSum() : undefined,
      ),
      summed: figures.map(() => 0),
      ranked: figures.map(({ kind }) =>
        kind === 'min' || kind === 'max' ? new RankedValues(kind === 'max') : undefined,
      ),
      row: undefined,
    };
    this.#groups.set(text, group);
    return group;
  }

  /** A counted value joins `group`. */
  #enter(group: Group, value: V): void {
    group.count++;
    this.#dirty.add(group);
    const figures = this.#figures;
    for (let index = 0; index < figures.length; index++) {
      const figure = figures[index]!;
      this.#add(group, figure, figure.read(value), 1);
    }
  }

  /** A counted value leaves `group`: the group is dropped (at once, for the group limit) when empty. */
  #leave(group: Group, value: V): void {
    group.count--;
    this.#dirty.add(group);
    const figures = this.#figures;
    for (let index = 0; index < figures.length; index++) {
      const figure = figures[index]!;
      this.#add(group, figure, figure.read(value), -1);
    }
    if (group.count === 0 && this.#only === undefined) this.#drop(group);
  }

  /** A counted record changed within its group: only the figures of fields that changed move. */
  #shift(group: Group, before: V, after: V): boolean {
    let changed = false;
    const figures = this.#figures;
    for (let index = 0; index < figures.length; index++) {
      const figure = figures[index]!;
      const was = figure.read(before);
      const is = figure.read(after);
      if (Object.is(was, is)) continue;
      this.#add(group, figure, was, -1);
      this.#add(group, figure, is, 1);
      changed = true;
    }
    if (changed) this.#dirty.add(group);
    return changed;
  }

  /** Adds a field to a figure of the group (`sign` 1), or takes it out (-1). */
  #add(group: Group, figure: CompiledFigure, field: unknown, sign: 1 | -1): void {
    const index = figure.index;
    const sum = group.sums[index];
    if (sum !== undefined) {
      if (!isSummable(field)) return;
      if (sign > 0) sum.add(field);
      else sum.remove(field);
      group.summed[index]! += sign;
    } else if (isRanked(field)) {
      const ranked = group.ranked[index]!;
      if (sign > 0) ranked.add(field);
      else ranked.remove(field);
    }
  }

  #drop(group: Group): void {
    this.#groups.delete(group.key);
    const [first, second] = group.keys;
    if (isObject(first) || isObject(second)) return;
    if (this.#readers.length === 1) this.#byValue.delete(first);
    else {
      const level = this.#byValue.get(first) as Map<unknown, Group>;
      level.delete(second);
      if (level.size === 0) this.#byValue.delete(first);
    }
  }

  #rowOf(group: Group): AggregateRow {
    const { groupNames, figures } = this.#compiled;
    const value: Record<string, unknown> = {};
    for (let index = 0; index < groupNames.length; index++)
      value[groupNames[index]!] = group.keys[index];
    for (let index = 0; index < figures.length; index++) {
      const { name, kind } = figures[index]!;
      if (kind === 'count') value[name] = group.count;
      else if (kind === 'sum') value[name] = group.sums[index]!.value;
      else if (kind === 'avg') {
        const summed = group.summed[index]!;
        value[name] = summed === 0 ? null : group.sums[index]!.value / summed;
      } else {
        value[name] = group.ranked[index]!.best;
      }
    }
    return { key: group.key, value: value as AggregateValue };
  }
}

function isObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null;
}

function sameFigures<V>(a: AggregateRow, b: AggregateRow, compiled: CompiledAggregate<V>): boolean {
  const left = a.value as Record<string, unknown>;
  const right = b.value as Record<string, unknown>;
  return compiled.figures.every(({ name }) => Object.is(left[name], right[name]));
}
