import { QueryError } from './queryError.js';

/** Path segments that would reach into an object's prototype machinery. */
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);

/** Deepest field path, in segments. */
export const MAX_PATH_SEGMENTS = 8;

/**
 * Splits and checks a dotted field path.
 * @throws {QueryError} when it is not a string of 1 to 8 non-empty segments, or names
 *   `__proto__`, `constructor` or `prototype`.
 */
export function parseFieldPath(path: unknown, where: string): string[] {
  if (typeof path !== 'string' || path.length === 0 || path.length > 512) {
    throw new QueryError(
      where,
      'expected a field path: a non-empty string of at most 512 characters',
    );
  }
  const segments = path.split('.');
  if (segments.length > MAX_PATH_SEGMENTS) {
    throw new QueryError(
      where,
      `field path "${path}" is deeper than ${MAX_PATH_SEGMENTS} segments`,
    );
  }
  for (const segment of segments) {
    if (segment.length === 0)
      throw new QueryError(where, `field path "${path}" has an empty segment`);
    if (FORBIDDEN_SEGMENTS.has(segment)) {
      throw new QueryError(where, `field path "${path}" may not use "${segment}"`);
    }
  }
  return segments;
}

/**
 * Reads the field at `segments` of `value`: own properties of plain objects, and array
 * elements by index. Anything else reads as `undefined` (a missing field).
 */
export function readField(value: unknown, segments: readonly string[]): unknown {
  let current = value;
  for (const segment of segments) {
    if (typeof current !== 'object' || current === null) return undefined;
    if (!Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

/**
 * {@link readField} at fixed `segments`, as a function: of a record value (plain objects,
 * arrays and primitives), quicker for a single segment. What such a value inherits is a
 * method, or `length`, an array's own property: a function read is read as missing.
 */
export function fieldReader(segments: readonly string[]): (value: unknown) => unknown {
  if (segments.length !== 1) return (value) => readField(value, segments);
  const segment = segments[0]!;
  return (value) => {
    if (typeof value !== 'object' || value === null) return undefined;
    const field = (value as Record<string, unknown>)[segment];
    return typeof field === 'function' ? undefined : field;
  };
}
