import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DECODE_LIMITS, ProtocolError } from '../src/index.js';
import { readMessagePack } from '../src/protocol/messagePackReader.js';
import { writeMessagePack } from '../src/protocol/messagePackWriter.js';
import { packr as oracle } from '../src/protocol/packr.js';
import { scanMessagePack } from '../src/protocol/scanMessagePack.js';
import { messageArbitrary, valueArbitrary, wireEntryArbitrary } from './arbitraries.js';
import { plain } from './plain.js';
import { fc } from './property.js';

// The oracle is msgpackr with the protocol's options (`packr`, which the server still decodes
// with): core's encoder and decoder must agree with it byte for byte and value for value.

// Writes forms the protocol encoder never does (float 32, 64-bit integers), to decode them.
const float32Writer = new Packr({ useRecords: false, variableMapSize: true, useFloat32: 1 });

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const oracleHex = (value: unknown) => hex(oracle.pack(value));
const limits = { ...DEFAULT_DECODE_LIMITS, maxFrameBytes: 16 * 1024 * 1024 };

const edgeNumbers = [
  0,
  -0,
  1,
  31,
  32,
  127,
  128,
  255,
  256,
  65_535,
  65_536,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 40,
  Number.MAX_SAFE_INTEGER,
  -1,
  -32,
  -33,
  -128,
  -129,
  -32_768,
  -32_769,
  -(2 ** 31),
  -(2 ** 31) - 1,
  -(2 ** 40),
  0.5,
  -1.25,
  1e300,
  Number.MIN_VALUE,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
];
const edgeStrings = [
  '',
  'a',
  'é',
  '键',
  '😀',
  '\ud800',
  'a\udc00b',
  '\ud83d',
  'x'.repeat(31),
  'x'.repeat(32),
  'é'.repeat(15),
  'é'.repeat(16),
  'x'.repeat(62),
  'x'.repeat(63),
  'x'.repeat(64),
  `${'x'.repeat(61)}é`,
  '键'.repeat(21),
  '键'.repeat(22),
  'x'.repeat(255),
  'x'.repeat(256),
  `${'x'.repeat(100)}\ud800`,
  '键'.repeat(85),
  '键'.repeat(86),
  'x'.repeat(65_535),
  'x'.repeat(65_536),
  '😀'.repeat(20_000),
];

describe('the MessagePack encoder', () => {
  it.each(edgeNumbers)('writes %s as msgpackr does', (number) => {
    expect(hex(writeMessagePack(number))).toBe(oracleHex(number));
  });

  it.each(edgeStrings.map((text) => [text.length, text]))(
    'writes a string of %i units as msgpackr does',
    (_length, text) => {
      expect(hex(writeMessagePack(text))).toBe(oracleHex(text));
      expect(hex(writeMessagePack({ [text]: text }))).toBe(oracleHex({ [text]: text }));
    },
  );

  it.each([0, 1, 15, 16, 255, 256, 65_535, 65_536])(
    'writes arrays, maps and binaries of %i elements as msgpackr does',
    (size) => {
      const array = Array.from({ length: size }, (_, index) => index % 200);
      const map = Object.fromEntries(array.map((_, index) => [`f${index}`, index]));
      const binary = new Uint8Array(size).fill(7);
      for (const value of [array, map, binary]) {
        expect(hex(writeMessagePack(value))).toBe(oracleHex(value));
      }
    },
  );

  it('leaves out fields whose value is undefined, and writes null-prototype objects', () => {
    const value = Object.assign(Object.create(null) as object, { a: 1, b: undefined, c: null });
    expect(hex(writeMessagePack(value))).toBe(oracleHex(value));
    expect(hex(writeMessagePack({ type: 'x', skipped: undefined }))).toBe(oracleHex({ type: 'x' }));
  });

  it('writes Node Buffers as binaries', () => {
    const buffer = Buffer.from([1, 2, 3]);
    expect(hex(writeMessagePack(buffer))).toBe(oracleHex(buffer));
  });

  it('writes every random message and value as msgpackr does', () => {
    fc.assert(
      fc.property(fc.oneof(messageArbitrary, valueArbitrary, wireEntryArbitrary), (value) => {
        expect(hex(writeMessagePack(value))).toBe(oracleHex(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('hands out copies of exactly the bytes written', () => {
    const first = writeMessagePack({ a: 'x'.repeat(2000) });
    const second = writeMessagePack({ a: 'y' });
    expect(first.buffer.byteLength).toBe(first.length);
    expect(first.at(-1)).toBe('x'.charCodeAt(0));
    expect(second.length).toBe(5);
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['undefined in an array', [1, undefined]],
    ['a bigint', 1n],
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['a typed array other than Uint8Array', new Int16Array(2)],
  ])('refuses %s', (_name, value) => {
    expect(() => writeMessagePack({ field: [value] })).toThrow(TypeError);
  });
});

describe('the MessagePack decoder', () => {
  const decode = (frame: Uint8Array) => plain(readMessagePack(frame, limits));
  const expected = (frame: Uint8Array) => plain(oracle.unpack(frame));

  it('reads what it wrote, as msgpackr reads it', () => {
    fc.assert(
      fc.property(fc.oneof(messageArbitrary, valueArbitrary, wireEntryArbitrary), (value) => {
        const frame = writeMessagePack(value);
        expect(decode(frame)).toEqual(expected(frame));
        expect(decode(frame)).toEqual(plain(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps a leading U+FEFF, short or long, as msgpackr does', () => {
    for (const text of ['\uFEFFtitle', `\uFEFF${'x'.repeat(100)}`]) {
      expect(readMessagePack(oracle.pack(text), limits)).toBe(text);
      expect(readMessagePack(oracle.pack({ [text]: 1 }), limits)).toEqual({ [text]: 1 });
    }
  });

  it('reads the edge numbers and strings as msgpackr does', () => {
    for (const value of [...edgeNumbers, ...edgeStrings]) {
      const frame = oracle.pack(value);
      expect(decode(frame)).toEqual(expected(frame));
    }
  });

  it.each([
    ['float 32', () => float32Writer.pack(1.5)],
    ['uint64 within 2^53', () => oracle.pack(2n ** 53n)],
    ['uint64 beyond 2^53', () => oracle.pack(2n ** 63n + 5n)],
    ['int64 within -2^53', () => oracle.pack(-(2n ** 53n))],
    ['int64 beyond -2^53', () => oracle.pack(-(2n ** 53n) - 1n)],
    ['invalid UTF-8', () => new Uint8Array([0xa3, 0xff, 0x61, 0xc3])],
    ['invalid UTF-8 in a long string', () => new Uint8Array([0xb1, ...Array(16).fill(0xe9), 0x61])],
    ['invalid UTF-8 after ASCII', () => new Uint8Array([0xd9, 63, ...Array(62).fill(0x61), 0xff])],
    ['a map with a repeated key', () => new Uint8Array([0x82, 0xa1, 0x61, 1, 0xa1, 0x61, 2])],
    ['map16 and array32 headers', () => new Uint8Array([0xde, 0, 1, 0xa1, 0x61, 0xdd, 0, 0, 0, 0])],
  ])('reads %s as msgpackr does', (_name, frame) => {
    expect(decode(frame())).toEqual(expected(frame()));
  });

  it('agrees with msgpackr on every frame the scan lets through', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 24 }), (frame) => {
        let decoded: unknown;
        try {
          decoded = decode(frame);
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
          return;
        }
        expect(decoded).toEqual(expected(frame));
      }),
      { numRuns: 5000 },
    );
  });

  it.each(['__proto__', 'constructor', 'prototype'])(
    'refuses the map key %s, short or in a str 8, before building anything',
    (key) => {
      const bytes = [...new TextEncoder().encode(key)];
      for (const frame of [
        [0x81, 0xa0 + bytes.length, ...bytes, 1],
        [0x81, 0xd9, bytes.length, ...bytes, 1],
        // After a key the cache holds, in a later object of the frame.
        [0x92, 0x81, 0xa1, 0x61, 1, 0x81, 0xa0 + bytes.length, ...bytes, 1],
      ]) {
        expect(() => readMessagePack(new Uint8Array(frame), limits)).toThrow(
          expect.objectContaining({ reason: 'FORBIDDEN_KEY' }),
        );
      }
    },
  );

  it('refuses exactly what the scan refuses, for the same reason and in the same words', () => {
    const tight = {
      ...limits,
      maxDepth: 3,
      maxArrayLength: 3,
      maxMapSize: 2,
      maxElements: 6,
      maxStringBytes: 5,
      maxBinaryBytes: 4,
    };
    const verdict = (check: () => unknown) => {
      try {
        check();
        return 'read';
      } catch (error) {
        expect(error).toBeInstanceOf(ProtocolError);
        return `${(error as ProtocolError).reason}: ${(error as Error).message}`;
      }
    };
    const damaged = fc
      .tuple(
        fc.oneof(messageArbitrary, valueArbitrary),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        fc.nat(),
      )
      .map(([value, flips, cut]) => {
        const frame = new Uint8Array(oracle.pack(value));
        for (const [position, byte] of flips) frame[position % frame.length] = byte;
        return frame.subarray(0, cut % (frame.length + 1) || frame.length);
      });
    fc.assert(
      fc.property(
        fc.oneof(damaged, fc.uint8Array({ maxLength: 32 })),
        fc.constantFrom(limits, tight),
        (frame, frameLimits) => {
          expect(verdict(() => readMessagePack(frame, frameLimits))).toBe(
            verdict(() => scanMessagePack(frame, frameLimits)),
          );
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it('reads map keys right however many share a slot of its key cache, frame after frame', () => {
    // 3 000 distinct short keys cannot all have a slot of their own: some share one.
    const maps = [0, 1, 2].map((part) =>
      Object.fromEntries(
        Array.from({ length: 1000 }, (_, index) => [`k${part * 1000 + index}`, index]),
      ),
    );
    const frame = writeMessagePack(maps);
    for (let pass = 0; pass < 2; pass++) {
      expect(readMessagePack(frame, limits)).toEqual(oracle.unpack(frame));
      // Shorter and longer keys with the same first bytes must not be taken for cached ones.
      const other = writeMessagePack([{ k1: 1, k10: 2, k100: 3, '': 4, é: 5 }]);
      expect(readMessagePack(other, limits)).toEqual([{ k1: 1, k10: 2, k100: 3, '': 4, é: 5 }]);
    }
  });

  it('keeps no bytes of a frame for its key cache: a Buffer reused for another frame reads right', () => {
    const first = writeMessagePack([{ abc: 1 }]);
    const buffer = Buffer.from(first);
    expect(readMessagePack(buffer, limits)).toEqual([{ abc: 1 }]);
    // The same memory now holds another frame whose key has the same length.
    buffer.set(writeMessagePack([{ xyz: 2 }]));
    expect(readMessagePack(buffer, limits)).toEqual([{ xyz: 2 }]);
    expect(readMessagePack(Buffer.from(first), limits)).toEqual([{ abc: 1 }]);
  });

  it('returns binaries that do not keep the frame alive', () => {
    const frame = writeMessagePack({ root: new Uint8Array(8).fill(7) });
    const decoded = readMessagePack(Buffer.from(frame), limits) as { root: Uint8Array };
    expect(decoded.root.buffer.byteLength).toBe(8);
  });
});
