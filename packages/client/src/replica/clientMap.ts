import type { LWWMap, SetOptions } from '@topgun/core';

/** A partial update: fields to set, and fields set to `undefined` to remove. */
export type Patch<V> = { [Field in keyof V]?: V[Field] | undefined };

/** The writes a map handle sends through its client. */
export interface MapWriter<V> {
  set(map: string, key: string, value: V, options?: SetOptions): void;
  delete(map: string, key: string): void;
  update(map: string, key: string, patch: Patch<V>): void;
}

/**
 * One map of the local replica. Reads are synchronous; writes apply at once (optimistic),
 * are persisted, and are sent to the server when possible. Listeners run once per tick,
 * however many records changed in it.
 */
export class ClientMap<V> {
  readonly #listeners = new Set<() => void>();
  #version = 0;
  #cachedEntries: { version: number; entries: ReadonlyArray<readonly [string, V]> } | undefined;
  #notifyScheduled = false;

  readonly #replica: LWWMap<V>;
  readonly #writer: MapWriter<V>;

  constructor(
    /** The map name. */
    readonly name: string,
    replica: LWWMap<V>,
    writer: MapWriter<V>,
  ) {
    this.#replica = replica;
    this.#writer = writer;
    const changed = () => {
      this.#version++;
      if (this.#notifyScheduled || this.#listeners.size === 0) return;
      this.#notifyScheduled = true;
      queueMicrotask(() => {
        this.#notifyScheduled = false;
        for (const listener of this.#listeners) listener();
      });
    };
    replica.subscribe(changed);
    replica.subscribeBulk(changed);
  }

  /** The value of `key`, or undefined. */
  get(key: string): V | undefined {
    return this.#replica.get(key);
  }

  has(key: string): boolean {
    return this.#replica.has(key);
  }

  /** Number of visible entries. */
  get size(): number {
    return this.#replica.size;
  }

  /**
   * The visible entries as `[key, value]` pairs, in insertion order. The same array is
   * returned until the map changes, so it can serve as a React snapshot.
   */
  entries(): ReadonlyArray<readonly [string, V]> {
    if (this.#cachedEntries?.version !== this.#version) {
      this.#cachedEntries = { version: this.#version, entries: [...this.#replica.entries()] };
    }
    return this.#cachedEntries.entries;
  }

  /**
   * Writes `value` under `key`.
   * @throws {ValidationError} when the key or value is not storable (nothing is written).
   * @throws {ClientClosedError} after the client was closed.
   */
  set(key: string, value: V, options?: SetOptions): void {
    this.#writer.set(this.name, key, value, options);
  }

  /** Deletes `key` (a tombstone that also wins over older writes arriving later). */
  delete(key: string): void {
    this.#writer.delete(this.name, key);
  }

  /**
   * Writes only the fields of `patch` (a field set to `undefined` is removed), leaving the
   * record's other fields alone, so that someone else's concurrent edit of another field
   * survives. When `key` holds no plain object (absent, deleted, expired, another kind of
   * value), sets `patch` without its `undefined` fields as the whole value instead. An empty
   * patch writes nothing. Before `client.ready`, the record may not be loaded yet: the patch
   * applies to it once it is. See `update` in `specifications/data-model.md`.
   * @throws {ValidationError} when the key or a field is not storable (nothing is written).
   * @throws {ClientClosedError} after the client was closed.
   */
  update(key: string, patch: Patch<V>): void {
    this.#writer.update(this.name, key, patch);
  }

  /**
   * Listens to changes (local, other tabs, server); returns the unsubscribe function.
   * A stable function, so it can be passed to `useSyncExternalStore` as is.
   */
  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  };
}
