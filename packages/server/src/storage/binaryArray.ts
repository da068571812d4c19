import type { SqlArray, SqlArrayType } from './sqlDriver.js';

/** PostgreSQL type OIDs of the array element types. */
const ELEMENT_OID: Record<SqlArrayType, number> = { text: 25, bytea: 17, int8: 20, int2: 21 };

/**
 * Encodes a one-dimensional array in PostgreSQL's binary array format (what `array_recv`
 * reads): ndim, has-null flag, element type OID, length and lower bound, then each element
 * as a 32-bit length (-1 for NULL) and its bytes. `pg` sends a Buffer parameter in binary
 * format, so the array needs no text escaping and bytea travels as raw bytes.
 * @throws {RangeError} when an element does not fit the element type.
 */
export function encodeBinaryArray(array: SqlArray): Buffer {
  const { type, values } = array;
  let size = 20;
  let hasNull = 0;
  const lengths = new Array<number>(values.length);
  for (let index = 0; index < values.length; index++) {
    const value = values[index];
    let length: number;
    if (value === null || value === undefined) {
      hasNull = 1;
      length = -1;
    } else if (type === 'text') length = Buffer.byteLength(value as string);
    else if (type === 'bytea') length = (value as Uint8Array).byteLength;
    else length = type === 'int8' ? 8 : 2;
    lengths[index] = length;
    size += 4 + Math.max(length, 0);
  }
  const buffer = Buffer.allocUnsafe(size);
  buffer.writeInt32BE(1, 0);
  buffer.writeInt32BE(hasNull, 4);
  buffer.writeInt32BE(ELEMENT_OID[type], 8);
  buffer.writeInt32BE(values.length, 12);
  buffer.writeInt32BE(1, 16);
  let offset = 20;
  for (let index = 0; index < values.length; index++) {
    const length = lengths[index]!;
    buffer.writeInt32BE(length, offset);
    offset += 4;
    if (length < 0) continue;
    const value = values[index]!;
    if (type === 'text') buffer.write(value as string, offset, 'utf8');
    else if (type === 'bytea') buffer.set(value as Uint8Array, offset);
    else if (type === 'int8') buffer.writeBigInt64BE(BigInt(value as number), offset);
    else buffer.writeInt16BE(value as number, offset);
    offset += length;
  }
  return buffer;
}
