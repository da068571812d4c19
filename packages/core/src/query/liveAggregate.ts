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
import { type IndexMove, windowChange } from './queryIndex.js';
import { SortedList } from './sortedList.js';

/** How one change affected a live aggregate's result: groups that entered, left or changed. */
export type AggregateDelta = LiveQueryDelta<AggregateValue>;

const UNCHANGED: AggregateDelta = Object.freeze({
  changed: false,
  entered: [],
  left: [],
  updated: [],
});

/** A value a `min` or `max` ranks, with the record it came from (equal values stay apart). */
interface Ranked {
  readonly value: number | string;
  readonly key: string;
}

const byValueThenKey = (a: Ranked, b: Ranked) =>
  compareValues(a.value, b.value) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** One group's running figures. */
interface Group {
  readonly key: string;
  readonly keys: readonly unknown[];
  count: number;
  /** Per figure: the exact sum of its summed values (`sum`, `avg`). */
  readonly sums: Array<ExactSum | undefined>;
  /** Per figure: how many values it summed. */
  readonly summed: number[];
  /** Per figure: its ranked values in order (`min`, `max`). */
  readonly ranked: Array<SortedList<Ranked> | undefined>;
  /** Its row in the result order; undefined before it is placed. */
  row: AggregateRow | undefined;
}

/** What one matching record contributes: its group, and the field each figure read. */
interface Contribution {
  readonly group: Group;
  readonly fields: readonly unknown[];
}

/**
 * An aggregate query's result kept up to date as records change: per group, the count, the
 * exact sum and the number of summed values, and the ranked values in order, so that a
 * change costs O(1) per affected group for `count`, `sum` and `avg` and O(log n) for `min`
 * and `max`; the groups in the result order, the result being its first `limit`. Its rows
 * always equal `evaluateAggregate` over the current records.
 */
export class LiveAggregate<V> {
  readonly #compiled: CompiledAggregate<V>;
  readonly #groups = new Map<string, Group>();
  readonly #records = new Map<string, Contribution>();
  readonly #sorted: SortedList<AggregateRow>;
  #failure: QueryError | undefined;

  /**
   * @param initial The current records.
   * @throws {QueryError} when the query is invalid or the records fall into too many groups.
   */
  constructor(query: AggregateQuery<V>, initial: Iterable<readonly [string, V]> = []) {
    this.#compiled = compileAggregate(query);
    this.#sorted = new SortedList(this.#compiled.compare);
    if (this.#compiled.groupNames.length === 0) this.#groupFor([]);
    for (const [key, value] of initial) {
      if (!this.#compiled.matches(value)) continue;
      this.#add(key, value);
      if (this.#groups.size > MAX_GROUPS) throw tooManyGroups();
    }
    const rows: AggregateRow[] = [];
    for (const group of this.#groups.values()) {
      group.row = this.#rowOf(group);
      rows.push(group.row);
    }
    rows.sort(this.#compiled.compare);
    this.#sorted.assignSorted(rows);
  }

  /** The result: the first `limit` groups. */
  get rows(): AggregateRow[] {
    return this.#sorted.sliceMapped(0, this.#compiled.limit, (row) => row);
  }

  /** How many groups the matching records fall into. */
  get groupCount(): number {
    return this.#groups.size;
  }

  /**
   * Applies one record change.
   * @throws {QueryError} (path `groupBy`) once the records fall into more than 10,000
   *   groups: the aggregate stops there, and every later change throws it too.
   */
  apply(change: RecordChange<V>): AggregateDelta {
    if (this.#failure !== undefined) throw this.#failure;
    const { key, value } = change;
    const previous = this.#records.get(key);
    const matches = value !== undefined && this.#compiled.matches(value);
    if (previous === undefined && !matches) return UNCHANGED;
    const nextKeys = matches ? this.#compiled.groupOf(value) : undefined;
    const nextText = nextKeys === undefined ? undefined : groupKeyText(nextKeys);
    if (nextText !== undefined && !this.#groups.has(nextText)) {
      const freed = previous !== undefined && previous.group.count === 1 ? 1 : 0;
      if (this.#groups.size - freed >= MAX_GROUPS) {
        this.#failure = tooManyGroups();
        throw this.#failure;
      }
    }
    if (previous !== undefined) this.#remove(key, previous);
    const next = matches ? this.#add(key, value, nextKeys) : undefined;
    const touched = new Set<Group>();
    if (previous !== undefined) touched.add(previous.group);
    if (next !== undefined) touched.add(next.group);
    const net = new NetChange();
    for (const group of touched) {
      const move = this.#place(group);
      if (move !== undefined) net.add(windowChange(this, 0, this.#compiled.limit, move));
    }
    return net.delta();
  }

  /** @internal The row at `position` of the result order (for `windowChange`). */
  rowAt(position: number): AggregateRow | undefined {
    return this.#sorted.sliceMapped(position, position + 1, (row) => row)[0];
  }

  #groupFor(keys: readonly unknown[], text = groupKeyText(keys)): Group {
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
          kind === 'min' || kind === 'max' ? new SortedList(byValueThenKey) : undefined,
        ),
        row: undefined,
      };
      this.#groups.set(text, group);
    }
    return group;
  }

  #add(key: string, value: V, keys = this.#compiled.groupOf(value)): Contribution {
    const group = this.#groupFor(keys);
    const fields = this.#compiled.figures.map(({ kind, segments }) =>
      kind === 'count' ? undefined : readField(value, segments),
    );
    group.count++;
    fields.forEach((field, index) => {
      const sum = group.sums[index];
      if (sum !== undefined && isSummable(field)) {
        sum.add(field);
        group.summed[index]!++;
      }
      if (isRanked(field)) group.ranked[index]?.insert({ value: field, key });
    });
    const contribution = { group, fields };
    this.#records.set(key, contribution);
    return contribution;
  }

  #remove(key: string, { group, fields }: Contribution): void {
    this.#records.delete(key);
    group.count--;
    fields.forEach((field, index) => {
      const sum = group.sums[index];
      if (sum !== undefined && isSummable(field)) {
        sum.remove(field);
        group.summed[index]!--;
      }
      if (isRanked(field)) group.ranked[index]?.remove({ value: field, key });
    });
  }

  /**
   * Puts a touched group at its new place in the result order (out of it when it lost its
   * last record); undefined when its row did not change.
   */
  #place(group: Group): IndexMove<AggregateValue> | undefined {
    const grouped = this.#compiled.groupNames.length > 0;
    const gone = grouped && group.count === 0;
    const before = group.row;
    const after = gone ? undefined : this.#rowOf(group);
    if (before !== undefined && after !== undefined && sameFigures(before, after, this.#compiled))
      return undefined;
    const from = before === undefined ? -1 : this.#sorted.remove(before);
    if (gone) this.#groups.delete(group.key);
    group.row = after;
    const to = after === undefined ? -1 : this.#sorted.insert(after);
    return { key: group.key, from, to, row: after };
  }

  #rowOf(group: Group): AggregateRow {
    const { groupNames, figures } = this.#compiled;
    const value: Record<string, unknown> = {};
    groupNames.forEach((name, index) => {
      value[name] = group.keys[index];
    });
    figures.forEach(({ name, kind }, index) => {
      if (kind === 'count') value[name] = group.count;
      else if (kind === 'sum') value[name] = group.sums[index]!.value;
      else if (kind === 'avg') {
        const summed = group.summed[index]!;
        value[name] = summed === 0 ? null : group.sums[index]!.value / summed;
      } else {
        const ranked = group.ranked[index]!;
        value[name] = (kind === 'min' ? ranked.first() : ranked.last())?.value ?? null;
      }
    });
    return { key: group.key, value: value as AggregateValue };
  }
}

function sameFigures<V>(a: AggregateRow, b: AggregateRow, compiled: CompiledAggregate<V>): boolean {
  const left = a.value as Record<string, unknown>;
  const right = b.value as Record<string, unknown>;
  return compiled.figures.every(({ name }) => Object.is(left[name], right[name]));
}

/**
 * The changes of the result a change of one record made, netted over the (at most two)
 * groups it touched: a group that left and came back is an update, one that came and went
 * is nothing.
 */
class NetChange {
  /** Per group key: whether it was in the result before, and its row now (undefined: out). */
  readonly #seen = new Map<
    string,
    { wasIn: boolean; row: AggregateRow | undefined; updated: boolean }
  >();

  add(change: {
    entered: readonly AggregateRow[];
    left: readonly string[];
    updated: readonly AggregateRow[];
  }): void {
    for (const row of change.entered) this.#note(row.key, false, row, false);
    for (const key of change.left) this.#note(key, true, undefined, false);
    for (const row of change.updated) this.#note(row.key, true, row, true);
  }

  #note(key: string, wasIn: boolean, row: AggregateRow | undefined, updated: boolean): void {
    const seen = this.#seen.get(key);
    if (seen === undefined) this.#seen.set(key, { wasIn, row, updated });
    else {
      seen.row = row;
      seen.updated ||= updated || row !== undefined;
    }
  }

  delta(): AggregateDelta {
    const entered: AggregateRow[] = [];
    const left: string[] = [];
    const updated: AggregateRow[] = [];
    for (const [key, { wasIn, row, updated: changed }] of this.#seen) {
      if (!wasIn && row !== undefined) entered.push(row);
      else if (wasIn && row === undefined) left.push(key);
      else if (wasIn && row !== undefined && changed) updated.push(row);
    }
    if (entered.length === 0 && left.length === 0 && updated.length === 0) return UNCHANGED;
    return { changed: true, entered, left, updated };
  }
}
