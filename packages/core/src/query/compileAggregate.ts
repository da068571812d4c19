import { compareValues } from '../compareValues.js';
import { describeValue } from '../describeValue.js';
import { stableStringify } from '../stableStringify.js';
import type { AggregateQuery, AggregateRow, TimeBucket } from './aggregateTypes.js';
import { compileFilter, isPlainObject, readCount, readSortKeys } from './compileQuery.js';
import { fieldReader, parseFieldPath } from './fieldPath.js';
import { QueryError } from './queryError.js';

/** Most figures of one aggregate. */
export const MAX_FIGURES = 16;
/** Most group keys of one aggregate. */
export const MAX_GROUP_KEYS = 2;
/** Most groups an aggregate's matching records may fall into. */
export const MAX_GROUPS = 10_000;
/** Longest name of a figure or group key. */
export const MAX_AGGREGATE_NAME = 64;

const AGGREGATE_OPTIONS = ['where', 'groupBy', 'aggregate', 'sort', 'limit'];
const BUCKET_MS: Record<TimeBucket, number> = { '1m': 60_000, '1h': 3_600_000, '1d': 86_400_000 };
const KINDS = ['sum', 'avg', 'min', 'max'] as const;

/** What a figure computes. */
export type FigureKind = 'count' | (typeof KINDS)[number];

/** A figure, compiled: its name, kind, and how it reads its field (`count` reads none). */
export interface CompiledFigure {
  readonly name: string;
  readonly kind: FigureKind;
  readonly read: (value: unknown) => unknown;
  /** Its place among the aggregate's figures. */
  readonly index: number;
}

/** A validated aggregate query, compiled into functions. */
export interface CompiledAggregate<V> {
  /** Whether a record value counts. */
  readonly matches: (value: V) => boolean;
  /** The group key values of a record value, in `groupBy` order (`null` for missing). */
  readonly groupOf: (value: V) => unknown[];
  /** Per group key, how it is read of a record value (as {@link groupOf} reads it). */
  readonly groupReaders: readonly ((value: V) => unknown)[];
  readonly groupNames: readonly string[];
  readonly figures: readonly CompiledFigure[];
  /** Whether a figure reads a field (one is not `count`). */
  readonly readsFields: boolean;
  /** The result order of two groups' rows. */
  readonly compare: (a: AggregateRow, b: AggregateRow) => number;
  /** `Infinity` when there is no limit. */
  readonly limit: number;
}

/**
 * Validates an aggregate query and compiles it for evaluation.
 * @throws {QueryError} naming the first problem, e.g. `groupBy.minute.bucket: expected …`.
 */
export function compileAggregate<V>(query: AggregateQuery<V>): CompiledAggregate<V> {
  if (!isPlainObject(query))
    throw new QueryError('query', `expected an object, got ${describeValue(query)}`);
  for (const key of Object.keys(query)) {
    if (!AGGREGATE_OPTIONS.includes(key))
      throw new QueryError(
        `query.${key}`,
        `unknown aggregate option (expected ${AGGREGATE_OPTIONS.join(', ')})`,
      );
  }
  const raw = query as Record<string, unknown>;
  const names = new Set<string>();
  const groups = readNamed(raw['groupBy'], 'groupBy', MAX_GROUP_KEYS, names, false).map(
    ([name, key, path]) => ({ name, ...compileGroupKey(key, path) }),
  );
  const figures = readNamed(raw['aggregate'], 'aggregate', MAX_FIGURES, names, true).map(
    ([name, figure, path], index) => compileFigure(name, figure, path, index),
  );
  const sortKeys = readSortKeys(raw['sort'], (field, path) => {
    if (typeof field !== 'string' || !names.has(field))
      throw new QueryError(
        path,
        `expected the name of a group key or figure (${[...names].join(', ')}), got ${describeValue(field)}`,
      );
    return field;
  });
  const groupNames = groups.map(({ name }) => name);
  return {
    matches: compileFilter<V>(raw['where']),
    groupOf: (value) => {
      const keys = new Array<unknown>(groups.length);
      for (let index = 0; index < groups.length; index++) keys[index] = groups[index]!.read(value);
      return keys;
    },
    groupReaders: groups.map(({ read }) => read),
    groupNames,
    figures,
    readsFields: figures.some(({ kind }) => kind !== 'count'),
    compare: (a, b) => {
      const left = a.value as Record<string, unknown>;
      const right = b.value as Record<string, unknown>;
      for (const { target, descending } of sortKeys) {
        const order = compareValues(left[target], right[target]);
        if (order !== 0) return descending ? -order : order;
      }
      for (const name of groupNames) {
        const order = compareValues(left[name], right[name]);
        if (order !== 0) return order;
      }
      return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
    },
    limit: readCount(raw['limit'], 'limit', Number.POSITIVE_INFINITY),
  };
}

/** Whether `min` and `max` rank `field`: a finite number or a string. */
export function isRanked(field: unknown): field is number | string {
  return typeof field === 'string' || (typeof field === 'number' && Number.isFinite(field));
}

/** The canonical text of a group: its key values, in `groupBy` order, as stable JSON. */
export function groupKeyText(values: readonly unknown[]): string {
  // Numbers, strings, booleans and null as `stableStringify` writes them, without its walk.
  let text = '[';
  for (let index = 0; index < values.length; index++) {
    const value = values[index];
    if (typeof value === 'object' && value !== null) return stableStringify(values);
    text += `${index > 0 ? ',' : ''}${JSON.stringify(value)}`;
  }
  return `${text}]`;
}

/** The entries of `groupBy` or `aggregate`, their names checked (unique across both). */
function readNamed(
  option: unknown,
  path: string,
  most: number,
  names: Set<string>,
  required: boolean,
): Array<[name: string, definition: unknown, path: string]> {
  if (option === undefined && !required) return [];
  if (!isPlainObject(option))
    throw new QueryError(path, `expected an object of named entries, got ${describeValue(option)}`);
  const entries = Object.entries(option);
  if (entries.length === 0 || entries.length > most)
    throw new QueryError(path, `expected 1 to ${most} named entries, got ${entries.length}`);
  return entries.map(([name, definition]) => {
    const at = `${path}.${name}`;
    if (name.length === 0 || name.length > MAX_AGGREGATE_NAME)
      throw new QueryError(at, `a name is 1 to ${MAX_AGGREGATE_NAME} characters`);
    if (names.has(name)) throw new QueryError(at, 'a name used for a group key and a figure');
    names.add(name);
    return [name, definition, at];
  });
}

function compileGroupKey(key: unknown, path: string): { read: (value: unknown) => unknown } {
  if (typeof key === 'string') {
    const read = fieldReader(parseFieldPath(key, path));
    return {
      read: (value) => {
        const field = read(value);
        // NaN and ±Infinity group with null, as their canonical text does.
        return field === undefined || (typeof field === 'number' && !Number.isFinite(field))
          ? null
          : field;
      },
    };
  }
  if (!isPlainObject(key))
    throw new QueryError(
      path,
      `expected a field path or { field, bucket }, got ${describeValue(key)}`,
    );
  for (const name of Object.keys(key)) {
    if (name !== 'field' && name !== 'bucket')
      throw new QueryError(`${path}.${name}`, 'unknown group key option (expected field, bucket)');
  }
  const read = fieldReader(parseFieldPath(key['field'], `${path}.field`));
  const bucket = key['bucket'];
  if (typeof bucket !== 'string' || !(bucket in BUCKET_MS))
    throw new QueryError(
      `${path}.bucket`,
      `expected "1m", "1h" or "1d", got ${describeValue(bucket)}`,
    );
  const size = BUCKET_MS[bucket as TimeBucket];
  return {
    read: (value) => {
      const time = timeOf(read(value));
      return time === undefined ? null : Math.floor(time / size) * size;
    },
  };
}

function compileFigure(name: string, figure: unknown, path: string, index: number): CompiledFigure {
  if (figure === 'count') return { name, kind: 'count', read: () => undefined, index };
  if (!isPlainObject(figure) || Object.keys(figure).length !== 1)
    throw new QueryError(
      path,
      `expected 'count' or one of { sum | avg | min | max: field }, got ${describeValue(figure)}`,
    );
  const [kind, field] = Object.entries(figure)[0]!;
  if (!(KINDS as readonly string[]).includes(kind))
    throw new QueryError(`${path}.${kind}`, 'unknown figure (expected sum, avg, min, max)');
  const read = fieldReader(parseFieldPath(field, `${path}.${kind}`));
  return { name, kind: kind as FigureKind, read, index };
}

/** `2026-12-01`, `2026-12-01T08:30Z`, `2026-12-01T08:30:15.250+01:00`… */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/**
 * A field's value as a time in ms since the epoch: a finite number as it is, an ISO 8601
 * date or date-time string (UTC without an offset); undefined for anything else.
 */
export function timeOf(field: unknown): number | undefined {
  if (typeof field === 'number') return Number.isFinite(field) ? field : undefined;
  if (typeof field !== 'string' || field.length > 40) return undefined;
  const match = ISO_TIME.exec(field);
  if (match === null) return undefined;
  const [, year, month, day, hour = '0', minute = '0', second = '0', fraction = '0', zone] = match;
  const [y, mo, d, h, mi, s] = [year, month, day, hour, minute, second].map(Number) as number[];
  if (mo! < 1 || mo! > 12 || d! < 1 || h! > 23 || mi! > 59 || s! > 59) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(y!, mo! - 1, d!);
  if (date.getUTCDate() !== d) return undefined; // 31 February
  date.setUTCHours(h!, mi!, s!, Number(fraction.padEnd(3, '0').slice(0, 3)));
  let offset = 0;
  if (zone !== undefined && zone !== 'Z') {
    const [zh, zm] = zone.slice(1).split(':').map(Number) as [number, number];
    if (zh > 23 || zm > 59) return undefined;
    offset = (zone.startsWith('-') ? -1 : 1) * (zh * 60 + zm) * 60_000;
  }
  return date.getTime() - offset;
}
