import { describeValue as describe } from './describeValue.js';
import { ValidationError } from './errors.js';
import { isIntegerIn } from './isIntegerIn.js';
import { NODE_ID_ISSUE } from './protocol/messageFields.js';

/**
 * A Hybrid Logical Clock timestamp. Timestamps are totally ordered by `millis`, then
 * `counter`, then `nodeId` (compared by UTF-16 code units, which for the allowed node id
 * characters is plain ASCII order). See `specifications/hlc.md`.
 */
export interface Timestamp {
  /** Logical physical time in milliseconds since the Unix epoch, an integer in [0, 2^48). */
  readonly millis: number;
  /** Logical counter within one millisecond, an integer in [0, {@link MAX_COUNTER}]. */
  readonly counter: number;
  /** Id of the node that issued the timestamp; see {@link isValidNodeId}. */
  readonly nodeId: string;
}

/** Largest counter value; see `HLC` for what happens when a counter would exceed it. */
export const MAX_COUNTER = 0xffff;

/** Largest `millis` a timestamp can carry (2^48 - 1, in the year 10889). */
export const MAX_MILLIS = 2 ** 48 - 1;

/** Longest node id, in characters. */
export const MAX_NODE_ID_LENGTH = 64;

const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const SERIALIZED_PATTERN = /^[0-9a-f]{16}[A-Za-z0-9_-]{1,64}$/;

/** Whether `nodeId` is 1 to 64 characters from `A-Z a-z 0-9 _ -`. */
export function isValidNodeId(nodeId: unknown): nodeId is string {
  return typeof nodeId === 'string' && NODE_ID_PATTERN.test(nodeId);
}

/** Whether `text` is a serialized timestamp: 16 lowercase hex digits, then a node id. */
export function isSerializedTimestamp(text: unknown): text is string {
  return typeof text === 'string' && SERIALIZED_PATTERN.test(text);
}

/**
 * Orders two timestamps: negative if `a` is earlier, positive if later, 0 if equal.
 * The order is total: millis, then counter, then node id.
 */
export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  if (a.millis !== b.millis) return a.millis < b.millis ? -1 : 1;
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  if (a.nodeId === b.nodeId) return 0;
  return a.nodeId < b.nodeId ? -1 : 1;
}

/**
 * Serializes a timestamp to its compact string form: 12 lowercase hex digits of millis,
 * 4 of counter, then the node id. String order equals timestamp order.
 * @example formatTimestamp({ millis: 1700000000000, counter: 1, nodeId: 'a' }) // '018bcfe568000001a'
 */
export function formatTimestamp(timestamp: Timestamp): string {
  return (
    timestamp.millis.toString(16).padStart(12, '0') +
    timestamp.counter.toString(16).padStart(4, '0') +
    timestamp.nodeId
  );
}

/**
 * Parses the compact string form produced by {@link formatTimestamp}.
 * @throws {ValidationError} when `text` is not a well-formed serialized timestamp.
 */
export function parseTimestamp(text: unknown, path = 'timestamp'): Timestamp {
  if (!isSerializedTimestamp(text)) {
    throw new ValidationError(
      path,
      `expected 16 lowercase hex digits followed by a node id, got ${describe(text)}`,
    );
  }
  return {
    millis: Number.parseInt(text.slice(0, 12), 16),
    counter: Number.parseInt(text.slice(12, 16), 16),
    nodeId: text.slice(16),
  };
}

/**
 * Checks that `value` is a well-formed timestamp object and returns it typed.
 * @throws {ValidationError} naming the first malformed field.
 */
export function validateTimestamp(value: unknown, path = 'timestamp'): Timestamp {
  if (typeof value !== 'object' || value === null) {
    throw new ValidationError(path, `expected a timestamp object, got ${describe(value)}`);
  }
  const { millis, counter, nodeId } = value as Record<string, unknown>;
  if (!isIntegerIn(millis, 0, MAX_MILLIS)) {
    throw new ValidationError(
      `${path}.millis`,
      `expected an integer in [0, 2^48), got ${describe(millis)}`,
    );
  }
  if (!isIntegerIn(counter, 0, MAX_COUNTER)) {
    throw new ValidationError(
      `${path}.counter`,
      `expected an integer in [0, 65535], got ${describe(counter)}`,
    );
  }
  if (!isValidNodeId(nodeId)) {
    throw new ValidationError(`${path}.nodeId`, `${NODE_ID_ISSUE}, got ${describe(nodeId)}`);
  }
  return value as Timestamp;
}
