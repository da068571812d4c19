import { compareValues } from '../compareValues.js';
import type { AggregateQuery, AggregateRow, AggregateValue } from './aggregateTypes.js';
import {
  type CompiledAggregate,
  compileAggregate,
  groupKeyText,
  isRanked,
  MAX_GROUPS,
} from './compileAggregate.js';
import { tooManyGroups } from './evaluateAggregate.js';
import { ExactSum, isSummable } from './exactSum.js';
import { readField } from './fieldPath.js';
import type { LiveQueryDelta, RecordChange } from './liveQuery.js';
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

/** Numbers in order, then strings: the value order of what `min` and `max` rank. */
const byValue = (a: number | string, b: number | string) =>
  typeof a === 'number' && typeof b === 'number' ? a - b : compareValues(a, b);

/**
 * The values a `min` or `max` ranks, each once with how many records hold it: a change costs
 * a count when the value is held already, O(log n) of the distinct values otherwise.
 */
class RankedValues {
  readonly #counts = new Map<number | string, number>();
  readonly #order = new SortedList<number | string>(byValue);

  add(value: number | string): void {
    const count = this.#counts.get(value);
    this.#counts.set(value, (count ?? 0) + 1);
    if (count === undefined) this.#order.insert(value);
  }

  remove(value: number | string): void {
    const count = this.#counts.get(value)!;
    if (count > 1) this.#counts.set(value, count - 1);
    else {
      this.#counts.delete(value);
      this.#order.remove(value);
    }
  }

  get least(): number | string | null {
    return this.#order.first() ?? null;
  }

  get greatest(): number | string | null {
    return this.#order.last() ?? null;
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

/** What one matching record contributes: its group, and the field each figure read. */
interface Contribution {
  group: Group;
  fields: readonly unknown[];
}

/**
 * An aggregate query's result kept up to date as records change: per group, the count, the
 * exact sum and the number of summed values, and the ranked values in order, so that a
 * change costs O(1) per affected group for `count`, `sum` and `avg` and O(log n) for `min`
 * and `max`. Rows are settled when read: a change only marks its groups, and however many
 * changes come between two reads, each group touched is settled once (its row kept when its
 * figures came back to what they were). {@link delta} tells what changed since it was last
 * asked. Its rows always equal `evaluateAggregate` over the current records.
 */
export class LiveAggregate<V> {
  readonly #compiled: CompiledAggregate<V>;
  readonly #groups = new Map<string, Group>();
  readonly #records = new Map<string, Contribution>();
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
   * @param initial The current records.
   * @throws {QueryError} when the query is invalid or the records fall into too many groups.
   */
  constructor(query: AggregateQuery<V>, initial: Iterable<readonly [string, V]> = []) {
    const compiled = compileAggregate(query);
    this.#compiled = compiled;
    if (compiled.groupNames.length === 0) this.#groupFor([], groupKeyText([]));
    for (const [key, value] of initial) {
      if (!compiled.matches(value)) continue;
      const keys = compiled.groupOf(value);
      const group = this.#groupFor(keys, groupKeyText(keys));
      const fields = this.#fieldsOf(value);
      this.#count(group, fields, 1);
      group.count++;
      this.#records.set(key, { group, fields });
      if (this.#groups.size > MAX_GROUPS) throw tooManyGroups();
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
  apply(change: RecordChange<V>): boolean {
    if (this.#failure !== undefined) throw this.#failure;
    const { key, value } = change;
    const compiled = this.#compiled;
    const previous = this.#records.get(key);
    const matches = value !== undefined && compiled.matches(value);
    if (previous === undefined && !matches) return false;
    if (!matches) {
      // It leaves.
      const { group, fields } = previous!;
      this.#records.delete(key);
      this.#count(group, fields, -1);
      this.#leave(group);
      return true;
    }
    const keys = compiled.groupOf(value);
    const fields = this.#fieldsOf(value);
    if (previous !== undefined && sameKeys(previous.group.keys, keys)) {
      // It stays in its group (most changes): only the figures of fields that changed move.
      const { group, fields: before } = previous;
      if (sameFields(before, fields)) return false;
      this.#count(group, before, -1, fields);
      this.#count(group, fields, 1, before);
      previous.fields = fields;
      this.#dirty.add(group);
      return true;
    }
    const text = groupKeyText(keys);
    let next = this.#groups.get(text);
    if (next === undefined) {
      const freed = previous !== undefined && previous.group.count === 1 ? 1 : 0;
      if (this.#groups.size - freed >= MAX_GROUPS) {
        this.#failure = tooManyGroups();
        throw this.#failure;
      }
      next = this.#groupFor(keys, text);
    }
    this.#count(next, fields, 1);
    next.count++;
    this.#dirty.add(next);
    if (previous === undefined) {
      this.#records.set(key, { group: next, fields });
      return true;
    }
    const from = previous.group;
    this.#count(from, previous.fields, -1);
    this.#leave(from);
    previous.group = next;
    previous.fields = fields;
    return true;
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

  /** A record left `group`: the group is dropped (at once, for the group limit) when empty. */
  #leave(group: Group): void {
    group.count--;
    this.#dirty.add(group);
    if (group.count === 0 && this.#compiled.groupNames.length > 0) this.#groups.delete(group.key);
  }

  #groupFor(keys: readonly unknown[], text: string): Group {
    let group = this.#groups.get(text);
    if (group === undefined) {
      const { figures } = this.#compiled;
      group = {
        key: text,
        keys,
        count: 0,
        sums: figures.map(({ kind }) =>
          kind === 'sum' || kind === 'avg' ? new ExactSum() : undefined,
        ),
        summed: figures.map(() => 0),
        ranked: figures.map(({ kind }) =>
          kind === 'min' || kind === 'max' ? new RankedValues() : undefined,
        ),
        row: undefined,
      };
      this.#groups.set(text, group);
    }
    return group;
  }

  /** The field each figure reads of `value` (none for `count`s alone). */
  #fieldsOf(value: V): unknown[] {
    const { figures, readsFields } = this.#compiled;
    if (!readsFields) return NO_FIELDS;
    const fields = new Array<unknown>(figures.length);
    for (let index = 0; index < figures.length; index++) {
      const { kind, segments } = figures[index]!;
      if (kind !== 'count') fields[index] = readField(value, segments);
    }
    return fields;
  }

  /**
   * Adds a record's fields to its group's figures (`sign` 1), or takes them out (-1), but
   * those equal in `except`.
   */
  #count(
    group: Group,
    fields: readonly unknown[],
    sign: 1 | -1,
    except?: readonly unknown[],
  ): void {
    for (let index = 0; index < fields.length; index++) {
      const field = fields[index];
      if (except !== undefined && Object.is(field, except[index])) continue;
      const sum = group.sums[index];
      if (sum !== undefined) {
        if (!isSummable(field)) continue;
        if (sign > 0) sum.add(field);
        else sum.remove(field);
        group.summed[index]! += sign;
      } else if (isRanked(field)) {
        const ranked = group.ranked[index]!;
        if (sign > 0) ranked.add(field);
        else ranked.remove(field);
      }
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
        const ranked = group.ranked[index]!;
        value[name] = kind === 'min' ? ranked.least : ranked.greatest;
      }
    }
    return { key: group.key, value: value as AggregateValue };
  }
}

const NO_FIELDS: unknown[] = [];

/** Whether a record's fields are the same as before (the same values, as `Object.is` sees). */
function sameFields(a: readonly unknown[], b: readonly unknown[]): boolean {
  for (let index = 0; index < a.length; index++) if (!Object.is(a[index], b[index])) return false;
  return true;
}

/** Whether two lists of group key values are equal (as `eq` compares). */
function sameKeys(a: readonly unknown[], b: readonly unknown[]): boolean {
  for (let index = 0; index < a.length; index++)
    if (a[index] !== b[index] && compareValues(a[index], b[index]) !== 0) return false;
  return true;
}

function sameFigures<V>(a: AggregateRow, b: AggregateRow, compiled: CompiledAggregate<V>): boolean {
  const left = a.value as Record<string, unknown>;
  const right = b.value as Record<string, unknown>;
  return compiled.figures.every(({ name }) => Object.is(left[name], right[name]));
}
