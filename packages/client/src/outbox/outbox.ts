import { compareTimestamps, latestTimestamp, toWireEntry, type WireEntry } from '@topgun/core';
import type { OutboxEntry } from '../storage/clientStorage.js';

/** One write as an `ops` message carries it. */
export interface Op {
  /** The op id, unique per client session: what the server's ack and reject name. */
  readonly id: number;
  readonly map: string;
  readonly entry: WireEntry;
}

/**
 * The writes not yet acknowledged by the server: the pending ones, and which of them are on
 * their way (sent in a batch, not answered yet). The one owner of both, so that a write is
 * never sent twice at once and an answer settles exactly the write it names.
 */
export class Outbox {
  readonly #pending = new Map<string, OutboxEntry>();
  /** Op id → the write and its batch, while the op is unanswered. */
  readonly #inFlight = new Map<number, { entry: OutboxEntry; batch: number }>();
  readonly #inFlightIds = new Set<string>();
  /** Batch → ops not answered yet. */
  readonly #batches = new Map<number, number>();
  #nextBatch = 1;
  #nextOpId = 1;
  readonly #emptyWaiters = new Set<() => void>();

  readonly #onSize: (size: number) => void;

  /** @param onSize Told the number of pending writes whenever it changes. */
  constructor(onSize: (size: number) => void = () => {}) {
    this.#onSize = onSize;
  }

  /** Number of writes not yet acknowledged. */
  get size(): number {
    return this.#pending.size;
  }

  get(id: string): OutboxEntry | undefined {
    return this.#pending.get(id);
  }

  /** The pending writes, in no particular order. */
  entries(): IterableIterator<OutboxEntry> {
    return this.#pending.values();
  }

  /** Whether a write of map `map` is pending. */
  holdsMap(map: string): boolean {
    for (const entry of this.#pending.values()) if (entry.map === map) return true;
    return false;
  }

  /** The pending writes in timestamp order: the order they are sent in. */
  inOrder(): OutboxEntry[] {
    return [...this.#pending.values()].sort(byTimestamp);
  }

  /** Adds writes, or replaces them by id (a re-stamped write keeps its id). */
  put(entries: Iterable<OutboxEntry>): void {
    for (const entry of entries) this.#pending.set(entry.id, entry);
    this.#onSize(this.#pending.size);
  }

  /** Takes writes out (acknowledged, refused or superseded), by id. */
  settle(ids: Iterable<string>): void {
    for (const id of ids) this.#pending.delete(id);
    this.#onSize(this.#pending.size);
    if (this.#pending.size > 0) return;
    for (const waiter of this.#emptyWaiters) waiter();
    this.#emptyWaiters.clear();
  }

  /** Resolves once no write is pending. */
  whenEmpty(): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#emptyWaiters.add(resolve));
  }

  /**
   * The next batches to send: pending writes not on their way, in timestamp order, at most
   * `maxOps` per batch, while fewer than `maxBatches` batches are unanswered. Marks them sent.
   */
  takeBatches(maxOps: number, maxBatches: number): Op[][] {
    const waiting = this.inOrder().filter((entry) => !this.#inFlightIds.has(entry.id));
    const taken: Op[][] = [];
    for (
      let start = 0;
      start < waiting.length && this.#batches.size < maxBatches;
      start += maxOps
    ) {
      const batch = this.#nextBatch++;
      const ops = waiting.slice(start, start + maxOps).map((entry): Op => {
        const id = this.#nextOpId++;
        this.#inFlight.set(id, { entry, batch });
        this.#inFlightIds.add(entry.id);
        return { id, map: entry.map, entry: toWireEntry(entry.key, entry.record) };
      });
      this.#batches.set(batch, ops.length);
      taken.push(ops);
    }
    return taken;
  }

  /**
   * Marks op `opId` answered (acknowledged or refused); returns its write, or undefined when
   * it was not on its way (an answer repeated, or meant for a lost connection) or was stamped
   * again since it was sent: the answer is then for a stamp no replica holds any more, and the
   * new stamp still has to go.
   */
  answered(opId: number): OutboxEntry | undefined {
    const flight = this.#inFlight.get(opId);
    if (flight === undefined) return undefined;
    const { entry } = flight;
    this.#inFlight.delete(opId);
    this.#inFlightIds.delete(entry.id);
    const remaining = (this.#batches.get(flight.batch) ?? 1) - 1;
    if (remaining <= 0) this.#batches.delete(flight.batch);
    else this.#batches.set(flight.batch, remaining);
    return byTimestamp(this.#pending.get(entry.id) ?? entry, entry) ? undefined : entry;
  }

  /** The connection is gone: nothing is on its way any more (the writes stay pending). */
  forgetSent(): void {
    this.#inFlight.clear();
    this.#inFlightIds.clear();
    this.#batches.clear();
  }
}

/**
 * Orders writes by timestamp, oldest first: the order they are sent and re-stamped in. Field
 * writes alone count by their own timestamp (their whole write is the empty write's).
 */
export function byTimestamp(a: OutboxEntry, b: OutboxEntry): number {
  return compareTimestamps(latestTimestamp(a.record), latestTimestamp(b.record));
}
