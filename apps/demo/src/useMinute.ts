import { useSyncExternalStore } from 'react';

/** One minute in milliseconds. */
export const MINUTE_MS = 60_000;

function currentMinute(): number {
  return Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS;
}

function subscribe(listener: () => void): () => void {
  let timer: ReturnType<typeof setTimeout>;
  const schedule = () => {
    // Timers may fire a little early: the snapshot then has not moved, and the next one will.
    timer = setTimeout(
      () => {
        listener();
        schedule();
      },
      MINUTE_MS - (Date.now() % MINUTE_MS) + 1,
    );
  };
  schedule();
  return () => clearTimeout(timer);
}

/** The start of the current minute (ms since the epoch); re-renders when the next one begins. */
export function useMinute(): number {
  return useSyncExternalStore(subscribe, currentMinute);
}
