import { describe, expect, it } from 'vitest';
import { compareRecords, HLC, LWWMap, type LWWRecord } from '../src/index.js';
import { fc } from './property.js';
import { createReplicas, type Delivery, FakeClock, visibleState } from './replicas.js';

type Value = { v: number } | string;

// Small domains on purpose: equal timestamps with different values and tombstone-vs-value
// ties come up in most runs.
const recordArbitrary: fc.Arbitrary<LWWRecord<Value>> = fc.record(
  {
    value: fc.oneof(
      fc.constant(null),
      fc.constantFrom('a', 'b'),
      fc.record({ v: fc.integer({ min: 0, max: 2 }) }),
    ),
    timestamp: fc.record({
      millis: fc.integer({ min: 0, max: 3 }),
      counter: fc.integer({ min: 0, max: 1 }),
      nodeId: fc.constantFrom('x', 'y'),
    }),
    ttlMs: fc.integer({ min: 1, max: 10 ** 9 }),
  },
  { requiredKeys: ['value', 'timestamp'] },
);
const updateArbitrary = fc.tuple(fc.constantFrom('k1', 'k2', 'k3'), recordArbitrary);

function freshMap(): LWWMap<Value> {
  return new LWWMap<Value>(
    new HLC({ nodeId: 'replica', now: () => 10, maxDriftMs: Number.POSITIVE_INFINITY }),
  );
}

function stateAfter(updates: ReadonlyArray<readonly [string, LWWRecord<Value>]>): LWWMap<Value> {
  const map = freshMap();
  for (const [key, record] of updates) map.merge(key, record);
  return map;
}

function storedState(map: LWWMap<Value>) {
  return {
    records: Object.fromEntries([...map.allRecords()].sort(([a], [b]) => (a < b ? -1 : 1))),
    root: map.merkleTree.rootHashHex(),
  };
}

describe('LWW merge laws (ties included)', () => {
  it('is commutative: any order of the same updates gives the same state', () => {
    fc.assert(
      fc.property(
        fc
          .array(updateArbitrary, { maxLength: 30 })
          .chain((updates) =>
            fc.tuple(
              fc.constant(updates),
              fc.shuffledSubarray(updates, { minLength: updates.length }),
            ),
          ),
        ([updates, shuffled]) => {
          expect(storedState(stateAfter(shuffled))).toEqual(storedState(stateAfter(updates)));
        },
      ),
    );
  });

  it('is associative: merging merged states equals merging everything', () => {
    fc.assert(
      fc.property(
        fc.array(updateArbitrary, { maxLength: 15 }),
        fc.array(updateArbitrary, { maxLength: 15 }),
        fc.array(updateArbitrary, { maxLength: 15 }),
        (a, b, c) => {
          const mergeState = (target: LWWMap<Value>, source: LWWMap<Value>) => {
            for (const [key, record] of source.allRecords()) target.merge(key, record);
            return target;
          };
          const left = mergeState(mergeState(stateAfter(a), stateAfter(b)), stateAfter(c));
          const right = mergeState(stateAfter(a), mergeState(stateAfter(b), stateAfter(c)));
          expect(storedState(left)).toEqual(storedState(right));
        },
      ),
    );
  });

  it('is idempotent: merging again changes nothing and reports no change', () => {
    fc.assert(
      fc.property(fc.array(updateArbitrary, { maxLength: 30 }), (updates) => {
        const map = stateAfter(updates);
        const before = storedState(map);
        for (const [key, record] of updates) expect(map.merge(key, record)).toBe(false);
        expect(storedState(map)).toEqual(before);
      }),
    );
  });

  it('keeps, per key, the greatest record under compareRecords', () => {
    fc.assert(
      fc.property(fc.array(updateArbitrary, { maxLength: 30 }), (updates) => {
        const map = stateAfter(updates);
        for (const key of ['k1', 'k2', 'k3']) {
          const candidates = updates.filter(([k]) => k === key).map(([, record]) => record);
          const winner = candidates.reduce<LWWRecord<Value> | undefined>(
            (best, record) =>
              best === undefined || compareRecords(record, best) > 0 ? record : best,
            undefined,
          );
          expect(map.getRecord(key)).toEqual(winner);
        }
      }),
    );
  });
});

describe('replica convergence', () => {
  const operationArbitrary = fc.record({
    replica: fc.integer({ min: 0, max: 4 }),
    key: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'),
    remove: fc.boolean(),
    value: fc.integer({ min: 0, max: 9 }),
    tick: fc.integer({ min: 0, max: 3 }),
  });

  it('5 replicas receiving every write in random order, with duplicates, converge', () => {
    fc.assert(
      fc.property(
        fc.array(operationArbitrary, { minLength: 1, maxLength: 80 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 400 }),
        (operations, schedule) => {
          const clock = new FakeClock();
          const replicas = createReplicas<{ value: number }>(5, clock);
          const inboxes = replicas.map(() => [] as Array<Delivery<{ value: number }>>);
          const broadcast = (from: number, delivery: Delivery<{ value: number }>) => {
            inboxes.forEach((inbox, index) => {
              if (index !== from) inbox.push(delivery);
            });
          };
          // Interleave local writes with deliveries picked by the schedule; a picked message
          // stays in the inbox half of the time, so it will be delivered again (duplicate).
          let step = 0;
          const deliverSome = () => {
            const choice = schedule[step++ % schedule.length]!;
            const target = choice % 5;
            const inbox = inboxes[target]!;
            if (inbox.length === 0) return;
            const index = choice % inbox.length;
            const delivery = inbox[index]!;
            if (choice % 2 === 0) inbox.splice(index, 1);
            replicas[target]!.merge(delivery.key, delivery.record);
          };
          for (const operation of operations) {
            clock.time += operation.tick;
            const replica = replicas[operation.replica]!;
            const record = operation.remove
              ? replica.delete(operation.key)
              : replica.set(operation.key, { value: operation.value });
            broadcast(operation.replica, { key: operation.key, record });
            deliverSome();
            deliverSome();
          }
          // Drain: deliver everything left, in a scrambled order.
          inboxes.forEach((inbox, target) => {
            const scrambled = inbox.map((delivery, index) => ({
              delivery,
              order: (index * 7919) % 101,
            }));
            scrambled.sort((a, b) => a.order - b.order);
            for (const { delivery } of scrambled)
              replicas[target]!.merge(delivery.key, delivery.record);
          });

          const expected = visibleState(replicas[0]!);
          const expectedRoot = replicas[0]!.merkleTree.rootHashHex();
          for (const replica of replicas) {
            expect(visibleState(replica)).toEqual(expected);
            expect(replica.merkleTree.rootHashHex()).toBe(expectedRoot);
          }
        },
      ),
    );
  });
});
