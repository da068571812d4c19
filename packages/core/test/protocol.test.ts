import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_DECODE_LIMITS,
  decodeMessage,
  encodeHave,
  encodeMessage,
  holdsItem,
  itemHash,
  MESSAGE_TYPES,
  type Message,
  PROTOCOL_VERSION,
  ProtocolError,
  type ProtocolErrorReason,
  withFieldWrites,
} from '../src/index.js';
import { messageArbitrary } from './arbitraries.js';
import { plain } from './plain.js';
import { fc } from './property.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const fromHex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'));
// A raw encoder for hostile frames the protocol encoder would never produce.
const raw = new Packr({ useRecords: false, variableMapSize: true });

function reasonOf(frame: Uint8Array): ProtocolErrorReason | 'accepted' {
  try {
    decodeMessage(frame);
    return 'accepted';
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return error.reason;
  }
}

describe('test vectors (specifications/protocol.md)', () => {
  const vectors: Array<[string, Message, string]> = [
    ['ping', { type: 'ping', time: 5 }, '82a474797065a470696e67a474696d6505'],
    [
      'hello',
      { type: 'hello', protocol: 1, nodeId: 'c1' },
      '83a474797065a568656c6c6fa870726f746f636f6c01a66e6f64654964a26331',
    ],
    [
      'ops',
      {
        type: 'ops',
        ops: [
          { id: 1, map: 'todos', entry: ['t1', '018bcfe568000001a', { title: 'x', done: false }] },
        ],
      },
      '82a474797065a36f7073a36f70739183a2696401a36d6170a5746f646f73a5656e74727993a27431b1303138626366653536383030303030316182a57469746c65a178a4646f6e65c2',
    ],
    [
      'ack',
      { type: 'ack', ids: [1, 2], superseded: [2] },
      '83a474797065a361636ba3696473920102aa737570657273656465649102',
    ],
    [
      'sync_done',
      {
        type: 'sync_done',
        map: 'todos',
        session: 3,
        root: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
      },
      '84a474797065a973796e635f646f6e65a36d6170a5746f646f73a773657373696f6e03a4726f6f74c4080102030405060708',
    ],
    [
      'sync_done with a cursor',
      {
        type: 'sync_done',
        map: 'todos',
        session: 3,
        root: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
        syncedAt: 1_700_000_000_000,
        cursor: 'k3x9.2.41',
      },
      '86a474797065a973796e635f646f6e65a36d6170a5746f646f73a773657373696f6e03a4726f6f74c4080102030405060708a873796e6365644174cb4278bcfe56800000a6637572736f72a96b3378392e322e3431',
    ],
    [
      'changes with a cursor',
      {
        type: 'changes',
        changes: [{ map: 'todos', entries: [['t1', '018bcfe568000001a', 1]], cursor: 'k3x9.2.42' }],
      },
      '82a474797065a76368616e676573a76368616e6765739183a36d6170a5746f646f73a7656e74726965739193a27431b1303138626366653536383030303030316101a6637572736f72a96b3378392e322e3432',
    ],
    [
      'revoke',
      { type: 'revoke', map: 'notes', keys: ['n1'] },
      '83a474797065a67265766f6b65a36d6170a56e6f746573a46b65797391a26e31',
    ],
    [
      'reject (TOO_OLD)',
      {
        type: 'reject',
        rejections: [{ id: 4, reason: 'TOO_OLD', message: 'x', retryable: false }],
      },
      '82a474797065a672656a656374aa72656a656374696f6e739184a2696404a6726561736f6ea7544f4f5f4f4c44a76d657373616765a178a9726574727961626c65c2',
    ],
  ];

  it.each(vectors)('%s encodes to the documented bytes and back', (_name, message, bytes) => {
    expect(hex(encodeMessage(message))).toBe(bytes);
    expect(plain(decodeMessage(fromHex(bytes)))).toEqual(plain(message));
  });

  it('speaks protocol version 6', () => {
    expect(PROTOCOL_VERSION).toBe(6);
  });
});

describe('round trip', () => {
  it('decode(encode(m)) equals m for random valid messages of every type', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(messageArbitrary, (message) => {
        seen.add(message.type);
        expect(plain(decodeMessage(encodeMessage(message)))).toEqual(plain(message));
      }),
      { numRuns: 1000 },
    );
    expect([...seen].sort()).toEqual([...MESSAGE_TYPES].sort());
  });
});

describe('hostile frames', () => {
  it('random bytes only ever give a ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(() => {
          try {
            decodeMessage(bytes);
          } catch (error) {
            if (error instanceof ProtocolError) return;
            throw error;
          }
        }).not.toThrow();
      }),
      { numRuns: 3000 },
    );
  });

  it('corrupted, truncated and extended valid frames only ever give a ProtocolError', () => {
    fc.assert(
      fc.property(
        messageArbitrary,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 4 }),
        (message, flips, cut, tail) => {
          const frame = new Uint8Array(encodeMessage(message));
          for (const [position, byte] of flips) frame[position % frame.length] = byte;
          const truncated = frame.subarray(0, cut % (frame.length + 1));
          const extended = new Uint8Array([...frame, ...tail]);
          for (const candidate of [frame, truncated, extended]) {
            try {
              decodeMessage(candidate);
            } catch (error) {
              expect(error).toBeInstanceOf(ProtocolError);
            }
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it.each<[string, () => Uint8Array, ProtocolErrorReason]>([
    ['an empty frame', () => new Uint8Array(0), 'MALFORMED'],
    [
      'a frame over the size limit',
      () => new Uint8Array(DEFAULT_DECODE_LIMITS.maxFrameBytes + 1),
      'FRAME_TOO_LARGE',
    ],
    ['the unused byte 0xc1', () => new Uint8Array([0xc1]), 'MALFORMED'],
    ['a truncated map', () => fromHex('82a474797065'), 'MALFORMED'],
    [
      'trailing bytes',
      () => new Uint8Array([...encodeMessage({ type: 'ping', time: 1 }), 0]),
      'MALFORMED',
    ],
    ['an array header claiming 4 billion elements', () => fromHex('ddffffffff00'), 'LIMIT'],
    ['a map header claiming 4 billion entries', () => fromHex('dfffffffff00'), 'LIMIT'],
    ['a string header claiming 4 GB', () => fromHex('dbffffffff61'), 'LIMIT'],
    ['a binary header claiming 4 GB', () => fromHex('c6ffffffff61'), 'LIMIT'],
    ['an array claiming more elements than bytes', () => fromHex('dc0100c0'), 'MALFORMED'],
    ['arrays nested 100 000 deep', () => new Uint8Array(100_000).fill(0x91), 'LIMIT'],
    ['maps nested deep', () => fromHex(`${'81a161'.repeat(50)}c0`), 'LIMIT'],
    ['an extension type', () => fromHex('d4010a'), 'EXTENSION'],
    ['a Date (timestamp extension)', () => raw.pack(new Date()), 'EXTENSION'],
    ['an integer map key', () => fromHex('810102'), 'FORBIDDEN_KEY'],
    [
      'a __proto__ key',
      () => raw.pack(JSON.parse('{"type":"ping","__proto__":{"polluted":1}}')),
      'FORBIDDEN_KEY',
    ],
    [
      'a constructor key in a value',
      () =>
        raw.pack({
          type: 'ops',
          ops: [
            {
              id: 1,
              map: 'm',
              entry: ['k', '0000000000000000n', { constructor: { prototype: 1 } }],
            },
          ],
        }),
      'FORBIDDEN_KEY',
    ],
    ['a prototype key', () => raw.pack({ type: 'ping', time: 1, prototype: 1 }), 'FORBIDDEN_KEY'],
    ['an unknown type', () => raw.pack({ type: 'launch_missiles' }), 'UNKNOWN_TYPE'],
    ['a missing type', () => raw.pack({ time: 1 }), 'UNKNOWN_TYPE'],
    ['a non-map message', () => raw.pack([1, 2, 3]), 'UNKNOWN_TYPE'],
    ['a wrong field type', () => raw.pack({ type: 'ping', time: 'now' }), 'INVALID_MESSAGE'],
    ['a missing field', () => raw.pack({ type: 'ack', ids: [] }), 'INVALID_MESSAGE'],
    ['an extra field', () => raw.pack({ type: 'pong', time: 1, extra: true }), 'INVALID_MESSAGE'],
    ['a negative id', () => raw.pack({ type: 'unsubscribe', id: -1 }), 'INVALID_MESSAGE'],
    [
      'a uint64 beyond 2^53',
      () => fromHex('82a474797065a470696e67a474696d65cfffffffffffffffff'),
      'INVALID_MESSAGE',
    ],
    [
      'an invalid record key',
      () =>
        raw.pack({ type: 'ops', ops: [{ id: 1, map: 'm', entry: ['', '0000000000000000n', 1] }] }),
      'INVALID_MESSAGE',
    ],
    [
      'a malformed timestamp',
      () => raw.pack({ type: 'ops', ops: [{ id: 1, map: 'm', entry: ['k', 'yesterday', 1] }] }),
      'INVALID_MESSAGE',
    ],
    [
      'an invalid map name',
      () => raw.pack({ type: 'unsubscribe', id: 1, map: 'has space' }),
      'INVALID_MESSAGE',
    ],
    ['an empty ops batch', () => raw.pack({ type: 'ops', ops: [] }), 'INVALID_MESSAGE'],
    ...(
      [
        ['a key named twice', ['a', 'a'], 16],
        ['hashes not 8 bytes per key', ['a', 'b'], 15],
        ['more than 10 000 keys', Array.from({ length: 10_001 }, (_, i) => `k${i}`), 80_008],
      ] as const
    ).map(([what, keys, bytes]): [string, () => Uint8Array, ProtocolErrorReason] => [
      `a have with ${what}`,
      () =>
        raw.pack({
          type: 'subscribe',
          id: 1,
          map: 'm',
          query: {},
          have: { keys, hashes: new Uint8Array(bytes) },
        }),
      'INVALID_MESSAGE',
    ]),
    [
      'a negative window limit',
      () => raw.pack({ type: 'query_more', id: 1, limit: -1 }),
      'INVALID_MESSAGE',
    ],
    [
      'an invalid live query',
      () => raw.pack({ type: 'subscribe', id: 1, map: 'm', query: { where: { a: { gtt: 1 } } } }),
      'INVALID_MESSAGE',
    ],
    [
      'a NaN value',
      () =>
        raw.pack({
          type: 'ops',
          ops: [{ id: 1, map: 'm', entry: ['k', '0000000000000000n', Number.NaN] }],
        }),
      'INVALID_MESSAGE',
    ],
    [
      'an array over the length limit',
      () => raw.pack({ type: 'ack', ids: new Array(20_001).fill(1), superseded: [] }),
      'LIMIT',
    ],
    [
      // 10 KB of empty maps decode to a million objects: bounded by elements, not by bytes.
      'a value of 50 arrays of 20 000 empty maps (1 MB that would decode to a million objects)',
      () =>
        raw.pack({
          type: 'ops',
          ops: [
            {
              id: 1,
              map: 'm',
              entry: [
                'k',
                '0000000000000000n',
                Array.from({ length: 50 }, () => Array(20_000).fill({})),
              ],
            },
          ],
        }),
      'LIMIT',
    ],
    [
      'a key of 1 024 CJK characters (3 KB of UTF-8)',
      () =>
        raw.pack({
          type: 'ops',
          ops: [{ id: 1, map: 'm', entry: ['键'.repeat(1024), '0000000000000000n', 1] }],
        }),
      'INVALID_MESSAGE',
    ],
    [
      'a string over the length limit',
      () =>
        raw.pack({
          type: 'error',
          code: 'INTERNAL',
          message: 'x'.repeat(300_000),
          retryable: false,
        }),
      'LIMIT',
    ],
  ])('rejects %s', (_name, frame, reason) => {
    expect(reasonOf(frame())).toBe(reason);
  });

  it.each([
    ['not an array', { k: 1 }, 'ops.0.entry: expected [key, timestamp, value, ttlMs?, fields?]'],
    ['two elements', ['k', '0000000000000000n'], 'ops.0.entry: expected [key, timestamp'],
    ['six elements', ['k', '0000000000000000n', 1, 5, {}, 6], 'ops.0.entry: expected [key'],
    [
      'fields that are not a map',
      ['k', '0000000000000000n', 1, null, 6],
      'ops.0.entry.4: expected field writes',
    ],
    [
      'no field writes',
      ['k', '0000000000000000n', 1, null, {}],
      'ops.0.entry.4: expected at least one field write',
    ],
    [
      'a field write not an array',
      ['k', null, null, null, { a: 1 }],
      'ops.0.entry.4.a: expected [timestamp, value?]',
    ],
    [
      'a field write of three elements',
      ['k', null, null, null, { a: ['0000000000000000n', 1, 2] }],
      'ops.0.entry.4.a: expected [timestamp, value?]',
    ],
    [
      'a field write with a bad timestamp',
      ['k', null, null, null, { a: ['x', 1] }],
      'ops.0.entry.4.a.0: expected a serialized timestamp',
    ],
    [
      'a field write with a bad value',
      ['k', null, null, null, { a: ['0000000000000000n', Number.NaN] }],
      'ops.0.entry.4.a: ',
    ],
    [
      'field writes alone with a value',
      ['k', null, 1, null, { a: ['0000000000000000n'] }],
      'ops.0.entry.2: expected nil after a nil timestamp',
    ],
    [
      'field writes alone with a TTL',
      ['k', null, null, 5, { a: ['0000000000000000n'] }],
      'ops.0.entry.3: expected nil after a nil timestamp',
    ],
    [
      'a nil timestamp without field writes',
      ['k', null, null],
      'ops.0.entry.1: expected a serialized timestamp',
    ],
    [
      'a bad TTL with field writes',
      ['k', '0000000000000000n', 1, 0, { a: ['0000000000000000n'] }],
      'ops.0.entry.3: expected a TTL',
    ],
    ['an empty key', ['', '0000000000000000n', 1], 'ops.0.entry.0: expected a record key'],
    ['a number key', [7, '0000000000000000n', 1], 'ops.0.entry.0: expected a record key'],
    ['a bad timestamp', ['k', '00000000n', 1], 'ops.0.entry.1: expected a serialized timestamp'],
    ['a bad value', ['k', '0000000000000000n', { a: Number.POSITIVE_INFINITY }], 'ops.0.entry.2: '],
    ['a zero TTL', ['k', '0000000000000000n', 1, 0], 'ops.0.entry.3: expected a TTL'],
    ['a fractional TTL', ['k', '0000000000000000n', 1, 1.5], 'ops.0.entry.3: expected a TTL'],
  ])('names what is wrong in a wire entry: %s', (_name, entry, message) => {
    const frame = raw.pack({ type: 'ops', ops: [{ id: 1, map: 'm', entry }] });
    expect(() => decodeMessage(frame)).toThrow(`ops: ${message}`);
  });

  it.each([
    ['not an object', 7, 'ops.0: expected an op'],
    ['an array', [1, 'm'], 'ops.0: expected an op'],
    [
      'an unknown field',
      { id: 1, map: 'm', entry: ['k', '0000000000000000n', 1], x: 1 },
      'ops.0: unknown key "x"',
    ],
    [
      'a missing id',
      { map: 'm', entry: ['k', '0000000000000000n', 1] },
      'ops.0.id: expected an integer',
    ],
    [
      'a negative id',
      { id: -1, map: 'm', entry: ['k', '0000000000000000n', 1] },
      'ops.0.id: expected an integer',
    ],
    [
      'a fractional id',
      { id: 1.5, map: 'm', entry: ['k', '0000000000000000n', 1] },
      'ops.0.id: expected an integer',
    ],
    [
      'a bad map name',
      { id: 1, map: 'a map', entry: ['k', '0000000000000000n', 1] },
      'ops.0.map: expected a map name',
    ],
    ['a missing entry', { id: 1, map: 'm' }, 'ops.0.entry: expected [key, timestamp'],
  ])('names what is wrong in an op: %s', (_name, op, message) => {
    const frame = raw.pack({ type: 'ops', ops: [op] });
    expect(() => decodeMessage(frame)).toThrow(`ops: ${message}`);
  });

  it('accepts wire entries with and without a TTL, and tombstones', () => {
    const ops = [
      { id: 1, map: 'm', entry: ['k', '0000000000000000n', { a: 1 }] },
      { id: 2, map: 'm', entry: ['k', '0000000000000000n', null, 60_000] },
    ];
    expect(decodeMessage(raw.pack({ type: 'ops', ops }))).toEqual({ type: 'ops', ops });
  });

  it('never pollutes a prototype', () => {
    for (const payload of ['__proto__', 'constructor', 'prototype']) {
      reasonOf(raw.pack(JSON.parse(`{"type":"ping","time":1,"${payload}":{"polluted":true}}`)));
    }
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('decoded binaries do not keep the frame alive', () => {
    const frame = encodeMessage({
      type: 'sync_done',
      map: 'm',
      session: 1,
      root: new Uint8Array(8).fill(7),
    });
    const decoded = decodeMessage(frame);
    if (decoded.type !== 'sync_done') throw new Error('unexpected type');
    expect(decoded.root.buffer.byteLength).toBe(8);
  });
});

describe('errors of invalid messages', () => {
  const messageOf = (candidate: Record<string, unknown>) => {
    try {
      decodeMessage(raw.pack(candidate));
      return 'accepted';
    } catch (error) {
      return (error as ProtocolError).message;
    }
  };

  it('say which field is wrong and how, in words', () => {
    expect(messageOf({ type: 'hello', protocol: 'x', nodeId: 'n1' })).toBe(
      'hello: protocol: expected number, got "x"',
    );
    expect(messageOf({ type: 'hello', protocol: 1, nodeId: 'n1', admin: true })).toBe(
      'hello: (message): unknown key "admin"',
    );
    expect(messageOf({ type: 'ops', ops: [] })).toBe('ops: ops: expected at least 1 item');
    expect(messageOf({ type: 'ping' })).toBe('ping: time: required (number)');
    expect(messageOf({ type: 'hello', protocol: -1, nodeId: 'n1' })).toBe(
      'hello: protocol: expected at least 0',
    );
    expect(messageOf({ type: 'hello', protocol: 1, nodeId: 'no spaces' })).toBe(
      'hello: nodeId: expected a node id: 1-64 characters from A-Z a-z 0-9 _ -',
    );
  });
});

describe('have digests (query-scoped maps)', () => {
  const stamp = (millis: number) => ({ millis, counter: 0, nodeId: 'n1' });
  const record = { value: { title: 'x', done: false }, timestamp: stamp(5) };

  it('name each record by its item hash, 8 bytes per key in order', () => {
    const other = withFieldWrites(record, { done: { timestamp: stamp(6), value: true } });
    const { keys, hashes } = encodeHave([
      ['a', record],
      ['b', other],
    ]);
    expect(keys).toEqual(['a', 'b']);
    expect(hashes.length).toBe(16);
    const view = new DataView(hashes.buffer);
    expect([view.getInt32(8), view.getInt32(12)]).toEqual(itemHash('b', other));
    expect(holdsItem(hashes, 0, 'a', record)).toBe(true);
    expect(holdsItem(hashes, 1, 'b', other)).toBe(true);
    // A field write, another key, or another timestamp is another item.
    expect(holdsItem(hashes, 0, 'a', other)).toBe(false);
    expect(holdsItem(hashes, 1, 'a', other)).toBe(false);
    expect(holdsItem(hashes, 0, 'a', { ...record, timestamp: stamp(7) })).toBe(false);
    // Read at the right place inside a larger buffer, as a decoder hands bins out.
    const inside = new Uint8Array(24);
    inside.set(hashes, 8);
    expect(holdsItem(inside.subarray(8), 1, 'b', other)).toBe(true);
  });
});
