import {
  HASH_FIN_1,
  HASH_FIN_2,
  HASH_MUL_1,
  HASH_MUL_2,
  HASH_SEED_1,
  HASH_SEED_2,
} from './hash.js';
import { utf8Bytes } from './utf8Bytes.js';

/*
 * The canonical encoding of a record value (`specifications/data-model.md`) is the MessagePack
 * `encodeValue` produces: `nil` for a tombstone; integers from -2^31 to 2^32-1 in their
 * shortest integer form, other numbers as float 64; strings as UTF-8 str; arrays; maps in
 * field order. The functions here walk those bytes without building them: a value is hashed
 * on every write, and its size is estimated for every record a walk message carries.
 */

/** Whether a number is encoded as a MessagePack integer (−0 counting as 0). */
function isEncodedAsInteger(value: number): boolean {
  return Number.isInteger(value) && value >= -0x80000000 && value <= 0xffffffff;
}

/** Bytes of the integer form of `value` (see {@link isEncodedAsInteger}), header included. */
function integerSize(value: number): number {
  if (value >= 0) return value < 0x80 ? 1 : value < 0x100 ? 2 : value < 0x10000 ? 3 : 5;
  return value >= -0x20 ? 1 : value >= -0x80 ? 2 : value >= -0x8000 ? 3 : 5;
}

/** Bytes of a str, array or map header for `length` (`fixLimit`: below it, one byte). */
function headerSize(length: number, fixLimit: number, hasEightBit: boolean): number {
  if (length < fixLimit) return 1;
  if (hasEightBit && length < 0x100) return 2;
  return length < 0x10000 ? 3 : 5;
}

// The hash state while a value is hashed: module-level, which V8 keeps faster than fields.
let state1 = 0;
let state2 = 0;
/** Bytes of the encoding mixed so far: the value's canonical size, known for free once hashed. */
let mixedBytes = 0;
const floatBytes = new DataView(new ArrayBuffer(8));
const UTF8_SCRATCH = new Uint8Array(4);

function mixByte(unit: number): void {
  state1 = Math.imul(state1 ^ unit, HASH_MUL_1);
  state2 = Math.imul(state2 ^ unit, HASH_MUL_2);
  mixedBytes++;
}

/** Mixes `value` as `count` big-endian bytes. */
function mixBigEndian(value: number, count: number): void {
  for (let shift = (count - 1) * 8; shift >= 0; shift -= 8) mixByte((value >>> shift) & 0xff);
}

/**
 * Mixes a str (`fix` 0xa0, tokens d9 da db), array (0x90; dc dd) or map (0x80; de df)
 * header: 8-bit lengths exist for str only.
 */
function mixHeader(length: number, fix: number, fixLimit: number, token16: number): void {
  if (length < fixLimit) {
    mixByte(fix | length);
    return;
  }
  const size = headerSize(length, fixLimit, fix === 0xa0);
  mixByte(size === 2 ? 0xd9 : size === 3 ? token16 : token16 + 1);
  mixBigEndian(length, size - 1);
}

function mixValue(value: unknown): void {
  switch (typeof value) {
    case 'string':
      mixString(value);
      return;
    case 'number':
      mixNumber(value);
      return;
    case 'boolean':
      mixByte(value ? 0xc3 : 0xc2);
      return;
    case 'object': {
      if (value === null) {
        mixByte(0xc0);
        return;
      }
      if (Array.isArray(value)) {
        mixHeader(value.length, 0x90, 16, 0xdc);
        for (let index = 0; index < value.length; index++) mixValue(value[index]);
        return;
      }
      // Validated values hold no undefined field: every key is a field of the encoding.
      let fields = 0;
      for (const _field in value) fields++;
      mixHeader(fields, 0x80, 16, 0xde);
      for (const field in value) {
        mixString(field);
        mixValue((value as Record<string, unknown>)[field]);
      }
      return;
    }
    default:
      // Not a storable value: validation refuses it before it is ever hashed.
      mixByte(0xc1);
  }
}

function mixNumber(value: number): void {
  if (!isEncodedAsInteger(value)) {
    mixByte(0xcb);
    floatBytes.setFloat64(0, value);
    for (let index = 0; index < 8; index++) mixByte(floatBytes.getUint8(index));
    return;
  }
  const size = integerSize(value);
  if (size === 1) {
    mixByte(value & 0xff);
    return;
  }
  // cc cd ce (uint 8/16/32), d0 d1 d2 (int 8/16/32).
  mixByte((value >= 0 ? 0xcc : 0xd0) + (size === 2 ? 0 : size === 3 ? 1 : 2));
  mixBigEndian(value >>> 0, size - 1);
}

function mixString(text: string): void {
  const length = text.length;
  // Mostly ASCII, whose UTF-8 length is its length: hashed in one pass on that bet, and
  // again from the start as UTF-8 when a wider character shows up.
  const start1 = state1;
  const start2 = state2;
  const startBytes = mixedBytes;
  mixHeader(length, 0xa0, 32, 0xda);
  let h1 = state1;
  let h2 = state2;
  for (let i = 0; i < length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0x80) {
      state1 = start1;
      state2 = start2;
      mixedBytes = startBytes;
      mixUtf8String(text);
      return;
    }
    h1 = Math.imul(h1 ^ unit, HASH_MUL_1);
    h2 = Math.imul(h2 ^ unit, HASH_MUL_2);
  }
  state1 = h1;
  state2 = h2;
  mixedBytes += length;
}

function mixUtf8String(text: string): void {
  const length = text.length;
  const bytes = utf8Bytes(text);
  mixHeader(bytes, 0xa0, 32, 0xda);
  mixedBytes += bytes;
  let h1 = state1;
  let h2 = state2;
  const out = UTF8_SCRATCH;
  for (let i = 0; i < length; i++) {
    let point = text.charCodeAt(i);
    let count: number;
    if (point < 0x80) {
      out[0] = point;
      count = 1;
    } else if (point < 0x800) {
      out[0] = 0xc0 | (point >> 6);
      out[1] = 0x80 | (point & 0x3f);
      count = 2;
    } else if ((point & 0xfc00) === 0xd800 && i + 1 < length) {
      point = 0x10000 + ((point - 0xd800) << 10) + (text.charCodeAt(++i) - 0xdc00);
      out[0] = 0xf0 | (point >> 18);
      out[1] = 0x80 | ((point >> 12) & 0x3f);
      out[2] = 0x80 | ((point >> 6) & 0x3f);
      out[3] = 0x80 | (point & 0x3f);
      count = 4;
    } else {
      out[0] = 0xe0 | (point >> 12);
      out[1] = 0x80 | ((point >> 6) & 0x3f);
      out[2] = 0x80 | (point & 0x3f);
      count = 3;
    }
    for (let index = 0; index < count; index++) {
      h1 = Math.imul(h1 ^ out[index]!, HASH_MUL_1);
      h2 = Math.imul(h2 ^ out[index]!, HASH_MUL_2);
    }
  }
  state1 = h1;
  state2 = h2;
}

/**
 * Hashes record values: the bytes of their canonical encoding fed one per unit to the 64-bit
 * hash of `specifications/merkle-sync.md`. Allocation-free, strings (most of a value) mixed
 * in a tight loop: it runs for each record a write adds or replaces.
 */
export class ValueHasher {
  /** Lane 1 of the last value hashed, as a signed 32-bit integer. */
  lane1 = 0;
  /** Lane 2 of the last value hashed, as a signed 32-bit integer. */
  lane2 = 0;
  /** Bytes of the canonical encoding of the last value hashed: its {@link canonicalSize}. */
  size = 0;

  /**
   * Hashes `value` (`null` for a tombstone) into {@link lane1} and {@link lane2}, and sets
   * {@link size}.
   */
  hash(value: unknown): void {
    state1 = HASH_SEED_1;
    state2 = HASH_SEED_2;
    mixedBytes = 0;
    mixValue(value);
    this.size = mixedBytes;
    const h1 = state1;
    const h2 = state2;
    const lane1 = Math.imul(h1 ^ (h1 >>> 16), HASH_FIN_1) ^ Math.imul(h2 ^ (h2 >>> 13), HASH_FIN_2);
    this.lane1 = lane1;
    this.lane2 =
      Math.imul(h2 ^ (h2 >>> 16), HASH_FIN_1) ^ Math.imul(lane1 ^ (lane1 >>> 13), HASH_FIN_2);
  }
}

/** How many bytes the canonical encoding of a value (`null` for a tombstone) takes. */
export function canonicalSize(value: unknown): number {
  switch (typeof value) {
    case 'boolean':
      return 1;
    case 'number':
      return isEncodedAsInteger(value) ? integerSize(value) : 9;
    case 'string': {
      const length = utf8Bytes(value);
      return headerSize(length, 32, true) + length;
    }
    case 'object': {
      if (value === null) return 1;
      if (Array.isArray(value)) {
        let size = headerSize(value.length, 16, false);
        for (const item of value) size += canonicalSize(item);
        return size;
      }
      let size = 0;
      let fields = 0;
      for (const field in value) {
        const item = (value as Record<string, unknown>)[field];
        if (item === undefined) continue;
        fields++;
        size += canonicalSize(field) + canonicalSize(item);
      }
      return headerSize(fields, 16, false) + size;
    }
    default:
      return 1;
  }
}

// Marked pure, so that a bundle that never fingerprints does not keep it.
const shared = /* @__PURE__ */ new ValueHasher();

/**
 * The 64-bit fingerprint of a record value (`null` for a tombstone): the hash of its
 * canonical encoding, as `[lane1, lane2]` (unsigned). Equal values have equal fingerprints;
 * different values differ with probability 1 - 2^-64. Exposed for test vectors.
 */
export function valueFingerprint(value: unknown): [number, number] {
  shared.hash(value);
  return [shared.lane1 >>> 0, shared.lane2 >>> 0];
}
