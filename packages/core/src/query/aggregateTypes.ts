/**
 * The public types of aggregate queries: counts, sums, averages, least and greatest values
 * over the records of a map matching a `where`, in groups. Semantics:
 * `specifications/query.md` (Aggregates).
 */
import type { FieldPath, QueryRow, SortDirection, Where } from './queryTypes.js';

/** The length of a time bucket: a minute, an hour, a (UTC) day. */
export type TimeBucket = '1m' | '1h' | '1d';

/** A group key: a field's value, or the start of the time bucket a field's time falls in. */
export type GroupKey<V> =
  | FieldPath<V>
  | { readonly field: FieldPath<V>; readonly bucket: TimeBucket };

/**
 * One figure of a group: how many records it has, or the sum, average, least or greatest of
 * a field over them.
 */
export type Figure<V> =
  | 'count'
  | { readonly sum: FieldPath<V> }
  | { readonly avg: FieldPath<V> }
  | { readonly min: FieldPath<V> }
  | { readonly max: FieldPath<V> };

/** A sort key of groups: a group key's or a figure's name, ascending, or with a direction. */
export type AggregateSortKey<Name extends string> =
  | Name
  | { readonly field: Name; readonly direction?: SortDirection };

/**
 * An aggregate query on the records of one map: `G` names its group keys, `F` its figures.
 * @example
 * { where: { done: true }, groupBy: { person: 'assignee' }, aggregate: { done: 'count' },
 *   sort: [{ field: 'done', direction: 'desc' }], limit: 10 }
 */
export interface AggregateQuery<V = unknown, G extends string = string, F extends string = string> {
  /** Which records count. Default: all. */
  readonly where?: Where<V>;
  /** One or two named group keys. Default: one group of every matching record. */
  readonly groupBy?: { readonly [K in G]: GroupKey<V> };
  /** One to 16 named figures. */
  readonly aggregate: { readonly [K in F]: Figure<V> };
  /** Sort keys over the names, most significant first. Default: by the group keys. */
  readonly sort?: AggregateSortKey<G | F> | readonly AggregateSortKey<G | F>[];
  /** Most groups to return. Default: all. */
  readonly limit?: number;
}

/** A group's value: its group keys and figures, by name. */
export type AggregateValue<G extends string = string, F extends string = string> = {
  readonly [K in G]: unknown;
} & { readonly [K in F]: number | string | null };

/** One group of an aggregate's result; `key` is its canonical text. */
export type AggregateRow<G extends string = string, F extends string = string> = QueryRow<
  AggregateValue<G, F>
>;
