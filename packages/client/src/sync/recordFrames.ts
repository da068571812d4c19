import { encodeMessage, fittedChunks, type WireEntry } from '@topgun/core';

/** Records per `sync_records` frame at most. */
const MAX_FRAME_RECORDS = 500;

/**
 * The `sync_records` frames carrying `entries` to the server in a walk: each within
 * `maxBytes` and 500 records, the last one marked `last` (empty when there is nothing).
 */
export function* recordFrames(
  map: string,
  session: number,
  entries: readonly WireEntry[],
  maxBytes: number,
): Generator<Uint8Array> {
  const encode = (records: readonly WireEntry[], last: boolean) =>
    encodeMessage({ type: 'sync_records', map, session, records: [...records], last });
  const chunks = [
    ...fittedChunks(
      entries,
      (chunk) => encode(chunk, false),
      Math.floor(maxBytes),
      MAX_FRAME_RECORDS,
    ),
  ];
  for (const { frame } of chunks.slice(0, -1)) yield frame;
  yield encode(chunks.at(-1)?.chunk ?? [], true);
}
