import type { LWWRecord, Value } from '@topgun/core';
import type { OutboxEntry } from './storage/clientStorage.js';
import type { RejectionReason } from './syncEngine.js';
import type { SyncStatus } from './syncStatus.js';

/** Messages between tabs sharing one replica (structured-cloned by BroadcastChannel). */
export type TabMessage =
  /** Records merged or written in one tab, for the others to merge. */
  | {
      readonly type: 'records';
      readonly map: string;
      readonly entries: ReadonlyArray<readonly [string, LWWRecord<Value>]>;
    }
  /** Records replaced or removed outright (rollback, re-stamp, reset). */
  | {
      readonly type: 'restore';
      readonly map: string;
      readonly entries: ReadonlyArray<readonly [string, LWWRecord<Value> | null]>;
    }
  /** Writes a follower made, for the leader to send. */
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
    }
  /** The leader's connection status. */
  | { readonly type: 'status'; readonly status: Partial<SyncStatus> }
  /** A new leader asks followers for their pending writes. */
  | { readonly type: 'leader' }
  /** A new follower asks the leader for its status. */
  | { readonly type: 'status-request' }
  /** Last-sync times the leader stored. */
  | { readonly type: 'synced'; readonly map: string; readonly syncedAt: number };

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
