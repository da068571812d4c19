import { z } from 'zod/mini';
import { isValidMapName } from '../mapName.js';
import type { AggregateQuery, AggregateRow } from '../query/aggregateTypes.js';
import { compileAggregate } from '../query/compileAggregate.js';
import { compileQuery, isPlainObject } from '../query/compileQuery.js';
import type { Query } from '../query/queryTypes.js';
import { isValidKey } from '../recordKey.js';
import { isValidNodeId } from '../timestamp.js';
import type { Value } from '../value.js';
import { haveIssue } from './haveDigest.js';
import {
  AUTH_ERROR_CODES,
  ERROR_CODES,
  HASH_WIDTHS,
  KEY_ISSUE,
  MAP_NAME_ISSUE,
  MAX_CURSOR_LENGTH,
  MAX_TEXT_LENGTH,
  MAX_TOKEN_LENGTH,
  MAX_USER_ID_LENGTH,
  NODE_ID_ISSUE,
  QUERY_ERROR_CODES,
  REJECTION_REASONS,
  SYNC_ERROR_CODES,
  SYNC_RESET_REASONS,
  UINT_ISSUE,
} from './messageFields.js';
import { type Issue, wireEntryIssue } from './wireEntryIssue.js';

/*
 * The wire protocol: every message is a map with a literal `type`, one message per binary
 * WebSocket frame, MessagePack-encoded. `specifications/protocol.md` is the normative text;
 * these zod schemas are what `decodeMessage` checks every incoming frame against. The client
 * checks the messages it receives with the compact checks of `serverMessageChecks.ts` instead
 * (zod is too large for its bundle); a property test holds the two to the same verdicts.
 */

const uint = z.int().check(z.minimum(0), z.maximum(Number.MAX_SAFE_INTEGER));
const bytes = z.custom<Uint8Array>(
  (candidate) => candidate instanceof Uint8Array,
  'expected binary data',
);
const key = z.string().check(z.refine(isValidKey, KEY_ISSUE));
const mapName = z.string().check(z.refine(isValidMapName, MAP_NAME_ISSUE));
const nodeId = z.string().check(z.refine(isValidNodeId, NODE_ID_ISSUE));
const text = z.string().check(z.maxLength(MAX_TEXT_LENGTH));
const cursor = z.string().check(z.maxLength(MAX_CURSOR_LENGTH));

/**
 * One record on the wire: `[key, timestamp, value, ttlMs?]`, or with field writes
 * `[key, timestamp or null, value, ttlMs or null, fields]` (a null timestamp: the empty
 * write, for field writes alone).
 */
export type WireEntry =
  | [key: string, timestamp: string, value: Value | null]
  | [key: string, timestamp: string, value: Value | null, ttlMs: number]
  | [
      key: string,
      timestamp: string | null,
      value: Value | null,
      ttlMs: number | null,
      fields: WireFieldWrites,
    ];

/** Field writes on the wire, by name: `[timestamp, value]`, or `[timestamp]` for a removal. */
export type WireFieldWrites = Record<
  string,
  [timestamp: string] | [timestamp: string, value: Value]
>;

/**
 * A schema for a hot protocol element checked by one function (`issueOf`) rather than by
 * composed zod schemas, which allocate several times more per element; its issue is
 * reported at the element's path like any zod issue.
 */
function checkedBy<T>(issueOf: (candidate: unknown) => Issue | undefined) {
  return z.custom<T>().check(
    z.superRefine((value, context) => {
      const issue = issueOf(value);
      if (issue !== undefined) {
        context.addIssue({
          code: 'custom',
          input: value,
          path: issue.path,
          message: issue.message,
        });
      }
    }),
  );
}

/**
 * One record on the wire: `[key, timestamp, value, ttlMs?]`, `value` `null` for a tombstone,
 * the timestamp in its serialized form. The most frequent element of the protocol, so it is
 * checked by one function rather than composed tuple and union schemas, which allocate
 * several times more per entry; the errors name the same paths and reasons.
 */
export const wireEntrySchema = checkedBy<WireEntry>(wireEntryIssue);

const query = z.unknown().check(
  z.superRefine((candidate, context) => {
    try {
      compileQuery(candidate as Query);
    } catch (error) {
      context.addIssue({ code: 'custom', input: candidate, message: (error as Error).message });
    }
  }),
) as unknown as z.ZodMiniType<Query>;

const aggregateQuery = z.unknown().check(
  z.superRefine((candidate, context) => {
    try {
      compileAggregate(candidate as AggregateQuery);
    } catch (error) {
      context.addIssue({ code: 'custom', input: candidate, message: (error as Error).message });
    }
  }),
) as unknown as z.ZodMiniType<AggregateQuery>;

/** A group of an aggregate's result: its canonical key text, and its keys and figures by name. */
const aggregateRow = z.strictObject({
  key: z.string(),
  value: z.unknown().check(z.refine(isPlainObject, 'expected a map')),
}) as unknown as z.ZodMiniType<AggregateRow>;

/** Client → server, first message: protocol version, node id, optional JWT. */
export const helloSchema = z.strictObject({
  type: z.literal('hello'),
  protocol: uint,
  nodeId,
  token: z.optional(z.string().check(z.maxLength(MAX_TOKEN_LENGTH))),
});

/** Server → client: the handshake succeeded. */
export const welcomeSchema = z.strictObject({
  type: z.literal('welcome'),
  protocol: uint,
  /** The server's node id. */
  nodeId,
  /** The authenticated user, or null for an anonymous session. */
  userId: z.nullable(z.string().check(z.maxLength(MAX_USER_ID_LENGTH))),
  /** Server wall-clock time (ms), for the client to correct its clock. */
  serverTime: uint,
  /** Interval at which the server pings, in ms. */
  heartbeatMs: uint,
  /** Most ops the server accepts in one `ops` message. */
  maxBatchOps: uint,
  /** Largest frame the server accepts, in bytes: the client keeps every message within it. */
  maxFrameBytes: uint,
});

/** Server → client: authentication failed; the server closes the connection after it. */
export const authErrorSchema = z.strictObject({
  type: z.literal('auth_error'),
  code: z.enum(AUTH_ERROR_CODES),
  message: text,
});

/** One write in an `ops` message. */
export interface Op {
  /** Client-chosen op id, unique per connection, echoed in the ack or rejection. */
  id: number;
  map: string;
  entry: WireEntry;
}

const OP_FIELDS = new Set(['id', 'map', 'entry']);

/** What is wrong with a candidate op (and where inside it), if anything. */
function opIssue(op: unknown): Issue | undefined {
  if (typeof op !== 'object' || op === null || Array.isArray(op)) {
    return { path: [], message: 'expected an op: { id, map, entry }' };
  }
  const { id, map, entry } = op as Record<string, unknown>;
  for (const field in op) {
    if (!OP_FIELDS.has(field)) return { path: [], message: `unknown key "${field}"` };
  }
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    return { path: ['id'], message: UINT_ISSUE };
  }
  if (typeof map !== 'string' || !isValidMapName(map)) {
    return { path: ['map'], message: MAP_NAME_ISSUE };
  }
  const issue = wireEntryIssue(entry);
  return issue === undefined
    ? undefined
    : { path: ['entry', ...issue.path], message: issue.message };
}

/**
 * One write in an `ops` message: checked by one function, like {@link wireEntrySchema}, as
 * ops are what a busy server decodes most (about 4x less allocation than composed schemas).
 */
export const opSchema = checkedBy<Op>(opIssue);

/** Client → server: a batch of writes. */
export const opsSchema = z.strictObject({
  type: z.literal('ops'),
  ops: z.array(opSchema).check(z.minLength(1)),
});

/** Server → client: ops durably committed (after COMMIT). */
export const ackSchema = z.strictObject({
  type: z.literal('ack'),
  /** Ids of the ops committed, including the superseded ones. */
  ids: z.array(uint),
  /** Ids of ops that were older than the stored record: acknowledged, not applied. */
  superseded: z.array(uint),
});

/** Why an op was rejected. */
export const rejectionReasonSchema = z.enum(REJECTION_REASONS);

/** Server → client: ops that were not applied, each with a reason. */
export const rejectSchema = z.strictObject({
  type: z.literal('reject'),
  rejections: z.array(
    z.strictObject({
      id: uint,
      reason: rejectionReasonSchema,
      message: text,
      /** True when sending the op again later may succeed (e.g. storage unavailable). */
      retryable: z.boolean(),
      /** The server's current record for the key (null when absent), to roll back to. */
      current: z.optional(z.nullable(wireEntrySchema)),
    }),
  ),
});

/** Both directions: one step of the Merkle walk over one map (`specifications/merkle-sync.md`). */
export const syncSchema = z.strictObject({
  type: z.literal('sync'),
  map: mapName,
  /** Walk id chosen by the initiator, unique per connection. */
  session: uint,
  /** Opening only: server time (ms) of the client's last completed sync of this map. */
  lastSync: z.optional(uint),
  /**
   * Opening only: resume from the cursor the server gave at the client's last sync of this
   * map, instead of walking (the opening then carries no hashes).
   */
  cursor: z.optional(cursor),
  width: z.literal(HASH_WIDTHS),
  root: bytes,
  marks: bytes,
  hashes: bytes,
  digestSizes: z.array(uint),
  digestKeys: z.array(key),
  digestStamps: bytes,
  nodeIds: z.array(nodeId),
  wants: bytes,
  records: z.array(wireEntrySchema),
});

/** Both directions: a chunk of a bulk transfer following a `sync` message. */
export const syncRecordsSchema = z.strictObject({
  type: z.literal('sync_records'),
  map: mapName,
  session: uint,
  records: z.array(wireEntrySchema),
  /** First chunk only: how many records the whole transfer holds, for progress. */
  total: z.optional(uint),
  /** Whether this is the last chunk. */
  last: z.boolean(),
});

/** Both directions: the sender has nothing more to say in this walk. */
export const syncDoneSchema = z.strictObject({
  type: z.literal('sync_done'),
  map: mapName,
  session: uint,
  /** The sender's root hash (8 bytes), to check convergence. */
  root: bytes,
  /** Server → client only: the server time (ms) to store as this map's last sync. */
  syncedAt: z.optional(uint),
  /** Server → client only: where the next walk of this map may resume from. */
  cursor: z.optional(cursor),
});

/** Server → client: discard the local replica of the map and sync it from scratch. */
export const syncResetSchema = z.strictObject({
  type: z.literal('sync_reset'),
  map: mapName,
  session: uint,
  reason: z.enum(SYNC_RESET_REASONS),
});

/** Server → client: a walk was refused or failed; the client may retry later. */
export const syncErrorSchema = z.strictObject({
  type: z.literal('sync_error'),
  map: mapName,
  session: uint,
  code: z.enum(SYNC_ERROR_CODES),
  message: text,
});

/**
 * Server → client: drop these records of the map from the replica (without tombstones):
 * the user may no longer read them. Unacknowledged writes of the keys are kept.
 */
export const revokeSchema = z.strictObject({
  type: z.literal('revoke'),
  map: mapName,
  keys: z.array(key),
});

/** Server → client: records changed by other writers, batched. */
export const changesSchema = z.strictObject({
  type: z.literal('changes'),
  changes: z.array(
    z.strictObject({
      map: mapName,
      entries: z.array(wireEntrySchema),
      /** The map's cursor once these are merged, for a client current with it. */
      cursor: z.optional(cursor),
    }),
  ),
});

/**
 * The records a client holds of a query's result: keys and, 8 bytes per key in their order,
 * their item hashes (`specifications/protocol.md`, "Query-scoped maps").
 */
const have = z.strictObject({ keys: z.array(key), hashes: bytes }).check(
  z.superRefine(({ keys, hashes }, context) => {
    const issue = haveIssue(keys, hashes);
    if (issue !== undefined) context.addIssue({ code: 'custom', input: keys, message: issue });
  }),
);

/** Client → server: subscribe to a live query. */
export const subscribeSchema = z.strictObject({
  type: z.literal('subscribe'),
  /** Subscription id chosen by the client, unique per connection. */
  id: uint,
  map: mapName,
  query,
  /** The records the client holds of the result: the snapshot is a delta against them. */
  have: z.optional(have),
});

/** Server → client: the initial result of a live query, possibly in several chunks. */
export const querySnapshotSchema = z.strictObject({
  type: z.literal('query_snapshot'),
  id: uint,
  entries: z.array(wireEntrySchema),
  /** Whether this is the last chunk of the snapshot. */
  last: z.boolean(),
  /** How many records match the query's `where` (last chunk). */
  matching: z.optional(uint),
});

/** Client → server: grow a live query's window to `limit` rows. */
export const queryMoreSchema = z.strictObject({
  type: z.literal('query_more'),
  id: uint,
  limit: uint,
});

/** Server → client: incremental changes of a live query's result. */
export const queryUpdateSchema = z.strictObject({
  type: z.literal('query_update'),
  id: uint,
  /** Records that entered the result. */
  enter: z.array(wireEntrySchema),
  /** Records that stayed in the result with a new value. */
  update: z.array(wireEntrySchema),
  /** Keys of records that left the result. */
  leave: z.array(key),
  /** How many records match the query's `where`, when it changed. */
  matching: z.optional(uint),
});

/** Client → server: end a live query subscription. */
export const unsubscribeSchema = z.strictObject({
  type: z.literal('unsubscribe'),
  id: uint,
});

/** Server → client: a live query was refused or ended (invalid query, permission, limit). */
export const queryErrorSchema = z.strictObject({
  type: z.literal('query_error'),
  id: uint,
  code: z.enum(QUERY_ERROR_CODES),
  message: text,
});

/**
 * Client → server: subscribe to a live aggregate of a map (ids are shared with live queries:
 * `unsubscribe` ends it, `query_error` refuses or ends it).
 */
export const aggregateSchema = z.strictObject({
  type: z.literal('aggregate'),
  id: uint,
  map: mapName,
  query: aggregateQuery,
});

/**
 * Server → client: a live aggregate's groups that entered or changed (`rows`) and left
 * (`left`); `reset` on the first message of a result: the client forgets the rows it held.
 * A result too large for one frame comes in several messages, `last` on the final one.
 */
export const aggregateRowsSchema = z.strictObject({
  type: z.literal('aggregate_rows'),
  id: uint,
  reset: z.boolean(),
  rows: z.array(aggregateRow),
  left: z.array(z.string()),
  last: z.boolean(),
});

/** Both directions: liveness check; the peer answers with `pong` carrying the same time. */
export const pingSchema = z.strictObject({ type: z.literal('ping'), time: uint });

/** Both directions: answer to `ping`. */
export const pongSchema = z.strictObject({ type: z.literal('pong'), time: uint });

/** Both directions: an error not tied to one op, query or walk. */
export const errorSchema = z.strictObject({
  type: z.literal('error'),
  code: z.enum(ERROR_CODES),
  message: text,
  /** Whether retrying later (reconnecting) may succeed. */
  retryable: z.boolean(),
});

/** Every message of the protocol, discriminated by `type`. */
export const messageSchema = z.discriminatedUnion('type', [
  helloSchema,
  welcomeSchema,
  authErrorSchema,
  opsSchema,
  ackSchema,
  rejectSchema,
  syncSchema,
  syncRecordsSchema,
  syncDoneSchema,
  syncResetSchema,
  syncErrorSchema,
  revokeSchema,
  changesSchema,
  subscribeSchema,
  querySnapshotSchema,
  queryUpdateSchema,
  queryMoreSchema,
  unsubscribeSchema,
  queryErrorSchema,
  aggregateSchema,
  aggregateRowsSchema,
  pingSchema,
  pongSchema,
  errorSchema,
]);

/** Any protocol message. */
export type Message = z.infer<typeof messageSchema>;
/** The message of a given `type`. */
export type MessageOf<T extends Message['type']> = Extract<Message, { type: T }>;
/** Every message type. */
export const MESSAGE_TYPES = messageSchema.def.options.map(
  (option) => option.def.shape.type.def.values[0]!,
);
