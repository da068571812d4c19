import { TopGunError } from './errors.js';
import type { Timestamp } from './timestamp.js';

/**
 * Thrown by `HLC.update` (and everything that merges remote records) when a remote timestamp
 * is further ahead of local physical time than the clock's `maxDriftMs`. The clock is left
 * unchanged, so one bad peer cannot drag every replica into the future.
 */
export class ClockDriftError extends TopGunError {
  /** The rejected timestamp. */
  readonly remote: Timestamp;
  /** Local physical time when the timestamp was rejected. */
  readonly physicalTime: number;
  /** How far ahead the remote timestamp was, in milliseconds. */
  readonly driftMs: number;
  /** The bound that was exceeded. */
  readonly maxDriftMs: number;

  constructor(remote: Timestamp, physicalTime: number, maxDriftMs: number) {
    const driftMs = remote.millis - physicalTime;
    super(
      'CLOCK_DRIFT',
      `timestamp from node ${remote.nodeId} is ${driftMs} ms ahead of local time (limit ${maxDriftMs} ms)`,
    );
    this.remote = remote;
    this.physicalTime = physicalTime;
    this.driftMs = driftMs;
    this.maxDriftMs = maxDriftMs;
  }
}
