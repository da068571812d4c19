import { compareValues } from '../compareValues.js';
import { describeValue } from '../describeValue.js';
import { ValidationError } from '../errors.js';
import { isIntegerIn } from '../isIntegerIn.js';
import { UINT_ISSUE } from '../protocol/messageFields.js';
import { stableStringify } from '../stableStringify.js';
import { validateValue } from '../value.js';
import { parseFieldPath, readField } from './fieldPath.js';
import { QueryError } from './queryError.js';
import type { Query, QueryRow } from './queryTypes.js';

/** A test on one record value. */
type Predicate = (value: unknown) => boolean;

/** Largest number of conditions (field operators and combinators) in one query. */
export const MAX_QUERY_CONDITIONS = 256;
/** Deepest nesting of `and` / `or` / `not`. */
export const MAX_QUERY_DEPTH = 16;
/** Most values in one `in` / `nin` list. */
export const MAX_IN_VALUES = 1000;
/**
 * Most values in all `in` / `nin` lists of one query together: what compiling it costs (a
 * server compiles every subscription it receives).
 */
export const MAX_QUERY_OPERANDS = 10_000;
/** Most sort keys. */
export const MAX_SORT_KEYS = 8;
/** Most projected fields. */
export const MAX_PROJECTED_FIELDS = 64;

const QUERY_OPTIONS = ['where', 'sort', 'limit', 'offset', 'fields'];
const COMBINATORS = new Set(['and', 'or', 'not']);

/** A candidate row with its sort values computed once. */
export interface SortableRow<V> {
  readonly key: string;
  readonly value: V;
  readonly sortValues: readonly unknown[];
}

/** A validated query, compiled into functions. */
export interface CompiledQuery<V> {
  /** Whether a record value matches `where`. */
  readonly matches: (value: V) => boolean;
  /** The values of the sort keys of a record value, in sort-key order. */
  readonly sortValuesOf: (value: V) => unknown[];
  /** The result order: sort keys, then record key. */
  readonly compare: (a: SortableRow<V>, b: SortableRow<V>) => number;
  /** The row to return for a matching record (projected when `fields` is given). */
  readonly toRow: (key: string, value: V) => QueryRow<V>;
  readonly offset: number;
  /** `Infinity` when there is no limit. */
  readonly limit: number;
}

/**
 * Validates a query and compiles it for evaluation.
 * @throws {QueryError} naming the first problem, e.g. `where.age.gtt: unknown operator`.
 */
export function compileQuery<V>(query: Query<V>): CompiledQuery<V> {
  if (!isPlainObject(query))
    throw new QueryError('query', `expected an object, got ${describeValue(query)}`);
  for (const key of Object.keys(query)) {
    if (!QUERY_OPTIONS.includes(key)) {
      throw new QueryError(
        `query.${key}`,
        `unknown query option (expected ${QUERY_OPTIONS.join(', ')})`,
      );
    }
  }
  const matches = compileFilter<V>((query as { where?: unknown }).where);
  const sortKeys = compileSort((query as { sort?: unknown }).sort);
  const limit = readCount((query as { limit?: unknown }).limit, 'limit', Number.POSITIVE_INFINITY);
  const offset = readCount((query as { offset?: unknown }).offset, 'offset', 0);
  const project = compileProjection((query as { fields?: unknown }).fields);

  const sortValuesOf = (value: V): unknown[] => {
    const values = new Array<unknown>(sortKeys.length);
    for (let i = 0; i < sortKeys.length; i++) values[i] = readField(value, sortKeys[i]!.segments);
    return values;
  };
  return {
    matches,
    sortValuesOf,
    compare: (a, b) => {
      for (let i = 0; i < sortKeys.length; i++) {
        const order = compareValues(a.sortValues[i], b.sortValues[i]);
        if (order !== 0) return sortKeys[i]!.descending ? -order : order;
      }
      return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
    },
    toRow:
      project === undefined
        ? (key, value) => ({ key, value })
        : (key, value) => ({ key, value: project(value) as V }),
    offset,
    limit,
  };
}

/**
 * Compiles a `where` (a query's or an aggregate's) into a test of record values; no `where`
 * matches everything.
 * @throws {QueryError} naming the first problem.
 */
export function compileFilter<V>(where: unknown): (value: V) => boolean {
  if (where === undefined) return () => true;
  const budget: Budget = { conditions: 0, operands: 0, canonical: new CanonicalTexts() };
  const predicate = compileWhere(where, 'where', 0, budget);
  const { canonical } = budget;
  return (value) => {
    canonical.forRecord(value);
    return predicate(value);
  };
}

function compileWhere(where: unknown, path: string, depth: number, budget: Budget): Predicate {
  if (!isPlainObject(where))
    throw new QueryError(path, `expected an object of conditions, got ${describeValue(where)}`);
  if (depth > MAX_QUERY_DEPTH)
    throw new QueryError(path, `nested deeper than ${MAX_QUERY_DEPTH} levels`);
  const tests: Predicate[] = [];
  for (const [name, condition] of Object.entries(where)) {
    const at = `${path}.${name}`;
    if (++budget.conditions > MAX_QUERY_CONDITIONS) {
      throw new QueryError(at, `more than ${MAX_QUERY_CONDITIONS} conditions`);
    }
    if (COMBINATORS.has(name)) {
      tests.push(compileCombinator(name, condition, at, depth, budget));
      continue;
    }
    const segments = parseFieldPath(name, at);
    tests.push(compileCondition(segments, condition, at, budget));
  }
  if (tests.length === 1) return tests[0]!;
  return (value) => {
    for (const test of tests) if (!test(value)) return false;
    return true;
  };
}

function compileCombinator(
  name: string,
  operand: unknown,
  path: string,
  depth: number,
  budget: Budget,
): Predicate {
  if (name === 'not') {
    const inner = compileWhere(operand, path, depth + 1, budget);
    return (value) => !inner(value);
  }
  if (!Array.isArray(operand))
    throw new QueryError(path, `expected an array of filters, got ${describeValue(operand)}`);
  const inner = operand.map((item, index) =>
    compileWhere(item, `${path}[${index}]`, depth + 1, budget),
  );
  return name === 'and'
    ? (value) => inner.every((test) => test(value))
    : (value) => inner.some((test) => test(value));
}

/** What a query may still use: conditions, and values of `in` / `nin` lists. */
interface Budget {
  conditions: number;
  operands: number;
  readonly canonical: CanonicalTexts;
}

/**
 * Canonical texts of the arrays and objects of the record being matched, each computed once
 * however many `in` lists look at it: one record costs its size, not size times conditions.
 */
class CanonicalTexts {
  #record: unknown;
  readonly #texts = new Map<object, string>();

  /** Starts matching `record` (forgets the texts of the previous one). */
  forRecord(record: unknown): void {
    if (record === this.#record) return;
    this.#record = record;
    if (this.#texts.size > 0) this.#texts.clear();
  }

  textOf(field: object): string {
    let text = this.#texts.get(field);
    if (text === undefined) {
      text = stableStringify(field);
      this.#texts.set(field, text);
    }
    return text;
  }
}

function compileCondition(
  segments: readonly string[],
  condition: unknown,
  path: string,
  budget: Budget,
): Predicate {
  if (!isPlainObject(condition)) {
    const expected = readOperand(condition, path);
    return (value) => compareValues(readField(value, segments), expected) === 0;
  }
  const operators = Object.entries(condition);
  if (operators.length === 0)
    throw new QueryError(path, 'an operator object needs at least one operator');
  const tests = operators.map(([operator, operand]) =>
    compileOperator(operator, operand, `${path}.${operator}`, budget),
  );
  return (value) => {
    const field = readField(value, segments);
    for (const test of tests) if (!test(field)) return false;
    return true;
  };
}

function compileOperator(
  operator: string,
  operand: unknown,
  path: string,
  budget: Budget,
): Predicate {
  switch (operator) {
    case 'eq': {
      const expected = readOperand(operand, path);
      return (field) => compareValues(field, expected) === 0;
    }
    case 'ne': {
      const expected = readOperand(operand, path);
      return (field) => compareValues(field, expected) !== 0;
    }
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      if (typeof operand !== 'number' && typeof operand !== 'string') {
        throw new QueryError(path, `expected a number or a string, got ${describeValue(operand)}`);
      }
      if (typeof operand === 'number' && !Number.isFinite(operand)) {
        throw new QueryError(path, `expected a finite number, got ${operand}`);
      }
      const accept = ORDER_TESTS[operator];
      return (field) => typeof field === typeof operand && accept(compareValues(field, operand));
    }
    case 'in':
    case 'nin': {
      if (!Array.isArray(operand))
        throw new QueryError(path, `expected an array, got ${describeValue(operand)}`);
      if (operand.length > MAX_IN_VALUES)
        throw new QueryError(path, `more than ${MAX_IN_VALUES} values`);
      budget.operands += operand.length;
      if (budget.operands > MAX_QUERY_OPERANDS)
        throw new QueryError(
          path,
          `more than ${MAX_QUERY_OPERANDS} values in all lists of the query`,
        );
      const options = operand.map((item, index) => readOperand(item, `${path}[${index}]`));
      const primitives = new Set(
        options.filter((option) => typeof option !== 'object' || option === null),
      );
      // Arrays and objects by their canonical text: one lookup per record, however many
      // options the list holds (equal under compareValues means equal text).
      const structured = new Set(
        options
          .filter((option) => typeof option === 'object' && option !== null)
          .map(stableStringify),
      );
      const isIn = (field: unknown) =>
        primitives.has(field as never) ||
        (structured.size > 0 &&
          typeof field === 'object' &&
          field !== null &&
          structured.has(budget.canonical.textOf(field)));
      return operator === 'in' ? isIn : (field) => !isIn(field);
    }
    case 'contains': {
      const needle = readOperand(operand, path);
      return (field) => {
        if (typeof field === 'string') return typeof needle === 'string' && field.includes(needle);
        if (Array.isArray(field))
          return field.some((element) => compareValues(element, needle) === 0);
        return false;
      };
    }
    case 'startsWith': {
      if (typeof operand !== 'string')
        throw new QueryError(path, `expected a string, got ${describeValue(operand)}`);
      return (field) => typeof field === 'string' && field.startsWith(operand);
    }
    case 'exists': {
      if (typeof operand !== 'boolean')
        throw new QueryError(path, `expected true or false, got ${describeValue(operand)}`);
      return (field) => (field !== undefined) === operand;
    }
    default:
      throw new QueryError(
        path,
        'unknown operator (expected eq, ne, gt, gte, lt, lte, in, nin, contains, startsWith, exists)',
      );
  }
}

const ORDER_TESTS: Record<'gt' | 'gte' | 'lt' | 'lte', (order: number) => boolean> = {
  gt: (order) => order > 0,
  gte: (order) => order >= 0,
  lt: (order) => order < 0,
  lte: (order) => order <= 0,
};

/** An operand compared with field values: any storable value, or `null`. */
function readOperand(operand: unknown, path: string): unknown {
  if (operand === null) return null;
  try {
    validateValue(operand, path);
  } catch (error) {
    if (error instanceof ValidationError)
      throw new QueryError(error.path, error.message.slice(error.path.length + 2));
    throw error;
  }
  return operand;
}

interface CompiledSortKey {
  readonly segments: readonly string[];
  readonly descending: boolean;
}

function compileSort(sort: unknown): CompiledSortKey[] {
  return readSortKeys(sort, (field, path) => ({ segments: parseFieldPath(field, path) })).map(
    ({ target, descending }) => ({ segments: target.segments, descending }),
  );
}

/**
 * Reads `sort`: one sort key or an array of at most 8, each `field` or `{ field, direction }`;
 * `resolve` reads a field (a path in queries, a name in aggregates) or throws.
 * @throws {QueryError} naming the first problem.
 */
export function readSortKeys<T>(
  sort: unknown,
  resolve: (field: unknown, path: string) => T,
): Array<{ readonly target: T; readonly descending: boolean }> {
  if (sort === undefined) return [];
  const keys = Array.isArray(sort) ? sort : [sort];
  if (keys.length > MAX_SORT_KEYS)
    throw new QueryError('sort', `more than ${MAX_SORT_KEYS} sort keys`);
  return keys.map((key: unknown, index) => {
    const path = Array.isArray(sort) ? `sort[${index}]` : 'sort';
    if (typeof key === 'string') return { target: resolve(key, path), descending: false };
    if (!isPlainObject(key))
      throw new QueryError(
        path,
        `expected a field or { field, direction }, got ${describeValue(key)}`,
      );
    for (const name of Object.keys(key)) {
      if (name !== 'field' && name !== 'direction')
        throw new QueryError(`${path}.${name}`, 'unknown sort option');
    }
    const { field, direction } = key as { field?: unknown; direction?: unknown };
    if (direction !== undefined && direction !== 'asc' && direction !== 'desc') {
      throw new QueryError(
        `${path}.direction`,
        `expected "asc" or "desc", got ${describeValue(direction)}`,
      );
    }
    return { target: resolve(field, `${path}.field`), descending: direction === 'desc' };
  });
}

/** A non-negative safe integer option (`limit`, `offset`), or `fallback` when absent. */
export function readCount(count: unknown, path: string, fallback: number): number {
  if (count === undefined) return fallback;
  if (!isIntegerIn(count, 0, Number.MAX_SAFE_INTEGER)) {
    throw new QueryError(path, `${UINT_ISSUE}, got ${describeValue(count)}`);
  }
  return count;
}

function compileProjection(fields: unknown): ((value: unknown) => unknown) | undefined {
  if (fields === undefined) return undefined;
  if (!Array.isArray(fields) || fields.length === 0 || fields.length > MAX_PROJECTED_FIELDS) {
    throw new QueryError('fields', `expected an array of 1 to ${MAX_PROJECTED_FIELDS} field paths`);
  }
  const parsed = fields.map((field, index) => parseFieldPath(field, `fields[${index}]`));
  // A field inside another requested field is already included, and writing it separately
  // would write into the record's own nested object.
  const paths = parsed.filter(
    (segments) =>
      !parsed.some(
        (other) =>
          other !== segments &&
          other.length <= segments.length &&
          other.every((segment, index) => segment === segments[index]) &&
          (other.length < segments.length || parsed.indexOf(other) < parsed.indexOf(segments)),
      ),
  );
  return (value) => {
    const projected: Record<string, unknown> = {};
    for (const segments of paths) {
      const field = readField(value, segments);
      if (field === undefined) continue;
      let target = projected;
      for (let i = 0; i < segments.length - 1; i++) {
        const segment = segments[i]!;
        const next = target[segment];
        if (typeof next !== 'object' || next === null) target[segment] = {};
        target = target[segment] as Record<string, unknown>;
      }
      target[segments[segments.length - 1]!] = field;
    }
    return projected;
  };
}

/** Whether `value` is an object literal (or has a null prototype), not an array or class instance. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}
