/**
 * The protocol version this build speaks. A client sends it in `hello`; a server speaking
 * another version answers with an `error` of code `PROTOCOL_VERSION` and closes.
 */
export const PROTOCOL_VERSION = 6;
