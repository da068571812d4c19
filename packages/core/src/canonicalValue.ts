import { finishHash, HASH_MUL_1, HASH_MUL_2, HASH_SEED_1, HASH_SEED_2 } from './hash.js';

/**
 * Walks the canonical encoding of a record value (`specifications/data-model.md`): the
 * MessagePack bytes `encodeValue` produces (integers from -2^31 to 2^32-1 in their shortest
 * integer form, other numbers as float 64, strings as UTF-8 str, arrays, maps in field
 * order, `nil` for a tombstone), one byte at a time, without building them. Subclasses say
 * what to do with each byte.
 */
abstract class CanonicalWalker {
  private readonly scratch = new DataView(new ArrayBuffer(8));

  protected abstract byte(unit: number): void;

  protected uint(value: number, bytes: number): void {
    for (let shift = (bytes - 1) * 8; shift >= 0; shift -= 8) this.byte((value >>> shift) & 0xff);
  }

  protected header(length: number, fix: number, fixLimit: number, tokens: readonly number[]): void {
    if (length < fixLimit) this.byte(fix | length);
    else if (tokens.length === 3 && length < 0x100) {
      this.byte(tokens[0]!);
      this.byte(length);
    } else if (length < 0x10000) {
      this.byte(tokens[tokens.length - 2]!);
      this.uint(length, 2);
    } else {
      this.byte(tokens[tokens.length - 1]!);
      this.uint(length, 4);
    }
  }

  protected value(value: unknown): void {
    switch (typeof value) {
      case 'boolean':
        this.byte(value ? 0xc3 : 0xc2);
        return;
      case 'number':
        this.number(value);
        return;
      case 'string':
        this.string(value);
        return;
      case 'object': {
        if (value === null) {
          this.byte(0xc0);
          return;
        }
        if (Array.isArray(value)) {
          this.header(value.length, 0x90, 16, ARRAY_TOKENS);
          for (const item of value) this.value(item);
          return;
        }
        let fields = 0;
        for (const field in value) {
          if ((value as Record<string, unknown>)[field] !== undefined) fields++;
        }
        this.header(fields, 0x80, 16, MAP_TOKENS);
        for (const field in value) {
          const item = (value as Record<string, unknown>)[field];
          if (item === undefined) continue;
          this.string(field);
          this.value(item);
        }
        return;
      }
      default:
        // Not a storable value: validation refuses it before it is ever hashed.
        this.byte(0xc1);
    }
  }

  protected number(value: number): void {
    if (Number.isInteger(value) && value >= -0x80000000 && value <= 0xffffffff) {
      if (value >= 0) {
        if (value < 0x80) this.byte(value);
        else if (value < 0x100) {
          this.byte(0xcc);
          this.byte(value);
        } else if (value < 0x10000) {
          this.byte(0xcd);
          this.uint(value, 2);
        } else {
          this.byte(0xce);
          this.uint(value, 4);
        }
      } else if (value >= -0x20) this.byte(value & 0xff);
      else if (value >= -0x80) {
        this.byte(0xd0);
        this.byte(value & 0xff);
      } else if (value >= -0x8000) {
        this.byte(0xd1);
        this.uint(value & 0xffff, 2);
      } else {
        this.byte(0xd2);
        this.uint(value >>> 0, 4);
      }
      return;
    }
    this.byte(0xcb);
    this.scratch.setFloat64(0, value);
    for (let index = 0; index < 8; index++) this.byte(this.scratch.getUint8(index));
  }

  protected string(text: string): void {
    let length = 0;
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i);
      if (unit < 0x80) length += 1;
      else if (unit < 0x800) length += 2;
      else if ((unit & 0xfc00) === 0xd800 && i + 1 < text.length) {
        length += 4;
        i++;
      } else length += 3;
    }
    this.header(length, 0xa0, 32, STRING_TOKENS);
    for (let i = 0; i < text.length; i++) {
      let point = text.charCodeAt(i);
      if (point < 0x80) {
        this.byte(point);
        continue;
      }
      if (point < 0x800) {
        this.byte(0xc0 | (point >> 6));
        this.byte(0x80 | (point & 0x3f));
        continue;
      }
      if ((point & 0xfc00) === 0xd800 && i + 1 < text.length) {
        point = 0x10000 + ((point - 0xd800) << 10) + (text.charCodeAt(++i) - 0xdc00);
        this.byte(0xf0 | (point >> 18));
        this.byte(0x80 | ((point >> 12) & 0x3f));
      } else this.byte(0xe0 | (point >> 12));
      this.byte(0x80 | ((point >> 6) & 0x3f));
      this.byte(0x80 | (point & 0x3f));
    }
  }
}

/**
 * Hashes record values: their canonical encoding fed one byte per unit to the 64-bit hash
 * of `specifications/merkle-sync.md`. Allocation-free: it runs on every write.
 */
export class ValueHasher extends CanonicalWalker {
  /** Lane 1 of the last value hashed, as a signed 32-bit integer. */
  lane1 = 0;
  /** Lane 2 of the last value hashed, as a signed 32-bit integer. */
  lane2 = 0;
  private h1 = 0;
  private h2 = 0;

  /** Hashes `value` (`null` for a tombstone) into {@link lane1} and {@link lane2}. */
  hash(value: unknown): void {
    this.h1 = HASH_SEED_1;
    this.h2 = HASH_SEED_2;
    this.value(value);
    const [lane1, lane2] = finishHash(this.h1, this.h2);
    this.lane1 = lane1 | 0;
    this.lane2 = lane2 | 0;
  }

  protected byte(unit: number): void {
    this.h1 = Math.imul(this.h1 ^ unit, HASH_MUL_1);
    this.h2 = Math.imul(this.h2 ^ unit, HASH_MUL_2);
  }
}

/** Counts the bytes of canonical encodings. */
class ValueSizer extends CanonicalWalker {
  private size = 0;

  measure(value: unknown): number {
    this.size = 0;
    this.value(value);
    return this.size;
  }

  protected byte(): void {
    this.size++;
  }
}

const STRING_TOKENS = [0xd9, 0xda, 0xdb] as const;
const ARRAY_TOKENS = [0xdc, 0xdd] as const;
const MAP_TOKENS = [0xde, 0xdf] as const;

const shared = new ValueHasher();
const sizer = new ValueSizer();

/** How many bytes the canonical encoding of a value (`null` for a tombstone) takes. */
export function canonicalSize(value: unknown): number {
  return sizer.measure(value);
}

/**
 * The 64-bit fingerprint of a record value (`null` for a tombstone): the hash of its
 * canonical encoding, as `[lane1, lane2]` (unsigned). Equal values have equal fingerprints;
 * different values differ with probability 1 - 2^-64. Exposed for test vectors.
 */
export function valueFingerprint(value: unknown): [number, number] {
  shared.hash(value);
  return [shared.lane1 >>> 0, shared.lane2 >>> 0];
}
