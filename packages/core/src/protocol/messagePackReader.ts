import type { DecodeLimits } from './decodeLimits.js';
import { scanMessagePack } from './scanMessagePack.js';

/*
 * The protocol's MessagePack decoder. It builds a value only after `scanMessagePack` has
 * passed the bytes, so it needs no checks of its own: the scan guarantees one complete value
 * within the limits, no extension types, and string map keys other than `__proto__`,
 * `constructor` and `prototype` (which makes `object[key] = …` safe). It decodes what
 * msgpackr decodes with the protocol's options, which the tests check: maps as plain objects,
 * binaries as copies (a small hash must not keep a whole frame alive), 64-bit integers as
 * numbers when they are exact and as bigints (which validation then rejects) when not.
 */

// Core is built without DOM or Node typings; every platform it runs on has TextDecoder.
declare const TextDecoder: new () => { decode(bytes: Uint8Array): string };

const NO_BYTES = new Uint8Array(0);
const NO_VIEW = new DataView(NO_BYTES.buffer);
let bytes: Uint8Array = NO_BYTES;
let view: DataView = NO_VIEW;
let position = 0;
let textDecoder: { decode(bytes: Uint8Array): string } | undefined;

/**
 * Checks `frame` against the limits, then decodes it.
 * @throws {ProtocolError} (from the scan) for anything malformed, over a limit or forbidden.
 */
export function readMessagePack(frame: Uint8Array, limits: DecodeLimits): unknown {
  scanMessagePack(frame, limits);
  bytes = frame;
  view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  position = 0;
  try {
    return read();
  } finally {
    // The frame is not kept alive by the decoder between calls.
    bytes = NO_BYTES;
    view = NO_VIEW;
  }
}

function read(): unknown {
  const token = bytes[position++]!;
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
      return readBinary(bytes[position++]!);
    case 0xc5:
      return readBinary(readUint(2));
    case 0xc6:
      return readBinary(readUint(4));
    case 0xca:
      position += 4;
      return view.getFloat32(position - 4);
    case 0xcb:
      position += 8;
      return view.getFloat64(position - 8);
    case 0xcc:
      return bytes[position++];
    case 0xcd:
      return readUint(2);
    case 0xce:
      return readUint(4);
    case 0xcf:
      position += 8;
      return exactOrBig(view.getBigUint64(position - 8));
    case 0xd0:
      return view.getInt8(position++);
    case 0xd1:
      position += 2;
      return view.getInt16(position - 2);
    case 0xd2:
      position += 4;
      return view.getInt32(position - 4);
    case 0xd3:
      position += 8;
      return exactOrBig(view.getBigInt64(position - 8));
    case 0xd9:
      return readString(bytes[position++]!);
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
    default:
      // 0xdf, the only token left that the scan lets through.
      return readMap(readUint(4));
  }
}

function readUint(size: 2 | 4): number {
  position += size;
  return size === 2 ? view.getUint16(position - 2) : view.getUint32(position - 4);
}

const MAX_EXACT = 2n ** 53n;

function exactOrBig(value: bigint): number | bigint {
  return value <= MAX_EXACT && value >= -MAX_EXACT ? Number(value) : value;
}

function readBinary(length: number): Uint8Array {
  // Uint8Array's slice, which copies (a Node Buffer's own slice would be a view).
  position += length;
  return Uint8Array.prototype.slice.call(bytes, position - length, position);
}

function readString(length: number): string {
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
  textDecoder ??= new TextDecoder();
  return textDecoder.decode(bytes.subarray(start, position));
}

function readArray(length: number): unknown[] {
  const array = new Array<unknown>(length);
  for (let i = 0; i < length; i++) array[i] = read();
  return array;
}

function readMap(size: number): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (let i = 0; i < size; i++) {
    const length = bytes[position]! - 0xa0;
    // Keys are strings (the scan lets nothing else through); short ones come from the cache.
    const key = length >= 0 && length < 32 ? cachedKey(length) : (read() as string);
    object[key] = read();
  }
  return object;
}

/** The key cache: slot → an ASCII key (its characters are its bytes). */
const keys: string[] = [];

/**
 * A short map key, the same string each time the same bytes come: the objects of a frame
 * share their field names, which are then neither built nor hashed again for each object.
 * Only ASCII keys are kept, compared with the bytes character by character, so the cache
 * holds no bytes of any frame.
 */
function cachedKey(length: number): string {
  const start = ++position;
  const end = start + length;
  let slot = length;
  for (let i = start; i < end; i++) slot = (slot * 31 + bytes[i]!) & 1023;
  const known = keys[slot];
  let same = known?.length === length;
  for (let i = 0; same && i < length; i++) same = known!.charCodeAt(i) === bytes[start + i];
  if (same) {
    position = end;
    return known!;
  }
  const key = readString(length);
  // As many characters as bytes: ASCII (a longer UTF-8 sequence is fewer characters).
  if (key.length === length) keys[slot] = key;
  return key;
}
