import {
  formatTimestamp,
  isValidKey,
  type Message,
  type Value,
  type WireEntry,
} from '../src/index.js';
import {
  AUTH_ERROR_CODES,
  QUERY_ERROR_CODES,
  REJECTION_REASONS,
  SYNC_ERROR_CODES,
  SYNC_RESET_REASONS,
} from '../src/protocol/messageFields.js';
import { fc } from './property.js';

const FORBIDDEN_FIELDS = new Set(['__proto__', 'constructor', 'prototype']);

/** Well-formed strings (values must survive UTF-8). */
export const textArbitrary = fc.string({ unit: 'grapheme', maxLength: 12 });

/** Storable values, nested a few levels. */
export const valueArbitrary: fc.Arbitrary<Value> = fc.letrec<{ value: Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    textArbitrary,
    fc.integer(),
    fc
      .double({ noNaN: true, noDefaultInfinity: true })
      .map((number) => (Object.is(number, -0) ? 0 : number)),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      textArbitrary.filter((field) => !FORBIDDEN_FIELDS.has(field)),
      tie('value'),
      { maxKeys: 4 },
    ),
  ),
})).value;

export const keyArbitrary = fc.string({ minLength: 1, maxLength: 16 }).filter(isValidKey);
export const mapNameArbitrary = fc.stringMatching(/^[A-Za-z0-9_.:@/-]{1,20}$/);
export const nodeIdArbitrary = fc.stringMatching(/^[A-Za-z0-9_-]{1,16}$/);
export const timestampTextArbitrary = fc
  .record({
    millis: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
    counter: fc.integer({ min: 0, max: 0xffff }),
    nodeId: nodeIdArbitrary,
  })
  .map(formatTimestamp);
const uint = fc.nat({ max: 2 ** 40 });
const bytes = (max: number) => fc.uint8Array({ maxLength: max });

export const wireEntryArbitrary: fc.Arbitrary<WireEntry> = fc.oneof(
  fc.tuple(keyArbitrary, timestampTextArbitrary, fc.option(valueArbitrary, { nil: null })),
  fc.tuple(
    keyArbitrary,
    timestampTextArbitrary,
    fc.option(valueArbitrary, { nil: null }),
    fc.integer({ min: 1, max: 2 ** 31 }),
  ),
  // With field writes: after a whole write, or alone (the empty write: nil, nil, nil).
  fc
    .tuple(
      keyArbitrary,
      fc.option(
        fc.tuple(
          timestampTextArbitrary,
          fc.option(valueArbitrary, { nil: null }),
          fc.option(fc.integer({ min: 1, max: 2 ** 31 }), { nil: null }),
        ),
        { nil: null },
      ),
      fc.dictionary(
        textArbitrary.filter((field) => !FORBIDDEN_FIELDS.has(field)),
        fc.oneof(
          fc.tuple(timestampTextArbitrary),
          fc.tuple(timestampTextArbitrary, valueArbitrary),
        ),
        { minKeys: 1, maxKeys: 3 },
      ),
    )
    .map(
      ([key, whole, fields]): WireEntry =>
        whole === null ? [key, null, null, null, fields] : [key, ...whole, fields],
    ),
);
const entries = fc.array(wireEntryArbitrary, { maxLength: 4 });
const text = fc.string({ unit: 'grapheme', maxLength: 30 });

/** Random valid messages of every type. */
export const messageArbitrary: fc.Arbitrary<Message> = fc.oneof(
  fc.record(
    { type: fc.constant('hello' as const), protocol: uint, nodeId: nodeIdArbitrary, token: text },
    { requiredKeys: ['type', 'protocol', 'nodeId'] },
  ),
  fc.record({
    type: fc.constant('welcome' as const),
    protocol: uint,
    nodeId: nodeIdArbitrary,
    userId: fc.option(text, { nil: null }),
    serverTime: uint,
    heartbeatMs: uint,
    maxBatchOps: uint,
    maxFrameBytes: uint,
  }),
  fc.record({
    type: fc.constant('auth_error' as const),
    code: fc.constantFrom(...AUTH_ERROR_CODES),
    message: text,
  }),
  fc.record({
    type: fc.constant('ops' as const),
    ops: fc.array(fc.record({ id: uint, map: mapNameArbitrary, entry: wireEntryArbitrary }), {
      minLength: 1,
      maxLength: 4,
    }),
  }),
  fc.record({ type: fc.constant('ack' as const), ids: fc.array(uint), superseded: fc.array(uint) }),
  fc.record({
    type: fc.constant('reject' as const),
    rejections: fc.array(
      fc.record(
        {
          id: uint,
          reason: fc.constantFrom(...REJECTION_REASONS),
          message: text,
          retryable: fc.boolean(),
          current: fc.option(wireEntryArbitrary, { nil: null }),
        },
        { requiredKeys: ['id', 'reason', 'message', 'retryable'] },
      ),
      { maxLength: 3 },
    ),
  }),
  fc.record(
    {
      type: fc.constant('sync' as const),
      map: mapNameArbitrary,
      session: uint,
      lastSync: uint,
      width: fc.constantFrom(4 as const, 8 as const),
      root: fc.uint8Array({ minLength: 8, maxLength: 8 }),
      marks: bytes(10),
      hashes: bytes(40),
      digestSizes: fc.array(fc.nat({ max: 5 }), { maxLength: 3 }),
      digestKeys: fc.array(keyArbitrary, { maxLength: 3 }),
      digestStamps: bytes(30),
      nodeIds: fc.array(nodeIdArbitrary, { maxLength: 2 }),
      wants: bytes(3),
      records: entries,
    },
    {
      requiredKeys: [
        'type',
        'map',
        'session',
        'width',
        'root',
        'marks',
        'hashes',
        'digestSizes',
        'digestKeys',
        'digestStamps',
        'nodeIds',
        'wants',
        'records',
      ],
    },
  ),
  fc.record(
    {
      type: fc.constant('sync_records' as const),
      map: mapNameArbitrary,
      session: uint,
      records: entries,
      total: uint,
      last: fc.boolean(),
    },
    { requiredKeys: ['type', 'map', 'session', 'records', 'last'] },
  ),
  fc.record(
    {
      type: fc.constant('sync_done' as const),
      map: mapNameArbitrary,
      session: uint,
      root: bytes(8),
      syncedAt: uint,
    },
    { requiredKeys: ['type', 'map', 'session', 'root'] },
  ),
  fc.record({
    type: fc.constant('sync_reset' as const),
    map: mapNameArbitrary,
    session: uint,
    reason: fc.constantFrom(...SYNC_RESET_REASONS),
  }),
  fc.record({
    type: fc.constant('sync_error' as const),
    map: mapNameArbitrary,
    session: uint,
    code: fc.constantFrom(...SYNC_ERROR_CODES),
    message: text,
  }),
  fc.record({
    type: fc.constant('revoke' as const),
    map: mapNameArbitrary,
    keys: fc.array(keyArbitrary, { maxLength: 3 }),
  }),
  fc.record({
    type: fc.constant('changes' as const),
    changes: fc.array(fc.record({ map: mapNameArbitrary, entries }), { maxLength: 3 }),
  }),
  fc.record(
    {
      type: fc.constant('subscribe' as const),
      id: uint,
      map: mapNameArbitrary,
      have: fc
        .uniqueArray(keyArbitrary, { maxLength: 3 })
        .chain((keys) =>
          fc
            .uint8Array({ minLength: keys.length * 8, maxLength: keys.length * 8 })
            .map((hashes) => ({ keys, hashes })),
        ),
      query: fc.constantFrom(
        {},
        {
          where: { done: false },
          sort: [{ field: 'createdAt', direction: 'desc' as const }],
          limit: 20,
        },
        {
          where: { or: [{ 'a.b': { gte: 3 } }, { tags: { contains: 'x' } }] },
          offset: 5,
          fields: ['a'],
        },
      ),
    },
    { requiredKeys: ['type', 'id', 'map', 'query'] },
  ),
  fc.record(
    {
      type: fc.constant('query_snapshot' as const),
      id: uint,
      entries,
      last: fc.boolean(),
      matching: uint,
    },
    { requiredKeys: ['type', 'id', 'entries', 'last'] },
  ),
  fc.record(
    {
      type: fc.constant('query_update' as const),
      id: uint,
      enter: entries,
      update: entries,
      leave: fc.array(keyArbitrary, { maxLength: 3 }),
      matching: uint,
    },
    { requiredKeys: ['type', 'id', 'enter', 'update', 'leave'] },
  ),
  fc.record({ type: fc.constant('query_more' as const), id: uint, limit: uint }),
  fc.record({ type: fc.constant('unsubscribe' as const), id: uint }),
  fc.record({
    type: fc.constant('query_error' as const),
    id: uint,
    code: fc.constantFrom(...QUERY_ERROR_CODES),
    message: text,
  }),
  fc.record({
    type: fc.constant('aggregate' as const),
    id: uint,
    map: mapNameArbitrary,
    query: fc.constantFrom(
      { aggregate: { n: 'count' } },
      {
        where: { done: true },
        groupBy: { owner: 'owner', minute: { field: 'completedAt', bucket: '1m' } },
        aggregate: { n: 'count', points: { sum: 'points' }, last: { max: 'completedAt' } },
        sort: [{ field: 'n', direction: 'desc' as const }],
        limit: 10,
      },
    ),
  }),
  fc.record({
    type: fc.constant('aggregate_rows' as const),
    id: uint,
    reset: fc.boolean(),
    rows: fc.array(
      fc.record({
        key: fc.string({ maxLength: 20 }),
        value: fc.dictionary(
          fc.constantFrom('owner', 'n', 'mean'),
          fc.oneof(
            fc.string({ maxLength: 5 }),
            fc.integer(),
            fc.double({ noNaN: true }),
            fc.constant(null),
          ),
        ),
      }),
      { maxLength: 3 },
    ),
    left: fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }),
    last: fc.boolean(),
  }),
  fc.record({ type: fc.constant('ping' as const), time: uint }),
  fc.record({ type: fc.constant('pong' as const), time: uint }),
  fc.record({
    type: fc.constant('error' as const),
    code: fc.constantFrom(
      'PROTOCOL_VERSION' as const,
      'MALFORMED' as const,
      'UNAUTHENTICATED' as const,
      'TOKEN_EXPIRED' as const,
      'POLICY_VIOLATION' as const,
      'UNAVAILABLE' as const,
      'INTERNAL' as const,
      'SHUTTING_DOWN' as const,
    ),
    message: text,
    retryable: fc.boolean(),
  }),
) as fc.Arbitrary<Message>;
