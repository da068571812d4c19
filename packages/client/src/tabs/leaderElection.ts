/**
 * Picks one tab (of one origin and database) to hold the connection and send the outbox, so
 * that tabs never double-send. Injectable; the default uses Web Locks.
 */
export interface LeaderElection {
  /** Calls `onLeader` once this tab becomes the leader (possibly never). */
  run(onLeader: () => void): void;
  /** Gives up leadership (or the wait for it). */
  close(): void;
}

/**
 * Leadership through the Web Locks API: the tab holding the lock `topgun-leader:<name>` is
 * the leader until it closes, then the next waiting tab takes over. Where Web Locks are not
 * available (Node, old browsers), every client is its own leader.
 */
export function webLocksElection(name: string): LeaderElection {
  const locks =
    typeof navigator !== 'undefined' ? (navigator as { locks?: LockManager }).locks : undefined;
  let release: (() => void) | undefined;
  let closed = false;
  const abort = typeof AbortController === 'undefined' ? undefined : new AbortController();
  return {
    run(onLeader) {
      if (locks === undefined) {
        queueMicrotask(() => {
          if (!closed) onLeader();
        });
        return;
      }
      locks
        .request(
          `topgun-leader:${name}`,
          abort === undefined ? {} : { signal: abort.signal },
          () => {
            if (closed) return undefined;
            onLeader();
            return new Promise<void>((resolve) => {
              release = resolve;
            });
          },
        )
        .catch(() => {
          // aborted on close
        });
    },
    close() {
      closed = true;
      release?.();
      abort?.abort();
    },
  };
}
