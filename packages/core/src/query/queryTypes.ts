/**
 * The query language's public types. A query is plain serializable data, so the same query
 * runs on a client's replica and travels to the server as a live subscription. Semantics:
 * `specifications/query.md`.
 */

type Primitive = string | number | boolean | null | undefined;
type Previous = [never, 0, 1, 2, 3];

/**
 * The dotted paths of the fields of `V`, nested up to four levels (`'title'`,
 * `'author.name'`). For an untyped `V` (`unknown`, `any`), any string.
 */
export type FieldPath<V, Depth extends number = 3> = unknown extends V
  ? string
  : [Depth] extends [never]
    ? never
    : V extends readonly unknown[]
      ? never
      : V extends object
        ? {
            [K in keyof V & string]:
              | K
              | (NonNullable<V[K]> extends Primitive | readonly unknown[]
                  ? never
                  : `${K}.${FieldPath<NonNullable<V[K]>, Previous[Depth]>}`);
          }[keyof V & string]
        : never;

/** The type of the field of `V` at dotted path `P`. */
export type PathValue<V, P extends string> = unknown extends V
  ? unknown
  : P extends `${infer Head}.${infer Rest}`
    ? Head extends keyof V
      ? PathValue<NonNullable<V[Head]>, Rest>
      : unknown
    : P extends keyof V
      ? V[P]
      : unknown;

type Operand<T> = Exclude<T, undefined>;
type Ordered<T> =
  Extract<Operand<T>, string | number> extends never ? never : Extract<Operand<T>, string | number>;

/** Operators on one field whose type is `T`. Every operator given must hold. */
export interface Comparison<T> {
  /** Equal (deep, structural equality). */
  readonly eq?: Operand<T>;
  /** Not equal; also true when the field is missing. */
  readonly ne?: Operand<T>;
  /** Greater than; numbers with numbers, strings with strings, otherwise false. */
  readonly gt?: Ordered<T>;
  /** Greater than or equal. */
  readonly gte?: Ordered<T>;
  /** Less than. */
  readonly lt?: Ordered<T>;
  /** Less than or equal. */
  readonly lte?: Ordered<T>;
  /** Equal to one of the listed values. */
  readonly in?: readonly Operand<T>[];
  /** Equal to none of the listed values. */
  readonly nin?: readonly Operand<T>[];
  /** The string contains the substring, or the array contains an element equal to it. */
  readonly contains?: NonNullable<T> extends readonly (infer Element)[]
    ? Element
    : NonNullable<T> extends string
      ? string
      : never;
  /** The string starts with the prefix. */
  readonly startsWith?: NonNullable<T> extends string ? string : never;
  /** `true`: the field is present (possibly `null`); `false`: it is missing. */
  readonly exists?: boolean;
}

/**
 * A condition on one field: a value (shorthand for `{ eq: value }`; only for non-object
 * values) or an object of operators.
 */
export type Condition<T> = Exclude<Operand<T>, object> | Comparison<T>;

/**
 * A filter on records of type `V`: conditions per field path, all of which must hold, and
 * the combinators `and`, `or`, `not` (reserved words: fields with those names cannot be
 * filtered on).
 */
export type Where<V> = { readonly [P in FieldPath<V>]?: Condition<PathValue<V, P>> } & {
  /** Every filter holds (true for an empty list). */
  readonly and?: readonly Where<V>[];
  /** At least one filter holds (false for an empty list). */
  readonly or?: readonly Where<V>[];
  /** The filter does not hold. */
  readonly not?: Where<V>;
};

/** Sort direction; default `asc`. */
export type SortDirection = 'asc' | 'desc';

/** One sort key: a field path, ascending, or a field with a direction. */
export type SortKey<V> =
  | FieldPath<V>
  | { readonly field: FieldPath<V>; readonly direction?: SortDirection };

/**
 * A query on the records of one map. Results are ordered by the sort keys, then by record
 * key, so every replica returns the same order.
 */
export interface Query<V = unknown> {
  /** Which records to return. Default: all. */
  readonly where?: Where<V>;
  /** Sort keys, most significant first. Default: by record key only. */
  readonly sort?: SortKey<V> | readonly SortKey<V>[];
  /** Most rows to return, a non-negative integer. Default: no limit. */
  readonly limit?: number;
  /** Rows to skip before the first returned, a non-negative integer. Default: 0. */
  readonly offset?: number;
  /** Return only these fields of each value. Default: whole values. */
  readonly fields?: readonly FieldPath<V>[];
}

/** One result row: a record's key and its (possibly projected) value. */
export interface QueryRow<V> {
  /** The record key. */
  readonly key: string;
  /** The value; with `fields`, an object holding only those fields. */
  readonly value: V;
}
