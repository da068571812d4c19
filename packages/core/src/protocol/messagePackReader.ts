import type { DecodeLimits } from './decodeLimits.js';
import { ProtocolError } from './protocolError.js';

/*
 * The protocol's MessagePack decoder, checking as it reads: exactly one value, nothing
 * truncated or trailing, no extension types, string map keys only, none of them `__proto__`,
 * `constructor` or `prototype` (which makes `object[key] = …` safe), and every declared length
 * within its limit and the bytes left before anything is allocated for it. It refuses what
 * `scanMessagePack` refuses, for the same reason (the tests hold them to each other), in one
 * pass instead of two. It decodes what msgpackr decodes with the protocol's options, which the
 * tests check: maps as plain objects, binaries as copies (a small hash must not keep a whole
 * frame alive), 64-bit integers as numbers when they are exact and as bigints (which
 * validation then rejects) when not.
 */

// Core is built without DOM or Node typings; every platform it runs on has TextDecoder.
declare const TextDecoder: new (
  label: string,
  options: { ignoreBOM: boolean },
) => { decode(bytes: Uint8Array): string };

const NO_BYTES = new Uint8Array(0);
const NO_VIEW = new DataView(NO_BYTES.buffer);
let bytes: Uint8Array = NO_BYTES;
let view: DataView = NO_VIEW;
let position = 0;
let end = 0;
let limits: DecodeLimits;
/** Open containers around the value being read, and elements of all containers so far. */
let depth = 0;
let elements = 0;
let textDecoder: { decode(bytes: Uint8Array): string } | undefined;

/**
 * Checks `frame` against the limits while decoding it.
 * @throws {ProtocolError} for anything malformed, over a limit or forbidden.
 */
export function readMessagePack(frame: Uint8Array, frameLimits: DecodeLimits): unknown {
  bytes = frame;
  view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  position = 0;
  end = frame.length;
  limits = frameLimits;
  depth = 0;
  elements = 0;
  try {
    const value = read();
    if (position !== end) throw malformed(`${end - position} bytes follow the message`);
    return value;
  } finally {
    // The frame is not kept alive by the decoder between calls.
    bytes = NO_BYTES;
    view = NO_VIEW;
  }
}

const malformed = (message = 'the frame is truncated') => new ProtocolError('MALFORMED', message);
const overLimit = (message: string) => new ProtocolError('LIMIT', message);

/** Moves past `count` bytes, which must be there; returns where they start. */
function take(count: number): number {
  if (position + count > end) throw malformed();
  position += count;
  return position - count;
}

function read(): unknown {
  const token = bytes[take(1)]!;
  if (token < 0x80) return token;
  if (token < 0x90) return readMap(token & 0x0f);
  if (token < 0xa0) return readArray(token & 0x0f);
  if (token < 0xc0) return readString(token & 0x1f);
  if (token >= 0xe0) return token - 0x100;
  switch (token) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return readBinary(readUint(1));
    case 0xc5:
      return readBinary(readUint(2));
    case 0xc6:
      return readBinary(readUint(4));
    case 0xca:
      return view.getFloat32(take(4));
    case 0xcb:
      return view.getFloat64(take(8));
    case 0xcc:
      return readUint(1);
    case 0xcd:
      return readUint(2);
    case 0xce:
      return readUint(4);
    case 0xcf:
      return exactOrBig(view.getBigUint64(take(8)));
    case 0xd0:
      return view.getInt8(take(1));
    case 0xd1:
      return view.getInt16(take(2));
    case 0xd2:
      return view.getInt32(take(4));
    case 0xd3:
      return exactOrBig(view.getBigInt64(take(8)));
    case 0xd9:
      return readString(readUint(1));
    case 0xda:
      return readString(readUint(2));
    case 0xdb:
      return readString(readUint(4));
    case 0xdc:
      return readArray(readUint(2));
    case 0xdd:
      return readArray(readUint(4));
    case 0xde:
      return readMap(readUint(2));
    case 0xdf:
      return readMap(readUint(4));
    case 0xc1:
      throw malformed('byte 0xc1 is never used in MessagePack');
    default:
      throw new ProtocolError(
        'EXTENSION',
        `MessagePack extension types are not part of the protocol (0x${token.toString(16)})`,
      );
  }
}

function readUint(size: 1 | 2 | 4): number {
  const at = take(size);
  return size === 1 ? bytes[at]! : size === 2 ? view.getUint16(at) : view.getUint32(at);
}

const MAX_EXACT = 2n ** 53n;

function exactOrBig(value: bigint): number | bigint {
  return value <= MAX_EXACT && value >= -MAX_EXACT ? Number(value) : value;
}

/** Checks a declared string or binary length against its limit and the bytes left. */
function checkLength(length: number, limit: number, what: string): void {
  if (length > limit) throw overLimit(`${what} of ${length} exceeds the limit of ${limit}`);
  if (position + length > end) throw malformed();
}

function readBinary(length: number): Uint8Array {
  checkLength(length, limits.maxBinaryBytes, 'a binary');
  // Uint8Array's slice, which copies (a Node Buffer's own slice would be a view).
  position += length;
  return Uint8Array.prototype.slice.call(bytes, position - length, position);
}

function readString(length: number): string {
  checkLength(length, limits.maxStringBytes, 'a string');
  const start = position;
  position += length;
  if (length < 64) {
    // Short ASCII strings (field names, keys, timestamps, titles) are quicker to decode by
    // hand: a browser's TextDecoder costs several times as much per call.
    let text = '';
    for (let i = start; i < position; i++) {
      const byte = bytes[i]!;
      if (byte >= 0x80) return decodeUtf8(start);
      text += String.fromCharCode(byte);
    }
    return text;
  }
  return decodeUtf8(start);
}

function decodeUtf8(start: number): string {
  // A leading U+FEFF is part of the string, not a byte order mark to drop.
  textDecoder ??= new TextDecoder('utf-8', { ignoreBOM: true });
  return textDecoder.decode(bytes.subarray(start, position));
}

/**
 * Checks a container of `count` elements (entries, for a map) before it is built: its limit,
 * the elements of the whole frame, one byte at least per value, and the nesting depth.
 */
function open(count: number, isMap: boolean): void {
  if (isMap ? count > limits.maxMapSize : count > limits.maxArrayLength) {
    throw overLimit(
      isMap
        ? `a map of ${count} entries exceeds the limit of ${limits.maxMapSize}`
        : `an array of ${count} elements exceeds the limit of ${limits.maxArrayLength}`,
    );
  }
  elements += count;
  if (elements > limits.maxElements) {
    throw overLimit(`more than ${limits.maxElements} array elements and map entries in one frame`);
  }
  if ((isMap ? count * 2 : count) > end - position) throw malformed();
  if (count > 0 && depth + 1 > limits.maxDepth) {
    throw overLimit(`nesting deeper than ${limits.maxDepth} levels`);
  }
}

function readArray(length: number): unknown[] {
  open(length, false);
  depth++;
  const array = new Array<unknown>(length);
  for (let i = 0; i < length; i++) array[i] = read();
  depth--;
  return array;
}

function readMap(size: number): Record<string, unknown> {
  open(size, true);
  depth++;
  const object: Record<string, unknown> = {};
  for (let i = 0; i < size; i++) {
    const length = bytes[position]! - 0xa0;
    // Short keys come from the cache.
    const key = length >= 0 && length < 32 ? cachedKey(length) : readKey();
    object[key] = read();
  }
  depth--;
  return object;
}

const FORBIDDEN_KEYS = ['__proto__', 'constructor', 'prototype'];

/** A map key string of `length` bytes, refused if it could reach a prototype. */
function readKeyString(length: number): string {
  const key = readString(length);
  if (FORBIDDEN_KEYS.includes(key)) {
    throw new ProtocolError(
      'FORBIDDEN_KEY',
      'the keys __proto__, constructor and prototype are not allowed',
    );
  }
  return key;
}

/** A map key that is not a fixstr: a longer string, or refused at its first byte. */
function readKey(): string {
  const token = bytes[take(1)]!;
  if (token >= 0xd9 && token <= 0xdb)
    return readKeyString(readUint((1 << (token - 0xd9)) as 1 | 2 | 4));
  throw new ProtocolError('FORBIDDEN_KEY', 'map keys must be strings');
}

/** The key cache: slot → an ASCII key (its characters are its bytes). */
const keys: string[] = [];

/**
 * A fixstr map key, the same string each time the same bytes come: the objects of a frame
 * share their field names, which are then neither built nor hashed again for each object.
 * Only ASCII keys are kept, compared with the bytes character by character, so the cache
 * holds no bytes of any frame; a forbidden key is refused before it could be kept.
 */
function cachedKey(length: number): string {
  const start = ++position;
  const stop = start + length;
  // Over the limit or truncated: refused by the string's own checks.
  if (length > limits.maxStringBytes || stop > end) return readString(length);
  let slot = length;
  for (let i = start; i < stop; i++) slot = (slot * 31 + bytes[i]!) & 1023;
  const known = keys[slot];
  let same = known?.length === length;
  for (let i = 0; same && i < length; i++) same = known!.charCodeAt(i) === bytes[start + i];
  if (same) {
    position = stop;
    return known!;
  }
  const key = readKeyString(length);
  // As many characters as bytes: ASCII (a longer UTF-8 sequence is fewer characters).
  if (key.length === length) keys[slot] = key;
  return key;
}
