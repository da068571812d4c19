import { describe, expect, it } from 'vitest';
import {
  evaluateQuery,
  HLC,
  type IndexMove,
  LWWMap,
  type Query,
  QueryIndex,
  type QueryRow,
  windowChange,
} from '../src/index.js';
import { fc } from './property.js';

interface Item {
  group: string;
  score: number;
  done?: boolean;
}

const slicer = { due: () => true, pause: async () => {} };
const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8', 'k9'];

const itemArbitrary = fc.record(
  { group: fc.constantFrom('a', 'b'), score: fc.integer({ min: 0, max: 5 }), done: fc.boolean() },
  { requiredKeys: ['group', 'score'] },
);
const shapeArbitrary: fc.Arbitrary<Query<Item>> = fc
  .record({
    where: fc.constantFrom(
      undefined,
      { group: 'a' },
      { or: [{ done: true }, { score: { lt: 3 } }] },
    ),
    sort: fc.constantFrom(undefined, ['score'], [{ field: 'score', direction: 'desc' as const }]),
    fields: fc.constantFrom(undefined, ['score']),
  })
  .map(
    (query) =>
      Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined)) as Query<Item>,
  );
/** Windows `[start, end)`; an end past every row, or without bound, included. */
const windowsArbitrary = fc.array(
  fc
    .tuple(
      fc.integer({ min: 0, max: 6 }),
      fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constant(Infinity)),
    )
    .map(([start, length]) => ({ start, end: start + length })),
  { minLength: 1, maxLength: 4 },
);

function mapWith(items: Array<[string, Item]>) {
  const map = new LWWMap<Item>(new HLC({ nodeId: 'qi', now: () => 1 }));
  for (const [key, value] of items) map.set(key, value);
  return map;
}

/** What a window's client holds, told only each change. */
class Follower {
  readonly rows = new Map<string, QueryRow<Item>>();
  constructor(
    readonly start: number,
    readonly end: number,
    initial: readonly QueryRow<Item>[],
  ) {
    for (const row of initial) this.rows.set(row.key, row);
  }
  follow(index: QueryIndex<Item>, move: IndexMove<Item>) {
    const { entered, left, updated } = windowChange(index, this.start, this.end, move);
    for (const key of left) {
      expect(this.rows.has(key)).toBe(true);
      this.rows.delete(key);
    }
    for (const row of entered) {
      expect(this.rows.has(row.key)).toBe(false);
      this.rows.set(row.key, row);
    }
    for (const row of updated) {
      expect(this.rows.has(row.key)).toBe(true);
      this.rows.set(row.key, row);
    }
  }
}

describe('QueryIndex', () => {
  it('keeps every window told only its changes equal to evaluateQuery', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(...keys), itemArbitrary), { maxLength: 8 }),
        shapeArbitrary,
        windowsArbitrary,
        fc.array(fc.tuple(fc.constantFrom(...keys), fc.option(itemArbitrary)), { maxLength: 40 }),
        async (initial, shape, windows, changes) => {
          const map = mapWith(initial);
          const index = (await QueryIndex.buildIndex(shape, map.entries(), slicer))!;
          const windowOf = ({ start, end }: { start: number; end: number }) => {
            const limited = Number.isFinite(end) ? { limit: end - start } : {};
            return evaluateQuery({ ...shape, offset: start, ...limited }, map.entries());
          };
          const followers = windows.map((w) => new Follower(w.start, w.end, windowOf(w)));
          map.subscribe((change) => {
            const move = index.move(change);
            if (move === undefined) return;
            for (const follower of followers) follower.follow(index, move);
          });
          for (const [key, item] of changes) {
            if (item === null) map.delete(key);
            else map.set(key, item);
            expect(index.matchingCount).toBe(evaluateQuery(shape, map.entries()).length);
            for (const follower of followers) {
              const expected = windowOf(follower);
              expect(index.rowsBetween(follower.start, follower.end)).toEqual(expected);
              expect(
                [...follower.rows.values()].sort((a, b) => a.key.localeCompare(b.key)),
              ).toEqual([...expected].sort((a, b) => a.key.localeCompare(b.key)));
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('ignores limit and offset, and stops building past maxRows', async () => {
    const records = Array.from({ length: 1_000 }, (_, i) => [`k${i}`, { n: i % 10 }] as const);
    const index = await QueryIndex.buildIndex(
      { where: { n: { gte: 5 } }, sort: ['n'], limit: 1, offset: 3 } as Query<{ n: number }>,
      records,
      slicer,
    );
    expect(index!.matchingCount).toBe(500);
    expect(index!.rowAt(0)).toEqual({ key: 'k105', value: { n: 5 } });
    expect(index!.rowAt(500)).toBeUndefined();
    expect(await QueryIndex.buildIndex({ where: { n: 1 } }, records, slicer, 99)).toBeUndefined();
    expect(await QueryIndex.buildIndex({ where: { n: 1 } }, records, slicer, 100)).toBeDefined();
  });

  it('reports no move for a record that neither matched nor matches', async () => {
    const index = (await QueryIndex.buildIndex<Item>({ where: { group: 'a' } }, [], slicer))!;
    expect(index.move({ key: 'x', value: { group: 'b', score: 1 } })).toBeUndefined();
    expect(index.move({ key: 'x', value: undefined })).toBeUndefined();
    expect(index.move({ key: 'x', value: { group: 'a', score: 1 } })).toMatchObject({
      from: -1,
      to: 0,
    });
  });
});
