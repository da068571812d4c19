import type { DecodeLimits } from './decodeLimits.js';
import { ProtocolError } from './protocolError.js';

// "__proto__", "constructor", "prototype" as UTF-8 bytes.
const FORBIDDEN_KEYS = ['__proto__', 'constructor', 'prototype'].map((key) =>
  Array.from(key, (character) => character.charCodeAt(0)),
);

/**
 * Walks the bytes of one MessagePack value without building anything, with an explicit
 * stack (no recursion), and checks it against the limits: exactly one value, nothing
 * truncated or trailing, no extension types, string map keys only, none of them
 * `__proto__`, `constructor` or `prototype`, and every declared length within both its
 * limit and the bytes left. Only a frame that passes is handed to the MessagePack decoder.
 * @throws {ProtocolError}
 */
export function scanMessagePack(bytes: Uint8Array, limits: DecodeLimits): void {
  const end = bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Per open container: values still to read; for maps, 2 per entry, a key when even.
  const remaining: number[] = [];
  const isMap: boolean[] = [];
  let position = 0;
  let topLevelRead = false;
  // Elements of every container together: what decoding will allocate, whatever their size.
  let elements = 0;

  const need = (count: number) => {
    if (position + count > end) throw new ProtocolError('MALFORMED', 'the frame is truncated');
  };
  const checkLength = (length: number, limit: number, what: string) => {
    if (length > limit)
      throw new ProtocolError('LIMIT', `${what} of ${length} exceeds the limit of ${limit}`);
    need(length);
  };

  while (!topLevelRead || remaining.length > 0) {
    const depth = remaining.length;
    const expectingKey = depth > 0 && isMap[depth - 1]! && remaining[depth - 1]! % 2 === 0;
    if (depth > 0) remaining[depth - 1]!--;
    else topLevelRead = true;

    need(1);
    const token = bytes[position++]!;
    // A map key is a string (fixstr, str 8/16/32); anything else is refused at its first byte.
    if (expectingKey && !(token >= 0xa0 && token <= 0xbf) && !(token >= 0xd9 && token <= 0xdb))
      throw new ProtocolError('FORBIDDEN_KEY', 'map keys must be strings');
    let container = -1; // element count of a container that opens here
    let containerIsMap = false;
    let stringLength = -1;

    if (token <= 0x7f || token >= 0xe0) {
      // positive or negative fixint
    } else if (token <= 0x8f) {
      container = token & 0x0f;
      containerIsMap = true;
    } else if (token <= 0x9f) {
      container = token & 0x0f;
    } else if (token <= 0xbf) {
      stringLength = token & 0x1f;
    } else {
      switch (token) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          break;
        case 0xc4:
        case 0xc5:
        case 0xc6: {
          const size = token === 0xc4 ? 1 : token === 0xc5 ? 2 : 4;
          need(size);
          const length = readLength(view, position, size);
          position += size;
          checkLength(length, limits.maxBinaryBytes, 'a binary');
          position += length;
          break;
        }
        case 0xca:
          need(4);
          position += 4;
          break;
        case 0xcb:
          need(8);
          position += 8;
          break;
        case 0xcc:
        case 0xd0:
          need(1);
          position += 1;
          break;
        case 0xcd:
        case 0xd1:
          need(2);
          position += 2;
          break;
        case 0xce:
        case 0xd2:
          need(4);
          position += 4;
          break;
        case 0xcf:
        case 0xd3:
          need(8);
          position += 8;
          break;
        case 0xd9:
        case 0xda:
        case 0xdb: {
          const size = token === 0xd9 ? 1 : token === 0xda ? 2 : 4;
          need(size);
          stringLength = readLength(view, position, size);
          position += size;
          break;
        }
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf: {
          const size = token === 0xdc || token === 0xde ? 2 : 4;
          need(size);
          container = readLength(view, position, size);
          position += size;
          containerIsMap = token >= 0xde;
          break;
        }
        case 0xc1:
          throw new ProtocolError('MALFORMED', 'byte 0xc1 is never used in MessagePack');
        default:
          throw new ProtocolError(
            'EXTENSION',
            `MessagePack extension types are not part of the protocol (0x${token.toString(16)})`,
          );
      }
    }

    if (stringLength >= 0) {
      checkLength(stringLength, limits.maxStringBytes, 'a string');
      if (expectingKey && isForbiddenKey(bytes, position, stringLength)) {
        throw new ProtocolError(
          'FORBIDDEN_KEY',
          'the keys __proto__, constructor and prototype are not allowed',
        );
      }
      position += stringLength;
    }

    if (container >= 0) {
      if (containerIsMap) {
        if (container > limits.maxMapSize) {
          throw new ProtocolError(
            'LIMIT',
            `a map of ${container} entries exceeds the limit of ${limits.maxMapSize}`,
          );
        }
      } else if (container > limits.maxArrayLength) {
        throw new ProtocolError(
          'LIMIT',
          `an array of ${container} elements exceeds the limit of ${limits.maxArrayLength}`,
        );
      }
      elements += container;
      if (elements > limits.maxElements) {
        throw new ProtocolError(
          'LIMIT',
          `more than ${limits.maxElements} array elements and map entries in one frame`,
        );
      }
      const values = containerIsMap ? container * 2 : container;
      // Every value takes at least one byte: a count beyond the bytes left is a lie.
      if (values > end - position) throw new ProtocolError('MALFORMED', 'the frame is truncated');
      if (values > 0) {
        if (depth + 1 > limits.maxDepth) {
          throw new ProtocolError('LIMIT', `nesting deeper than ${limits.maxDepth} levels`);
        }
        remaining.push(values);
        isMap.push(containerIsMap);
      }
    }
    while (remaining.length > 0 && remaining[remaining.length - 1] === 0) {
      remaining.pop();
      isMap.pop();
    }
  }
  if (position !== end)
    throw new ProtocolError('MALFORMED', `${end - position} bytes follow the message`);
}

function readLength(view: DataView, position: number, size: number): number {
  if (size === 1) return view.getUint8(position);
  if (size === 2) return view.getUint16(position);
  return view.getUint32(position);
}

function isForbiddenKey(bytes: Uint8Array, start: number, length: number): boolean {
  return FORBIDDEN_KEYS.some(
    (key) => key.length === length && key.every((byte, index) => bytes[start + index] === byte),
  );
}
