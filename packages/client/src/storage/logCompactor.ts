import type { WireEntry } from '@topgun/core';
import { SEGMENTS_STORE } from './clientDatabase.js';
import { requestResult, transactionDone } from './idbRequests.js';
import {
  checkedSegment,
  encodedParts,
  SegmentReplay,
  type StoredMapChanges,
  type StoredSegment,
} from './storedSegment.js';

/** A segment of the record log as the compactor knows it. */
export interface SegmentInfo {
  readonly key: number;
  readonly count: number;
}

/** What one compaction did. */
export interface CompactionReport {
  /** Segments merged into one. */
  readonly segments: number;
  /** Entries and removals read, and written. */
  readonly countBefore: number;
  readonly countAfter: number;
  /** Whether it merged the whole log (dropping removals, which then hide nothing). */
  readonly full: boolean;
}

/** When the record log is compacted, and how much of it. */
export interface CompactionPolicy {
  /**
   * A log holding more entries than twice the live records plus this is merged whole (it may
   * be half garbage). Default: 4096.
   */
  readonly garbageSlack: number;
  /**
   * A segment of fewer entries than this is small: reading it costs more per entry than its
   * entries do (a browser spends as long reading one value as decoding a few dozen records).
   * Default: 256.
   */
  readonly smallSegment: number;
  /** This many small segments in a row are merged into one. Default: 16. */
  readonly minSmallRun: number;
}

const DEFAULT_POLICY: CompactionPolicy = {
  garbageSlack: 4096,
  smallSegment: 256,
  minSmallRun: 16,
};

/**
 * Keeps the record log short: when the page has been idle for a while after a commit, merges
 * a contiguous run of segments into one, so that loading reads few values and little garbage.
 * The work is done between tasks (decoding and encoding part by part, yielding in between);
 * only the final swap is a transaction, which checks that the run is still exactly the
 * segments that were read (another tab may have compacted meanwhile) and otherwise writes
 * nothing. A run merged into one keeps the key of its newest segment, so log order holds.
 */
export class LogCompactor {
  #segments: SegmentInfo[] = [];
  #total = 0;
  #live = 0;
  #known = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<CompactionReport | undefined> | undefined;
  #closed = false;

  readonly #policy: CompactionPolicy;
  readonly #database: () => Promise<IDBDatabase>;
  readonly #idleMs: number;

  constructor(
    database: () => Promise<IDBDatabase>,
    idleMs: number,
    policy: Partial<CompactionPolicy> = {},
  ) {
    this.#database = database;
    this.#idleMs = idleMs;
    this.#policy = { ...DEFAULT_POLICY, ...policy };
  }

  /** What loading found: every segment, and how many live entries they hold together. */
  loaded(segments: readonly SegmentInfo[], live: number): void {
    this.#segments = [...segments];
    this.#total = segments.reduce((sum, segment) => sum + segment.count, 0);
    this.#live = live;
    this.#known = true;
    this.#schedule();
  }

  /**
   * A commit appended a segment. `live`, when known, is how many records the replica holds
   * now: what a whole merge would keep.
   */
  appended(segment: SegmentInfo | undefined, live: number | undefined): void {
    if (!this.#known) return;
    if (live !== undefined) this.#live = live;
    if (segment !== undefined) {
      this.#segments.push(segment);
      this.#total += segment.count;
    }
    this.#schedule();
  }

  /** Merges now what the policy asks to merge, if anything; waits for a merge under way. */
  async compact(): Promise<CompactionReport | undefined> {
    clearTimeout(this.#timer);
    while (this.#running !== undefined) await this.#running.catch(() => undefined);
    const range = this.#plan();
    if (range === undefined || this.#closed) return undefined;
    const running = this.#merge(range).finally(() => {
      this.#running = undefined;
      // One merge at a time: the next run (if the policy asks for one) after the next pause.
      this.#schedule();
    });
    this.#running = running;
    return running;
  }

  /** Stops compacting; resolves once a merge under way has stopped. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running?.catch(() => undefined);
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (this.#closed || !Number.isFinite(this.#idleMs) || this.#plan() === undefined) return;
    this.#timer = setTimeout(() => {
      // A failed compaction (quota, a closed connection) leaves the log as it was; the next
      // commit schedules another.
      this.compact().catch(() => undefined);
    }, this.#idleMs);
  }

  /**
   * The keys of the run to merge, first and last, or undefined for none: the whole log when it
   * may be half garbage, else the newest run of enough small segments in a row. Large segments
   * without garbage are never rewritten: a first sync of a million records stays as written.
   */
  #plan(): { from: number; to: number } | undefined {
    const segments = this.#segments;
    const first = segments[0];
    const last = segments.at(-1);
    if (!this.#known || first === undefined || last === undefined || segments.length < 2)
      return undefined;
    const { garbageSlack, smallSegment, minSmallRun } = this.#policy;
    if (this.#total > 2 * this.#live + garbageSlack) return { from: first.key, to: last.key };
    let end = segments.length;
    while (end > 0) {
      let start = end;
      while (start > 0 && segments[start - 1]!.count < smallSegment) start--;
      if (end - start >= Math.max(2, minSmallRun))
        return { from: segments[start]!.key, to: segments[end - 1]!.key };
      end = start - 1;
    }
    return undefined;
  }

  async #merge({ from, to }: { from: number; to: number }): Promise<CompactionReport | undefined> {
    const range = IDBKeyRange.bound(from, to);
    const reading = (await this.#database()).transaction(SEGMENTS_STORE, 'readonly');
    const store = reading.objectStore(SEGMENTS_STORE);
    const [keys, values, before] = await Promise.all([
      requestResult(store.getAllKeys(range)),
      requestResult(store.getAll(range)),
      requestResult(store.count(IDBKeyRange.upperBound(from, true))),
    ]);
    const segments = values.map(checkedSegment);
    if (segments.length < 2) {
      // Fewer segments than this tab knew of: another tab compacted them.
      this.#known = false;
      return undefined;
    }
    const replay = new SegmentReplay();
    let countBefore = 0;
    for (const segment of segments) {
      countBefore += segment.count;
      for (const changes of segment.maps) {
        replay.remove(changes.map, changes.removed);
        for (const part of changes.parts) {
          replay.applyPart(changes.map, part);
          if (await this.#pause()) return undefined;
        }
      }
    }
    // Removals only hide older entries: with nothing older than the run, they go.
    const full = before === 0;
    // Encoded part by part, letting the page run between parts, as the run was decoded.
    const maps: StoredMapChanges[] = [];
    let countAfter = 0;
    for (const [map, state] of replay.maps) {
      const entries: WireEntry[] = [];
      const removed: string[] = [];
      for (const [key, entry] of state) {
        if (entry !== null) entries.push(entry);
        else if (!full) removed.push(key);
      }
      if (entries.length === 0 && removed.length === 0) continue;
      const parts: Uint8Array[] = [];
      for (const part of encodedParts(entries)) {
        parts.push(part);
        if (await this.#pause()) return undefined;
      }
      maps.push({ map, parts, removed });
      countAfter += entries.length + removed.length;
    }
    const output: StoredSegment = { count: countAfter, maps };
    if (this.#closed) return undefined;

    const writing = (await this.#database()).transaction(SEGMENTS_STORE, 'readwrite');
    const done = transactionDone(writing);
    const target = writing.objectStore(SEGMENTS_STORE);
    const check = target.getAllKeys(range);
    let changedMeanwhile = false;
    check.onsuccess = () => {
      const unchanged =
        check.result.length === keys.length &&
        check.result.every((key, index) => key === keys[index]);
      if (!unchanged) {
        changedMeanwhile = true;
        writing.abort();
        return;
      }
      target.put(output, to);
      target.delete(IDBKeyRange.bound(from, to, false, true));
    };
    try {
      await done;
    } catch (error) {
      if (!changedMeanwhile) throw error;
      // Another tab compacted meanwhile: what this tab knows of the log is stale.
      this.#known = false;
      this.#segments = [];
      return undefined;
    }
    const mergedKeys = new Set(keys);
    this.#segments = [
      ...this.#segments.filter((segment) => segment.key < from),
      { key: to, count: output.count },
      ...this.#segments.filter((segment) => segment.key > to && !mergedKeys.has(segment.key)),
    ];
    this.#total += output.count - countBefore;
    if (full) this.#live = output.count;
    return { segments: segments.length, countBefore, countAfter: output.count, full };
  }

  /** Lets the page run between parts; true when the compactor was closed meanwhile. */
  async #pause(): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, 0));
    return this.#closed;
  }
}
