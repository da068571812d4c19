declare const queueMicrotask: (callback: () => void) => void;

/**
 * Rethrows an error from a listener asynchronously, so that it reaches the host's
 * uncaught-error reporting without interrupting the code that notified the listener.
 */
export function reportListenerError(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}
