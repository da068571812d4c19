import type { LeaderElection } from '../src/index.js';

/** Web Locks semantics in one process: the first waiting tab leads until it closes. */
export function sharedLock() {
  const waiting: Array<{ onLeader: () => void; closed: boolean }> = [];
  let holder: { onLeader: () => void; closed: boolean } | undefined;
  const promote = () => {
    while (holder === undefined && waiting.length > 0) {
      const candidate = waiting.shift()!;
      if (candidate.closed) continue;
      holder = candidate;
      candidate.onLeader();
    }
  };
  return (): LeaderElection => {
    const slot = { onLeader: () => {}, closed: false };
    return {
      run(onLeader) {
        slot.onLeader = onLeader;
        waiting.push(slot);
        queueMicrotask(promote);
      },
      close() {
        slot.closed = true;
        if (holder === slot) {
          holder = undefined;
          promote();
        }
      },
    };
  };
}
