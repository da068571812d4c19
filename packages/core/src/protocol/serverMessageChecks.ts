import { isIntegerIn } from '../isIntegerIn.js';
import { isValidMapName } from '../mapName.js';
import { isPlainObject } from '../query/compileQuery.js';
import { isValidKey } from '../recordKey.js';
import { isValidNodeId } from '../timestamp.js';
import {
  AUTH_ERROR_CODES,
  ERROR_CODES,
  HASH_WIDTHS,
  KEY_ISSUE,
  MAP_NAME_ISSUE,
  MAX_CURSOR_LENGTH,
  MAX_TEXT_LENGTH,
  MAX_USER_ID_LENGTH,
  NODE_ID_ISSUE,
  QUERY_ERROR_CODES,
  REJECTION_REASONS,
  SYNC_ERROR_CODES,
  SYNC_RESET_REASONS,
  UINT_ISSUE,
} from './messageFields.js';
import type { Message, MessageOf } from './messages.js';
import { type Issue, wireEntryIssue } from './wireEntryIssue.js';

/*
 * The shapes of the messages a server sends, as compact checks for the client: the zod
 * schemas of `messages.ts` say the same, but zod would add 7 KiB gzipped to its bundle. The
 * leaves (closed sets, bounds, keys, map names, wire entries) come from the same modules as
 * the schemas'; `test/serverMessageChecks.test.ts` holds the shapes to the schemas' verdicts
 * on valid and corrupted messages. A change to a message here goes with one there.
 */

/** What is wrong with a candidate field value, if anything. */
type Check = (candidate: unknown) => Issue | undefined;

const problem = (message: string): Issue => ({ path: [], message });
/** The issue of a part, placed under the step that leads to it. */
const under = (step: PropertyKey, issue: Issue | undefined): Issue | undefined =>
  issue && { path: [step, ...issue.path], message: issue.message };

const valid =
  (test: (candidate: unknown) => boolean, message: string): Check =>
  (candidate) =>
    test(candidate) ? undefined : problem(message);

const uint = valid((candidate) => isIntegerIn(candidate, 0, Number.MAX_SAFE_INTEGER), UINT_ISSUE);
const boolean = valid((candidate) => typeof candidate === 'boolean', 'expected a boolean');
const bytes = valid((candidate) => candidate instanceof Uint8Array, 'expected binary data');
const key = valid(isValidKey, KEY_ISSUE);
const mapName = valid(isValidMapName, MAP_NAME_ISSUE);
const nodeId = valid(isValidNodeId, NODE_ID_ISSUE);
const string = (maxLength: number) =>
  valid(
    (candidate) => typeof candidate === 'string' && candidate.length <= maxLength,
    `expected a string of at most ${maxLength} characters`,
  );
const text = string(MAX_TEXT_LENGTH);
const anyString = valid((candidate) => typeof candidate === 'string', 'expected a string');
const map = valid(isPlainObject, 'expected a map');
const oneOf = (values: readonly unknown[]) =>
  valid((candidate) => values.includes(candidate), `expected ${values.join(' or ')}`);
const nullable =
  (check: Check): Check =>
  (candidate) =>
    candidate === null ? undefined : check(candidate);
const arrayOf =
  (check: Check): Check =>
  (candidate) => {
    if (!Array.isArray(candidate)) return problem('expected an array');
    for (let index = 0; index < candidate.length; index++) {
      const issue = under(index, check(candidate[index]));
      if (issue) return issue;
    }
    return undefined;
  };

/** Marks an object field that may be left out. */
export const OPTIONAL = Symbol('optional');
type Field = Check | { readonly [OPTIONAL]: Check };
const optional = (check: Check): Field => ({ [OPTIONAL]: check });

/** A map with exactly these fields (optional ones may be left out), like `z.strictObject`. */
const object =
  (fields: Readonly<Record<string, Field>>): Check =>
  (candidate) => {
    if (typeof candidate !== 'object' || candidate === null || Array.isArray(candidate)) {
      return problem('expected a map');
    }
    const record = candidate as Record<string, unknown>;
    for (const name in record) {
      if (!Object.hasOwn(fields, name)) return problem(`unknown key "${name}"`);
    }
    for (const name in fields) {
      const field = fields[name]!;
      const value = record[name];
      if (typeof field !== 'function') {
        if (value !== undefined) {
          const issue = under(name, field[OPTIONAL](value));
          if (issue) return issue;
        }
      } else if (value === undefined) {
        return under(name, problem('required'));
      } else {
        const issue = under(name, field(value));
        if (issue) return issue;
      }
    }
    return undefined;
  };

const entries = arrayOf(wireEntryIssue);

/**
 * The shape of every message a server sends, but for its `type`; a field is a check, or an
 * object holding the check of an optional field under {@link OPTIONAL}. Exported for the test
 * that compares the shapes with the schemas.
 */
export const SERVER_MESSAGE_SHAPES = {
  welcome: {
    protocol: uint,
    nodeId,
    userId: nullable(string(MAX_USER_ID_LENGTH)),
    serverTime: uint,
    heartbeatMs: uint,
    maxBatchOps: uint,
    maxFrameBytes: uint,
  },
  auth_error: { code: oneOf(AUTH_ERROR_CODES), message: text },
  ack: { ids: arrayOf(uint), superseded: arrayOf(uint) },
  reject: {
    rejections: arrayOf(
      object({
        id: uint,
        reason: oneOf(REJECTION_REASONS),
        message: text,
        retryable: boolean,
        current: optional(nullable(wireEntryIssue)),
      }),
    ),
  },
  sync: {
    map: mapName,
    session: uint,
    lastSync: optional(uint),
    cursor: optional(string(MAX_CURSOR_LENGTH)),
    width: oneOf(HASH_WIDTHS),
    root: bytes,
    marks: bytes,
    hashes: bytes,
    digestSizes: arrayOf(uint),
    digestKeys: arrayOf(key),
    digestStamps: bytes,
    nodeIds: arrayOf(nodeId),
    wants: bytes,
    records: entries,
  },
  sync_records: {
    map: mapName,
    session: uint,
    records: entries,
    total: optional(uint),
    last: boolean,
  },
  sync_done: {
    map: mapName,
    session: uint,
    root: bytes,
    syncedAt: optional(uint),
    cursor: optional(string(MAX_CURSOR_LENGTH)),
  },
  sync_reset: { map: mapName, session: uint, reason: oneOf(SYNC_RESET_REASONS) },
  sync_error: { map: mapName, session: uint, code: oneOf(SYNC_ERROR_CODES), message: text },
  revoke: { map: mapName, keys: arrayOf(key) },
  changes: {
    changes: arrayOf(
      object({ map: mapName, entries, cursor: optional(string(MAX_CURSOR_LENGTH)) }),
    ),
  },
  query_snapshot: {
    id: uint,
    entries,
    last: boolean,
    matching: optional(uint),
  },
  query_update: {
    id: uint,
    enter: entries,
    update: entries,
    leave: arrayOf(key),
    matching: optional(uint),
  },
  query_error: { id: uint, code: oneOf(QUERY_ERROR_CODES), message: text },
  aggregate_rows: {
    id: uint,
    reset: boolean,
    rows: arrayOf(object({ key: anyString, value: map })),
    left: arrayOf(anyString),
    last: boolean,
  },
  ping: { time: uint },
  pong: { time: uint },
  error: { code: oneOf(ERROR_CODES), message: text, retryable: boolean },
} satisfies Partial<Record<Message['type'], Record<string, Field>>>;

/** The type of a message a server sends. */
export type ServerMessageType = keyof typeof SERVER_MESSAGE_SHAPES;
/** A message a server sends. */
export type ServerMessage = MessageOf<ServerMessageType>;

const SERVER_MESSAGE_CHECKS = new Map<string, Check>(
  Object.entries(SERVER_MESSAGE_SHAPES).map(([type, fields]) => [
    type,
    object({ type: oneOf([type]), ...fields }),
  ]),
);

/** Whether `type` names a message a server sends. */
export function isServerMessageType(type: string): type is ServerMessageType {
  return SERVER_MESSAGE_CHECKS.has(type);
}

/**
 * What is wrong with a decoded message of a type a server sends (and where inside it), if
 * anything; `undefined` means it is a valid {@link ServerMessage}.
 */
export function serverMessageIssue(type: ServerMessageType, candidate: unknown): Issue | undefined {
  return SERVER_MESSAGE_CHECKS.get(type)!(candidate);
}
