import type { ClientStorage, OutboxEntry, PersistedRecord, StorageBatch } from './clientStorage.js';

/**
 * Collects everything to persist during one tick and commits it as one transaction. A
 * failed commit (quota exceeded, IndexedDB gone) is reported and retried with the next
 * batch: nothing in memory is dropped.
 */
export class PersistQueue {
  #records = new ByRecord<PersistedRecord>();
  #removals = new ByRecord<{ map: string; key: string }>();
  #outboxAdd = new Map<string, OutboxEntry>();
  #outboxRemove = new Set<string>();
  #meta = new Map<string, unknown>();
  #scheduled = false;
  #committing: Promise<void> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retryDelayMs = 200;
  /** Changes queued so far, and how many of them are committed (they commit in order). */
  #queued = 0;
  #stored = 0;

  /**
   * @param replicaRecords How many records the replica holds, told to the storage with each
   *   batch (see `StorageBatch.replicaRecords`).
   */
  readonly #storage: ClientStorage;
  readonly #onResult: (error: Error | undefined) => void;
  readonly #replicaRecords: (() => number) | undefined;

  constructor(
    storage: ClientStorage,
    onResult: (error: Error | undefined) => void,
    replicaRecords?: () => number,
  ) {
    this.#storage = storage;
    this.#onResult = onResult;
    this.#replicaRecords = replicaRecords;
  }

  record(entry: PersistedRecord): void {
    this.#removals.delete(entry);
    this.#records.set(entry);
    this.#schedule();
  }

  remove(map: string, key: string): void {
    const removal = { map, key };
    this.#records.delete(removal);
    this.#removals.set(removal);
    this.#schedule();
  }

  addOutbox(entry: OutboxEntry): void {
    this.#outboxAdd.set(entry.id, entry);
    this.#schedule();
  }

  removeOutbox(id: string): void {
    if (!this.#outboxAdd.delete(id)) this.#outboxRemove.add(id);
    this.#schedule();
  }

  setMeta(name: string, value: unknown): void {
    this.#meta.set(name, value);
    this.#schedule();
  }

  /**
   * Resolves when everything queued so far is committed (or failed and is waiting to retry);
   * what is queued meanwhile (an acknowledgement settling a write) is not waited for.
   */
  async committed(): Promise<void> {
    const target = this.#queued;
    while (this.#stored < target) {
      if (this.#committing === undefined) this.#committing = this.#commit();
      await this.#committing;
      if (this.#retryTimer !== undefined) return;
    }
  }

  #schedule(): void {
    this.#queued++;
    if (this.#scheduled || this.#retryTimer !== undefined) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      if (this.#committing === undefined) this.#committing = this.#commit();
    });
  }

  async #commit(): Promise<void> {
    const queued = this.#queued;
    const batch: StorageBatch = {
      records: this.#records.values(),
      removeRecords: this.#removals.values(),
      outboxAdd: [...this.#outboxAdd.values()],
      outboxRemove: [...this.#outboxRemove],
      meta: new Map(this.#meta),
      ...(this.#replicaRecords === undefined ? {} : { replicaRecords: this.#replicaRecords() }),
    };
    this.#records = new ByRecord();
    this.#removals = new ByRecord();
    this.#outboxAdd = new Map();
    this.#outboxRemove = new Set();
    this.#meta = new Map();
    try {
      await this.#storage.commit(batch);
      this.#stored = queued;
      this.#retryDelayMs = 200;
      this.#onResult(undefined);
    } catch (error) {
      // Put the batch back under anything newer queued meanwhile, and retry later.
      for (const record of batch.records ?? [])
        if (!this.#records.has(record) && !this.#removals.has(record)) this.#records.set(record);
      for (const removal of batch.removeRecords ?? [])
        if (!this.#records.has(removal) && !this.#removals.has(removal))
          this.#removals.set(removal);
      for (const entry of batch.outboxAdd ?? [])
        if (!this.#outboxRemove.has(entry.id)) this.#outboxAdd.set(entry.id, entry);
      for (const id of batch.outboxRemove ?? [])
        if (!this.#outboxAdd.delete(id)) this.#outboxRemove.add(id);
      for (const [name, value] of batch.meta ?? [])
        if (!this.#meta.has(name)) this.#meta.set(name, value);
      this.#onResult(error instanceof Error ? error : new Error(String(error)));
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#schedule();
      }, this.#retryDelayMs);
      this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, 30_000);
    } finally {
      this.#committing = undefined;
      if (this.#stored < this.#queued && this.#retryTimer === undefined) this.#schedule();
    }
  }

  /** Stops retrying. */
  dispose(): void {
    clearTimeout(this.#retryTimer);
  }
}

/**
 * Items by map and key, the last set winning: two levels of maps rather than one keyed by a
 * joined string, which a sync would build for every record it stores.
 */
class ByRecord<T extends { readonly map: string; readonly key: string }> {
  readonly #maps = new Map<string, Map<string, T>>();

  set(item: T): void {
    let items = this.#maps.get(item.map);
    if (items === undefined) {
      items = new Map();
      this.#maps.set(item.map, items);
    }
    items.set(item.key, item);
  }

  delete(item: { readonly map: string; readonly key: string }): void {
    this.#maps.get(item.map)?.delete(item.key);
  }

  has(item: { readonly map: string; readonly key: string }): boolean {
    return this.#maps.get(item.map)?.has(item.key) ?? false;
  }

  values(): T[] {
    const all: T[] = [];
    for (const items of this.#maps.values()) for (const item of items.values()) all.push(item);
    return all;
  }
}
