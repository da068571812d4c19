import { describe, expect, it, vi } from 'vitest';
import {
  evaluateQuery,
  HLC,
  LiveQuery,
  type LiveQueryDelta,
  LWWMap,
  type Query,
  QueryError,
  sortInSlices,
} from '../src/index.js';
import { SortedList } from '../src/query/sortedList.js';
import { fc } from './property.js';

interface Item {
  group: string;
  score: number;
  done?: boolean;
}

function mapWith(items: Array<[string, Item]>) {
  const map = new LWWMap<Item>(new HLC({ nodeId: 'lq', now: () => 1 }));
  for (const [key, value] of items) map.set(key, value);
  return map;
}

describe('LiveQuery', () => {
  const query: Query<Item> = {
    where: { group: 'a' },
    sort: [{ field: 'score', direction: 'desc' }],
    limit: 2,
  };

  it('starts from the current records and keeps rows stable until the result changes', () => {
    const map = mapWith([
      ['x', { group: 'a', score: 1 }],
      ['y', { group: 'a', score: 5 }],
      ['z', { group: 'b', score: 9 }],
    ]);
    const live = new LiveQuery(query, map.entries());
    expect(live.rows.map((row) => row.key)).toEqual(['y', 'x']);
    const before = live.rows;

    map.subscribe((change) => live.apply(change));
    map.set('z', { group: 'b', score: 10 }); // outside the result
    expect(live.rows).toBe(before);
  });

  it('reports entered, left and updated rows', () => {
    const map = mapWith([
      ['x', { group: 'a', score: 1 }],
      ['y', { group: 'a', score: 5 }],
      ['w', { group: 'a', score: 0 }],
    ]);
    const live = new LiveQuery(query, map.entries());
    const deltas: unknown[] = [];
    map.subscribe((change) => deltas.push(live.apply(change)));

    map.set('n', { group: 'a', score: 3 }); // enters between y and x; x drops out
    expect(deltas.at(-1)).toMatchObject({ changed: true, entered: [{ key: 'n' }], left: ['x'] });
    expect(live.rows.map((row) => row.key)).toEqual(['y', 'n']);

    map.set('n', { group: 'a', score: 9 }); // moves to the top
    expect(deltas.at(-1)).toMatchObject({ changed: true, updated: [{ key: 'n' }] });
    expect(live.rows.map((row) => row.key)).toEqual(['n', 'y']);

    map.set('y', { group: 'a', score: 5, done: true }); // same place, new value
    expect(deltas.at(-1)).toMatchObject({ changed: true, updated: [{ key: 'y' }] });

    map.delete('n'); // leaves; x refills the window from the index
    expect(deltas.at(-1)).toMatchObject({ changed: true, entered: [{ key: 'x' }], left: ['n'] });
    expect(live.rows.map((row) => row.key)).toEqual(['y', 'x']);

    map.set('w', { group: 'a', score: -1 }); // moves below the window: no visible change
    expect(deltas.at(-1)).toMatchObject({ changed: false });
    expect(live.matchingCount).toBe(3);
  });

  it('builds in slices with the same result as the constructor, pausing as the slicer asks', async () => {
    const records = Array.from(
      { length: 10_000 },
      (_, i) => [`k${i}`, { n: (i * 7919) % 1000, i }] as const,
    );
    const query = {
      where: { n: { gte: 100 } },
      sort: ['n', { field: 'i', direction: 'desc' }],
      limit: 50,
      offset: 5,
    } as const;
    let pauses = 0;
    let calls = 0;
    const built = await LiveQuery.build(query, records, {
      due: () => ++calls % 3 === 0,
      pause: async () => {
        pauses++;
      },
    });
    expect(built!.rows).toEqual(new LiveQuery(query, records).rows);
    expect(built!.matchingCount).toBe(new LiveQuery(query, records).matchingCount);
    expect(pauses).toBeGreaterThan(10);

    // With a row cap it stops as soon as more records match, reading no further.
    const matching = built!.matchingCount;
    let read = 0;
    const counted = (function* () {
      for (const record of records) {
        read++;
        yield record;
      }
    })();
    const slicer = { due: () => false, pause: async () => {} };
    expect(await LiveQuery.build(query, counted, slicer, matching / 2)).toBeUndefined();
    expect(read).toBeLessThan(records.length * 0.75);
    expect(await LiveQuery.build(query, records, slicer, matching)).toBeDefined();
  });

  it('sorts in slices exactly like Array.prototype.sort, stably', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 9_000 }),
        async (numbers) => {
          const items = numbers.map((n, index) => ({ n, index }));
          const compare = (a: { n: number }, b: { n: number }) => a.n - b.n;
          const expected = [...items].sort(compare);
          const sorted = await sortInSlices([...items], compare, {
            due: () => true,
            pause: async () => {},
          });
          expect(sorted).toEqual(expected);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('validates the query', () => {
    expect(() => new LiveQuery({ where: { score: { gtt: 1 } } } as Query<Item>)).toThrow(
      QueryError,
    );
  });

  // The maintainer must always agree with a full evaluation of the current state.
  const itemArbitrary = fc.record(
    {
      group: fc.constantFrom('a', 'b'),
      score: fc.integer({ min: 0, max: 5 }),
      done: fc.boolean(),
    },
    { requiredKeys: ['group', 'score'] },
  );
  const queryArbitrary: fc.Arbitrary<Query<Item>> = fc
    .record(
      {
        where: fc.oneof(
          fc.constant({}),
          fc.constant({ group: 'a' }),
          fc.record({ score: fc.record({ gte: fc.integer({ min: 0, max: 5 }) }) }),
          fc.constant({ or: [{ done: true }, { score: { lt: 2 } }] }),
        ),
        sort: fc.oneof(
          fc.constant(undefined),
          fc.constant(['score']),
          fc.constant([{ field: 'score', direction: 'desc' as const }, 'group']),
          fc.constant([{ field: 'done', direction: 'desc' as const }]),
        ),
        limit: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
        offset: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
      },
      { requiredKeys: [] },
    )
    .map(
      (query) =>
        Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined)) as Query<Item>,
    );
  const changeArbitrary = fc.tuple(
    fc.constantFrom('k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'),
    fc.option(itemArbitrary),
  );
  /** A record changed (deleted when `null`), or the window grown by `grow` rows. */
  type GrowingStep = [string, Item | null] | { grow: number };
  const initialArbitrary = fc.array(
    fc.tuple(fc.constantFrom('k0', 'k1', 'k2', 'k3'), itemArbitrary),
    { maxLength: 6 },
  );
  const growingStepsArbitrary: fc.Arbitrary<GrowingStep[]> = fc.array(
    fc.oneof(changeArbitrary, fc.record({ grow: fc.integer({ min: 0, max: 4 }) })),
    { maxLength: 30 },
  );
  /** Runs `check` on live queries over random records, with steps that change or grow them. */
  const assertGrowing = (
    check: (
      query: Query<Item>,
      map: LWWMap<Item>,
      live: LiveQuery<Item>,
      steps: GrowingStep[],
    ) => void,
  ) =>
    fc.assert(
      fc.property(
        initialArbitrary,
        queryArbitrary,
        growingStepsArbitrary,
        (initial, query, steps) => {
          const map = mapWith(initial);
          check(query, map, new LiveQuery(query, map.entries()), steps);
        },
      ),
      { numRuns: 200 },
    );

  it('always equals evaluateQuery on the current state', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('k0', 'k1', 'k2', 'k3'), itemArbitrary), {
          maxLength: 4,
        }),
        queryArbitrary,
        fc.array(changeArbitrary, { maxLength: 40 }),
        (initial, query, changes) => {
          const map = mapWith(initial);
          const live = new LiveQuery(query, map.entries());
          let rows = live.rows;
          map.subscribe((change) => {
            const delta = live.apply(change);
            // `rows` changes identity exactly when the delta says the result changed.
            expect(live.rows !== rows).toBe(delta.changed);
            rows = live.rows;
          });
          expect(live.rows).toEqual(evaluateQuery(query, map.entries()));
          for (const [key, item] of changes) {
            if (item === null) map.delete(key);
            else map.set(key, item);
            expect(live.rows).toEqual(evaluateQuery(query, map.entries()));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
  it('grows its window with setLimit: the rows after the last one enter, and it still equals evaluateQuery', () => {
    assertGrowing((query, map, live, steps) => {
      map.subscribe((change) => live.apply(change));
      for (const step of steps) {
        if ('grow' in step) {
          const before = live.rows;
          const delta = live.setLimit(live.limit + step.grow);
          expect(live.rows.slice(0, before.length)).toEqual(before);
          expect(delta.entered).toEqual(live.rows.slice(before.length));
          expect(delta.changed).toBe(delta.entered.length > 0);
        } else if (step[1] === null) map.delete(step[0]);
        else map.set(step[0], step[1]);
        const grown =
          live.limit === Number.POSITIVE_INFINITY ? query : { ...query, limit: live.limit };
        expect(live.rows).toEqual(evaluateQuery(grown, map.entries()));
      }
    });
  });
  it('reports what enters and leaves a grown window when changes follow before its rows are read', () => {
    assertGrowing((query, map, live, steps) => {
      // What a client told only the deltas holds; `rows` is read once, at the end.
      const shown = new Set(live.rows.map((row) => row.key));
      const follow = ({ entered, left }: LiveQueryDelta<Item>) => {
        for (const key of left) shown.delete(key);
        for (const row of entered) shown.add(row.key);
      };
      map.subscribe((change) => follow(live.apply(change)));
      for (const step of steps) {
        if ('grow' in step) follow(live.setLimit(live.limit + step.grow));
        else if (step[1] === null) map.delete(step[0]);
        else map.set(step[0], step[1]);
      }
      const grown =
        live.limit === Number.POSITIVE_INFINITY ? query : { ...query, limit: live.limit };
      const expected = evaluateQuery(grown, map.entries());
      expect(live.rows).toEqual(expected);
      expect([...shown].sort()).toEqual(expected.map((row) => row.key).sort());
    });
  });
  it('grows a window a row at a time by reading only the rows that enter', () => {
    const map = mapWith(
      Array.from({ length: 2_000 }, (_, index): [string, Item] => [
        `k${index}`,
        { group: 'a', score: index },
      ]),
    );
    const live = new LiveQuery<Item>({ sort: ['score'], limit: 1 }, map.entries());
    const sliced = vi.spyOn(SortedList.prototype, 'sliceMapped');
    try {
      for (let limit = 2; limit <= 2_000; limit++)
        expect(live.setLimit(limit).entered.map((row) => row.key)).toEqual([`k${limit - 1}`]);
      const rowsRead = sliced.mock.calls.reduce(
        (sum, [start, end]) => sum + Math.max(0, Math.min(end, 2_000) - start),
        0,
      );
      expect(rowsRead).toBe(1_999);
    } finally {
      sliced.mockRestore();
    }
    expect(live.rows).toEqual(evaluateQuery({ sort: ['score'], limit: 2_000 }, map.entries()));
  });
});
