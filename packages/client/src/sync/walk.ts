import type { HashWidth, SyncSession, Value } from '@topgun/core';

/** One walk of a map with the server, as the client keeps it. */
export interface Walk {
  readonly map: string;
  readonly session: SyncSession<Value>;
  readonly width: HashWidth;
  expected: number;
  received: number;
  /** Records from the server that changed the replica: progress (those sent may be refused). */
  changed: number;
  /** When the walk last heard from the server (for the watchdog). */
  lastHeard: number;
  /** Resumed from the map's cursor instead of walking. */
  readonly resumed: boolean;
}

/** Delay before a walk the server refused or lost is tried again. */
const WALK_RETRY_MS = 5_000;
/** Doublings of that delay at most (5 s becomes 320 s). */
const MAX_WALK_RETRY_DOUBLINGS = 6;

/**
 * When the walks of each map start again after failing, or ending apart without progress: a
 * delay that doubles with each such walk of the map in a row.
 */
export class WalkRetries {
  /** Per map, walks in a row that failed or ended apart without progress. */
  readonly #attempts = new Map<string, number>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #baseMs: number;
  readonly #start: (map: string) => void;

  /** `start` walks a map again; `baseMs` is the first delay (default 5 s). */
  constructor(start: (map: string) => void, baseMs = WALK_RETRY_MS) {
    this.#start = start;
    this.#baseMs = baseMs;
  }

  /** Whether a walk waits to start again. */
  get waiting(): boolean {
    return this.#timers.size > 0;
  }

  /** Walks `map` again after a delay that doubles with each attempt in a row. */
  later(map: string): void {
    const attempt = (this.#attempts.get(map) ?? 0) + 1;
    this.#attempts.set(map, attempt);
    const delay = this.#baseMs * 2 ** Math.min(attempt - 1, MAX_WALK_RETRY_DOUBLINGS);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#start(map);
    }, delay);
    this.#timers.add(timer);
  }

  /** A walk of `map` converged: its next failure starts the backoff over. */
  converged(map: string): void {
    this.#attempts.delete(map);
  }

  /** Forgets every retry and backoff (the session is gone). */
  clear(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#attempts.clear();
  }
}

/**
 * Walks a client runs at once: the server's default limit per connection, beyond which it
 * refuses walks (`LIMIT`), to be tried again only seconds later.
 */
const MAX_WALKS_AT_ONCE = 4;

/** Maps waiting for one of the walks a client may run at once, in the order they came. */
export class WaitingWalks {
  readonly #waiting = new Map<string, HashWidth>();

  get size(): number {
    return this.#waiting.size;
  }

  /** Whether a walk of `map` must wait, `running` being under way: it then waits here, once. */
  wait(map: string, width: HashWidth, running: number): boolean {
    if (running < MAX_WALKS_AT_ONCE) {
      this.#waiting.delete(map);
      return false;
    }
    if (!this.#waiting.has(map)) this.#waiting.set(map, width);
    return true;
  }

  /** The next map to walk now that `running` walks are under way, if one may start. */
  next(running: number): readonly [string, HashWidth] | undefined {
    if (running >= MAX_WALKS_AT_ONCE) return undefined;
    const first = this.#waiting.entries().next();
    if (first.done) return undefined;
    this.#waiting.delete(first.value[0]);
    return first.value;
  }

  clear(): void {
    this.#waiting.clear();
  }
}
