import {
  compareTimestamps,
  DEFAULT_MAX_DRIFT_MS,
  fromWireEntry,
  HLC,
  type LWWMap,
  type LWWRecord,
  type Query,
  type SetOptions,
  type Value,
  type WireEntry,
} from '@topgun/core';
import { ClientClosedError } from './clientErrors.js';
import type { ClientMap } from './clientMap.js';
import { type LeaderElection, webLocksElection } from './leaderElection.js';
import { browserOnlineManager } from './onlineManager.js';
import {
  type ClientOptions,
  immediateLeader,
  randomId,
  resolveClientOptions,
} from './options/clientOptions.js';
import { byTimestamp, Outbox } from './outbox/outbox.js';
import { PersistQueue } from './persistQueue.js';
import { QueryRegistry } from './queries/queryRegistry.js';
import type { QueryHandle } from './queryHandle.js';
import { localStorageQueryCache } from './queryResultCache.js';
import { type ReplicaEntry, ReplicaStore } from './replica/replicaStore.js';
import type { ClientStorage, OutboxEntry } from './storage/clientStorage.js';
import { type RejectionReason, SyncEngine, type SyncHost } from './syncEngine.js';
import { createSyncStatusStore, type SyncStatusStore } from './syncStatus.js';
import { openTabChannel, type TabChannel, type TabMessage } from './tabChannel.js';
import { webSocketTransport } from './webSocketTransport.js';

/** A write the server refused; the optimistic value has been rolled back. */
export interface RejectedWrite {
  readonly map: string;
  readonly key: string;
  readonly reason: RejectionReason;
  readonly message: string;
}

/**
 * An offline-first TopGun client: a local replica of the maps you open, persisted, shared
 * with other tabs, and synced with the server whenever there is a connection.
 */
export class TopGunClient {
  /** Connection state, pending writes, sync progress: a zustand vanilla store. */
  readonly status: SyncStatusStore;
  /** Resolves once the persisted replica is loaded. */
  readonly ready: Promise<void>;
  /** The node id stamped on this tab's writes. */
  readonly replicaId: string;
  /** The node id the connection announces (shared by this profile's tabs). */
  readonly clientId: string;

  private readonly hlc: HLC;
  private readonly storage: ClientStorage;
  private readonly persist: PersistQueue;
  private readonly outbox: Outbox;
  private readonly store: ReplicaStore;
  private readonly lastSyncs = new Map<string, number>();
  private readonly queries: QueryRegistry;
  private readonly rejectedListeners = new Set<(rejected: RejectedWrite) => void>();
  private readonly preloadWrites = new Map<
    string,
    { map: string; key: string; record: LWWRecord<Value> }
  >();
  private readonly tabs: TabChannel;
  private readonly election: LeaderElection;
  /** The servers to sync with; undefined for a local-only client. */
  private readonly urls: readonly [string, ...string[]] | undefined;
  private engine: SyncEngine | undefined;
  private loaded = false;
  private closed = false;
  private clockOffset = 0;
  private nextOutboxId = 1;
  private sendScheduled = false;

  constructor(private readonly options: ClientOptions = {}) {
    const resolved = resolveClientOptions(options);
    const { dbName, indexedDb } = resolved;
    this.urls = resolved.urls;
    this.clientId = resolved.clientId;
    const wallClock = options.now ?? Date.now;
    this.replicaId = `${this.clientId}-${randomId(6)}`;
    this.hlc = new HLC({
      nodeId: this.replicaId,
      now: () => wallClock() + this.clockOffset,
      // Records from the server are the authority: their time is never refused here.
      maxDriftMs: Number.POSITIVE_INFINITY,
    });
    this.status = createSyncStatusStore();
    this.outbox = new Outbox((size) => this.status.setState({ pendingOps: size }));
    this.storage = resolved.storage;
    this.persist = new PersistQueue(
      this.storage,
      (error) =>
        this.status.setState({
          storageError: error === undefined ? null : `saving locally failed: ${error.message}`,
        }),
      () => this.store.recordCount(),
    );
    this.tabs =
      (options.multiTab ?? indexedDb)
        ? openTabChannel(dbName, (message) => this.onTabMessage(message))
        : { post() {}, close() {} };
    this.store = new ReplicaStore({
      hlc: this.hlc,
      persist: this.persist,
      tabs: this.tabs,
      write: (map, key, value, writeOptions, remove) =>
        this.write(map, key, value, writeOptions, remove),
      opened: (map) => {
        if (this.loaded) this.engine?.walkMap(map);
      },
    });
    const resultCache =
      (options.cacheQueryResults ?? indexedDb) ? localStorageQueryCache(dbName) : undefined;
    this.queries = new QueryRegistry({
      replica: (map) => this.entry(map).replica,
      isLoaded: () => this.loaded,
      resultCache,
      subscribed: (id, map, query) => this.engine?.subscribeQuery(id, map, query),
      unsubscribed: (id) => this.engine?.unsubscribeQuery(id),
    });
    this.election =
      options.leaderElection ??
      ((options.multiTab ?? indexedDb) ? webLocksElection(dbName) : immediateLeader());
    this.ready = this.load();
    if (resultCache !== undefined && typeof addEventListener === 'function') {
      // Leaving the page: remember the results now rather than after the debounce.
      addEventListener('pagehide', () => this.queries.writeResults());
    }
  }

  /** The map `name` of the replica (created on first use). */
  getMap<V>(name: string): ClientMap<V> {
    return this.entry(name).handle as ClientMap<V>;
  }

  /**
   * A live query over map `map`, evaluated on the local replica and kept up to date; when
   * connected it is also subscribed on the server. Equal queries share one handle.
   * @throws {QueryError} when the query is invalid.
   */
  query<V>(map: string, query: Query<V>): QueryHandle<V> {
    return this.queries.query(map, query);
  }

  /** Listens to writes the server refused (after they were rolled back); returns the unsubscribe function. */
  onRejected(listener: (rejected: RejectedWrite) => void): () => void {
    this.rejectedListeners.add(listener);
    return () => {
      this.rejectedListeners.delete(listener);
    };
  }

  /** Resolves when every write made so far is acknowledged by the server (or refused). */
  async flush(): Promise<void> {
    await this.ready;
    await this.outbox.whenEmpty();
  }

  /** Waits until everything is saved locally. */
  async persisted(): Promise<void> {
    await this.persist.committed();
  }

  /** Disconnects, stops syncing and releases storage (after saving what is pending). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.engine?.stop();
    this.queries.writeResults();
    this.election.close();
    this.tabs.close();
    await this.ready.catch(() => {});
    await this.persist.committed();
    this.persist.dispose();
    this.queries.dispose();
    await this.storage.close();
  }

  // ---- writes ----

  private write(
    map: string,
    key: string,
    value: unknown,
    options: SetOptions | undefined,
    remove: boolean,
  ): void {
    if (this.closed) throw new ClientClosedError();
    const record = this.store.write(map, key, value, options, remove);
    if (!this.loaded) this.preloadWrites.set(`${map}\u0000${key}`, { map, key, record });
    // A local-only client has no server to acknowledge writes: it keeps no outbox.
    if (this.urls === undefined) return;
    const entry: OutboxEntry = { id: `${this.replicaId}/${this.nextOutboxId++}`, map, key, record };
    this.outbox.put([entry]);
    this.persist.addOutbox(entry);
    this.tabs.post({ type: 'outbox', entries: [entry] });
    this.scheduleSend();
  }

  /** Takes settled writes out of the outbox, here and in the other tabs. */
  private removeFromOutbox(ids: readonly string[]): void {
    for (const id of ids) this.persist.removeOutbox(id);
    this.outbox.settle(ids);
    this.tabs.post({ type: 'settled', ids });
  }

  /** Writes made in one tick go to the server together. */
  private scheduleSend(): void {
    if (this.sendScheduled) return;
    this.sendScheduled = true;
    queueMicrotask(() => {
      this.sendScheduled = false;
      if (this.loaded) this.engine?.sendOutbox();
    });
  }

  // ---- replicas ----

  private entry(name: string): ReplicaEntry {
    return this.store.entry(name);
  }

  // ---- start-up ----

  private async load(): Promise<void> {
    try {
      const state = await this.storage.load();
      for (const [name, value] of state.meta) {
        if (name.startsWith('lastSync:') && typeof value === 'number')
          this.lastSyncs.set(name.slice(9), value);
      }
      const byMap = new Map<string, Array<readonly [string, LWWRecord<Value>]>>();
      for (const { map, key, record } of state.records) {
        let list = byMap.get(map);
        if (list === undefined) {
          list = [];
          byMap.set(map, list);
        }
        list.push([key, record]);
      }
      // Our own stored records: loaded in bulk, without per-record validation or events.
      for (const [map, entries] of byMap) this.store.load(map, entries);
      this.outbox.put(state.outbox);
    } catch (error) {
      this.status.setState({
        storageError: `loading the local replica failed: ${(error as Error).message}`,
      });
    }
    // Writes made before the load finished must not lose to older persisted data.
    const lost = [...this.preloadWrites.values()].filter(
      ({ map, key, record }) => this.entry(map).replica.getRecord(key) !== record,
    );
    const restamped = new Map<LWWRecord<Value>, LWWRecord<Value>>();
    for (const { map, key, record } of lost) {
      const again: LWWRecord<Value> = { ...record, timestamp: this.hlc.now() };
      restamped.set(record, again);
      this.store.restore(map, key, again, true);
    }
    if (restamped.size > 0) {
      for (const entry of this.outbox.entries()) {
        const again = restamped.get(entry.record);
        if (again === undefined) continue;
        const replaced = { ...entry, record: again };
        this.outbox.put([replaced]);
        this.persist.addOutbox(replaced);
      }
    }
    this.preloadWrites.clear();
    this.loaded = true;
    this.queries.loaded();
    if (this.closed) return;
    this.election.run(() => this.becomeLeader());
    // Until it leads (maybe never), this tab shows the leader's connection status.
    this.tabs.post({ type: 'status-request' });
  }

  private becomeLeader(): void {
    if (this.closed) return;
    this.status.setState({ isLeader: true });
    this.tabs.post({ type: 'leader' });
    if (this.urls === undefined) return;
    this.engine = new SyncEngine(this.syncHost(), {
      urls: this.urls,
      ...(this.options.token === undefined ? {} : { token: this.options.token }),
      transport: this.options.transport ?? webSocketTransport(this.options.WebSocket),
      outbox: this.outbox,
      online: this.options.online ?? browserOnlineManager(),
      ...(this.options.minRetryMs === undefined ? {} : { minRetryMs: this.options.minRetryMs }),
      ...(this.options.maxRetryMs === undefined ? {} : { maxRetryMs: this.options.maxRetryMs }),
      ...(this.options.walkRetryMs === undefined ? {} : { walkRetryMs: this.options.walkRetryMs }),
      now: this.options.now ?? Date.now,
      random: this.options.random ?? Math.random,
    });
    this.status.subscribe(() => this.shareStatus());
    this.shareStatus();
  }

  /** Tells the other tabs the leader's connection status. */
  private shareStatus(): void {
    const status = this.status.getState();
    this.tabs.post({
      type: 'status',
      status: {
        connection: status.connection,
        url: status.url,
        lastSyncedAt: status.lastSyncedAt,
        initialSync: status.initialSync,
        lastError: status.lastError,
      },
    });
  }

  private syncHost(): SyncHost {
    return {
      status: this.status,
      nodeId: this.clientId,
      openMaps: () => this.store.names(),
      replica: (map) => this.entry(map).replica,
      mergeRemote: (map, entries) => this.store.merge(map, entries, true),
      resetMap: (map) => this.resetMap(map),
      revoke: (map, keys) => this.revoke(map, keys),
      restampWrite: (entry) => {
        const current = this.outbox.get(entry.id);
        if (current !== undefined) this.restamp([current]);
      },
      acknowledged: (ids) => this.removeFromOutbox(ids),
      rejected: (entry, reason, message, current) =>
        this.onRejectedWrite(entry, reason, message, current),
      setClockOffset: (offset) => {
        this.clockOffset = offset;
      },
      // Half the drift a server refuses: writes are re-stamped well before they would be.
      clockAheadOf: (serverTime) => this.hlc.last.millis > serverTime + DEFAULT_MAX_DRIFT_MS / 2,
      repairClock: () => this.repairClock(),
      adoptForeignWrites: () => this.adoptForeignWrites(),
      lastSync: (map) => this.lastSyncs.get(map),
      setLastSync: (map, syncedAt) => {
        this.lastSyncs.set(map, syncedAt);
        this.persist.setMeta(`lastSync:${map}`, syncedAt);
        this.queries.confirmMap(map);
        this.status.setState({ lastSyncedAt: syncedAt });
        this.tabs.post({ type: 'synced', map, syncedAt });
      },
      serverQueries: () => this.queries.active(),
      queryConfirmed: (id) => this.queries.confirmQuery(id),
      serverError: (message) => this.status.setState({ lastError: message }),
    };
  }

  private onRejectedWrite(
    entry: OutboxEntry,
    reason: RejectionReason,
    message: string,
    current: WireEntry | null | undefined,
  ): void {
    const { replica } = this.entry(entry.map);
    // Roll back only if nothing newer replaced the refused write meanwhile.
    if (holdsWrite(replica, entry)) {
      this.store.restore(
        entry.map,
        entry.key,
        current == null ? undefined : fromWireEntry<Value>(current)[1],
        true,
      );
    }
    this.removeFromOutbox([entry.id]);
    this.tabs.post({
      type: 'rejected',
      id: entry.id,
      map: entry.map,
      key: entry.key,
      reason,
      message,
    });
    this.reportRejected(entry.id, { map: entry.map, key: entry.key, reason, message });
  }

  private reportRejected(id: string, rejected: RejectedWrite): void {
    // The tab that made the write reports it.
    if (!id.startsWith(`${this.replicaId}/`)) return;
    for (const listener of this.rejectedListeners) listener(rejected);
  }

  private resetMap(map: string): void {
    const { replica } = this.entry(map);
    this.revoke(
      map,
      [...replica.allRecords()].map(([key]) => key),
    );
    this.lastSyncs.delete(map);
    this.persist.setMeta(`lastSync:${map}`, null);
  }

  /**
   * Drops records from the replica without tombstones (the user may no longer see them, or
   * the server reset the map); keys with unacknowledged writes stay.
   */
  private revoke(map: string, keys: readonly string[]): void {
    const pending = new Set(
      [...this.outbox.entries()].filter((entry) => entry.map === map).map((entry) => entry.key),
    );
    const removed: Array<readonly [string, null]> = [];
    const { replica } = this.entry(map);
    for (const key of keys) {
      if (pending.has(key) || replica.getRecord(key) === undefined) continue;
      this.store.restore(map, key, undefined, false);
      removed.push([key, null]);
    }
    if (removed.length > 0) this.tabs.post({ type: 'restore', map, entries: removed });
  }

  /** The clock ran ahead of the server's: rewind it and re-stamp writes not yet accepted. */
  private repairClock(): void {
    this.hlc.rewind();
    this.restamp([...this.outbox.entries()]);
  }

  /**
   * Writes stamped by another client id (a previous process without localStorage to keep
   * its id) would be refused as not this connection's: they become this replica's writes.
   */
  private adoptForeignWrites(): void {
    const prefix = `${this.clientId}-`;
    const foreign = [...this.outbox.entries()].filter(
      (entry) =>
        entry.record.timestamp.nodeId !== this.clientId &&
        !entry.record.timestamp.nodeId.startsWith(prefix),
    );
    if (foreign.length > 0) this.restamp(foreign);
  }

  /**
   * Gives unsent writes fresh timestamps, in their original order. A write the replica no
   * longer holds (a newer one of its key replaced it, this user's or another's) is settled
   * instead: stamped now, it would beat the newer write.
   */
  private restamp(entries: readonly OutboxEntry[]): void {
    const superseded: string[] = [];
    for (const entry of [...entries].sort(byTimestamp)) {
      if (!holdsWrite(this.entry(entry.map).replica, entry)) {
        superseded.push(entry.id);
        continue;
      }
      const restamped: LWWRecord<Value> = { ...entry.record, timestamp: this.hlc.now() };
      this.store.restore(entry.map, entry.key, restamped, true);
      const replaced: OutboxEntry = { ...entry, record: restamped };
      this.outbox.put([replaced]);
      this.persist.addOutbox(replaced);
    }
    if (superseded.length > 0) this.removeFromOutbox(superseded);
  }

  // ---- other tabs ----

  private onTabMessage(message: TabMessage): void {
    if (this.closed) return;
    switch (message.type) {
      case 'records':
        this.store.merge(message.map, message.entries, false);
        return;
      case 'restore':
        this.store.restoreFromTab(message.map, message.entries);
        return;
      case 'outbox':
        this.outbox.put(message.entries);
        if (this.engine !== undefined) this.scheduleSend();
        return;
      case 'settled':
        this.outbox.settle(message.ids);
        return;
      case 'rejected':
        this.reportRejected(message.id, {
          map: message.map,
          key: message.key,
          reason: message.reason,
          message: message.message,
        });
        return;
      case 'status':
        if (this.engine === undefined) this.status.setState(message.status);
        return;
      case 'leader':
        // A new leader: make sure it knows this tab's pending writes.
        if (this.engine === undefined) {
          const own = [...this.outbox.entries()].filter((entry) =>
            entry.id.startsWith(`${this.replicaId}/`),
          );
          if (own.length > 0) this.tabs.post({ type: 'outbox', entries: own });
        }
        return;
      case 'status-request':
        if (this.engine !== undefined) this.shareStatus();
        return;
      case 'synced':
        this.lastSyncs.set(message.map, message.syncedAt);
        this.queries.confirmMap(message.map);
        return;
    }
  }
}

/**
 * Whether the replica still holds the write of an outbox entry. Compared by timestamp, not
 * identity: entries from other tabs arrive as structured clones.
 */
function holdsWrite(replica: LWWMap<Value>, entry: OutboxEntry): boolean {
  const current = replica.getRecord(entry.key);
  return (
    current !== undefined && compareTimestamps(current.timestamp, entry.record.timestamp) === 0
  );
}
