/**
 * Splits `items` into chunks of at most `maxItems` whose encoding fits in `maxBytes`,
 * halving a chunk whose frame is too large (a single item is never split). Yields each
 * chunk with its encoded frame, so nothing is encoded twice.
 */
export function* fittedChunks<T>(
  items: readonly T[],
  encode: (chunk: readonly T[]) => Uint8Array,
  maxBytes: number,
  maxItems: number,
): Generator<{ readonly chunk: readonly T[]; readonly frame: Uint8Array }> {
  for (let start = 0; start < items.length; start += maxItems) {
    yield* fitChunk(
      items.length <= maxItems ? items : items.slice(start, start + maxItems),
      encode,
      maxBytes,
    );
  }
}

function* fitChunk<T>(
  chunk: readonly T[],
  encode: (chunk: readonly T[]) => Uint8Array,
  maxBytes: number,
): Generator<{ readonly chunk: readonly T[]; readonly frame: Uint8Array }> {
  const frame = encode(chunk);
  if (frame.length <= maxBytes || chunk.length <= 1) {
    yield { chunk, frame };
    return;
  }
  const middle = Math.ceil(chunk.length / 2);
  yield* fitChunk(chunk.slice(0, middle), encode, maxBytes);
  yield* fitChunk(chunk.slice(middle), encode, maxBytes);
}
