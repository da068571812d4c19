import { ClockDriftError } from './clockDriftError.js';
import { ValidationError } from './errors.js';
import { isIntegerIn } from './isIntegerIn.js';
import { NODE_ID_ISSUE } from './protocol/messageFields.js';
import {
  isValidNodeId,
  MAX_COUNTER,
  MAX_MILLIS,
  type Timestamp,
  validateTimestamp,
} from './timestamp.js';

/** Options of {@link HLC}. */
export interface HLCOptions {
  /** This replica's node id: 1 to 64 characters from `A-Z a-z 0-9 _ -`, unique per replica. */
  readonly nodeId: string;
  /** Physical clock in milliseconds since the epoch. Default: `Date.now`. */
  readonly now?: () => number;
  /**
   * How far (ms) a remote timestamp may be ahead of local physical time before
   * {@link HLC.update} rejects it with a {@link ClockDriftError}. Default: 60 000.
   */
  readonly maxDriftMs?: number;
}

/** Default bound on how far ahead of local time a remote timestamp may be: one minute. */
export const DEFAULT_MAX_DRIFT_MS = 60_000;

/**
 * A Hybrid Logical Clock (Kulkarni et al., 2014). Timestamps it issues are strictly
 * increasing, stay close to physical time, and follow causality: after `update(remote)`,
 * every timestamp issued is greater than `remote`.
 *
 * Counter overflow: when the counter would pass {@link MAX_COUNTER} (65 536 events within one
 * logical millisecond), the clock moves its logical millis forward by one and restarts the
 * counter at 0. Timestamps stay unique and increasing; logical time runs at most 1 ms ahead
 * of physical time per 65 536 events, and falls back as physical time catches up.
 */
export class HLC {
  /** This replica's node id. */
  readonly nodeId: string;
  /** The drift bound in milliseconds. */
  readonly maxDriftMs: number;
  readonly #physicalClock: () => number;
  #millis = 0;
  #counter = 0;

  constructor(options: HLCOptions) {
    if (!isValidNodeId(options.nodeId)) {
      throw new ValidationError('nodeId', NODE_ID_ISSUE);
    }
    const maxDriftMs = options.maxDriftMs ?? DEFAULT_MAX_DRIFT_MS;
    if (!(maxDriftMs >= 0)) {
      throw new ValidationError('maxDriftMs', 'expected a non-negative number');
    }
    this.nodeId = options.nodeId;
    this.maxDriftMs = maxDriftMs;
    this.#physicalClock = options.now ?? Date.now;
  }

  /** Current physical time from the injected clock, in whole milliseconds. */
  physicalTime(): number {
    const time = Math.floor(this.#physicalClock());
    if (!isIntegerIn(time, 0, MAX_MILLIS)) {
      throw new ValidationError('now()', `the physical clock returned ${time}`);
    }
    return time;
  }

  /** The latest timestamp this clock issued or absorbed (millis 0 before the first event). */
  get last(): Timestamp {
    return { millis: this.#millis, counter: this.#counter, nodeId: this.nodeId };
  }

  /** Issues a new timestamp for a local event, greater than every earlier one. */
  now(): Timestamp {
    const physical = this.physicalTime();
    if (physical > this.#millis) {
      this.#millis = physical;
      this.#counter = 0;
    } else {
      this.#tick();
    }
    return this.last;
  }

  /**
   * Absorbs a remote timestamp (a receive event) and returns the new local timestamp,
   * which is greater than both the remote one and every earlier local one.
   * @throws {ClockDriftError} when `remote` is more than `maxDriftMs` ahead of physical
   *   time; the clock is not moved.
   * @throws {ValidationError} when `remote` is malformed.
   */
  update(remote: Timestamp): Timestamp {
    validateTimestamp(remote, 'remote');
    const physical = assertWithinDrift(this, remote);
    const local = this.#millis;
    const next = Math.max(local, remote.millis, physical);
    if (next === local && next === remote.millis) {
      this.#counter = Math.max(this.#counter, remote.counter);
      this.#tick();
    } else if (next === local) {
      this.#tick();
    } else if (next === remote.millis) {
      this.#millis = next;
      this.#counter = remote.counter;
      this.#tick();
    } else {
      this.#millis = next;
      this.#counter = 0;
    }
    return this.last;
  }

  /**
   * Moves the clock back to the current physical time. Only for a replica whose timestamps
   * beyond that point were all discarded or re-stamped without ever leaving it (a client
   * that wrote offline with its wall clock far ahead, then learned the server's time);
   * otherwise it would break monotonicity.
   */
  rewind(): void {
    this.#millis = this.physicalTime();
    this.#counter = 0;
  }

  #tick(): void {
    if (this.#counter < MAX_COUNTER) {
      this.#counter++;
    } else {
      this.#millis++;
      this.#counter = 0;
    }
  }
}

/**
 * Checks a remote timestamp against the drift bound of `clock` without moving it.
 * @returns the physical time it was checked against.
 * @throws {ClockDriftError} when `remote` is more than `clock.maxDriftMs` ahead of it.
 */
export function assertWithinDrift(clock: HLC, remote: Timestamp): number {
  const physical = clock.physicalTime();
  if (remote.millis - physical > clock.maxDriftMs) {
    throw new ClockDriftError(remote, physical, clock.maxDriftMs);
  }
  return physical;
}
