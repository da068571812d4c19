import type { PersistQueue } from '../storage/persistQueue.js';

/** Tells the other tabs a map was reconciled with the server. */
export interface SyncedMessage {
  readonly type: 'synced';
  readonly map: string;
  readonly syncedAt: number;
}

const META_PREFIX = 'lastSync:';

/**
 * When each map was last reconciled with the server (server time): a walk sends it so that
 * the server can skip what has not changed since. Persisted, and shared with the other tabs.
 */
export class SyncMarks {
  readonly #marks = new Map<string, number>();
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
    }
  }

  get(map: string): number | undefined {
    return this.#marks.get(map);
  }

  /** Map `map` was reconciled at `syncedAt`: stored and told to the other tabs. */
  set(map: string, syncedAt: number): void {
    this.#marks.set(map, syncedAt);
    this.#persist.setMeta(`${META_PREFIX}${map}`, syncedAt);
    this.#share({ type: 'synced', map, syncedAt });
  }

  /** Another tab reconciled `map` (it stored the mark). */
  learn(message: SyncedMessage): void {
    this.#marks.set(message.map, message.syncedAt);
  }

  /** The server reset the map: the next walk starts from nothing. */
  forget(map: string): void {
    this.#marks.delete(map);
    this.#persist.setMeta(`${META_PREFIX}${map}`, null);
  }
}
