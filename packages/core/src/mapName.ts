import { describeValue } from './describeValue.js';
import { ValidationError } from './errors.js';

/** Longest map name, in characters. */
export const MAX_MAP_NAME_LENGTH = 128;

const MAP_NAME_PATTERN = /^[A-Za-z0-9_.:@/-]{1,128}$/;

/** Whether `name` is a valid map name: 1 to 128 characters from `A-Z a-z 0-9 _ . : @ / -`. */
export function isValidMapName(name: unknown): name is string {
  return typeof name === 'string' && MAP_NAME_PATTERN.test(name);
}

/**
 * Checks a map name.
 * @throws {ValidationError} unless it is 1 to 128 characters from `A-Z a-z 0-9 _ . : @ / -`.
 */
export function validateMapName(name: unknown, path = 'map'): string {
  if (isValidMapName(name)) return name;
  throw new ValidationError(
    path,
    `expected 1-128 characters from A-Z a-z 0-9 _ . : @ / -, got ${describeValue(name)}`,
  );
}
