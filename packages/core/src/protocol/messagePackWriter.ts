import { describeValue } from '../describeValue.js';

/*
 * The protocol's MessagePack encoder: only the types the protocol uses (nil, boolean, integer,
 * float 64, str, bin, array, map with string keys), in the canonical form of
 * `specifications/data-model.md` — integers from -2^31 to 2^32-1 in their shortest integer
 * form, other numbers as float 64, fields in their order, fields whose value is `undefined` left
 * out. msgpackr (with records, bundled strings and extensions off) writes the same bytes, which
 * the tests check; this is a fraction of its size, which matters in the browser bundle.
 */

// One scratch buffer, grown to the largest value written (up to KEPT_SCRATCH_BYTES); every
// result is a copy of exactly its bytes, so nothing handed out keeps the scratch alive.
const INITIAL_SCRATCH_BYTES = 1024;
const KEPT_SCRATCH_BYTES = 1024 * 1024;
let scratch = new Uint8Array(INITIAL_SCRATCH_BYTES);
let view = new DataView(scratch.buffer);
let position = 0;

/**
 * Encodes a protocol message or a stored value as MessagePack.
 * @throws {TypeError} for anything the protocol cannot carry: `undefined` outside an object
 * field, bigints, functions, symbols, class instances and typed arrays other than `Uint8Array`.
 */
export function writeMessagePack(value: unknown): Uint8Array {
  position = 0;
  try {
    write(value);
    return scratch.slice(0, position);
  } finally {
    if (scratch.length > KEPT_SCRATCH_BYTES) grow(0, INITIAL_SCRATCH_BYTES);
  }
}

function grow(keep: number, size: number): void {
  const grown = new Uint8Array(size);
  grown.set(scratch.subarray(0, keep));
  scratch = grown;
  view = new DataView(grown.buffer);
}

function reserve(bytes: number): void {
  if (position + bytes > scratch.length) {
    grow(position, Math.max(scratch.length * 2, position + bytes));
  }
}

function write(value: unknown): void {
  switch (typeof value) {
    case 'string':
      writeString(value);
      return;
    case 'number':
      writeNumber(value);
      return;
    case 'boolean':
      reserve(1);
      scratch[position++] = value ? 0xc3 : 0xc2;
      return;
    case 'object':
      if (value === null) {
        reserve(1);
        scratch[position++] = 0xc0;
      } else if (Array.isArray(value)) {
        writeHeader(value.length, 0x90, 0xdc);
        for (const item of value) write(item);
      } else if (value instanceof Uint8Array) {
        writeBinary(value);
      } else {
        const prototype = Object.getPrototypeOf(value);
        if (prototype !== Object.prototype && prototype !== null) break;
        writeObject(value as Record<string, unknown>);
      }
      return;
  }
  throw new TypeError(`MessagePack: cannot encode ${describeValue(value)}`);
}

function writeNumber(value: number): void {
  reserve(9);
  if (value >>> 0 === value) {
    if (value < 0x80) {
      scratch[position++] = value;
    } else if (value < 0x100) {
      scratch[position++] = 0xcc;
      scratch[position++] = value;
    } else if (value < 0x10000) {
      scratch[position++] = 0xcd;
      view.setUint16(position, value);
      position += 2;
    } else {
      scratch[position++] = 0xce;
      view.setUint32(position, value);
      position += 4;
    }
  } else if (value >> 0 === value) {
    if (value >= -0x20) {
      scratch[position++] = value & 0xff;
    } else if (value >= -0x80) {
      scratch[position++] = 0xd0;
      view.setInt8(position++, value);
    } else if (value >= -0x8000) {
      scratch[position++] = 0xd1;
      view.setInt16(position, value);
      position += 2;
    } else {
      scratch[position++] = 0xd2;
      view.setInt32(position, value);
      position += 4;
    }
  } else {
    scratch[position++] = 0xcb;
    view.setFloat64(position, value);
    position += 8;
  }
}

/** A str, array or map header; `token16` is the 16-bit form (the 32-bit one follows it). */
function writeHeader(length: number, fix: number, token16: number): void {
  reserve(5);
  if (length < (fix === 0xa0 ? 0x20 : 0x10)) {
    scratch[position++] = fix | length;
  } else if (fix === 0xa0 && length < 0x100) {
    scratch[position++] = 0xd9;
    scratch[position++] = length;
  } else if (length < 0x10000) {
    scratch[position++] = token16;
    view.setUint16(position, length);
    position += 2;
  } else {
    scratch[position++] = token16 + 1;
    view.setUint32(position, length);
    position += 4;
  }
}

function writeString(text: string): void {
  // UTF-8 takes at most 3 bytes per UTF-16 unit; the header is sized for that, then the
  // text moved back when its real length needs a shorter header.
  const most = text.length * 3;
  const headerBytes = most < 0x20 ? 1 : most < 0x100 ? 2 : most < 0x10000 ? 3 : 5;
  // Room for the longest header too: writing the header must not grow (and move) the scratch.
  reserve(5 + most);
  const start = position + headerBytes;
  let end = start;
  for (let i = 0; i < text.length; i++) {
    let unit = text.charCodeAt(i);
    if (unit < 0x80) {
      scratch[end++] = unit;
    } else if (unit < 0x800) {
      scratch[end++] = 0xc0 | (unit >> 6);
      scratch[end++] = 0x80 | (unit & 0x3f);
    } else if ((unit & 0xfc00) === 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      unit = 0x10000 + ((unit & 0x3ff) << 10) + (text.charCodeAt(++i) & 0x3ff);
      scratch[end++] = 0xf0 | (unit >> 18);
      scratch[end++] = 0x80 | ((unit >> 12) & 0x3f);
      scratch[end++] = 0x80 | ((unit >> 6) & 0x3f);
      scratch[end++] = 0x80 | (unit & 0x3f);
    } else {
      // A lone surrogate becomes U+FFFD (EF BF BD), as TextEncoder writes it.
      if ((unit & 0xf800) === 0xd800) unit = 0xfffd;
      scratch[end++] = 0xe0 | (unit >> 12);
      scratch[end++] = 0x80 | ((unit >> 6) & 0x3f);
      scratch[end++] = 0x80 | (unit & 0x3f);
    }
  }
  const length = end - start;
  writeHeader(length, 0xa0, 0xda);
  if (position !== start) scratch.copyWithin(position, start, end);
  position += length;
}

function writeBinary(bytes: Uint8Array): void {
  reserve(5 + bytes.length);
  if (bytes.length < 0x100) {
    scratch[position++] = 0xc4;
    scratch[position++] = bytes.length;
  } else if (bytes.length < 0x10000) {
    scratch[position++] = 0xc5;
    view.setUint16(position, bytes.length);
    position += 2;
  } else {
    scratch[position++] = 0xc6;
    view.setUint32(position, bytes.length);
    position += 4;
  }
  scratch.set(bytes, position);
  position += bytes.length;
}

function writeObject(object: Record<string, unknown>): void {
  let size = 0;
  for (const field in object) if (object[field] !== undefined) size++;
  writeHeader(size, 0x80, 0xde);
  for (const field in object) {
    const value = object[field];
    if (value === undefined) continue;
    writeString(field);
    write(value);
  }
}
