import { compileQuery } from './compileQuery.js';
import type { Query, QueryRow } from './queryTypes.js';

/**
 * Runs a query once over `entries` (for example `map.entries()`): filters, sorts (sort keys,
 * then record key), skips `offset`, takes `limit`, projects `fields`.
 * @throws {QueryError} when the query is invalid.
 */
export function evaluateQuery<V>(
  query: Query<V>,
  entries: Iterable<readonly [string, V]>,
): QueryRow<V>[] {
  const compiled = compileQuery(query);
  const matching = [];
  for (const [key, value] of entries) {
    if (compiled.matches(value))
      matching.push({ key, value, sortValues: compiled.sortValuesOf(value) });
  }
  matching.sort(compiled.compare);
  const end = Math.min(matching.length, compiled.offset + compiled.limit);
  const rows: QueryRow<V>[] = [];
  for (let index = compiled.offset; index < end; index++) {
    const row = matching[index]!;
    rows.push(compiled.toRow(row.key, row.value));
  }
  return rows;
}
