import { keyHash } from './hash.js';

/**
 * Number of key partitions. Prime, so keys spread evenly whatever the structure of
 * their hashes; 271 is also the partition count of Hazelcast, whose grid model TopGun follows.
 */
export const PARTITION_COUNT = 271;

/**
 * The partition of a key: `keyHash(key) mod 271`, where `keyHash` is lane 1 of the 64-bit
 * TopGun hash of the key's UTF-16 code units (see `specifications/merkle-sync.md`).
 * Stable forever and identical in every JavaScript runtime.
 */
export function partitionOf(key: string): number {
  return keyHash(key) % PARTITION_COUNT;
}
