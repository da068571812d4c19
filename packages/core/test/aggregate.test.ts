import { describe, expect, it } from 'vitest';
import {
  type AggregateQuery,
  type AggregateRow,
  ExactSum,
  evaluateAggregate,
  HLC,
  LiveAggregate,
  LWWMap,
  MAX_GROUPS,
  QueryError,
  timeOf,
} from '../src/index.js';
import { fc } from './property.js';

interface Todo {
  owner?: string | null;
  done?: boolean;
  points?: unknown;
  at?: unknown;
}

const todos: Array<[string, Todo]> = [
  ['t1', { owner: 'ann', done: true, points: 3, at: 60_000 }],
  ['t2', { owner: 'ann', done: false, points: 5, at: 61_000 }],
  ['t3', { owner: 'bob', done: true, points: 'x', at: '1970-01-01T00:02:30Z' }],
  ['t4', { done: true, points: 2.5, at: 'never' }],
  ['t5', { owner: null, done: true, points: -1 }],
];

const valuesOf = (rows: readonly AggregateRow[]) => rows.map((row) => row.value);

describe('evaluateAggregate', () => {
  it('counts, sums, averages and ranks per group; a missing group field groups with null', () => {
    const rows = evaluateAggregate<Todo>(
      {
        groupBy: { owner: 'owner' },
        aggregate: {
          n: 'count',
          points: { sum: 'points' },
          mean: { avg: 'points' },
          least: { min: 'points' },
          most: { max: 'points' },
        },
      },
      todos,
    );
    expect(rows.map((row) => row.key)).toEqual(['[null]', '["ann"]', '["bob"]']);
    expect(valuesOf(rows)).toEqual([
      { owner: null, n: 2, points: 1.5, mean: 0.75, least: -1, most: 2.5 },
      { owner: 'ann', n: 2, points: 8, mean: 4, least: 3, most: 5 },
      // A string is ranked (after every number) but never summed.
      { owner: 'bob', n: 1, points: 0, mean: null, least: 'x', most: 'x' },
    ]);
  });

  it('filters with where, buckets times, sorts by a figure and limits the groups', () => {
    const query: AggregateQuery<Todo> = {
      where: { done: true },
      groupBy: { minute: { field: 'at', bucket: '1m' } },
      aggregate: { n: 'count' },
      sort: [{ field: 'n', direction: 'desc' }],
      limit: 2,
    };
    // t4's 'never' and t5's missing time group with null; t1 at 1 min, t3 at 2 min.
    expect(valuesOf(evaluateAggregate(query, todos))).toEqual([
      { minute: null, n: 2 },
      { minute: 60_000, n: 1 },
    ]);
  });

  it('without groupBy has one group, even when nothing matches', () => {
    const query: AggregateQuery<Todo> = {
      where: { owner: 'nobody' },
      aggregate: {
        n: 'count',
        total: { sum: 'points' },
        mean: { avg: 'points' },
        top: { max: 'at' },
      },
    };
    expect(evaluateAggregate(query, todos)).toEqual([
      { key: '[]', value: { n: 0, total: 0, mean: null, top: null } },
    ]);
  });

  it('sums exactly, whatever the order', () => {
    const values = [0.1, 0.2, 0.3, 1e16, -1e16, 1];
    const forward = evaluateAggregate(
      { aggregate: { s: { sum: 'v' } } },
      values.map((v, i) => [`k${i}`, { v }] as const),
    );
    const backward = evaluateAggregate(
      { aggregate: { s: { sum: 'v' } } },
      [...values].reverse().map((v, i) => [`k${i}`, { v }] as const),
    );
    expect(forward[0]!.value['s']).toBe(1.6);
    expect(backward).toEqual(forward);
  });

  it('refuses records that fall into more than 10,000 groups', () => {
    const many: Array<[string, Todo]> = Array.from({ length: MAX_GROUPS + 1 }, (_, i) => [
      `k${i}`,
      { owner: `o${i}` },
    ]);
    const query: AggregateQuery<Todo> = { groupBy: { owner: 'owner' }, aggregate: { n: 'count' } };
    expect(evaluateAggregate(query, many.slice(0, MAX_GROUPS))).toHaveLength(MAX_GROUPS);
    expect(() => evaluateAggregate(query, many)).toThrow(/groupBy: .*more than 10000 groups/);
    expect(() => new LiveAggregate(query, many)).toThrow(QueryError);
  });

  it.each([
    [{ groupBy: { a: 'owner' } }, /^aggregate: expected an object/],
    [{ aggregate: {} }, /^aggregate: expected 1 to 16/],
    [
      { aggregate: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`f${i}`, 'count'])) },
      /^aggregate: expected 1 to 16/,
    ],
    [
      { aggregate: { n: 'count' }, groupBy: { a: 'x', b: 'y', c: 'z' } },
      /^groupBy: expected 1 to 2/,
    ],
    [{ aggregate: { n: 'total' } }, /^aggregate\.n: expected 'count'/],
    [{ aggregate: { n: { median: 'points' } } }, /^aggregate\.n\.median: unknown figure/],
    [{ aggregate: { n: { sum: 'a', avg: 'b' } } }, /^aggregate\.n: expected 'count'/],
    [{ aggregate: { n: { sum: '__proto__' } } }, /^aggregate\.n\.sum/],
    [
      { aggregate: { owner: 'count' }, groupBy: { owner: 'owner' } },
      /^aggregate\.owner: a name used/,
    ],
    [{ aggregate: { ['x'.repeat(65)]: 'count' } }, /a name is 1 to 64 characters/],
    [
      { aggregate: { n: 'count' }, groupBy: { m: { field: 'at', bucket: '5m' } } },
      /^groupBy\.m\.bucket: expected "1m", "1h" or "1d"/,
    ],
    [
      { aggregate: { n: 'count' }, groupBy: { m: { field: 'at', size: '1m' } } },
      /^groupBy\.m\.size: unknown group key option/,
    ],
    [
      { aggregate: { n: 'count' }, sort: 'points' },
      /^sort: expected the name of a group key or figure \(n\)/,
    ],
    [
      { aggregate: { n: 'count' }, sort: [{ field: 'n', direction: 'up' }] },
      /^sort\[0\]\.direction/,
    ],
    [{ aggregate: { n: 'count' }, limit: -1 }, /^limit:/],
    [{ aggregate: { n: 'count' }, offset: 1 }, /^query\.offset: unknown aggregate option/],
    [
      { aggregate: { n: 'count' }, where: { points: { gtt: 1 } } },
      /^where\.points\.gtt: unknown operator/,
    ],
  ])('refuses %j', (query, message) => {
    expect(() => evaluateAggregate(query as AggregateQuery<Todo>, [])).toThrow(message);
    try {
      evaluateAggregate(query as AggregateQuery<Todo>, []);
    } catch (error) {
      expect(error).toBeInstanceOf(QueryError);
    }
  });
});

describe('timeOf', () => {
  it('reads numbers and ISO 8601 dates and date-times, UTC without an offset', () => {
    expect(timeOf(1234.5)).toBe(1234.5);
    expect(timeOf('1970-01-02')).toBe(86_400_000);
    expect(timeOf('1970-01-01T00:01Z')).toBe(60_000);
    expect(timeOf('1970-01-01T01:00:00.123+01:00')).toBe(123);
    expect(timeOf('1970-01-01T00:00:00.5-00:30')).toBe(1_800_500);
    expect(timeOf('0001-01-01')).toBe(Date.UTC(2000, 0, 1) - 730_119 * 86_400_000);
  });

  it('reads anything else as no time', () => {
    for (const field of [
      '2026-02-31',
      '2026-13-01',
      '2026-1-1',
      '2026-01-01T24:00',
      'soon',
      '',
      null,
      true,
      Number.NaN,
      {},
      undefined,
    ])
      expect(timeOf(field)).toBeUndefined();
  });
});

describe('ExactSum', () => {
  it('equals the correctly rounded sum of what it holds, whatever came and went', () => {
    const finite = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e300, max: 1e300 });
    fc.assert(
      fc.property(
        fc.array(finite, { maxLength: 40 }),
        fc.array(fc.boolean(), { maxLength: 40 }),
        (values, removals) => {
          const sum = new ExactSum();
          const held: number[] = [];
          values.forEach((value, index) => {
            sum.add(value);
            held.push(value);
            if (removals[index] && held.length > 0) sum.remove(held.shift()!);
          });
          const fresh = new ExactSum();
          for (const value of [...held].reverse()) fresh.add(value);
          expect(sum.value).toBe(fresh.value);
        },
      ),
    );
  });
});

describe('LiveAggregate', () => {
  const record = fc.record(
    {
      owner: fc.constantFrom('ann', 'bob', 'cy', null),
      done: fc.boolean(),
      points: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(0.1, 0.2, 1e16, 'p', 'q')),
      at: fc.oneof(
        fc.integer({ min: 0, max: 300_000 }),
        fc.constantFrom('1970-01-01T00:01:30Z', 'x'),
      ),
    },
    { requiredKeys: [] },
  );
  const change = fc.record({
    key: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'),
    value: fc.option(record, { nil: undefined, freq: 4 }),
  });
  const query: fc.Arbitrary<AggregateQuery<Todo>> = fc.record(
    {
      where: fc.constantFrom({}, { done: true }, { points: { gte: 0 } }),
      groupBy: fc.constantFrom(
        { owner: 'owner' },
        { minute: { field: 'at', bucket: '1m' } },
        { owner: 'owner', done: 'done' },
      ),
      aggregate: fc.constant({
        n: 'count',
        total: { sum: 'points' },
        mean: { avg: 'points' },
        least: { min: 'points' },
        most: { max: 'at' },
      } as const),
      sort: fc.constantFrom(
        undefined,
        [{ field: 'n', direction: 'desc' }],
        ['least', { field: 'total', direction: 'desc' }],
      ),
      limit: fc.constantFrom(undefined, 1, 2),
    },
    { requiredKeys: ['aggregate'] },
  ) as fc.Arbitrary<AggregateQuery<Todo>>;

  it('always equals a one-shot evaluation, and its deltas carry the result from one read to the next', () => {
    fc.assert(
      fc.property(
        query,
        fc.array(fc.record({ change, read: fc.boolean() }), { maxLength: 40 }),
        fc.array(change, { maxLength: 5 }),
        (q, changes, initial) => {
          const records = new Map<string, Todo>();
          for (const { key, value } of initial) if (value !== undefined) records.set(key, value);
          const live = new LiveAggregate(q, records);
          let shown = live.rows;
          expect(shown).toEqual(evaluateAggregate(q, records));
          for (const {
            change: { key, value },
            read,
          } of changes) {
            if (value === undefined) records.delete(key);
            else records.set(key, value);
            live.apply({ key, value });
            // Read now and then: changes between two reads are told together.
            if (!read) continue;
            const delta = live.delta();
            const expected = evaluateAggregate(q, records);
            expect(live.rows).toEqual(expected);
            // The delta alone turns what was shown into the result (as a set of rows).
            const next = new Map(shown.map((row) => [row.key, row]));
            for (const key of delta.left) next.delete(key);
            for (const row of [...delta.entered, ...delta.updated]) next.set(row.key, row);
            expect(new Map(expected.map((row) => [row.key, row]))).toEqual(next);
            expect(delta.changed).toBe(
              delta.entered.length + delta.left.length + delta.updated.length > 0,
            );
            shown = live.rows;
          }
          expect(live.rows).toEqual(evaluateAggregate(q, records));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('follows a replica: field writes, a concurrent field write merged in, records leaving the where, deletes', () => {
    const map = new LWWMap<Todo>(new HLC({ nodeId: 'here', now: () => 1_000 }));
    const other = new LWWMap<Todo>(new HLC({ nodeId: 'there', now: () => 2_000 }));
    for (const [key, value] of todos) map.set(key, value);
    const query: AggregateQuery<Todo> = {
      where: { done: true },
      groupBy: { owner: 'owner' },
      aggregate: { n: 'count', total: { sum: 'points' }, most: { max: 'points' } },
    };
    const live = new LiveAggregate(query, map.entries());
    map.subscribe((change) => {
      live.apply(change);
    });
    const agrees = () => expect(live.rows).toEqual(evaluateAggregate(query, map.entries()));
    map.update('t1', { points: 10 });
    agrees();
    other.merge('t3', map.getRecord('t3')!);
    const written = other.update('t3', { points: 7, owner: 'ann' })!;
    map.merge('t3', written);
    agrees();
    expect(live.rows.find((row) => row.key === '["ann"]')?.value).toMatchObject({
      n: 2,
      total: 17,
    });
    map.update('t5', { done: false });
    agrees();
    map.delete('t1');
    agrees();
    expect(live.rows.map((row) => row.key)).toEqual(['[null]', '["ann"]']);
  });

  it('reports nothing for a change that moves no figure', () => {
    const live = new LiveAggregate<Todo>(
      { groupBy: { owner: 'owner' }, aggregate: { n: 'count' } },
      todos,
    );
    expect(live.apply({ key: 't1', value: { owner: 'ann', done: false } })).toBe(false);
    expect(live.apply({ key: 'zz', value: undefined })).toBe(false);
    expect(live.delta().changed).toBe(false);
    const kept = live.rows[0];
    // A figure that moves and comes back before the next read is no change.
    live.apply({ key: 'z1', value: { owner: 'ann' } });
    live.apply({ key: 'z1', value: undefined });
    expect(live.delta().changed).toBe(false);
    expect(live.rows[0]).toBe(kept);
    live.apply({ key: 't3', value: { owner: 'ann' } });
    expect(live.delta()).toEqual({
      changed: true,
      entered: [],
      left: ['["bob"]'],
      updated: [{ key: '["ann"]', value: { owner: 'ann', n: 3 } }],
    });
  });

  it('stops at the 10,001st group, and keeps refusing', () => {
    const query: AggregateQuery<Todo> = { groupBy: { owner: 'owner' }, aggregate: { n: 'count' } };
    const live = new LiveAggregate<Todo>(
      query,
      Array.from({ length: MAX_GROUPS }, (_, i) => [`k${i}`, { owner: `o${i}` }] as const),
    );
    // Moving a group's only record to a new group frees the old one: still 10,000.
    expect(live.apply({ key: 'k0', value: { owner: 'fresh' } })).toBe(true);
    expect(live.groupCount).toBe(MAX_GROUPS);
    expect(() => live.apply({ key: 'new', value: { owner: 'one too many' } })).toThrow(
      /more than 10000 groups/,
    );
    expect(() => live.apply({ key: 'k1', value: undefined })).toThrow(QueryError);
  });
});
