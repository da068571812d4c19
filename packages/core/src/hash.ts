/**
 * The hash family every TopGun replica uses for partitioning and Merkle trees
 * (specified in `specifications/merkle-sync.md`). Inputs are UTF-16 code units, so
 * browsers and Node compute identical values without encoding strings first.
 *
 * A 64-bit, two-lane multiply-xor hash (the `cyrb53` construction, keeping both 32-bit
 * lanes): fast and well mixed, not cryptographic.
 */

const SEED_1 = 0xdeadbeef;
const SEED_2 = 0x41c6ce57;
const MUL_1 = 2654435761;
const MUL_2 = 1597334677;
const FIN_1 = 2246822507;
const FIN_2 = 3266489909;

function finishLane1(h1: number, h2: number): number {
  return (Math.imul(h1 ^ (h1 >>> 16), FIN_1) ^ Math.imul(h2 ^ (h2 >>> 13), FIN_2)) >>> 0;
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
  const lane1 = finishLane1(h1, h2);
  const lane2 = Math.imul(h2 ^ (h2 >>> 16), FIN_1) ^ Math.imul(lane1 ^ (lane1 >>> 13), FIN_2);
  return [lane1, lane2 >>> 0];
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

/**
 * Hashes Merkle items: a key written at a timestamp. The hashed units are the key's code
 * units, a 0 unit, the 48-bit millis as three 16-bit units (high first), the counter, then
 * the node id's code units. The key prefix is hashed once and reused for the old and the
 * new timestamp of a write, which keeps the per-write path short and allocation-free.
 */
export class ItemHasher {
  /** Lane 1 of the last item hashed, as a signed 32-bit integer (same bits as unsigned). */
  lane1 = 0;
  /** Lane 2 of the last item hashed, as a signed 32-bit integer. */
  lane2 = 0;
  private prefix1 = 0;
  private prefix2 = 0;

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
    this.prefix1 = Math.imul(h1, MUL_1);
    this.prefix2 = Math.imul(h2, MUL_2);
    return hashOfKey;
  }

  /** Hashes the current key at a timestamp into {@link lane1} and {@link lane2}. */
  hashItem(millis: number, counter: number, nodeId: string): void {
    let h1 = this.prefix1;
    let h2 = this.prefix2;
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
    // Signed lanes keep the caller's arithmetic on small integers instead of doubles.
    const lane1 = Math.imul(h1 ^ (h1 >>> 16), FIN_1) ^ Math.imul(h2 ^ (h2 >>> 13), FIN_2);
    this.lane1 = lane1;
    this.lane2 = Math.imul(h2 ^ (h2 >>> 16), FIN_1) ^ Math.imul(lane1 ^ (lane1 >>> 13), FIN_2);
  }
}
