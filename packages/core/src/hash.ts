/**
 * The hash family every TopGun replica uses for partitioning and Merkle trees
 * (specified in `specifications/merkle-sync.md`). Inputs are UTF-16 code units, so
 * browsers and Node compute identical values without encoding strings first.
 *
 * A 64-bit, two-lane multiply-xor hash (the `cyrb53` construction, keeping both 32-bit
 * lanes): fast and well mixed, not cryptographic.
 */

/** Initial state of lane 1 of the hash. */
export const HASH_SEED_1 = 0xdeadbeef;
/** Initial state of lane 2 of the hash. */
export const HASH_SEED_2 = 0x41c6ce57;
/** Per-unit multiplier of lane 1. */
export const HASH_MUL_1 = 2654435761;
/** Per-unit multiplier of lane 2. */
export const HASH_MUL_2 = 1597334677;
const SEED_1 = HASH_SEED_1;
const SEED_2 = HASH_SEED_2;
const MUL_1 = HASH_MUL_1;
const MUL_2 = HASH_MUL_2;
/** First finishing multiplier. */
export const HASH_FIN_1 = 2246822507;
/** Second finishing multiplier. */
export const HASH_FIN_2 = 3266489909;
const FIN_1 = HASH_FIN_1;
const FIN_2 = HASH_FIN_2;

function finishLane1(h1: number, h2: number): number {
  return (Math.imul(h1 ^ (h1 >>> 16), FIN_1) ^ Math.imul(h2 ^ (h2 >>> 13), FIN_2)) >>> 0;
}

/** Finishes a hash from the state of its two lanes: `[lane1, lane2]`, unsigned. */
export function finishHash(h1: number, h2: number): [number, number] {
  const lane1 = finishLane1(h1, h2);
  const lane2 = Math.imul(h2 ^ (h2 >>> 16), FIN_1) ^ Math.imul(lane1 ^ (lane1 >>> 13), FIN_2);
  return [lane1, lane2 >>> 0];
}

/**
 * Both lanes of the hash of a string, as `[lane1, lane2]` (unsigned 32-bit integers).
 * Exposed for test vectors and for implementers of compatible replicas.
 */
export function hashString(input: string): [number, number] {
  let h1 = SEED_1;
  let h2 = SEED_2;
  for (let i = 0; i < input.length; i++) {
    const unit = input.charCodeAt(i);
    h1 = Math.imul(h1 ^ unit, MUL_1);
    h2 = Math.imul(h2 ^ unit, MUL_2);
  }
  return finishHash(h1, h2);
}

/**
 * 32-bit hash of a key: lane 1 of {@link hashString}. A key's partition and Merkle leaf
 * are both derived from it.
 */
export function keyHash(key: string): number {
  let h1 = SEED_1;
  let h2 = SEED_2;
  for (let i = 0; i < key.length; i++) {
    const unit = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ unit, MUL_1);
    h2 = Math.imul(h2 ^ unit, MUL_2);
  }
  return finishLane1(h1, h2);
}

const TAIL = new Uint16Array(8);

/**
 * Hashes Merkle items: a key's record, identified by its timestamp and fingerprint. The
 * hashed units are the key's code units, a 0 unit, the 48-bit millis as three 16-bit units
 * (high first), the counter, the node id's code units, then the record's value fingerprint
 * (lane 1 then lane 2, each as two 16-bit units, high first) and its TTL as four 16-bit
 * units (0 when absent). Records with equal timestamps and different values hash
 * differently. The key prefix is hashed once and reused for the old and the new record of a
 * write, which keeps the per-write path short and allocation-free.
 */
export class ItemHasher {
  /** Lane 1 of the last item hashed, as a signed 32-bit integer (same bits as unsigned). */
  lane1 = 0;
  /** Lane 2 of the last item hashed, as a signed 32-bit integer. */
  lane2 = 0;
  #prefix1 = 0;
  #prefix2 = 0;

  /** Starts hashing items of `key`; returns `keyHash(key)`. */
  beginKey(key: string): number {
    let h1 = SEED_1;
    let h2 = SEED_2;
    for (let i = 0; i < key.length; i++) {
      const unit = key.charCodeAt(i);
      h1 = Math.imul(h1 ^ unit, MUL_1);
      h2 = Math.imul(h2 ^ unit, MUL_2);
    }
    const hashOfKey = finishLane1(h1, h2);
    // The 0 separator unit: keys never contain U+0000, so (key, timestamp) splits one way.
    this.#prefix1 = Math.imul(h1, MUL_1);
    this.#prefix2 = Math.imul(h2, MUL_2);
    return hashOfKey;
  }

  /**
   * Hashes an item of the current key into {@link lane1} and {@link lane2}: the key written
   * at a timestamp, with the record's value fingerprint (signed or unsigned lanes) and its
   * TTL (0 when it has none); `withFieldWrites` marks a record whose fingerprint is of its
   * whole write and field writes together (the top bit of the TTL's first unit, which a TTL
   * below 2^53 never sets), so that it never hashes like a record without field writes.
   */
  hashItem(
    millis: number,
    counter: number,
    nodeId: string,
    fingerprint1: number,
    fingerprint2: number,
    ttlMs: number,
    withFieldWrites = false,
  ): void {
    let h1 = this.#prefix1;
    let h2 = this.#prefix2;
    const low = millis >>> 0;
    const high = Math.floor(millis / 4294967296) & 0xffff;
    h1 = Math.imul(h1 ^ high, MUL_1);
    h2 = Math.imul(h2 ^ high, MUL_2);
    h1 = Math.imul(h1 ^ (low >>> 16), MUL_1);
    h2 = Math.imul(h2 ^ (low >>> 16), MUL_2);
    h1 = Math.imul(h1 ^ (low & 0xffff), MUL_1);
    h2 = Math.imul(h2 ^ (low & 0xffff), MUL_2);
    h1 = Math.imul(h1 ^ counter, MUL_1);
    h2 = Math.imul(h2 ^ counter, MUL_2);
    for (let i = 0; i < nodeId.length; i++) {
      const unit = nodeId.charCodeAt(i);
      h1 = Math.imul(h1 ^ unit, MUL_1);
      h2 = Math.imul(h2 ^ unit, MUL_2);
    }
    // The record's fingerprint and TTL as 16-bit units, high first: 2 + 2 + 4 units.
    const ttlHigh = Math.floor(ttlMs / 4294967296);
    const ttlLow = ttlMs >>> 0;
    const tail = TAIL;
    tail[0] = fingerprint1 >>> 16;
    tail[1] = fingerprint1 & 0xffff;
    tail[2] = fingerprint2 >>> 16;
    tail[3] = fingerprint2 & 0xffff;
    tail[4] = ((ttlHigh >>> 16) & 0xffff) | (withFieldWrites ? 0x8000 : 0);
    tail[5] = ttlHigh & 0xffff;
    tail[6] = ttlLow >>> 16;
    tail[7] = ttlLow & 0xffff;
    for (let i = 0; i < 8; i++) {
      h1 = Math.imul(h1 ^ tail[i]!, MUL_1);
      h2 = Math.imul(h2 ^ tail[i]!, MUL_2);
    }
    // Signed lanes keep the caller's arithmetic on small integers instead of doubles.
    const lane1 = Math.imul(h1 ^ (h1 >>> 16), FIN_1) ^ Math.imul(h2 ^ (h2 >>> 13), FIN_2);
    this.lane1 = lane1;
    this.lane2 = Math.imul(h2 ^ (h2 >>> 16), FIN_1) ^ Math.imul(lane1 ^ (lane1 >>> 13), FIN_2);
  }
}
