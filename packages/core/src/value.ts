import { describeValue } from './describeValue.js';
import { ValidationError } from './errors.js';

/**
 * A value TopGun can store and sync: JSON data. `null` is allowed inside objects and arrays;
 * a record's value itself is never `null` (deleting writes a tombstone instead).
 */
export type Value =
  | null
  | boolean
  | number
  | string
  | readonly Value[]
  | { readonly [field: string]: Value };

/** Deepest nesting of arrays and objects a value may have. */
export const MAX_VALUE_DEPTH = 32;

/**
 * Checks that `value` is storable: plain objects (prototype `Object` or `null`), arrays,
 * well-formed strings (no unpaired surrogates), finite numbers, booleans and nested `null`,
 * at most {@link MAX_VALUE_DEPTH} deep,
 * without `undefined` and without a field named `__proto__`.
 * @throws {ValidationError} naming the first offending path, e.g. `value.tags[2]`.
 */
export function validateValue(value: unknown, path = 'value'): void {
  if (value === null || value === undefined) {
    throw new ValidationError(
      path,
      `a record's value cannot be ${value}; use delete() to remove it`,
    );
  }
  checkValue(value, path, 0);
}

// Unpaired surrogates cannot be encoded as UTF-8, so they would not survive the wire.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const isWellFormed: (text: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (text) => (text as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (text) => !LONE_SURROGATE.test(text);

function checkValue(value: unknown, path: string, depth: number): void {
  switch (typeof value) {
    case 'string':
      if (!isWellFormed(value))
        throw new ValidationError(path, 'the string contains an unpaired surrogate');
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new ValidationError(path, `${value} is not a finite number`);
      return;
    case 'object': {
      if (value === null) return;
      if (depth >= MAX_VALUE_DEPTH) {
        throw new ValidationError(path, `nested deeper than ${MAX_VALUE_DEPTH} levels`);
      }
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) checkValue(value[i], `${path}[${i}]`, depth + 1);
        return;
      }
      const prototype = Object.getPrototypeOf(value);
      if (prototype !== Object.prototype && prototype !== null) {
        throw new ValidationError(path, 'expected a plain object, array or primitive');
      }
      for (const field in value) {
        if (field === '__proto__')
          throw new ValidationError(path, 'field "__proto__" is not allowed');
        if (!isWellFormed(field)) {
          throw new ValidationError(path, 'a field name contains an unpaired surrogate');
        }
        checkValue((value as Record<string, unknown>)[field], `${path}.${field}`, depth + 1);
      }
      return;
    }
    default:
      throw new ValidationError(path, `${describeValue(value)} cannot be stored`);
  }
}
