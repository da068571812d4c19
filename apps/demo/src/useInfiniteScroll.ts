import { type RefObject, useEffect } from 'react';

/** Within this distance below the viewport, the sentinel asks for the next page. */
const AHEAD = '600px';

/**
 * Calls `onNearEnd` when `sentinel` comes near the viewport, unless `enabled` is false (no
 * more rows, or a page asked for has not arrived). An IntersectionObserver reports only
 * changes, so it is started anew each time the list may grow again: a sentinel still in
 * view after a short page asks for the next one at once.
 */
export function useInfiniteScroll(
  sentinel: RefObject<Element | null>,
  enabled: boolean,
  onNearEnd: () => void,
): void {
  useEffect(() => {
    const element = sentinel.current;
    if (element === null || !enabled) return;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) onNearEnd();
      },
      { rootMargin: `0px 0px ${AHEAD} 0px` },
    );
    observer.observe(element);
    return () => observer.disconnect();
  }, [sentinel, enabled, onNearEnd]);
}
