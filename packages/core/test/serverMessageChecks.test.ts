import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  decodeMessage,
  decodeServerMessage,
  encodeMessage,
  MAX_KEY_BYTES,
  MAX_MAP_NAME_LENGTH,
  MAX_NODE_ID_LENGTH,
  type Message,
  messageSchema,
  ProtocolError,
  type ProtocolErrorReason,
} from '../src/index.js';
import { MAX_TEXT_LENGTH, MAX_USER_ID_LENGTH } from '../src/protocol/messageFields.js';
import { OPTIONAL, SERVER_MESSAGE_SHAPES } from '../src/protocol/serverMessageChecks.js';
import { messageArbitrary } from './arbitraries.js';
import { plain } from './plain.js';
import { fc } from './property.js';

/*
 * The client's compact checks against the zod schemas, the protocol's reference: on the same
 * frame, `decodeServerMessage` must reach the verdict `decodeMessage` reaches (for the types a
 * server sends; it refuses the others as unknown), with the same reason and the same value.
 */

// Writes what the protocol encoder refuses (bigints, undefined, NaN), to corrupt messages.
const raw = new Packr({ useRecords: false, variableMapSize: true });
const CLIENT_ONLY_TYPES = new Set([
  'hello',
  'ops',
  'subscribe',
  'query_more',
  'unsubscribe',
  'aggregate',
]);

/** The decoded message, or why the frame was refused. */
type Verdict = { accepted: Message } | { refused: ProtocolErrorReason };

function verdictOf(decode: (frame: Uint8Array) => Message, frame: Uint8Array): Verdict {
  try {
    return { accepted: decode(frame) };
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return { refused: error.reason };
  }
}

const plainVerdict = (verdict: Verdict) =>
  'accepted' in verdict ? { accepted: plain(verdict.accepted) } : verdict;

function expectSameVerdict(frame: Uint8Array): void {
  const reference = verdictOf(decodeMessage, frame);
  const client = verdictOf(decodeServerMessage, frame);
  // A frame that reached the schemas decodes; its type says whether a server may send it.
  const reachedSchemas = 'accepted' in reference || reference.refused === 'INVALID_MESSAGE';
  const type = reachedSchemas ? (raw.unpack(frame) as { type: string }).type : undefined;
  const expected: Verdict =
    type !== undefined && CLIENT_ONLY_TYPES.has(type) ? { refused: 'UNKNOWN_TYPE' } : reference;
  // Compared by hand first: expect's deep equality is slow for tens of thousands of frames.
  if ('refused' in expected && 'refused' in client && expected.refused === client.refused) return;
  expect(plainVerdict(client)).toEqual(plainVerdict(expected));
}

const SCHEMAS = new Map(
  messageSchema.def.options.map((option) => [option.def.shape.type.def.values[0], option]),
);

// Values a corrupted field may take: each is valid somewhere in the protocol and wrong
// elsewhere, or wrong everywhere (bounds, types, forms a decoder may produce).
const atAndPast = (bound: number) => ['x'.repeat(bound), 'x'.repeat(bound + 1)];
const NASTY_VALUES: unknown[] = [
  0,
  -0,
  1,
  -1,
  1.5,
  4,
  8,
  7,
  2 ** 53,
  Number.MAX_SAFE_INTEGER,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  2n ** 60n,
  '',
  'x',
  'a b',
  ...atAndPast(MAX_NODE_ID_LENGTH),
  ...atAndPast(MAX_MAP_NAME_LENGTH),
  ...atAndPast(MAX_USER_ID_LENGTH),
  ...atAndPast(MAX_TEXT_LENGTH),
  ...atAndPast(MAX_KEY_BYTES),
  '0000000000000000n',
  'PRUNED',
  'PERMISSION',
  'LIMIT',
  'INTERNAL',
  'INVALID_TOKEN',
  'TOO_OLD',
  'sync',
  'ping',
  null,
  true,
  false,
  [],
  {},
  new Uint8Array(0),
  new Uint8Array(8),
  [1],
  ['k'],
  ['k', '0000000000000000n', 1],
  ['k', '0000000000000000n', null, 0],
  { map: 'm', entries: [] },
  { a: 1 },
  { id: 1, reason: 'PERMISSION', message: 'm', retryable: true },
];
// Fields one message has and another lacks, to add where they do not belong.
const FIELD_NAMES = [
  ...new Set([...SCHEMAS.values()].flatMap((schema) => Object.keys(schema.def.shape))),
];

/** Every map and array inside a message (the message itself included). */
function containersOf(value: unknown, found: unknown[] = []): unknown[] {
  if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) {
    found.push(value);
    for (const field of Object.values(value)) containersOf(field, found);
  }
  return found;
}

/** Corrupts one place of a message: a field or element replaced, removed or added. */
const corruptedMessageArbitrary = fc
  .tuple(
    messageArbitrary,
    fc.nat(),
    fc.nat(),
    fc.constantFrom('replace', 'remove', 'add'),
    fc.constantFrom(...NASTY_VALUES),
  )
  .map(([message, where, which, how, nasty]) => {
    const copy = structuredClone(message) as unknown;
    const containers = containersOf(copy);
    const container = containers[where % containers.length] as Record<string, unknown>;
    const names = Object.keys(container);
    const name = names.length > 0 ? names[which % names.length]! : '0';
    if (how === 'replace') container[name] = nasty;
    else if (how === 'remove' && Array.isArray(container)) container.splice(Number(name), 1);
    else if (how === 'remove') delete container[name];
    else if (Array.isArray(container)) container.push(nasty);
    else container[`extra${which % 3}`] = nasty;
    return copy;
  });

/** Every message corrupted in every place (to a depth) in every way, one place at a time. */
function* corruptionsOf(message: Message): Generator<unknown> {
  function* inside(
    value: unknown,
    depth: number,
    corrupt: (change: (copy: unknown) => void) => unknown,
  ): Generator<unknown> {
    if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return;
    if (depth > 3) return;
    const names = Object.keys(value);
    const at = (copy: unknown) => copy as Record<string, unknown>;
    for (const name of names) {
      for (const nasty of NASTY_VALUES)
        yield corrupt((copy) => {
          at(copy)[name] = nasty;
        });
      yield corrupt((copy) => {
        if (Array.isArray(copy)) copy.splice(Number(name), 1);
        else delete at(copy)[name];
      });
      yield* inside((value as Record<string, unknown>)[name], depth + 1, (change) =>
        corrupt((copy) => change(at(copy)[name])),
      );
    }
    if (Array.isArray(value)) {
      for (const nasty of NASTY_VALUES)
        yield corrupt((copy) => {
          (copy as unknown[]).push(nasty);
        });
    } else {
      for (const name of FIELD_NAMES) {
        if (!names.includes(name))
          yield corrupt((copy) => {
            at(copy)[name] = 1;
          });
      }
    }
  }
  yield* inside(message, 0, (change) => {
    const copy = structuredClone(message) as unknown;
    change(copy);
    return copy;
  });
}

describe('the client checks of server messages agree with the zod schemas', () => {
  it('on the fields of each message and which of them are optional', () => {
    for (const [type, shape] of Object.entries(SERVER_MESSAGE_SHAPES)) {
      const schemaShape = SCHEMAS.get(type as Message['type'])!.def.shape as Record<
        string,
        { def: { type: string } }
      >;
      const optionalOf = (fields: Record<string, unknown>) =>
        Object.fromEntries(
          Object.entries(fields).map(([name, field]) => [
            name,
            typeof field !== 'function' && OPTIONAL in (field as object),
          ]),
        );
      const { type: _type, ...schemaFields } = schemaShape;
      expect(optionalOf(shape), type).toEqual(
        Object.fromEntries(
          Object.entries(schemaFields).map(([name, field]) => [
            name,
            field.def.type === 'optional',
          ]),
        ),
      );
    }
  });

  it('on sample messages of every type corrupted in every place', () => {
    // Per type, the two samples with the most maps and arrays, to corrupt inside them too.
    const byType = new Map<string, Message[]>();
    for (const message of fc.sample(messageArbitrary, 600)) {
      const richest = [...(byType.get(message.type) ?? []), message]
        .sort((a, b) => containersOf(b).length - containersOf(a).length)
        .slice(0, 2);
      byType.set(message.type, richest);
    }
    expect(byType.size).toBe(SCHEMAS.size);
    for (const samples of byType.values()) {
      for (const message of samples) {
        for (const corrupted of corruptionsOf(message)) expectSameVerdict(raw.pack(corrupted));
      }
    }
  }, 60_000);

  it('on valid messages of every type', () => {
    fc.assert(
      fc.property(messageArbitrary, (message) => {
        expectSameVerdict(encodeMessage(message));
      }),
      { numRuns: 2000 },
    );
  });

  it('on messages corrupted in one place', () => {
    fc.assert(
      fc.property(corruptedMessageArbitrary, (message) => {
        expectSameVerdict(raw.pack(message));
      }),
      { numRuns: 3000 },
    );
  });

  it('on random and damaged frames', () => {
    fc.assert(
      fc.property(
        messageArbitrary,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        fc.nat(),
        (message, flips, cut) => {
          const frame = new Uint8Array(encodeMessage(message));
          for (const [position, byte] of flips) frame[position % frame.length] = byte;
          expectSameVerdict(frame);
          expectSameVerdict(frame.subarray(0, cut % (frame.length + 1)));
        },
      ),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (frame) => {
        expectSameVerdict(frame);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('decodeServerMessage', () => {
  it('refuses the messages only clients send', () => {
    expect(() => decodeServerMessage(encodeMessage({ type: 'unsubscribe', id: 1 }))).toThrow(
      'unknown message type "unsubscribe"',
    );
  });

  it('says which field is wrong and how', () => {
    const messageOf = (candidate: Record<string, unknown>) => {
      try {
        decodeServerMessage(raw.pack(candidate));
        return 'accepted';
      } catch (error) {
        return (error as ProtocolError).message;
      }
    };
    expect(messageOf({ type: 'ping', time: -1 })).toBe(
      'ping: time: expected an integer from 0 to 2^53 - 1',
    );
    expect(messageOf({ type: 'ping' })).toBe('ping: time: required');
    expect(messageOf({ type: 'pong', time: 1, extra: true })).toBe(
      'pong: (message): unknown key "extra"',
    );
    expect(
      messageOf({
        type: 'reject',
        rejections: [{ id: 1, reason: 'nope', message: '', retryable: false }],
      }),
    ).toBe(
      'reject: rejections.0.reason: expected PERMISSION or CLOCK_DRIFT or VALIDATION or NODE_ID or RATE_LIMIT or UNAVAILABLE or TOO_OLD',
    );
    expect(
      messageOf({ type: 'changes', changes: [{ map: 'm', entries: [['k', 'yesterday', 1]] }] }),
    ).toBe('changes: changes.0.entries.0.1: expected a serialized timestamp');
  });
});
