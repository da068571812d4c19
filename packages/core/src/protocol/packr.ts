import { Packr } from 'msgpackr';

// Plain MessagePack as the protocol writes it (`messagePackWriter.ts`): maps with string
// keys, no msgpackr records, bundled strings or extension types.
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
 * The server's MessagePack decoder of messages and stored values: in Node, msgpackr's native
 * string decoding makes it faster than core's own decoder (`messagePackReader.ts`), which
 * clients use. It decodes the same values, which the tests check. (`skipValues` and `'auto'`
 * are supported at run time; msgpackr's typings lag behind.)
 */
export const packr = new Packr(packrOptions as ConstructorParameters<typeof Packr>[0]);
