/** Bounds on what `decodeMessage` accepts; every one is checked before anything is built. */
export interface DecodeLimits {
  /** Largest frame, in bytes. Default: 1 MiB. */
  readonly maxFrameBytes: number;
  /** Deepest nesting of arrays and maps. Default: 40 (values may nest 32 deep inside a message). */
  readonly maxDepth: number;
  /** Most elements in one array. Default: 20 000. */
  readonly maxArrayLength: number;
  /** Most entries in one map. Default: 1 024. */
  readonly maxMapSize: number;
  /**
   * Most array elements and map entries in one frame, all containers together: decoded
   * objects cost far more memory than their bytes (an empty map is one byte, and tens in
   * memory), so this bounds what one frame can make the receiver allocate. Default: 100 000.
   */
  readonly maxElements: number;
  /** Longest string, in bytes. Default: 256 KiB. */
  readonly maxStringBytes: number;
  /** Longest binary, in bytes. Default: 512 KiB. */
  readonly maxBinaryBytes: number;
}

/** The default decode limits. */
export const DEFAULT_DECODE_LIMITS: DecodeLimits = Object.freeze({
  maxFrameBytes: 1024 * 1024,
  maxDepth: 40,
  maxArrayLength: 20_000,
  maxMapSize: 1024,
  maxElements: 100_000,
  maxStringBytes: 256 * 1024,
  maxBinaryBytes: 512 * 1024,
});
