import type { PersistQueue } from '../storage/persistQueue.js';

/** Tells the other tabs a map was reconciled with the server. */
export interface SyncedMessage {
  readonly type: 'synced';
  readonly map: string;
  readonly syncedAt: number;
  /** Where the next walk may resume from, if the server gave a cursor. */
  readonly cursor?: string | undefined;
}

const META_PREFIX = 'lastSync:';
const CURSOR_PREFIX = 'cursor:';

/**
 * When each map was last reconciled with the server (server time), and the cursor the server
 * gave then (moved on by the changes it sends after): a walk sends both, so that the server
 * sends only what changed since. Persisted, and shared with the other tabs.
 */
export class SyncMarks {
  readonly #marks = new Map<string, number>();
  readonly #cursors = new Map<string, string>();
  readonly #persist: PersistQueue;
  readonly #share: (message: SyncedMessage) => void;

  constructor(persist: PersistQueue, share: (message: SyncedMessage) => void) {
    this.#persist = persist;
    this.#share = share;
  }

  /** Reads the marks back from the stored metadata. */
  load(meta: Iterable<readonly [string, unknown]>): void {
    for (const [name, value] of meta) {
      if (name.startsWith(META_PREFIX) && typeof value === 'number')
        this.#marks.set(name.slice(META_PREFIX.length), value);
      if (name.startsWith(CURSOR_PREFIX) && typeof value === 'string')
        this.#cursors.set(name.slice(CURSOR_PREFIX.length), value);
    }
  }

  get(map: string): number | undefined {
    return this.#marks.get(map);
  }

  cursor(map: string): string | undefined {
    return this.#cursors.get(map);
  }

  /** Map `map` was reconciled at `syncedAt`: stored and told to the other tabs. */
  set(map: string, syncedAt: number, cursor?: string): void {
    this.#marks.set(map, syncedAt);
    this.#persist.setMeta(`${META_PREFIX}${map}`, syncedAt);
    this.#setCursor(map, cursor);
    this.#share({ type: 'synced', map, syncedAt, cursor });
  }

  /** The server's changes of `map` moved its cursor on: stored (the tabs learn it at the next sync). */
  advance(map: string, cursor: string): void {
    this.#setCursor(map, cursor);
  }

  /** Another tab reconciled `map` (it stored the mark). */
  learn(message: SyncedMessage): void {
    this.#marks.set(message.map, message.syncedAt);
    if (message.cursor === undefined) this.#cursors.delete(message.map);
    else this.#cursors.set(message.map, message.cursor);
  }

  /** The server reset the map: the next walk starts from nothing. */
  forget(map: string): void {
    this.#marks.delete(map);
    this.#persist.setMeta(`${META_PREFIX}${map}`, null);
    this.#setCursor(map, undefined);
  }

  #setCursor(map: string, cursor: string | undefined): void {
    if (cursor === undefined && !this.#cursors.has(map)) return;
    if (cursor === undefined) this.#cursors.delete(map);
    else this.#cursors.set(map, cursor);
    this.#persist.setMeta(`${CURSOR_PREFIX}${map}`, cursor ?? null);
  }
}
