/**
 * Live-query messages (`subscribe`, `query_more`) a connection sends at most as fast as a
 * server admits them by default (a burst of 50, then 10 a second: `subscribesBurst`,
 * `subscribesPerSecond`), with a margin: a leader that subscribes every tab's queries again
 * after a reconnect would otherwise have the ones past the burst refused.
 */
const BURST = 40;
const PER_SECOND = 8;

export class QueryPacer {
  #tokens = BURST;
  #at: number;
  /** Messages waiting, in order, with what each costs of the rate (an `unsubscribe`: nothing). */
  readonly #waiting: Array<{ readonly send: () => void; readonly cost: number }> = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly now: () => number) {
    this.#at = now();
  }

  /**
   * Sends now if the rate allows, else once it does, in order. `free`: a message the rate does
   * not count (`unsubscribe`), which still waits for those before it, so that it never
   * overtakes the `subscribe` it ends.
   */
  send(message: () => void, free = false): void {
    this.#waiting.push({ send: message, cost: free ? 0 : 1 });
    this.#drain();
  }

  /** A new connection: nothing waits, and the burst is whole again. */
  reset(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#waiting.length = 0;
    this.#tokens = BURST;
    this.#at = this.now();
  }

  #drain(): void {
    const now = this.now();
    this.#tokens = Math.min(BURST, this.#tokens + ((now - this.#at) * PER_SECOND) / 1000);
    this.#at = now;
    while (this.#waiting.length > 0 && this.#tokens >= this.#waiting[0]!.cost) {
      const { send, cost } = this.#waiting.shift()!;
      this.#tokens -= cost;
      send();
    }
    if (this.#waiting.length > 0 && this.#timer === undefined)
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#drain();
      }, 1000 / PER_SECOND);
  }
}
