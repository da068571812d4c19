import { HLC, LWWMap, type LWWRecord } from '../src/index.js';

/** A shared fake wall clock: tests move it explicitly, never by sleeping. */
export class FakeClock {
  time = 1_000_000;
  readonly now = (): number => this.time;
}

/** A record in flight between replicas. */
export interface Delivery<V> {
  readonly key: string;
  readonly record: LWWRecord<V>;
}

/** Creates `count` replicas with node ids r0..r(n-1) on one fake clock. */
export function createReplicas<V>(count: number, clock: FakeClock): Array<LWWMap<V>> {
  return Array.from(
    { length: count },
    (_, index) => new LWWMap<V>(new HLC({ nodeId: `r${index}`, now: clock.now })),
  );
}

/** The visible state of a map as a plain sorted object, for equality assertions. */
export function visibleState<V>(map: LWWMap<V>): Record<string, V> {
  return Object.fromEntries([...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
