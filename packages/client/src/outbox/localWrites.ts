import {
  fromWireEntry,
  type HLC,
  isObject,
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
import type { OutboxEntry, PersistedRecord } from '../storage/clientStorage.js';
import type { PersistQueue } from '../storage/persistQueue.js';
import { byTimestamp, type Outbox } from './outbox.js';
import { writeOnceLoaded } from './writeOnceLoaded.js';

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
  /** The writes made until the stored replica is loaded (then undefined), in order. */
  #early: OutboxEntry[] | undefined = [];
  #closed = false;
  #nextId = 1;

  readonly #options: LocalWritesOptions;

  constructor(options: LocalWritesOptions) {
    this.#options = options;
  }

  /** A write through a map handle (`ClientMap.set`, `delete`, `update`). */
  write(map: string, key: string, write: LocalWrite): void {
    if (this.#closed) throw new ClientClosedError();
    // The write as made: a whole record, or field writes alone (what the outbox sends).
    const record = this.#options.replicas.write(map, key, write, this.#early !== undefined);
    if (record === undefined) return;
    const made: OutboxEntry = {
      id: `${this.#options.tabNodeId}/${this.#nextId++}`,
      map,
      key,
      record,
    };
    this.#early?.push(made);
    if (this.#options.synced) this.#queue([made]);
  }

  /** No more writes: the client is closing. */
  close(): void {
    this.#closed = true;
  }

  /**
   * The stored replica and outbox are loaded (`stored`: the records read back). Each write
   * made meanwhile and still pending, in order, becomes what {@link writeOnceLoaded} makes of
   * it; a changed write is merged into the replica and replaces its outbox entry, in every tab.
   */
  loadedFromStorage(stored: readonly PersistedRecord[]): void {
    const { replicas, outbox, hlc, synced } = this.#options;
    const early = this.#early!;
    this.#early = undefined;
    const storedRecords = new Map(
      early.length > 0 ? stored.map((record) => [keyOf(record), record.record]) : [],
    );
    const replaced: OutboxEntry[] = [];
    for (const made of early) {
      // As the outbox holds it (another tab may have stamped it again); left alone once
      // acknowledged or refused.
      const entry = synced ? outbox.get(made.id) : made;
      if (entry === undefined) continue;
      const { map, key } = entry;
      const write = writeOnceLoaded(
        entry.record,
        storedRecords.get(keyOf(entry)),
        isObject(replicas.entry(map).replica.get(key)),
        hlc,
      );
      if (write === entry.record) continue;
      replicas.merge(map, [[key, write]], true);
      replaced.push({ ...entry, record: write });
    }
    if (synced && replaced.length > 0) this.#queue(replaced);
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
   * record (`current`) and the key's other pending writes (which the server will store too:
   * the refused write may have replaced one of them) are merged into what is left; a write
   * that newer ones replaced altogether leaves the record alone.
   */
  rejected(
    entry: OutboxEntry,
    reason: RejectionReason,
    message: string,
    current: WireEntry | null | undefined,
  ): void {
    const { id, map, key } = entry;
    const split = this.#split(entry);
    this.#settle([id]);
    if (split !== undefined) {
      let record = mergeAll(
        split.rest,
        current == null ? undefined : fromWireEntry<Value>(current)[1],
      );
      for (const other of this.#options.outbox.entries())
        if (other.map === map && other.key === key) record = mergeAll(record, other.record);
      this.#options.replicas.restore(map, key, record);
    }
    const change = { type: 'rejected', id, map, key, reason, message } as const;
    this.#options.share(change);
    this.rejectedInTab(change);
  }

  /** A write was refused (here or in another tab): reported if this tab made it. */
  rejectedInTab(change: Extract<OutboxChange, { type: 'rejected' }>): void {
    const { id, map, key, reason, message } = change;
    // The tab that made the write reports it.
    if (!id.startsWith(`${this.#options.tabNodeId}/`)) return;
    const error = new WriteRejectedError(reason, `${map}/${key}: ${message}`);
    for (const listener of this.#rejectedListeners) listener({ map, key, reason, message, error });
  }

  /** The server refused writes as too old (made long ago, offline): they apply now, stamped now. */
  tooOld(entries: readonly OutboxEntry[]): void {
    const ids = new Set(entries.map(({ id }) => id));
    this.#restamp(this.#pending(({ id }) => ids.has(id)));
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
    this.#restamp(
      this.#pending(({ record }) => {
        // The node id of the write's own stamp: field writes alone have the empty write's none.
        const writer = latestTimestamp(record).nodeId;
        return writer !== nodeId && !writer.startsWith(`${nodeId}-`);
      }),
    );
  }

  /**
   * Drops records the user may no longer see (without tombstones), keeping the keys with
   * unacknowledged writes.
   */
  revoke(map: string, keys: Iterable<string>): void {
    const pending = this.#pending((entry) => entry.map === map).map((entry) => entry.key);
    this.#options.replicas.revoke(map, keys, new Set(pending));
  }

  /** This tab's unacknowledged writes (for a new leader to send). */
  own(): OutboxEntry[] {
    const prefix = `${this.#options.tabNodeId}/`;
    return this.#pending((entry) => entry.id.startsWith(prefix));
  }

  /**
   * Gives unsent writes fresh timestamps, in their original order. Only the parts of a write
   * the replica still holds are stamped again (a patch's field writes that no later write of
   * their field replaced), and the record keeps the rest. A whole write takes the field writes
   * of others made on top of it into its value (stamped now, it would drop them), and the
   * pending writes of its key made after it are stamped again after it, so that they still win
   * over it and can still be refused on their own. A write the replica no longer holds at all
   * (newer ones of its key replaced it) is settled instead: stamped now, it would beat the
   * newer writes.
   */
  #restamp(entries: readonly OutboxEntry[]): void {
    const { replicas, outbox, hlc } = this.#options;
    const pendingOfKey = new Map<string, OutboxEntry[]>();
    for (const entry of outbox.entries()) {
      const writes = pendingOfKey.get(keyOf(entry)) ?? [];
      pendingOfKey.set(keyOf(entry), writes);
      writes.push(entry);
    }
    const pendingOf = (entry: OutboxEntry) => pendingOfKey.get(keyOf(entry)) ?? [];
    // Entries as the outbox holds them (no copies): a set keeps each once.
    const taken = new Set(entries);
    // A whole write the replica holds (at most one per key) takes the later ones along.
    for (const entry of entries)
      if (!entry.record.fields && this.#split(entry))
        for (const later of pendingOf(entry)) if (byTimestamp(later, entry) > 0) taken.add(later);
    // With what the replica holds of each, before any is stamped again (a whole write stamped
    // now drops the older field writes of its key).
    const sorted = [...taken]
      .sort(byTimestamp)
      .map((entry) => [entry, this.#split(entry)?.held] as const);
    const superseded: string[] = [];
    const replaced: OutboxEntry[] = [];
    for (const [entry, part] of sorted) {
      if (part === undefined) {
        superseded.push(entry.id);
        continue;
      }
      const split = this.#split(entry);
      const rest = split ? split.rest : this.#record(entry);
      // Others' field writes: this client's pending ones are stamped again after it.
      let others = rest;
      for (const own of part.fields ? [] : pendingOf(entry))
        others = others && (splitWrite(others, own.record) ?? { rest: others }).rest;
      const record = restampWrite(
        part.fields ? part : { ...part, value: mergeAll(others, part)!.value },
        hlc.now(),
      );
      // Restore, not merge: a clock rewound by repairClock stamps earlier than before.
      replicas.restore(entry.map, entry.key, mergeAll(rest, record));
      replaced.push({ ...entry, record });
    }
    if (replaced.length > 0) this.#queue(replaced);
    if (superseded.length > 0) this.#settle(superseded);
  }

  /** Puts writes into the outbox (new, or replacing by id), persisted and in every tab. */
  #queue(entries: OutboxEntry[]): void {
    const { outbox, persist, share, added } = this.#options;
    outbox.put(entries);
    for (const entry of entries) persist.addOutbox(entry);
    share({ type: 'outbox', entries });
    added();
  }

  /** The pending writes that pass `test`. */
  #pending(test: (entry: OutboxEntry) => boolean): OutboxEntry[] {
    return [...this.#options.outbox.entries()].filter(test);
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
    const current = this.#record(entry);
    return current && splitWrite(current, entry.record);
  }

  /** The record the replica holds for the key of `entry`. */
  #record({ map, key }: OutboxEntry): LWWRecord<Value> | undefined {
    return this.#options.replicas.entry(map).replica.getRecord(key);
  }
}

/** A key of a map, as one string. */
const keyOf = ({ map, key }: { readonly map: string; readonly key: string }) =>
  `${map}\u0000${key}`;

/** Both records merged, or the one there is. */
function mergeAll(
  a: LWWRecord<Value> | undefined,
  b: LWWRecord<Value> | undefined,
): LWWRecord<Value> | undefined {
  return a && b ? mergeRecords(a, b) : (a ?? b);
}
