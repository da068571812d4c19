/**
 * Decoded data made comparable: binaries (Buffers in Node, Uint8Arrays elsewhere) become
 * `['bytes', ...]`, so that `toEqual` compares contents whatever class decoded them.
 */
export function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return ['bytes', ...value];
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, plain(field)]));
  }
  return value;
}
