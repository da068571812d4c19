/** A `useSyncExternalStore` subscribe function. */
export type Subscribe = (listener: () => void) => () => void;

const batched = new WeakMap<Subscribe, Subscribe>();

/**
 * `subscribe`, with each listener called at most once per animation frame however many
 * changes the frame saw: while a sync streams thousands of records in, a component renders
 * once per frame, not once per chunk. The frame's render reads the latest snapshot, so
 * nothing is lost. Where there are no animation frames (Node, some test environments)
 * listeners are called as the store calls them. The same function is returned for the same
 * `subscribe`, so React keeps its subscription.
 */
export function frameBatched(subscribe: Subscribe): Subscribe {
  let wrapped = batched.get(subscribe);
  if (wrapped === undefined) {
    wrapped = (listener) => {
      let frame: number | undefined;
      const unsubscribe = subscribe(() => {
        if (typeof requestAnimationFrame !== 'function') {
          listener();
          return;
        }
        frame ??= requestAnimationFrame(() => {
          frame = undefined;
          listener();
        });
      });
      return () => {
        if (frame !== undefined) cancelAnimationFrame(frame);
        unsubscribe();
      };
    };
    batched.set(subscribe, wrapped);
  }
  return wrapped;
}
