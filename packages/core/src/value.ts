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
  const steps: Array<string | number> = [];
  const problem = checkValue(value, steps);
  if (problem !== undefined) throw new ValidationError(pathOf(path, steps), problem);
}

/** `value.tags[2]` from the root path and the steps taken (built only for errors). */
function pathOf(root: string, steps: ReadonlyArray<string | number>): string {
  let path = root;
  for (const step of steps) path += typeof step === 'number' ? `[${step}]` : `.${step}`;
  return path;
}

// Unpaired surrogates cannot be encoded as UTF-8, so they would not survive the wire.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const isWellFormed: (text: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (text) => (text as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (text) => !LONE_SURROGATE.test(text);

/**
 * Checks a value; returns the problem (and leaves `steps` at the offending path), or
 * undefined when the value is storable. Paths are only built for errors: this runs on
 * every write.
 */
function checkValue(value: unknown, steps: Array<string | number>): string | undefined {
  switch (typeof value) {
    case 'string':
      return isWellFormed(value) ? undefined : 'the string contains an unpaired surrogate';
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${value} is not a finite number`;
    case 'object': {
      if (value === null) return undefined;
      if (steps.length >= MAX_VALUE_DEPTH) return `nested deeper than ${MAX_VALUE_DEPTH} levels`;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          steps.push(i);
          const problem = checkValue(value[i], steps);
          if (problem !== undefined) return problem;
          steps.pop();
        }
        return undefined;
      }
      const prototype = Object.getPrototypeOf(value);
      if (prototype !== Object.prototype && prototype !== null) {
        return 'expected a plain object, array or primitive';
      }
      for (const field in value) {
        if (field === '__proto__') return 'field "__proto__" is not allowed';
        if (!isWellFormed(field)) return 'a field name contains an unpaired surrogate';
        steps.push(field);
        const problem = checkValue((value as Record<string, unknown>)[field], steps);
        if (problem !== undefined) return problem;
        steps.pop();
      }
      return undefined;
    }
    default:
      return `${describeValue(value)} cannot be stored`;
  }
}
