import { fittedChunks, type WireEntry } from '@topgun/core';
import type { WorkSlicer } from './cpuBudget.js';
import type { Peer } from './peer.js';

/** Where a frame stands in a stream: the first carries what the stream announces once. */
export interface ChunkPlace {
  readonly first: boolean;
  readonly last: boolean;
}

/**
 * Streams `entries` to `peer` in frames of at most `chunkRecords` entries and `maxFrameBytes`,
 * each sent once the client has read most of the previous, so a large transfer is never held
 * whole, as frames, in memory. The last frame is encoded with `last` set (an empty one when
 * the entries end on a chunk boundary, or there are none). Stops before a chunk when the peer
 * is gone or `goOn` says so; resolves whether it sent everything.
 */
export async function streamChunks(
  peer: Peer,
  entries: Iterable<WireEntry>,
  encode: (chunk: readonly WireEntry[], place: ChunkPlace) => Uint8Array,
  limits: { readonly chunkRecords: number; readonly maxFrameBytes: number },
  slicer: WorkSlicer,
  goOn: () => boolean = () => true,
): Promise<boolean> {
  const { chunkRecords, maxFrameBytes } = limits;
  let first = true;
  let pending: WireEntry[] = [];
  const flush = async (last: boolean) => {
    // Fitted as the first frame when it may be it; frames whose place differs from the one
    // they were fitted with are encoded again (never larger).
    const fitted = [
      ...fittedChunks(
        pending,
        (chunk) => encode(chunk, { first, last: false }),
        maxFrameBytes,
        chunkRecords,
      ),
    ];
    if (fitted.length === 0) fitted.push({ chunk: [], frame: encode([], { first, last: false }) });
    pending = [];
    for (let index = 0; index < fitted.length; index++) {
      const { chunk, frame } = fitted[index]!;
      const place = { first: first && index === 0, last: last && index === fitted.length - 1 };
      peer.sendEncoded(place.last || (first && index > 0) ? encode(chunk, place) : frame);
      await slicer.io(peer.drained());
    }
    first = false;
  };
  let since = 0;
  for (const entry of entries) {
    pending.push(entry);
    if (pending.length >= chunkRecords) {
      if (!peer.isOpen() || !goOn()) return false;
      await flush(false);
    }
    if (++since >= 256) {
      since = 0;
      if (slicer.due()) await slicer.pause();
    }
  }
  if (!peer.isOpen() || !goOn()) return false;
  await flush(true);
  return true;
}
