import type { LWWRecord } from '../lwwRecord.js';
import { itemHash } from '../merkleTree.js';

/*
 * `have`: the records a client holds of a live query's result, named by key and item hash,
 * so that the server's snapshot is a delta (`specifications/protocol.md`, "Query-scoped
 * maps"). 8 bytes per key: lane 1 then lane 2 of its item hash, big-endian.
 */

/** The most keys a `have` may name, and the most rows a window may grow to. */
export const MAX_WINDOW_ROWS = 10_000;

/** What is wrong with a `have`, if anything. */
export function haveIssue(keys: readonly string[], hashes: Uint8Array): string | undefined {
  if (keys.length > MAX_WINDOW_ROWS) return `at most ${MAX_WINDOW_ROWS} keys`;
  if (hashes.length !== keys.length * 8) return `expected ${keys.length * 8} bytes of hashes`;
  if (new Set(keys).size !== keys.length) return 'a key is named twice';
  return undefined;
}

/** The `have` of records held: their keys and item hashes. */
export function encodeHave(records: readonly (readonly [string, LWWRecord<unknown>])[]): {
  keys: string[];
  hashes: Uint8Array;
} {
  const hashes = new Uint8Array(records.length * 8);
  const view = new DataView(hashes.buffer);
  records.forEach(([key, record], index) => {
    const [lane1, lane2] = itemHash(key, record);
    view.setInt32(index * 8, lane1);
    view.setInt32(index * 8 + 4, lane2);
  });
  return { keys: records.map(([key]) => key), hashes };
}

/** Whether the item hash at `index` of a valid `have` is the one of `key` for `record`. */
export function holdsItem(
  hashes: Uint8Array,
  index: number,
  key: string,
  record: LWWRecord<unknown>,
): boolean {
  const view = new DataView(hashes.buffer, hashes.byteOffset, hashes.byteLength);
  const [lane1, lane2] = itemHash(key, record);
  return view.getInt32(index * 8) === lane1 && view.getInt32(index * 8 + 4) === lane2;
}
