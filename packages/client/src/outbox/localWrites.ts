import {
  compareTimestamps,
  fromWireEntry,
  type HLC,
  type LWWRecord,
  type MessageOf,
  type SetOptions,
  type Value,
  type WireEntry,
} from '@topgun/core';
import { ClientClosedError, WriteRejectedError } from '../clientErrors.js';
import type { ReplicaStore } from '../replica/replicaStore.js';
import type { OutboxEntry } from '../storage/clientStorage.js';
import type { PersistQueue } from '../storage/persistQueue.js';
import { byTimestamp, type Outbox } from './outbox.js';

/** Why the server refused a write, as reported to `onRejected` listeners. */
export type RejectionReason = MessageOf<'reject'>['rejections'][number]['reason'];

/** A write the server refused; the optimistic value has been rolled back. */
export interface RejectedWrite {
  readonly map: string;
  readonly key: string;
  readonly reason: RejectionReason;
  readonly message: string;
  /** The same refusal as a typed error (code `WRITE_REJECTED`). */
  readonly error: WriteRejectedError;
}

/** A change of the outbox, for the other tabs (structured-cloned). */
export type OutboxChange =
  /** Writes a tab made, for the leader to send. */
  | { readonly type: 'outbox'; readonly entries: readonly OutboxEntry[] }
  /** Writes the server acknowledged or refused for good: they leave every outbox. */
  | { readonly type: 'settled'; readonly ids: readonly string[] }
  /** A write the server refused, for the tab that made it to report. */
  | {
      readonly type: 'rejected';
      readonly id: string;
      readonly map: string;
      readonly key: string;
      readonly reason: RejectionReason;
      readonly message: string;
    };

/** What the writes' rules work on. */
export interface LocalWritesOptions {
  readonly outbox: Outbox;
  readonly replicas: ReplicaStore;
  readonly persist: PersistQueue;
  readonly hlc: HLC;
  /** The node id stamped on this tab's writes (`<nodeId>-<tab>`), which prefixes outbox ids. */
  readonly tabNodeId: string;
  /** The node id the connection announces, shared by this profile's tabs. */
  readonly nodeId: string;
  /** False for a local-only client: with no server to acknowledge writes, it keeps no outbox. */
  readonly synced: boolean;
  readonly share: (change: OutboxChange) => void;
  /** Writes were added to the outbox: send them soon. */
  readonly added: () => void;
}

/**
 * The life of this client's writes, from the app's call to the server's answer: applied to
 * the replica and queued in the outbox; acknowledged; refused and rolled back (only if
 * nothing newer replaced them); re-stamped when their time would be refused. Every change of
 * the outbox is persisted and told to the other tabs here.
 */
export class LocalWrites {
  readonly #rejectedListeners = new Set<(rejected: RejectedWrite) => void>();
  /** Writes made before the stored replica was loaded, which it must not overwrite. */
  readonly #preload = new Map<string, { map: string; key: string; record: LWWRecord<Value> }>();
  #loaded = false;
  #closed = false;
  #nextId = 1;

  readonly #options: LocalWritesOptions;

  constructor(options: LocalWritesOptions) {
    this.#options = options;
  }

  /** A write through a map handle (`ClientMap.set` / `delete`). */
  write(
    map: string,
    key: string,
    value: unknown,
    setOptions: SetOptions | undefined,
    remove: boolean,
  ): void {
    if (this.#closed) throw new ClientClosedError();
    const record = this.#options.replicas.write(map, key, value, setOptions, remove);
    if (!this.#loaded) this.#preload.set(`${map}\u0000${key}`, { map, key, record });
    if (!this.#options.synced) return;
    const entry: OutboxEntry = {
      id: `${this.#options.tabNodeId}/${this.#nextId++}`,
      map,
      key,
      record,
    };
    this.#options.outbox.put([entry]);
    this.#options.persist.addOutbox(entry);
    this.#options.share({ type: 'outbox', entries: [entry] });
    this.#options.added();
  }

  /** No more writes: the client is closing. */
  close(): void {
    this.#closed = true;
  }

  /**
   * The stored replica and outbox are loaded: writes made meanwhile that an older stored
   * record replaced are applied again, stamped now, and their outbox entries follow.
   */
  loadedFromStorage(): void {
    const { replicas, outbox, persist, hlc } = this.#options;
    const restamped = new Map<LWWRecord<Value>, LWWRecord<Value>>();
    for (const { map, key, record } of this.#preload.values()) {
      if (replicas.entry(map).replica.getRecord(key) === record) continue;
      const again: LWWRecord<Value> = { ...record, timestamp: hlc.now() };
      restamped.set(record, again);
      replicas.restore(map, key, again, true);
    }
    for (const entry of restamped.size > 0 ? outbox.entries() : []) {
      const again = restamped.get(entry.record);
      if (again === undefined) continue;
      const replaced = { ...entry, record: again };
      outbox.put([replaced]);
      persist.addOutbox(replaced);
    }
    this.#preload.clear();
    this.#loaded = true;
  }

  /** Listens to writes the server refused; returns the unsubscribe function. */
  onRejected(listener: (rejected: RejectedWrite) => void): () => void {
    this.#rejectedListeners.add(listener);
    return () => {
      this.#rejectedListeners.delete(listener);
    };
  }

  /** The server acknowledged these writes (after COMMIT). */
  acknowledged(ids: readonly string[]): void {
    this.#settle(ids);
  }

  /**
   * The server refused a write for good: rolled back to the server's record (`current`),
   * unless something newer replaced it meanwhile, and reported.
   */
  rejected(
    entry: OutboxEntry,
    reason: RejectionReason,
    message: string,
    current: WireEntry | null | undefined,
  ): void {
    if (this.#holds(entry)) {
      const record = current == null ? undefined : fromWireEntry<Value>(current)[1];
      this.#options.replicas.restore(entry.map, entry.key, record, true);
    }
    this.#settle([entry.id]);
    const { id, map, key } = entry;
    this.#options.share({ type: 'rejected', id, map, key, reason, message });
    this.#report(id, map, key, reason, message);
  }

  /** Another tab's write was refused: reported if this tab made it. */
  rejectedInTab(change: Extract<OutboxChange, { type: 'rejected' }>): void {
    this.#report(change.id, change.map, change.key, change.reason, change.message);
  }

  /** The server refused a write as too old (made long ago, offline): it applies now, stamped now. */
  tooOld(entry: OutboxEntry): void {
    const current = this.#options.outbox.get(entry.id);
    if (current !== undefined) this.#restamp([current]);
  }

  /** The clock ran ahead of the server's: rewinds it and re-stamps every unsent write. */
  repairClock(): void {
    this.#options.hlc.rewind();
    this.#restamp([...this.#options.outbox.entries()]);
  }

  /**
   * Writes stamped by another client id (a previous process without localStorage to keep its
   * id) would be refused as not this connection's: they become this client's writes.
   */
  adoptForeignWrites(): void {
    const { nodeId } = this.#options;
    const foreign = [...this.#options.outbox.entries()].filter(
      ({ record }) =>
        record.timestamp.nodeId !== nodeId && !record.timestamp.nodeId.startsWith(`${nodeId}-`),
    );
    if (foreign.length > 0) this.#restamp(foreign);
  }

  /**
   * Drops records the user may no longer see (without tombstones), keeping the keys with
   * unacknowledged writes.
   */
  revoke(map: string, keys: Iterable<string>): void {
    const pending = new Set<string>();
    for (const entry of this.#options.outbox.entries())
      if (entry.map === map) pending.add(entry.key);
    this.#options.replicas.revoke(map, keys, pending);
  }

  /** This tab's unacknowledged writes (for a new leader to send). */
  own(): OutboxEntry[] {
    const prefix = `${this.#options.tabNodeId}/`;
    return [...this.#options.outbox.entries()].filter((entry) => entry.id.startsWith(prefix));
  }

  /**
   * Gives unsent writes fresh timestamps, in their original order. A write the replica no
   * longer holds (a newer one of its key replaced it) is settled instead: stamped now, it
   * would beat the newer write.
   */
  #restamp(entries: readonly OutboxEntry[]): void {
    const { replicas, outbox, persist, hlc } = this.#options;
    const superseded: string[] = [];
    for (const entry of [...entries].sort(byTimestamp)) {
      if (!this.#holds(entry)) {
        superseded.push(entry.id);
        continue;
      }
      const record: LWWRecord<Value> = { ...entry.record, timestamp: hlc.now() };
      replicas.restore(entry.map, entry.key, record, true);
      const replaced: OutboxEntry = { ...entry, record };
      outbox.put([replaced]);
      persist.addOutbox(replaced);
    }
    if (superseded.length > 0) this.#settle(superseded);
  }

  /** Takes writes out of the outbox, here and in the other tabs. */
  #settle(ids: readonly string[]): void {
    for (const id of ids) this.#options.persist.removeOutbox(id);
    this.#options.outbox.settle(ids);
    this.#options.share({ type: 'settled', ids });
  }

  /**
   * Whether the replica still holds the write. Compared by timestamp, not identity: entries
   * from other tabs arrive as structured clones.
   */
  #holds(entry: OutboxEntry): boolean {
    const current = this.#options.replicas.entry(entry.map).replica.getRecord(entry.key);
    return (
      current !== undefined && compareTimestamps(current.timestamp, entry.record.timestamp) === 0
    );
  }

  #report(id: string, map: string, key: string, reason: RejectionReason, message: string): void {
    // The tab that made the write reports it.
    if (!id.startsWith(`${this.#options.tabNodeId}/`)) return;
    const error = new WriteRejectedError(reason, `${map}/${key}: ${message}`);
    for (const listener of this.#rejectedListeners) listener({ map, key, reason, message, error });
  }
}
