import { serialize } from 'node:v8';
import { vi } from 'vitest';

/** What commits asked IndexedDB to do, per object store name. */
export interface ObjectStoreWrites {
  /** Entries put or added, per object store. */
  readonly puts: ReadonlyMap<string, number>;
  /** Entries deleted, per object store. */
  readonly deletes: ReadonlyMap<string, number>;
  /** Reads issued (`get`, `getAll`, cursors...), all stores together. */
  readonly reads: number;
  /** Bytes of every value put, as V8's serializer (Chrome's structured clone) writes them. */
  readonly bytes: number;
  /** Stops watching. */
  stop(): void;
}

const READS = [
  'get',
  'getAll',
  'getAllKeys',
  'getKey',
  'count',
  'openCursor',
  'openKeyCursor',
] as const;

/**
 * Watches every object store of the global (fake) IndexedDB until `stop`: the counts are read
 * live, so a test takes them after the commit it measures. Counting what is written instead of
 * timing it makes the write-cost tests deterministic.
 */
export function watchObjectStoreWrites(): ObjectStoreWrites {
  const puts = new Map<string, number>();
  const deletes = new Map<string, number>();
  const counts = { reads: 0, bytes: 0 };
  const prototype = IDBObjectStore.prototype;
  const bump = (counter: Map<string, number>, store: IDBObjectStore) =>
    counter.set(store.name, (counter.get(store.name) ?? 0) + 1);
  const put = prototype.put;
  const add = prototype.add;
  const remove = prototype.delete;
  const spies = [
    vi.spyOn(prototype, 'put').mockImplementation(function (this: IDBObjectStore, value, key) {
      bump(puts, this);
      counts.bytes += serialize(value).byteLength;
      return put.call(this, value, key);
    }),
    vi.spyOn(prototype, 'add').mockImplementation(function (this: IDBObjectStore, value, key) {
      bump(puts, this);
      counts.bytes += serialize(value).byteLength;
      return add.call(this, value, key);
    }),
    vi.spyOn(prototype, 'delete').mockImplementation(function (this: IDBObjectStore, query) {
      bump(deletes, this);
      return remove.call(this, query);
    }),
    ...READS.map((name) => {
      const original = prototype[name] as (...args: unknown[]) => IDBRequest;
      return vi.spyOn(prototype, name).mockImplementation(function (
        this: IDBObjectStore,
        ...args: unknown[]
      ) {
        counts.reads += 1;
        return original.apply(this, args);
      } as never);
    }),
  ];
  return {
    puts,
    deletes,
    get reads() {
      return counts.reads;
    },
    get bytes() {
      return counts.bytes;
    },
    stop() {
      for (const spy of spies) spy.mockRestore();
    },
  };
}
