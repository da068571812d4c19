/** Tells the client whether the network is available (injectable, like TanStack Query's). */
export interface OnlineManager {
  isOnline(): boolean;
  /** Calls `listener` when the answer changes; returns the unsubscribe function. */
  subscribe(listener: (online: boolean) => void): () => void;
}

/** Browser `online`/`offline` events; in environments without them, always online. */
export function browserOnlineManager(): OnlineManager {
  const target =
    typeof window !== 'undefined' && typeof window.addEventListener === 'function'
      ? window
      : undefined;
  return {
    isOnline: () =>
      typeof navigator === 'undefined' || typeof navigator.onLine !== 'boolean'
        ? true
        : navigator.onLine,
    subscribe(listener) {
      if (target === undefined) return () => {};
      const online = () => listener(true);
      const offline = () => listener(false);
      target.addEventListener('online', online);
      target.addEventListener('offline', offline);
      return () => {
        target.removeEventListener('online', online);
        target.removeEventListener('offline', offline);
      };
    },
  };
}

/** A manual switch, for tests and for an app's own "work offline" button. */
export function manualOnlineManager(initial = true) {
  let online = initial;
  const listeners = new Set<(online: boolean) => void>();
  return {
    isOnline: () => online,
    subscribe(listener: (online: boolean) => void) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    /** Switches the network on or off. */
    set(next: boolean) {
      if (next === online) return;
      online = next;
      for (const listener of listeners) listener(next);
    },
  };
}
