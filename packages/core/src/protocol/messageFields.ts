import { MAX_KEY_BYTES } from '../recordKey.js';

/*
 * The leaves of the message shapes: closed sets of values, string bounds and the reasons given
 * for invalid map names, keys and node ids. Both the zod schemas (`messages.ts`) and the
 * client's compact checks (`serverMessageChecks.ts`) take them from here, so the two can
 * differ at most in how fields are put together, which a property test compares.
 */

/** Longest token a `hello` may carry, in characters. */
export const MAX_TOKEN_LENGTH = 16 * 1024;
/** Longest human-readable `message` of an error, a rejection or a refusal, in characters. */
export const MAX_TEXT_LENGTH = 1024;
/** Longest user id a `welcome` may carry, in characters. */
export const MAX_USER_ID_LENGTH = 256;
/** Characters of a resume cursor (`sync`, `sync_done`, `changes`): opaque, issued by a server. */
export const MAX_CURSOR_LENGTH = 128;

export const MAP_NAME_ISSUE = 'expected a map name: 1-128 characters from A-Z a-z 0-9 _ . : @ / -';
export const NODE_ID_ISSUE = 'expected a node id: 1-64 characters from A-Z a-z 0-9 _ -';
export const KEY_ISSUE = `expected a record key: 1-${MAX_KEY_BYTES} bytes of UTF-8, no U+0000 or lone surrogates`;
export const UINT_ISSUE = 'expected an integer from 0 to 2^53 - 1';
export const TTL_ISSUE = 'expected a TTL: a whole number of milliseconds, at least 1';

/** Hash widths of a Merkle walk, in bytes. */
export const HASH_WIDTHS = [4, 8] as const;

export const AUTH_ERROR_CODES = [
  'MISSING_TOKEN',
  'INVALID_TOKEN',
  'EXPIRED_TOKEN',
  'ANONYMOUS_NOT_ALLOWED',
  'NODE_ID_TAKEN',
] as const;

export const REJECTION_REASONS = [
  'PERMISSION',
  'CLOCK_DRIFT',
  'VALIDATION',
  'NODE_ID',
  'RATE_LIMIT',
  'UNAVAILABLE',
  'TOO_OLD',
] as const;

export const SYNC_RESET_REASONS = ['PRUNED', 'REQUESTED'] as const;

export const SYNC_ERROR_CODES = ['PERMISSION', 'UNAVAILABLE', 'INVALID', 'LIMIT'] as const;

export const QUERY_ERROR_CODES = ['INVALID_QUERY', 'PERMISSION', 'LIMIT', 'UNAVAILABLE'] as const;

export const ERROR_CODES = [
  'PROTOCOL_VERSION',
  'MALFORMED',
  'UNAUTHENTICATED',
  'TOKEN_EXPIRED',
  'POLICY_VIOLATION',
  'UNAVAILABLE',
  'INTERNAL',
  'SHUTTING_DOWN',
] as const;
