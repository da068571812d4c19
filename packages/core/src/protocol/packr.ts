import { Packr } from 'msgpackr';

// Plain MessagePack that any implementation reads: maps with string keys, no msgpackr
// records, bundled strings or extension types; absent optional fields are left out.
const packrOptions = {
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  sequential: false,
  useToJSON: false,
  skipValues: [undefined],
  maxSharedStructures: 0,
  // Integers beyond 2^53 decode as bigint, which validation then rejects, instead of
  // silently losing precision.
  int64AsType: 'auto',
  // Decoded binaries are copies: a small hash must not keep a whole frame alive.
  copyBuffers: true,
};
/**
 * The MessagePack encoder and decoder of the protocol and of stored values.
 * (`skipValues` and `'auto'` are supported at run time; msgpackr's typings lag behind.)
 */
export const packr = new Packr(packrOptions as ConstructorParameters<typeof Packr>[0]);
