/** A `useSyncExternalStore` subscribe function. */
export type Subscribe = (listener: () => void) => () => void;

const batched = new WeakMap<Subscribe, Subscribe>();

/**
 * `subscribe`, with each listener called at most once per animation frame however many
 * changes come: the first change of a quiet period is passed on at once (a click re-renders
 * in the same task, as React's controlled inputs need), and the changes that follow it within
 * the frame are passed on together at the next frame, and so on while they keep coming. While
 * a sync streams thousands of records in, a component renders once per frame with everything
 * that arrived, not once per chunk. Where there are no animation frames (Node, some test
 * environments) listeners are called as the store calls them. The same function is returned
 * for the same `subscribe`, so React keeps its subscription.
 */
export function frameBatched(subscribe: Subscribe): Subscribe {
  let wrapped = batched.get(subscribe);
  if (wrapped === undefined) {
    wrapped = (listener) => {
      /** Set while a frame is awaited: changes until then wait for it. */
      let frame: number | undefined;
      let waiting = false;
      const nextFrame = () => {
        if (!waiting) {
          frame = undefined;
          return;
        }
        waiting = false;
        listener();
        frame = requestAnimationFrame(nextFrame);
      };
      const unsubscribe = subscribe(() => {
        if (typeof requestAnimationFrame !== 'function') {
          listener();
        } else if (frame !== undefined) {
          waiting = true;
        } else {
          listener();
          frame = requestAnimationFrame(nextFrame);
        }
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
