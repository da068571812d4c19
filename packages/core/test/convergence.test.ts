import { describe, expect, it } from 'vitest';
import { compareRecords, HLC, LWWMap, type LWWRecord, rootHashHex } from '../src/index.js';
import { itObeysTheMergeLaws } from './mergeLaws.js';
import { fc } from './property.js';
import { createReplicas, FakeClock, visibleState } from './replicas.js';

type Value = { v: number } | string;
type Doc = Record<string, number | undefined>;

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
    root: rootHashHex(map.merkleTree),
  };
}

describe('LWW merge laws (ties included)', () => {
  itObeysTheMergeLaws(updateArbitrary, stateAfter, storedState);

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
    key: fc.constantFrom('a', 'b', 'c'),
    kind: fc.constantFrom('set', 'update', 'update', 'delete'),
    field: fc.constantFrom('title', 'done', 'tag'),
    value: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined, freq: 4 }),
    tick: fc.integer({ min: 0, max: 2 }),
  });

  it('5 replicas setting, updating (per field) and deleting, receiving every write in random order with duplicates, converge', () => {
    fc.assert(
      fc.property(
        fc.array(operationArbitrary, { minLength: 1, maxLength: 60 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 300 }),
        (operations, schedule) => {
          const clock = new FakeClock();
          const replicas = createReplicas<Doc>(5, clock);
          const inboxes = replicas.map(() => [] as Array<[string, LWWRecord<Doc>]>);
          let step = 0;
          const deliverSome = () => {
            const choice = schedule[step++ % schedule.length]!;
            const inbox = inboxes[choice % 5]!;
            if (inbox.length === 0) return;
            const index = choice % inbox.length;
            const [key, record] = inbox[index]!;
            if (choice % 2 === 0) inbox.splice(index, 1);
            replicas[choice % 5]!.merge(key, record);
          };
          for (const { replica, key, kind, field, value, tick } of operations) {
            clock.time += tick;
            const map = replicas[replica]!;
            const write =
              kind === 'delete'
                ? map.delete(key)
                : kind === 'set'
                  ? map.set(key, { [field]: value ?? 0 })
                  : map.update(key, { [field]: value });
            inboxes.forEach((inbox, index) => {
              if (index !== replica && write !== undefined) inbox.push([key, write]);
            });
            deliverSome();
            deliverSome();
          }
          inboxes.forEach((inbox, target) => {
            for (const [key, record] of inbox.reverse()) replicas[target]!.merge(key, record);
          });
          const expected = storedState(replicas[0]! as unknown as LWWMap<Value>);
          for (const replica of replicas) {
            expect(storedState(replica as unknown as LWWMap<Value>)).toEqual(expected);
            expect(visibleState(replica)).toEqual(visibleState(replicas[0]!));
          }
        },
      ),
    );
  });
});
