import type {
  ClientStorage,
  OutboxEntry,
  PersistedRecord,
  PersistedState,
  StorageBatch,
} from './clientStorage.js';

/**
 * Storage in memory: nothing survives the process. The default in Node, and a handy
 * test double; one instance may be shared by several clients to act as a shared database.
 */
export function createMemoryStorage(): ClientStorage {
  const records = new Map<string, PersistedRecord>();
  const outbox = new Map<string, OutboxEntry>();
  const meta = new Map<string, unknown>();
  return {
    async load(): Promise<PersistedState> {
      return { records: [...records.values()], outbox: [...outbox.values()], meta: new Map(meta) };
    },
    async commit(batch: StorageBatch) {
      for (const { map, key } of batch.removeRecords ?? []) records.delete(`${map}\u0000${key}`);
      for (const record of batch.records ?? [])
        records.set(`${record.map}\u0000${record.key}`, record);
      for (const entry of batch.outboxAdd ?? []) outbox.set(entry.id, entry);
      for (const id of batch.outboxRemove ?? []) outbox.delete(id);
      for (const [name, value] of batch.meta ?? []) meta.set(name, value);
    },
    async close() {},
  };
}
