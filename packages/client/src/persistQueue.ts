import type {
  ClientStorage,
  OutboxEntry,
  PersistedRecord,
  StorageBatch,
} from './storage/clientStorage.js';

/**
 * Collects everything to persist during one tick and commits it as one transaction. A
 * failed commit (quota exceeded, IndexedDB gone) is reported and retried with the next
 * batch: nothing in memory is dropped.
 */
export class PersistQueue {
  private records = new Map<string, PersistedRecord>();
  private removals = new Map<string, { map: string; key: string }>();
  private outboxAdd = new Map<string, OutboxEntry>();
  private outboxRemove = new Set<string>();
  private meta = new Map<string, unknown>();
  private scheduled = false;
  private flushing: Promise<void> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retryDelayMs = 200;

  /**
   * @param replicaRecords How many records the replica holds, told to the storage with each
   *   batch (see `StorageBatch.replicaRecords`).
   */
  constructor(
    private readonly storage: ClientStorage,
    private readonly onResult: (error: Error | undefined) => void,
    private readonly replicaRecords?: () => number,
  ) {}

  record(entry: PersistedRecord): void {
    const id = `${entry.map}\u0000${entry.key}`;
    this.removals.delete(id);
    this.records.set(id, entry);
    this.schedule();
  }

  remove(map: string, key: string): void {
    const id = `${map}\u0000${key}`;
    this.records.delete(id);
    this.removals.set(id, { map, key });
    this.schedule();
  }

  addOutbox(entry: OutboxEntry): void {
    this.outboxAdd.set(entry.id, entry);
    this.schedule();
  }

  removeOutbox(id: string): void {
    if (!this.outboxAdd.delete(id)) this.outboxRemove.add(id);
    this.schedule();
  }

  setMeta(name: string, value: unknown): void {
    this.meta.set(name, value);
    this.schedule();
  }

  /** Resolves when everything queued so far is committed (or failed and is waiting to retry). */
  async flush(): Promise<void> {
    while (this.flushing !== undefined || this.hasWork()) {
      if (this.flushing === undefined) this.flushing = this.commit();
      await this.flushing;
      if (this.retryTimer !== undefined) return;
    }
  }

  private hasWork(): boolean {
    return (
      this.records.size +
        this.removals.size +
        this.outboxAdd.size +
        this.outboxRemove.size +
        this.meta.size >
      0
    );
  }

  private schedule(): void {
    if (this.scheduled || this.retryTimer !== undefined) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      if (this.flushing === undefined) this.flushing = this.commit();
    });
  }

  private async commit(): Promise<void> {
    const batch: StorageBatch = {
      records: [...this.records.values()],
      removeRecords: [...this.removals.values()],
      outboxAdd: [...this.outboxAdd.values()],
      outboxRemove: [...this.outboxRemove],
      meta: new Map(this.meta),
      ...(this.replicaRecords === undefined ? {} : { replicaRecords: this.replicaRecords() }),
    };
    this.records = new Map();
    this.removals = new Map();
    this.outboxAdd = new Map();
    this.outboxRemove = new Set();
    this.meta = new Map();
    try {
      await this.storage.commit(batch);
      this.retryDelayMs = 200;
      this.onResult(undefined);
    } catch (error) {
      // Put the batch back under anything newer queued meanwhile, and retry later.
      for (const record of batch.records ?? []) {
        const id = `${record.map}\u0000${record.key}`;
        if (!this.records.has(id) && !this.removals.has(id)) this.records.set(id, record);
      }
      for (const removal of batch.removeRecords ?? []) {
        const id = `${removal.map}\u0000${removal.key}`;
        if (!this.records.has(id) && !this.removals.has(id)) this.removals.set(id, removal);
      }
      for (const entry of batch.outboxAdd ?? [])
        if (!this.outboxRemove.has(entry.id)) this.outboxAdd.set(entry.id, entry);
      for (const id of batch.outboxRemove ?? [])
        if (!this.outboxAdd.delete(id)) this.outboxRemove.add(id);
      for (const [name, value] of batch.meta ?? [])
        if (!this.meta.has(name)) this.meta.set(name, value);
      this.onResult(error instanceof Error ? error : new Error(String(error)));
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.schedule();
      }, this.retryDelayMs);
      this.retryDelayMs = Math.min(this.retryDelayMs * 2, 30_000);
    } finally {
      this.flushing = undefined;
      if (this.hasWork() && this.retryTimer === undefined) this.schedule();
    }
  }

  /** Stops retrying. */
  dispose(): void {
    clearTimeout(this.retryTimer);
  }
}
