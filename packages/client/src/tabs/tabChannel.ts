import type { SyncErrorCode } from '../clientErrors.js';
import type { OutboxChange } from '../outbox/localWrites.js';
import type { QueryTabMessage } from '../queries/pins.js';
import type { ReplicaChange } from '../replica/replicaStore.js';
import type { SyncedMessage } from '../replica/syncMarks.js';
import type { SyncStatus } from '../status/syncStatus.js';

/** The leader's connection status as tabs share it. */
export type SharedStatus = Pick<
  SyncStatus,
  'connection' | 'url' | 'lastSyncedAt' | 'initialSync'
> & {
  /** The error's code, message and server code. */
  readonly lastError: readonly [SyncErrorCode, string, string | undefined] | null;
};

/**
 * Messages between tabs sharing one replica (structured-cloned by BroadcastChannel): the
 * changes of the replica, the outbox and the sync marks, which each room shares itself, and
 * the roles' own.
 */
export type TabMessage =
  | ReplicaChange
  | OutboxChange
  | SyncedMessage
  | QueryTabMessage
  /** The leader's connection status. */
  | { readonly type: 'status'; readonly status: SharedStatus }
  /** A new leader asks followers for their pending writes. */
  | { readonly type: 'leader' }
  /** A new follower asks the leader for its status. */
  | { readonly type: 'status-request' };

/** A channel to the other tabs; a no-op where BroadcastChannel does not exist. */
export interface TabChannel {
  post(message: TabMessage): void;
  close(): void;
}

/** Opens the channel shared by the tabs using database `dbName`. */
export function openTabChannel(
  dbName: string,
  onMessage: (message: TabMessage) => void,
): TabChannel {
  if (typeof BroadcastChannel === 'undefined') return { post() {}, close() {} };
  const channel = new BroadcastChannel(`topgun:${dbName}`);
  channel.onmessage = (event: MessageEvent<TabMessage>) => onMessage(event.data);
  let closed = false;
  return {
    post: (message) => {
      if (!closed) channel.postMessage(message);
    },
    close: () => {
      closed = true;
      channel.close();
    },
  };
}
