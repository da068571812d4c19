import { compareValues } from '../compareValues.js';
import type { AggregateQuery, AggregateRow } from './aggregateTypes.js';
import {
  type CompiledFigure,
  compileAggregate,
  groupKeyText,
  isRanked,
  MAX_GROUPS,
} from './compileAggregate.js';
import { ExactSum, isSummable } from './exactSum.js';
import { QueryError } from './queryError.js';

/**
 * Runs an aggregate query once over `entries` (for example `map.entries()`): groups the
 * matching records, computes each group's figures, sorts the groups and takes `limit`.
 * @throws {QueryError} when the query is invalid, or the records fall into more than
 *   10,000 groups (path `groupBy`).
 */
export function evaluateAggregate<V>(
  query: AggregateQuery<V>,
  entries: Iterable<readonly [string, V]>,
): AggregateRow[] {
  const compiled = compileAggregate(query);
  const groups = new Map<string, { keys: unknown[]; values: V[] }>();
  if (compiled.groupNames.length === 0) groups.set(groupKeyText([]), { keys: [], values: [] });
  for (const [, value] of entries) {
    if (!compiled.matches(value)) continue;
    const keys = compiled.groupOf(value);
    const text = groupKeyText(keys);
    let group = groups.get(text);
    if (group === undefined) {
      if (groups.size >= MAX_GROUPS) throw tooManyGroups();
      group = { keys, values: [] };
      groups.set(text, group);
    }
    group.values.push(value);
  }
  const rows = [...groups].map(([key, { keys, values }]) =>
    groupRow(key, compiled.groupNames, keys, compiled.figures, values),
  );
  rows.sort(compiled.compare);
  return rows.slice(0, compiled.limit);
}

/** The error of an aggregate whose records fall into too many groups. */
export function tooManyGroups(): QueryError {
  return new QueryError('groupBy', `the matching records fall into more than ${MAX_GROUPS} groups`);
}

function groupRow<V>(
  key: string,
  groupNames: readonly string[],
  keys: readonly unknown[],
  figures: readonly CompiledFigure[],
  values: readonly V[],
): AggregateRow {
  const row: Record<string, unknown> = {};
  groupNames.forEach((name, index) => {
    row[name] = keys[index];
  });
  for (const { name, kind, read } of figures) {
    if (kind === 'count') {
      row[name] = values.length;
      continue;
    }
    const fields = values.map(read);
    if (kind === 'sum' || kind === 'avg') {
      const sum = new ExactSum();
      let count = 0;
      for (const field of fields) {
        if (!isSummable(field)) continue;
        sum.add(field);
        count++;
      }
      row[name] = kind === 'sum' ? sum.value : count === 0 ? null : sum.value / count;
      continue;
    }
    let best: number | string | null = null;
    for (const field of fields) {
      if (!isRanked(field)) continue;
      const order = best === null ? 1 : compareValues(field, best);
      if (kind === 'min' ? order < 0 || best === null : order > 0) best = field;
    }
    row[name] = best;
  }
  return { key, value: row as AggregateRow['value'] };
}
