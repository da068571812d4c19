import { LiveResult, type LWWRecord, type Query } from '@topgun/core';

/**
 * What a query over a map replicated by query may show: the rows of the server's window, as
 * its snapshot and updates tell it, and this client's own writes (shown at once). Records
 * held for other reasons (another query's rows, ones kept within the budget) are not followed
 * by the server for this query and may be out of date: they show only once the server puts
 * them in the window. Before the first snapshot of the session, everything held shows.
 */
export class ServerWindow<V> {
  /** The keys of the server's window; undefined until a snapshot completes. */
  #keys: Set<string> | undefined;
  /** The keys the last subscribe named (`have`) and those its snapshot sent so far. */
  #spoken = new Set<string>();

  constructor(private readonly ownWrite: (record: LWWRecord<V>) => boolean) {}

  /** Whether a record may show. */
  admits(key: string, record: LWWRecord<V> | undefined): boolean {
    return (
      this.#keys === undefined ||
      this.#keys.has(key) ||
      (record !== undefined && this.ownWrite(record))
    );
  }

  /** A subscribe named these keys (`have`): its snapshot is a delta against them. */
  named(keys: readonly string[]): void {
    this.#spoken = new Set(keys);
  }

  /**
   * A snapshot chunk sent these keys. On the last, the window is the first `limit` rows of
   * what the server spoke of (named or sent, now all current): every row of its window is one
   * of them, and none of them ranks above it. Returns whether the window was set.
   */
  sent(
    keys: readonly string[],
    last: boolean,
    query: Query<V>,
    records: (key: string) => LWWRecord<V> | undefined,
  ): boolean {
    for (const key of keys) this.#spoken.add(key);
    if (!last) return false;
    const current: Array<[string, V]> = [];
    for (const key of this.#spoken) {
      const record = records(key);
      if (record !== undefined && record.value !== null) current.push([key, record.value]);
    }
    this.#keys = new Set(new LiveResult(query, current).rows.map((row) => row.key));
    this.#spoken = new Set();
    return true;
  }

  /** An update moved rows in and out of the server's window. */
  moved(enter: readonly string[], leave: readonly string[]): void {
    for (const key of leave) this.#keys?.delete(key);
    for (const key of enter) this.#keys?.add(key);
  }
}
