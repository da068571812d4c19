/**
 * Machine-readable codes carried by every error TopGun throws on purpose.
 * Other packages extend this set with their own codes.
 */
export type TopGunErrorCode = 'VALIDATION' | 'CLOCK_DRIFT' | (string & {});

/** Base class of every error TopGun throws on purpose; `code` is stable, `message` is for humans. */
export class TopGunError extends Error {
  /** Stable machine-readable code. */
  readonly code: TopGunErrorCode;

  constructor(code: TopGunErrorCode, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * Thrown when input from outside (a key, a value, a timestamp, a record) is malformed.
 * `path` names the offending part, e.g. `value.tags[3]` or `record.timestamp.counter`.
 */
export class ValidationError extends TopGunError {
  /** Where in the input the problem is. */
  readonly path: string;

  constructor(path: string, problem: string) {
    super('VALIDATION', `${path}: ${problem}`);
    this.path = path;
  }
}
