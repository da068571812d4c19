import { describe, expect, it } from 'vitest';
import {
  type AggregateQuery,
  type AggregateRow,
  ExactSum,
  evaluateAggregate,
  HLC,
  LiveAggregate,
  LWWMap,
  type LWWRecord,
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
    expect(() => new LiveAggregate(query, recordsOf(many))).toThrow(QueryError);
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

/** A record written at 1 ms that never expires (or none, for `undefined`). */
function recordOf<V>(value: V | undefined): LWWRecord<V> | undefined {
  return value === undefined
    ? undefined
    : { value, timestamp: { millis: 1, counter: 0, nodeId: 'n' } };
}

function recordsOf<V>(entries: Iterable<readonly [string, V]>): Array<[string, LWWRecord<V>]> {
  return [...entries].map(([key, value]) => [key, recordOf(value)!]);
}

/** A live aggregate over `initial`, and how to write a record's new value (`undefined`: delete). */
function follow<V>(query: AggregateQuery<V>, initial: ReadonlyArray<readonly [string, V]>) {
  const values = new Map(initial);
  const live = new LiveAggregate(query, recordsOf(initial));
  const write = (key: string, value: V | undefined) => {
    const previousRecord = recordOf(values.get(key));
    if (value === undefined) values.delete(key);
    else values.set(key, value);
    return live.apply({ key, record: recordOf(value), previousRecord });
  };
  return { live, write };
}

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
  /** A write (a value, with a time to live or not), a delete, or time passing. */
  const step = fc.oneof(
    {
      arbitrary: fc.record({
        key: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'),
        value: record,
        ttlMs: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined, freq: 3 }),
        read: fc.boolean(),
      }),
      weight: 8,
    },
    {
      arbitrary: fc.record({ key: fc.constantFrom('a', 'b', 'c', 'g'), read: fc.boolean() }),
      weight: 2,
    },
    {
      arbitrary: fc.record({ wait: fc.integer({ min: 1, max: 20 }), read: fc.boolean() }),
      weight: 2,
    },
  );
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

  it('always equals a one-shot evaluation of the live records, through writes, deletes and expiry, and its deltas carry the result from one read to the next', () => {
    fc.assert(
      fc.property(
        query,
        fc.array(step, { maxLength: 40 }),
        fc.array(step, { maxLength: 6 }),
        (q, steps, initial) => {
          let clock = 1_000;
          const map = new LWWMap<Todo>(new HLC({ nodeId: 'here', now: () => clock }));
          const run = (s: (typeof steps)[number]) => {
            if ('wait' in s) clock += s.wait;
            else if ('value' in s)
              map.set(s.key, s.value, s.ttlMs === undefined ? undefined : { ttlMs: s.ttlMs });
            else map.delete(s.key);
          };
          for (const s of initial) run(s);
          const live = new LiveAggregate(q, map.allRecords(), clock);
          // As a client follows its replica: a change is told unless the record was and is
          // absent (expired), which the aggregate must not need.
          map.subscribe((change) => {
            live.apply(change);
          });
          let shown = live.rows;
          expect(shown).toEqual(evaluateAggregate(q, map.entries()));
          for (const s of steps) {
            run(s);
            // Read now and then: changes between two reads are told together.
            if (!s.read) continue;
            live.expire(clock);
            const delta = live.delta();
            const expected = evaluateAggregate(q, map.entries());
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
          live.expire(clock);
          expect(live.rows).toEqual(evaluateAggregate(q, map.entries()));
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
    const live = new LiveAggregate(query, map.allRecords());
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

  it('stops counting records as they expire, and says when the next one does', () => {
    let clock = 1_000;
    const map = new LWWMap<Todo>(new HLC({ nodeId: 'here', now: () => clock }));
    map.set('t1', { owner: 'ann' }, { ttlMs: 50 });
    map.set('t2', { owner: 'ann' });
    const query: AggregateQuery<Todo> = { groupBy: { owner: 'owner' }, aggregate: { n: 'count' } };
    const live = new LiveAggregate(query, map.allRecords(), clock);
    map.subscribe((change) => {
      live.apply(change);
    });
    map.set('t3', { owner: 'bob' }, { ttlMs: 20 });
    expect(live.nextExpiry).toBe(1_020);
    expect(live.rows.map((row) => row.value)).toEqual([
      { owner: 'ann', n: 2 },
      { owner: 'bob', n: 1 },
    ]);
    live.delta();
    clock = 1_030;
    // Written again, expired already: the map tells nothing (absent before and after).
    const stale = {
      value: { owner: 'bob' },
      timestamp: { millis: 1_025, counter: 0, nodeId: 'x' },
    };
    expect(map.merge('t3', { ...stale, ttlMs: 1 })).toBe(false);
    expect(live.expire(clock)).toBe(true);
    expect(live.delta()).toMatchObject({ left: ['["bob"]'], updated: [] });
    expect(live.nextExpiry).toBe(1_050);
    clock = 1_060;
    expect(live.expire(clock)).toBe(true);
    expect(live.rows.map((row) => row.value)).toEqual([{ owner: 'ann', n: 1 }]);
    expect(live.expire(clock + 1)).toBe(false);
  });

  it('reports nothing for a change that moves no figure', () => {
    const { live, write } = follow<Todo>(
      { groupBy: { owner: 'owner' }, aggregate: { n: 'count' } },
      todos,
    );
    expect(write('t1', { owner: 'ann', done: false })).toBe(false);
    expect(write('zz', undefined)).toBe(false);
    expect(live.delta().changed).toBe(false);
    const kept = live.rows[0];
    // A figure that moves and comes back before the next read is no change.
    write('z1', { owner: 'ann' });
    write('z1', undefined);
    expect(live.delta().changed).toBe(false);
    expect(live.rows[0]).toBe(kept);
    write('t3', { owner: 'ann' });
    expect(live.delta()).toEqual({
      changed: true,
      entered: [],
      left: ['["bob"]'],
      updated: [{ key: '["ann"]', value: { owner: 'ann', n: 3 } }],
    });
  });

  it('groups by values of any kind: objects by their canonical text, NaN and infinities with null', () => {
    const { live, write } = follow<{ tag?: unknown; n?: unknown }>(
      { groupBy: { tag: 'tag', n: 'n' }, aggregate: { c: 'count' } },
      [
        ['a', { tag: { b: 1, a: 2 }, n: 1 }],
        ['b', { tag: { a: 2, b: 1 }, n: 1 }],
        ['c', { tag: 'x', n: Number.NaN }],
      ],
    );
    write('d', { tag: 'x', n: null });
    write('e', { tag: 'x', n: Number.POSITIVE_INFINITY });
    expect(live.rows.map(({ key, value }) => [key, value['c']])).toEqual([
      ['["x",null]', 3],
      ['[{"a":2,"b":1},1]', 2],
    ]);
    write('a', undefined);
    write('b', { tag: 'y', n: 1 });
    expect(live.rows.map(({ key, value }) => [key, value['c']])).toEqual([
      ['["x",null]', 3],
      ['["y",1]', 1],
    ]);
  });

  it('keeps the least and greatest through many removals, of numbers and strings alike', () => {
    const next = (() => {
      let state = 7;
      return () => {
        state = (state * 48_271) % 2_147_483_647;
        return state / 2_147_483_647;
      };
    })();
    const ranked = () =>
      next() < 0.8 ? Math.floor(next() * 300) - 100 : `s${Math.floor(next() * 50)}`;
    type Row = { g: number; v: unknown };
    const query: AggregateQuery<Row> = {
      groupBy: { g: 'g' },
      aggregate: { least: { min: 'v' }, most: { max: 'v' } },
    };
    const initial = Array.from(
      { length: 2_000 },
      (_, i) => [`k${i}`, { g: i % 3, v: ranked() }] as const,
    );
    const current = new Map<string, Row>(initial);
    const { live, write } = follow<Row>(query, initial);
    for (let step = 0; step < 6_000; step++) {
      const key = `k${Math.floor(next() * 2_000)}`;
      const value = next() < 0.3 ? undefined : { g: Math.floor(next() * 3), v: ranked() };
      write(key, value);
      if (value === undefined) current.delete(key);
      else current.set(key, value);
      if (step % 500 === 0) expect(live.rows).toEqual(evaluateAggregate(query, current));
    }
    // Down to a few records: most removals were of values below the top.
    for (const key of [...current.keys()].slice(5)) {
      write(key, undefined);
      current.delete(key);
    }
    expect(live.rows).toEqual(evaluateAggregate(query, current));
  });

  it('stops at the 10,001st group, and keeps refusing', () => {
    const query: AggregateQuery<Todo> = { groupBy: { owner: 'owner' }, aggregate: { n: 'count' } };
    const { live, write } = follow<Todo>(
      query,
      Array.from({ length: MAX_GROUPS }, (_, i) => [`k${i}`, { owner: `o${i}` }] as const),
    );
    // Moving a group's only record to a new group frees the old one: still 10,000.
    expect(write('k0', { owner: 'fresh' })).toBe(true);
    expect(live.groupCount).toBe(MAX_GROUPS);
    expect(() => write('new', { owner: 'one too many' })).toThrow(/more than 10000 groups/);
    expect(() => write('k1', undefined)).toThrow(QueryError);
  });
});
