import { DEFAULT_MAX_DRIFT_MS, HLC } from '@topgun/core';

/**
 * This tab's hybrid logical clock, running on the server's time: the offset learnt at each
 * handshake is added to the wall clock, so that a machine whose clock is off still stamps
 * writes the server accepts.
 */
export class ClientClock {
  readonly hlc: HLC;
  #offsetMs = 0;

  /**
   * @param nodeId The node id stamped on this tab's writes.
   * @param now The wall clock.
   */
  constructor(nodeId: string, now: () => number) {
    this.hlc = new HLC({
      nodeId,
      now: () => now() + this.#offsetMs,
      // Records from the server are the authority: their time is never refused here.
      maxDriftMs: Number.POSITIVE_INFINITY,
    });
  }

  /**
   * Takes the server's time at a handshake (`localNow` being this machine's then). An offset
   * within a second is noise and ignored.
   */
  learnServerTime(serverTime: number, localNow: number): void {
    const offset = serverTime - localNow;
    this.#offsetMs = Math.abs(offset) > 1000 ? offset : 0;
  }

  /**
   * Whether timestamps already issued run ahead of the server's time by half the drift a
   * server refuses: writes are re-stamped well before they would be refused.
   */
  runsAheadOf(serverTime: number): boolean {
    return this.hlc.last.millis > serverTime + DEFAULT_MAX_DRIFT_MS / 2;
  }
}
