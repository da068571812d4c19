/** Entries a log keeps whatever its map's size: below this, it is never compacted. */
const MIN_ENTRIES = 64;
/** Estimated heap bytes of an entry besides its key's characters (string header, slots). */
const ENTRY_BYTES = 40;

/**
 * The keys of one map's changes in the order they were published to its followers, each
 * numbered by a version: a client that held every change up to a version has missed only
 * the keys changed after it (`specifications/protocol.md`, "Resuming from a cursor").
 *
 * Bounded: past twice the map's record count (or `maxEntries`) the log keeps only the latest
 * change of each key (a client resuming from before gets it all the same), and of those at
 * most half of `maxEntries`, the newest: older cursors then cannot resume (they walk).
 */
export class ChangeLog {
  #keys: string[] = [];
  #versions: number[] = [];
  #version = 0;
  /** Changes up to this version were dropped: a cursor before it cannot resume. */
  #floor = 0;
  /** Length at which the log is compacted next. */
  #compactAt = MIN_ENTRIES;
  #bytes = 0;

  constructor(private readonly maxEntries: number) {}

  /** Estimated heap bytes of what the log keeps. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Changes kept. */
  get entries(): number {
    return this.#keys.length;
  }

  /** The version of the latest change. */
  get version(): number {
    return this.#version;
  }

  /** Appends changes of these keys; `records` is the map's size now. */
  append(keys: Iterable<string>, records: number): void {
    for (const key of keys) {
      this.#keys.push(key);
      this.#versions.push(++this.#version);
      this.#bytes += ENTRY_BYTES + key.length;
    }
    if (this.#keys.length > this.#compactAt) this.#compact(records);
  }

  /**
   * The keys changed after `version`, each once, or undefined when the log cannot tell (the
   * changes after it were dropped, or it is not a version of this log).
   */
  since(version: number): string[] | undefined {
    if (!Number.isSafeInteger(version) || version < this.#floor || version > this.#version)
      return undefined;
    let low = 0;
    let high = this.#versions.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#versions[middle]! <= version) low = middle + 1;
      else high = middle;
    }
    return [...new Set(this.#keys.slice(low))];
  }

  /** Keeps the latest change of each key, and of those at most half the bound, the newest. */
  #compact(records: number): void {
    const seen = new Set<string>();
    const keys: string[] = [];
    const versions: number[] = [];
    for (let index = this.#keys.length - 1; index >= 0; index--) {
      const key = this.#keys[index]!;
      if (seen.has(key)) continue;
      seen.add(key);
      keys.push(key);
      versions.push(this.#versions[index]!);
    }
    keys.reverse();
    versions.reverse();
    if (keys.length > this.maxEntries >>> 1) {
      const dropped = keys.length - (this.maxEntries >>> 1);
      this.#floor = versions[dropped - 1]!;
      keys.splice(0, dropped);
      versions.splice(0, dropped);
    }
    this.#keys = keys;
    this.#versions = versions;
    this.#bytes = keys.reduce((sum, key) => sum + ENTRY_BYTES + key.length, 0);
    // Amortized: the log at least doubles before the next compaction.
    this.#compactAt = Math.min(
      this.maxEntries,
      Math.max(MIN_ENTRIES, 2 * records, 2 * keys.length),
    );
  }
}
