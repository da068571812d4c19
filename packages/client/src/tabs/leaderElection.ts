/**
 * Picks one tab (of one origin and database) to hold the connection and send the outbox, so
 * that tabs never double-send. Injectable; the default uses Web Locks.
 */
export interface LeaderElection {
  /**
   * Calls `onLeader` once this tab becomes the leader (possibly never), and `onWaiting`, if
   * the election can tell, as soon as it is known that another tab leads for now.
   */
  run(onLeader: () => void, onWaiting?: () => void): void;
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
  if (locks === undefined) return immediateLeader();
  let release: (() => void) | undefined;
  let closed = false;
  const abort = typeof AbortController === 'undefined' ? undefined : new AbortController();
  return {
    run(onLeader, onWaiting) {
      const lead = () => {
        if (closed) return undefined;
        onLeader();
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      };
      // Asked first without waiting, so that a tab that does not lead learns it at once. (A
      // request that may wait cannot say so, and one that does not wait cannot be aborted.)
      locks
        .request(`topgun-leader:${name}`, { ifAvailable: true }, (lock) => {
          if (lock !== null) return lead();
          if (closed) return undefined;
          onWaiting?.();
          locks
            .request(
              `topgun-leader:${name}`,
              abort === undefined ? {} : { signal: abort.signal },
              lead,
            )
            .catch(() => {
              // aborted on close
            });
          return undefined;
        })
        .catch(() => {
          // refused (an opaque origin): this tab never leads
        });
    },
    close() {
      closed = true;
      release?.();
      abort?.abort();
    },
  };
}

/** Leadership for a client with no tabs to share with: it leads at once. */
export function immediateLeader(): LeaderElection {
  let closed = false;
  return {
    run: (onLeader) =>
      queueMicrotask(() => {
        if (!closed) onLeader();
      }),
    close: () => {
      closed = true;
    },
  };
}
