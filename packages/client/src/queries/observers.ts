/** How long an unobserved handle keeps following the replica (StrictMode, quick re-renders). */
const IDLE_GRACE_MS = 1_000;

/**
 * The listeners of a live handle (a query's, an aggregate's), and when it follows the
 * replica: from the first read or subscription until its last listener has been gone for a
 * grace period.
 */
export class Observers {
  readonly #listeners = new Set<() => void>();
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #activate: () => void;
  readonly #deactivate: () => void;

  /**
   * @param activate Starts following the replica (called on every read: once is its business).
   * @param deactivate Stops following it.
   */
  constructor(activate: () => void, deactivate: () => void) {
    this.#activate = activate;
    this.#deactivate = deactivate;
  }

  /** The handle is read: it follows the replica, for a while at least. */
  read(): void {
    this.#activate();
    if (this.#listeners.size === 0) this.#scheduleIdle();
  }

  /** Listens to the handle's changes; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.#activate();
    clearTimeout(this.#idleTimer);
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#scheduleIdle();
    };
  }

  /** Calls every listener. */
  tell(): void {
    for (const listener of this.#listeners) listener();
  }

  /** Stops following the replica now, and forgets the listeners. */
  dispose(): void {
    clearTimeout(this.#idleTimer);
    this.#deactivate();
    this.#listeners.clear();
  }

  #scheduleIdle(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (this.#listeners.size === 0) this.#deactivate();
    }, IDLE_GRACE_MS);
  }
}
