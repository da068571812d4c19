import {
  fromWireEntry,
  type HLC,
  type LWWRecord,
  latestTimestamp,
  type MessageOf,
  mergeRecords,
  restampWrite,
  splitWrite,
  type Value,
  type WireEntry,
} from '@topgun/core';
import { ClientClosedError, WriteRejectedError } from '../clientErrors.js';
import type { LocalWrite, ReplicaStore } from '../replica/replicaStore.js';
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
 * the replica and queued in the outbox; acknowledged; refused and rolled back (as far as
 * nothing newer replaced them); re-stamped when their time would be refused. A write is what
 * `LWWMap` made: a whole record (set, delete), or field writes alone (update of an object),
 * and each of these rules applies to the parts of it the replica still holds (`splitWrite`).
 * Every change of the outbox is persisted and told to the other tabs here.
 */
export class LocalWrites {
  readonly #rejectedListeners = new Set<(rejected: RejectedWrite) => void>();
  /**
   * Per key, the writes made before the stored replica was loaded, which it must not
   * overwrite, and the record they left.
   */
  readonly #preload = new Map<
    string,
    { map: string; key: string; writes: LWWRecord<Value>[]; left: LWWRecord<Value> | undefined }
  >();
  #loaded = false;
  #closed = false;
  #nextId = 1;

  readonly #options: LocalWritesOptions;

  constructor(options: LocalWritesOptions) {
    this.#options = options;
  }

  /** A write through a map handle (`ClientMap.set`, `delete`, `update`). */
  write(map: string, key: string, write: LocalWrite): void {
    if (this.#closed) throw new ClientClosedError();
    const { replicas } = this.#options;
    // The write as made: a whole record, or field writes alone (what the outbox sends).
    const written = replicas.write(map, key, write);
    if (written === undefined) return;
    if (!this.#loaded) {
      const id = `${map}\u0000${key}`;
      const made = this.#preload.get(id) ?? { map, key, writes: [], left: undefined };
      made.writes.push(written);
      made.left = replicas.entry(map).replica.getRecord(key);
      this.#preload.set(id, made);
    }
    if (!this.#options.synced) return;
    const entry: OutboxEntry = {
      id: `${this.#options.tabNodeId}/${this.#nextId++}`,
      map,
      key,
      record: written,
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
   * The stored replica and outbox are loaded: writes made meanwhile to a key whose stored
   * record changed what they left (it may have replaced them) are applied again, in order,
   * stamped now, and their outbox entries follow.
   */
  loadedFromStorage(): void {
    const { replicas, outbox, persist, hlc } = this.#options;
    const restamped = new Map<LWWRecord<Value>, LWWRecord<Value>>();
    for (const { map, key, writes, left } of this.#preload.values()) {
      let record = replicas.entry(map).replica.getRecord(key);
      if (record === left) continue;
      for (const write of writes) {
        const again = restampWrite(write, hlc.now());
        restamped.set(write, again);
        record = record === undefined ? again : mergeRecords(record, again);
      }
      replicas.restore(map, key, record, true);
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
   * The server refused a write for good: rolled back and reported. The parts of the write the
   * replica still holds (its whole write, or its field writes not replaced since) are taken
   * out of the record, which keeps everything else (later field writes), and the server's
   * record (`current`) is merged into what is left; a write that newer ones replaced
   * altogether leaves the record alone.
   */
  rejected(
    entry: OutboxEntry,
    reason: RejectionReason,
    message: string,
    current: WireEntry | null | undefined,
  ): void {
    const split = this.#split(entry);
    if (split !== undefined) {
      const { rest } = split;
      const server = current == null ? undefined : fromWireEntry<Value>(current)[1];
      const record =
        rest === undefined || server === undefined ? (rest ?? server) : mergeRecords(rest, server);
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
    const foreign = [...this.#options.outbox.entries()].filter(({ record }) => {
      // The node id of the write's own stamp: field writes alone have the empty write's none.
      const writer = latestTimestamp(record).nodeId;
      return writer !== nodeId && !writer.startsWith(`${nodeId}-`);
    });
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
   * Gives unsent writes fresh timestamps, in their original order. Only the parts of a write
   * the replica still holds are stamped again (a patch's field writes that no later write of
   * their field replaced), and the record keeps the rest; a whole write takes the value the
   * record shows. A write the replica no longer holds at all (newer ones of its key replaced
   * it) is settled instead: stamped now, it would beat the newer writes.
   */
  #restamp(entries: readonly OutboxEntry[]): void {
    const { replicas, outbox, persist, hlc } = this.#options;
    const superseded: string[] = [];
    for (const entry of [...entries].sort(byTimestamp)) {
      const split = this.#split(entry);
      if (split === undefined) {
        superseded.push(entry.id);
        continue;
      }
      const { held, rest } = split;
      const shown = rest === undefined ? held : mergeRecords(rest, held);
      // A whole write stamped again takes the value the record shows: stamped now, it would
      // otherwise drop the field writes made on top of it (an update made after a set).
      const record = restampWrite(
        held.fields === undefined ? { ...held, value: shown.value } : held,
        hlc.now(),
      );
      // Restore, not merge: a clock rewound by repairClock stamps earlier than before.
      replicas.restore(
        entry.map,
        entry.key,
        rest === undefined ? record : mergeRecords(rest, record),
        true,
      );
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
   * What the replica still holds of the write, and the rest of its record (`splitWrite`);
   * undefined when it holds none of it. Compared by timestamps, not identity: entries from
   * other tabs arrive as structured clones.
   */
  #split(entry: OutboxEntry): ReturnType<typeof splitWrite<Value>> {
    const current = this.#options.replicas.entry(entry.map).replica.getRecord(entry.key);
    return current && splitWrite(current, entry.record);
  }

  #report(id: string, map: string, key: string, reason: RejectionReason, message: string): void {
    // The tab that made the write reports it.
    if (!id.startsWith(`${this.#options.tabNodeId}/`)) return;
    const error = new WriteRejectedError(reason, `${map}/${key}: ${message}`);
    for (const listener of this.#rejectedListeners) listener({ map, key, reason, message, error });
  }
}
