import { type Slicer, TopGunError } from '@topgun/core';

/** Lets timers, sockets and every other connection run before going on. */
export function yieldToIO(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Thrown when work is abandoned because nobody waits for it any more (connection closed). */
export class WorkAbandonedError extends TopGunError {
  constructor() {
    super('WORK_ABANDONED', 'the work was abandoned: its connection is closing');
  }
}

/** Thrown when one message's work goes over its CPU limit; the work is abandoned. */
export class WorkLimitError extends TopGunError {
  /** The limit it went over, in milliseconds of event-loop time. */
  readonly limitMs: number;

  constructor(limitMs: number) {
    super('WORK_LIMIT', `the request needed more than ${limitMs} ms of server time`);
    this.limitMs = limitMs;
  }
}

/**
 * Where a long piece of work checks in: it yields when its slice of the event loop is used
 * up. Its `pause` charges the slice's time, yields to I/O, and waits while the connection's
 * budget is spent; it rejects with {@link WorkLimitError} past the per-message limit.
 */
export interface WorkSlicer extends Slicer {
  /**
   * Waits for I/O (the database, a slow reader) without charging the wait: the slice ends
   * before it and a new one starts after.
   */
  io<T>(waiting: Promise<T>): Promise<T>;
}

/**
 * The event-loop time one connection may take: a token bucket of milliseconds, charged with
 * the time its messages' work takes (decoding, building live queries, answering walks) and
 * refilled continuously. While it is empty the connection's messages wait, and its long
 * requests run in slices of `sliceMs` between which everyone else runs: one client can slow
 * itself down, not the server.
 */
export class CpuBudget {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly capacityMs: number,
    private readonly refillMsPerSecond: number,
    private readonly sliceMs: number,
    private readonly maxMessageMs: number,
    private readonly onWait: () => void = () => {},
    private readonly onCharge: (ms: number) => void = () => {},
  ) {
    this.tokens = capacityMs;
    this.updatedAt = performance.now();
  }

  /** Charges `ms` of work done. */
  charge(ms: number): void {
    this.refill();
    this.tokens -= ms;
    this.onCharge(ms);
  }

  /** Whether the budget is spent (the connection should wait before more work). */
  get spent(): boolean {
    this.refill();
    return this.tokens <= 0;
  }

  /**
   * Resolves once the budget is positive again (at once if it is), or as soon as the work is
   * no longer wanted (`wanted` false: the connection closed, the server is shutting down).
   */
  async ready(wanted: () => boolean = () => true): Promise<void> {
    if (!this.spent) return;
    this.onWait();
    while (this.spent && wanted()) {
      const waitMs = Math.ceil((-this.tokens / this.refillMsPerSecond) * 1000) + 1;
      await new Promise((resolve) => setTimeout(resolve, Math.min(waitMs, 1_000)));
    }
  }

  /** Measures a synchronous piece of work and charges it. */
  measure<T>(work: () => T): T {
    const start = performance.now();
    try {
      return work();
    } finally {
      this.charge(performance.now() - start);
    }
  }

  /**
   * A slicer for one message's work, started now; its pauses reject with
   * {@link WorkAbandonedError} once the work is no longer `wanted`.
   */
  slicer(wanted: () => boolean = () => true): WorkSlicer & { finish(): void } {
    let sliceStart = performance.now();
    let used = 0;
    const end = () => {
      const now = performance.now();
      used += now - sliceStart;
      this.charge(now - sliceStart);
      sliceStart = now;
    };
    return {
      // Also due once the message's own limit is spent, however short its slices between
      // waits for I/O: the pause that follows refuses it.
      due: () => {
        const slice = performance.now() - sliceStart;
        return slice >= this.sliceMs || used + slice > this.maxMessageMs;
      },
      pause: async () => {
        end();
        if (used > this.maxMessageMs) throw new WorkLimitError(this.maxMessageMs);
        await yieldToIO();
        await this.ready(wanted);
        if (!wanted()) throw new WorkAbandonedError();
        sliceStart = performance.now();
      },
      io: async (waiting) => {
        end();
        try {
          return await waiting;
        } finally {
          sliceStart = performance.now();
          // Thrown from finally on purpose: whatever came back, nobody wants it any more.
          // biome-ignore lint/correctness/noUnsafeFinally: abandoning is the point
          if (!wanted()) throw new WorkAbandonedError();
        }
      },
      finish: end,
    };
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(
      this.capacityMs,
      this.tokens + ((now - this.updatedAt) / 1000) * this.refillMsPerSecond,
    );
    this.updatedAt = now;
  }
}
