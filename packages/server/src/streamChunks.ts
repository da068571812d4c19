import type { WireEntry } from '@topgun/core';
import type { WorkSlicer } from './cpuBudget.js';
import type { Peer } from './peer.js';

/** Where a frame stands in a stream: the first carries what the stream announces once. */
export interface ChunkPlace {
  readonly first: boolean;
  readonly last: boolean;
}

/**
 * Streams `items` to `peer` in frames of at most `chunkRecords` entries and `maxFrameBytes`,
 * each sent once the client has read most of the previous, so a large transfer is never held
 * whole, as frames, in memory. Each item is `read` into its entry when its frame is encoded,
 * right before that frame is sent: an item that changed while earlier frames drained goes as
 * it is then, and one read as `undefined` is left out. The last frame is encoded with `last`
 * set (an empty one when the items end on a chunk boundary, or none is left). Stops before a
 * frame when the peer is gone or `goOn` says so; resolves whether it sent everything.
 */
export async function streamChunks<T>(
  peer: Peer,
  items: Iterable<T>,
  read: (item: T) => WireEntry | undefined,
  encode: (chunk: readonly WireEntry[], place: ChunkPlace) => Uint8Array,
  limits: { readonly chunkRecords: number; readonly maxFrameBytes: number },
  slicer: WorkSlicer,
  goOn: () => boolean = () => true,
): Promise<boolean> {
  const { chunkRecords, maxFrameBytes } = limits;
  let first = true;
  // Sends a chunk, halving it until its frame fits (a single entry is never split); each
  // half is read again when its turn comes, after the frames before it drained.
  const flush = async (chunk: readonly T[], last: boolean): Promise<boolean> => {
    const parts = [chunk];
    for (let part = parts.pop(); part !== undefined; part = parts.pop()) {
      if (!peer.isOpen() || !goOn()) return false;
      const kept: T[] = [];
      const entries: WireEntry[] = [];
      for (const item of part) {
        const entry = read(item);
        if (entry === undefined) continue;
        kept.push(item);
        entries.push(entry);
      }
      const place = { first, last: last && parts.length === 0 };
      if (entries.length === 0 && !place.last) continue;
      const frame = encode(entries, place);
      if (frame.length > maxFrameBytes && kept.length > 1) {
        const middle = Math.ceil(kept.length / 2);
        parts.push(kept.slice(middle), kept.slice(0, middle));
        continue;
      }
      peer.sendEncoded(frame);
      first = false;
      await slicer.io(peer.drained());
    }
    return true;
  };
  let pending: T[] = [];
  let since = 0;
  for (const item of items) {
    pending.push(item);
    if (pending.length >= chunkRecords) {
      if (!(await flush(pending, false))) return false;
      pending = [];
    }
    if (++since >= 256) {
      since = 0;
      if (slicer.due()) await slicer.pause();
    }
  }
  return flush(pending, true);
}
