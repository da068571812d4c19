import { TopGunError } from '@topgun/core';

/** Options of `createClient` that cannot work (a malformed node id, an empty URL list). */
export class ConfigurationError extends TopGunError {
  /** The option at fault. */
  readonly option: string;

  constructor(option: string, problem: string) {
    super('CONFIGURATION', `${option}: ${problem}`);
    this.option = option;
  }
}

/** A write through a client that was closed: nothing is written. */
export class ClientClosedError extends TopGunError {
  constructor() {
    super('CLIENT_CLOSED', 'the client is closed: nothing was written');
  }
}

/**
 * What the client's storage holds cannot be read as written by this version (a corrupt or
 * foreign value): nothing is read from it, and nothing in it is changed.
 */
export class StorageCorruptError extends TopGunError {
  constructor(problem: string) {
    super('STORAGE_CORRUPT', problem);
  }
}
