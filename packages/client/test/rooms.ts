import { LocalWrites } from '../src/outbox/localWrites.js';
import { Outbox } from '../src/outbox/outbox.js';
import { QueryRegistry } from '../src/queries/queryRegistry.js';
import { ClientClock } from '../src/replica/clientClock.js';
import { ReplicaStore } from '../src/replica/replicaStore.js';
import { SyncMarks } from '../src/replica/syncMarks.js';
import { createSyncStatusStore } from '../src/status/syncStatus.js';
import { createMemoryStorage } from '../src/storage/memoryStorage.js';
import { PersistQueue } from '../src/storage/persistQueue.js';
import type { TabMessage } from '../src/tabs/tabChannel.js';

/**
 * The rooms of one tab's client, wired as `TopGunClient` wires them, over memory storage;
 * what they tell the other tabs goes to `share`.
 */
export function clientRooms(
  options: {
    readonly tabNodeId?: string;
    readonly share?: (message: TabMessage) => void;
    readonly now?: () => number;
    /** False to leave the rooms as before the stored replica is loaded. Default: true. */
    readonly loaded?: boolean;
  } = {},
) {
  const tabNodeId = options.tabNodeId ?? 'client-tab';
  const share = options.share ?? (() => {});
  const storage = createMemoryStorage();
  const persist = new PersistQueue(storage, () => {});
  const status = createSyncStatusStore();
  const outbox = new Outbox((size) => status.setState({ pendingOps: size }));
  const clock = new ClientClock(tabNodeId, options.now ?? (() => Date.now()));
  const replicas: ReplicaStore = new ReplicaStore({
    hlc: clock.hlc,
    persist,
    share,
    write: (map, key, write) => writes.write(map, key, write),
    opened: () => {},
  });
  const writes: LocalWrites = new LocalWrites({
    outbox,
    replicas,
    persist,
    hlc: clock.hlc,
    tabNodeId,
    nodeId: tabNodeId.split('-')[0] ?? tabNodeId,
    synced: true,
    share,
    added: () => {},
  });
  if (options.loaded !== false) writes.loadedFromStorage([]);
  const queries = new QueryRegistry({
    replica: (map) => replicas.entry(map).replica,
    isLoaded: () => true,
    resultCache: undefined,
    scoped: (map) => replicas.budgetOf(map) !== undefined,
    subscribed: () => {},
    unsubscribed: () => {},
    grew: () => {},
    settled: () => {},
    storePin: () => {},
  });
  const marks = new SyncMarks(persist, share);
  return { storage, persist, status, outbox, clock, replicas, writes, queries, marks };
}
