import { SyncError } from '../clientErrors.js';
import type { LocalWrites } from '../outbox/localWrites.js';
import type { Outbox } from '../outbox/outbox.js';
import type { QueryRegistry } from '../queries/queryRegistry.js';
import type { ReplicaStore } from '../replica/replicaStore.js';
import type { SyncMarks } from '../replica/syncMarks.js';
import type { SyncStatusStore } from '../status/syncStatus.js';
import type { LeaderElection } from './leaderElection.js';
import type { TabChannel, TabMessage } from './tabChannel.js';

/** The rooms a tab keeps in step with the other tabs. */
export interface TabRooms {
  readonly replicas: ReplicaStore;
  readonly writes: LocalWrites;
  readonly outbox: Outbox;
  readonly queries: QueryRegistry;
  readonly marks: SyncMarks;
  readonly status: SyncStatusStore;
}

/**
 * This tab among the others sharing the replica: the follower's part (apply what other tabs
 * changed, show the leader's status, hand its writes to a new leader) and, once elected, the
 * leader's (send every tab's writes, share its status).
 */
export class TabSync {
  #leading = false;
  #closed = false;
  #unsubscribeStatus: (() => void) | undefined;

  readonly #rooms: TabRooms;
  readonly #channel: TabChannel;
  readonly #election: LeaderElection;

  constructor(rooms: TabRooms, channel: TabChannel, election: LeaderElection) {
    this.#rooms = rooms;
    this.#channel = channel;
    this.#election = election;
  }

  /**
   * Joins the other tabs: asks the leader's status, and runs for leader; `lead` is called
   * once this tab is elected (maybe never).
   * @param lead Starts the leader's work; `sendSoon` then sends the writes other tabs hand over.
   * @param waiting Called if the election tells that another tab leads for now.
   */
  start(lead: () => void, waiting?: () => void): void {
    this.#election.run(() => {
      if (this.#closed) return;
      this.#leading = true;
      this.#rooms.status.setState({ isLeader: true });
      this.#channel.post({ type: 'leader' });
      lead();
      this.#unsubscribeStatus = this.#rooms.status.subscribe(() => this.#shareStatus());
      this.#shareStatus();
    }, waiting);
    // Until it leads, this tab shows the leader's connection status.
    this.#channel.post({ type: 'status-request' });
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribeStatus?.();
    this.#election.close();
    this.#channel.close();
  }

  /**
   * A message from another tab.
   * @param sendSoon Sends the outbox soon (the leader's, when a follower hands writes over).
   */
  receive(message: TabMessage, sendSoon: () => void): void {
    if (this.#closed) return;
    const { replicas, writes, outbox, queries, marks, status } = this.#rooms;
    switch (message.type) {
      case 'records':
        replicas.merge(message.map, message.entries, false);
        return;
      case 'restore':
        replicas.restoreFromTab(message.map, message.entries);
        return;
      case 'outbox':
        outbox.put(message.entries);
        if (this.#leading) sendSoon();
        return;
      case 'settled':
        outbox.settle(message.ids);
        return;
      case 'rejected':
        writes.rejectedInTab(message);
        return;
      case 'synced':
        marks.learn(message);
        queries.confirmMap(message.map);
        return;
      case 'status':
        if (this.#leading) return;
        status.setState({
          ...message.status,
          lastError: message.status.lastError && new SyncError(...message.status.lastError),
        });
        return;
      case 'leader': {
        // A new leader: make sure it knows this tab's pending writes and queries.
        if (this.#leading) return;
        const own = writes.own();
        if (own.length > 0) this.#channel.post({ type: 'outbox', entries: own });
        queries.announceAll();
        return;
      }
      case 'query':
        if (this.#leading) queries.followForTab(message);
        return;
      case 'aggregate':
        if (this.#leading) queries.aggregates.followForTab(message);
        return;
      case 'aggregate-state':
        queries.aggregates.learnFromLeader(message);
        return;
      case 'query-state':
        queries.learnFromLeader(message);
        return;
      case 'pin':
        queries.learnPin(message);
        return;
      case 'status-request':
        if (this.#leading) this.#shareStatus();
        return;
    }
  }

  /** Tells the other tabs the leader's connection status. */
  #shareStatus(): void {
    const {
      connection,
      url,
      lastSyncedAt,
      initialSync,
      lastError: error,
    } = this.#rooms.status.getState();
    // An error loses its class and code in a structured clone: it travels as its parts.
    const lastError = error && ([error.code, error.message, error.serverCode] as const);
    this.#channel.post({
      type: 'status',
      status: { connection, url, lastSyncedAt, initialSync, lastError },
    });
  }
}
