import {
  type AggregateQuery,
  type LWWRecord,
  latestTimestamp,
  type Query,
  type Value,
} from '@topgun/core';
import { StorageError } from './clientErrors.js';
import {
  type ClientOptions,
  type MapOptions,
  randomId,
  resolveClientOptions,
} from './options/clientOptions.js';
import { LocalWrites, type RejectedWrite } from './outbox/localWrites.js';
import { Outbox } from './outbox/outbox.js';
import type { AggregateHandle } from './queries/aggregateHandle.js';
import type { QueryHandle } from './queries/queryHandle.js';
import { type QueryOptions, QueryRegistry } from './queries/queryRegistry.js';
import { localStorageQueryCache } from './queries/queryResultCache.js';
import { ClientClock } from './replica/clientClock.js';
import type { ClientMap } from './replica/clientMap.js';
import { ReplicaStore } from './replica/replicaStore.js';
import { SyncMarks } from './replica/syncMarks.js';
import { createSyncStatusStore, type SyncStatusStore } from './status/syncStatus.js';
import type { ClientStorage, PersistedRecord } from './storage/clientStorage.js';
import { PersistQueue } from './storage/persistQueue.js';
import { connectEarly } from './sync/earlyConnection.js';
import { browserOnlineManager } from './sync/onlineManager.js';
import { firstUrl } from './sync/reconnectingConnection.js';
import { SyncEngine } from './sync/syncEngine.js';
import type { Transport } from './sync/transport.js';
import { webSocketTransport } from './sync/webSocketTransport.js';
import { immediateLeader, webLocksElection } from './tabs/leaderElection.js';
import { openTabChannel, type TabMessage } from './tabs/tabChannel.js';
import { TabSync } from './tabs/tabSync.js';

/**
 * An offline-first TopGun client: a local replica of the maps you open, persisted, shared
 * with other tabs, and synced with the server whenever there is a connection. This class
 * wires the rooms (replica, outbox, queries, tabs, sync) and exposes the public API.
 */
export class TopGunClient {
  /** Connection state, pending writes, sync progress: a zustand vanilla store. */
  readonly status: SyncStatusStore;
  /** Resolves once the persisted replica is loaded. */
  readonly ready: Promise<void>;
  /** The node id stamped on this tab's writes: the client id and a suffix of this tab's. */
  readonly tabNodeId: string;
  /** The node id the connection announces (shared by this profile's tabs). */
  readonly nodeId: string;

  readonly #storage: ClientStorage;
  readonly #persist: PersistQueue;
  readonly #outbox: Outbox;
  readonly #replicas: ReplicaStore;
  readonly #marks: SyncMarks;
  readonly #writes: LocalWrites;
  readonly #queries: QueryRegistry;
  readonly #tabs: TabSync;
  #engine: SyncEngine | undefined;
  #loaded = false;
  #closed = false;
  #sendScheduled = false;
  /** The maps the stored replica held records of. */
  readonly #storedMaps = new Set<string>();
  /** Closes the socket opened while the election ran, unless it was taken. */
  readonly #discardEarly: () => void;

  constructor(options: ClientOptions = {}) {
    const resolved = resolveClientOptions(options);
    const { dbName, indexedDb, urls } = resolved;
    const multiTab = options.multiTab ?? indexedDb;
    this.nodeId = resolved.nodeId;
    this.tabNodeId = `${this.nodeId}-${randomId(6)}`;
    const clock = new ClientClock(this.tabNodeId, options.now ?? Date.now);
    this.status = createSyncStatusStore();
    this.#outbox = new Outbox((size) => this.status.setState({ pendingOps: size }));
    this.#storage = resolved.storage;
    this.#persist = new PersistQueue(
      this.#storage,
      (error) =>
        this.status.setState({
          storageError:
            error === undefined
              ? null
              : new StorageError(`saving locally failed: ${error.message}`),
        }),
      () => this.#replicas.recordCount(),
    );
    const channel = multiTab
      ? openTabChannel(dbName, (message) => this.#fromTab(message))
      : { post() {}, close() {} };
    const share = (message: TabMessage) => channel.post(message);
    this.#replicas = new ReplicaStore({
      hlc: clock.hlc,
      persist: this.#persist,
      share,
      write: (map, key, write) => this.#writes.write(map, key, write),
      opened: (map) => {
        if (this.#loaded && this.#replicas.budgetOf(map) === undefined) this.#engine?.walkMap(map);
      },
    });
    this.#marks = new SyncMarks(this.#persist, share);
    this.#writes = new LocalWrites({
      outbox: this.#outbox,
      replicas: this.#replicas,
      persist: this.#persist,
      hlc: clock.hlc,
      tabNodeId: this.tabNodeId,
      nodeId: this.nodeId,
      synced: urls !== undefined,
      share,
      added: () => this.#sendSoon(),
    });
    const resultCache =
      (options.cacheQueryResults ?? indexedDb) ? localStorageQueryCache(dbName) : undefined;
    this.#queries = new QueryRegistry({
      replica: (map) => this.#replicas.entry(map).replica,
      isLoaded: () => this.#loaded,
      resultCache,
      scoped: (map) => this.#replicas.budgetOf(map) !== undefined,
      subscribed: (query) => this.#engine?.subscribeQuery(query),
      unsubscribed: (id) => this.#engine?.unsubscribeQuery(id),
      grew: (id, limit) => this.#engine?.queryMore(id, limit),
      settled: (map) => this.#evict(map),
      storePin: (pin, keys) => this.#persist.setMeta(`pin:${pin}`, keys),
      tab: this.tabNodeId,
      share,
      budgetOf: (map) => this.#replicas.budgetOf(map),
      ownWrite: (record) => {
        const writer = latestTimestamp(record).nodeId;
        return writer === this.nodeId || writer.startsWith(`${this.nodeId}-`);
      },
      declare: (map, maxRecords) => {
        if (this.#replicas.budgetOf(map) === undefined)
          this.#replicas.declare(map, { replicate: 'queries', maxRecords });
      },
    });
    for (const [map, mapOptions] of Object.entries(options.maps ?? {}))
      this.#replicas.declare(map, mapOptions);
    const rooms = {
      replicas: this.#replicas,
      writes: this.#writes,
      outbox: this.#outbox,
      queries: this.#queries,
      marks: this.#marks,
      status: this.status,
    };
    const election =
      options.leaderElection ?? (multiTab ? webLocksElection(dbName) : immediateLeader());
    this.#tabs = new TabSync(rooms, channel, election);
    const loaded = this.#load();
    this.ready = loaded;
    const random = options.random ?? Math.random;
    const online = options.online ?? browserOnlineManager();
    const first = urls === undefined ? 0 : firstUrl(urls, random);
    let transport: Transport = options.transport ?? webSocketTransport(options.WebSocket);
    // A tab that has to wait for the election opens its socket meanwhile.
    const early =
      urls !== undefined && options.leaderElection === undefined && multiTab && online.isOnline()
        ? connectEarly(transport, urls[first] ?? urls[0])
        : undefined;
    transport = early ?? transport;
    this.#discardEarly = () => early?.discard();
    // Elected and connected while the replica loads: only what follows the server's welcome
    // waits for it.
    this.#tabs.start(() => {
      if (urls === undefined || this.#closed) return;
      this.#engine = new SyncEngine(
        { ...rooms, clock },
        {
          ...options,
          urls,
          firstUrl: first,
          nodeId: this.nodeId,
          transport,
          online,
          now: options.now ?? Date.now,
          random,
          loaded,
          fresh: resolved.fresh,
          storedMaps: () => this.#storedMaps,
        },
      );
    }, this.#discardEarly);
    if (resultCache !== undefined && typeof addEventListener === 'function') {
      // Leaving the page: remember the results now rather than after the debounce.
      addEventListener('pagehide', () => this.#queries.writeResults());
    }
  }

  /**
   * The map `name` of the replica (created on first use). `options` declares how it is
   * replicated (see `MapOptions`; the `maps` option of `createClient` does the same).
   * @throws {ConfigurationError} when the map was declared otherwise before.
   */
  getMap<V>(name: string, options?: MapOptions): ClientMap<V> {
    if (options !== undefined) this.#replicas.declare(name, options);
    return this.#replicas.entry(name).handle as ClientMap<V>;
  }

  /**
   * A live query over map `map`, evaluated on the local replica and kept up to date; when
   * connected it is also subscribed on the server. Equal queries share one handle.
   * @throws {QueryError} when the query is invalid.
   */
  query<V>(map: string, query: Query<V>, options?: QueryOptions): QueryHandle<V> {
    return this.#queries.query(map, query, options);
  }

  /**
   * A live aggregate over map `map` (counts, sums, averages, least and greatest values, in
   * groups): evaluated on the local replica change by change, or by the server for a map
   * replicated by query. Equal aggregates share one handle.
   * @throws {QueryError} when the query is invalid.
   */
  aggregate<V>(map: string, query: AggregateQuery<V>): AggregateHandle<V> {
    return this.#queries.aggregate(map, query);
  }

  /** Unpins a query pinned with `{ offline: true }`: its rows may be dropped again. */
  unpin(map: string, query: Query<unknown>): void {
    this.#queries.unpin(map, query);
  }

  /**
   * A map replicated by query over its budget drops records that no live or pinned query
   * holds and that have no unacknowledged write, until it is within it.
   */
  #evict(map: string): void {
    // The leader's queries include every tab's (it follows them for the others), and
    // dropping records drops them in every tab: only it decides.
    if (this.#closed || !this.status.getState().isLeader) return;
    const budget = this.#replicas.budgetOf(map);
    const { replica } = this.#replicas.entry(map);
    let over = replica.recordCount - (budget ?? Number.POSITIVE_INFINITY);
    if (!(over > 0)) return;
    const held = this.#queries.heldKeys(map);
    const dropped: string[] = [];
    for (const [key] of replica.allRecords()) {
      if (over <= 0) break;
      if (held.has(key)) continue;
      dropped.push(key);
      over--;
    }
    // Keys with unacknowledged writes are kept (and stay counted).
    this.#writes.revoke(map, dropped);
  }

  /** Listens to writes the server refused (after they were rolled back); returns the unsubscribe function. */
  onRejected(listener: (rejected: RejectedWrite) => void): () => void {
    return this.#writes.onRejected(listener);
  }

  /** Resolves when every write made so far is acknowledged by the server (or refused). */
  async flush(): Promise<void> {
    await this.ready;
    await this.#outbox.whenEmpty();
  }

  /** Waits until everything written or received so far is saved locally. */
  async persisted(): Promise<void> {
    await this.#persist.committed();
  }

  /** Disconnects, stops syncing and releases storage (after saving what is pending). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#writes.close();
    this.#discardEarly();
    this.#engine?.stop();
    // Before the tabs' channel closes: the leader learns this tab's queries ended.
    this.#queries.dispose();
    this.#tabs.close();
    await this.ready.catch(() => {});
    await this.#persist.committed();
    this.#persist.dispose();
    await this.#storage.close();
  }

  // ---- start-up ----

  /** Reads the stored replica, marks and outbox back. */
  async #load(): Promise<void> {
    let stored: readonly PersistedRecord[] = [];
    try {
      const state = await this.#storage.load();
      stored = state.records;
      this.#marks.load(state.meta);
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
      this.#replicas.loadModes(state.meta);
      this.#queries.loadPins(state.meta);
      for (const [map, entries] of byMap) {
        this.#storedMaps.add(map);
        this.#replicas.load(map, entries);
      }
      this.#outbox.put(state.outbox);
    } catch (error) {
      this.status.setState({
        storageError: new StorageError(
          `loading the local replica failed: ${(error as Error).message}`,
        ),
      });
    }
    this.#writes.loadedFromStorage(stored);
    this.#loaded = true;
    this.#queries.loaded();
  }

  /** Writes made in one tick go to the server together. */
  #sendSoon(): void {
    if (this.#sendScheduled) return;
    this.#sendScheduled = true;
    queueMicrotask(() => {
      this.#sendScheduled = false;
      if (this.#loaded) this.#engine?.sendOutbox();
    });
  }

  #fromTab(message: TabMessage): void {
    this.#tabs.receive(message, () => this.#sendSoon());
  }
}
