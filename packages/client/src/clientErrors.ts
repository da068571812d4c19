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

/** What went wrong with the connection or the server, as `status.lastError` reports it. */
export type SyncErrorCode =
  /** The connection could not be made, or closed (the reason says how). */
  | 'CONNECTION_LOST'
  /** The server refused the token, or the token provider failed. */
  | 'AUTH_FAILED'
  /** The server reported an error not tied to one write, walk or query. */
  | 'SERVER_ERROR'
  /** The server sent a message this client cannot read or apply. */
  | 'MALFORMED_MESSAGE'
  /** Reconciling a map with the server failed (refused, lost, or no answer); it is retried. */
  | 'WALK_FAILED'
  /** The server refused or ended a live query. */
  | 'QUERY_FAILED';

/**
 * A connection or server problem, reported through `status.lastError`; the client keeps
 * retrying. `serverCode` is the server's own code when it sent one.
 */
export class SyncError extends TopGunError {
  declare readonly code: SyncErrorCode;
  readonly serverCode: string | undefined;

  constructor(code: SyncErrorCode, message: string, serverCode?: string) {
    super(code, message);
    this.serverCode = serverCode;
  }
}

/** Saving or loading the local replica failed, as `status.storageError` reports it. */
export class StorageError extends TopGunError {
  constructor(message: string) {
    super('STORAGE_FAILED', message);
  }
}

/** A write the server refused for good; its optimistic value was rolled back. */
export class WriteRejectedError extends TopGunError {
  /** The server's reason, one of the protocol's rejection reasons. */
  readonly reason: string;

  constructor(reason: string, message: string) {
    super('WRITE_REJECTED', message);
    this.reason = reason;
  }
}
