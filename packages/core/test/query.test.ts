import { describe, expect, it } from 'vitest';
import {
  compareValues,
  compileQuery,
  evaluateQuery,
  HLC,
  LWWMap,
  type Query,
  QueryError,
} from '../src/index.js';
import { fc } from './property.js';

interface Task {
  title: string;
  done: boolean;
  priority?: number;
  tags?: string[];
  author?: { name: string; team?: string | null };
}

const tasks: Array<[string, Task]> = [
  [
    't1',
    {
      title: 'Buy milk',
      done: false,
      priority: 2,
      tags: ['home'],
      author: { name: 'Ann', team: 'a' },
    },
  ],
  [
    't2',
    {
      title: 'Write spec',
      done: true,
      priority: 5,
      tags: ['work', 'docs'],
      author: { name: 'Bob' },
    },
  ],
  [
    't3',
    {
      title: 'Fix bug',
      done: false,
      priority: 5,
      tags: ['work'],
      author: { name: 'Ann', team: null },
    },
  ],
  ['t4', { title: 'Call mom', done: false }],
  [
    't5',
    { title: 'buy bread', done: true, priority: 1, tags: [], author: { name: 'Cy', team: 'b' } },
  ],
];

const keysOf = (query: Query<Task>) => evaluateQuery(query, tasks).map((row) => row.key);

describe('where', () => {
  it.each<[string, Query<Task>, string[]]>([
    ['equality shorthand', { where: { done: false } }, ['t1', 't3', 't4']],
    ['eq', { where: { priority: { eq: 5 } } }, ['t2', 't3']],
    ['eq on an object value', { where: { author: { eq: { name: 'Bob' } } } }, ['t2']],
    ['eq on an array value', { where: { tags: { eq: ['work'] } } }, ['t3']],
    ['ne matches missing fields too', { where: { priority: { ne: 5 } } }, ['t1', 't4', 't5']],
    ['gt', { where: { priority: { gt: 2 } } }, ['t2', 't3']],
    ['gte', { where: { priority: { gte: 2 } } }, ['t1', 't2', 't3']],
    ['lt', { where: { priority: { lt: 2 } } }, ['t5']],
    ['lte', { where: { priority: { lte: 2 } } }, ['t1', 't5']],
    ['range', { where: { priority: { gt: 1, lt: 5 } } }, ['t1']],
    ['gt on strings', { where: { title: { gt: 'W' } } }, ['t2', 't5']],
    ['in', { where: { priority: { in: [1, 2] } } }, ['t1', 't5']],
    ['nin', { where: { priority: { nin: [1, 2] } } }, ['t2', 't3', 't4']],
    ['contains a substring', { where: { title: { contains: 'bu' } } }, ['t3', 't5']],
    ['contains an array element', { where: { tags: { contains: 'work' } } }, ['t2', 't3']],
    ['startsWith', { where: { title: { startsWith: 'B' } } }, ['t1']],
    ['exists', { where: { priority: { exists: true } } }, ['t1', 't2', 't3', 't5']],
    ['not exists', { where: { priority: { exists: false } } }, ['t4']],
    [
      'exists counts null as present',
      { where: { 'author.team': { exists: true } } },
      ['t1', 't3', 't5'],
    ],
    ['null equality', { where: { 'author.team': null } }, ['t3']],
    ['nested path', { where: { 'author.name': 'Ann' } }, ['t1', 't3']],
    ['array index path', { where: { 'tags.0': 'work' } as never }, ['t2', 't3']],
    ['and', { where: { and: [{ done: false }, { 'author.name': 'Ann' }] } }, ['t1', 't3']],
    ['or', { where: { or: [{ priority: 1 }, { priority: 2 }] } }, ['t1', 't5']],
    ['not', { where: { not: { done: false } } }, ['t2', 't5']],
    ['empty and matches all', { where: { and: [] } }, ['t1', 't2', 't3', 't4', 't5']],
    ['empty or matches none', { where: { or: [] } }, []],
    ['several conditions all hold', { where: { done: false, priority: 5 } }, ['t3']],
    [
      'comparison with another type is false',
      { where: { priority: { gt: '1' } } } as unknown as Query<Task>,
      [],
    ],
  ])('%s', (_name, query, expected) => {
    expect(keysOf(query)).toEqual(expected);
  });
});

describe('sort, offset, limit, fields', () => {
  it('sorts by several fields, then by key', () => {
    expect(keysOf({ sort: [{ field: 'priority', direction: 'desc' }, 'title'] })).toEqual([
      't3',
      't2',
      't1',
      't5',
      't4',
    ]);
  });

  it('sorts mixed types and missing fields by the documented type order', () => {
    const rows = evaluateQuery({ sort: 'v' }, [
      ['obj', { v: { a: 1 } }],
      ['arr', { v: [1] }],
      ['str', { v: 'x' }],
      ['num', { v: 3 }],
      ['bool', { v: true }],
      ['nul', { v: null }],
      ['missing', {}],
    ]);
    expect(rows.map((row) => row.key)).toEqual([
      'missing',
      'nul',
      'bool',
      'num',
      'str',
      'arr',
      'obj',
    ]);
  });

  it('breaks ties by key so every replica orders identically', () => {
    const rows = evaluateQuery({ sort: 'done' }, [
      ['b', { done: true }],
      ['a', { done: true }],
      ['c', { done: true }],
    ]);
    expect(rows.map((row) => row.key)).toEqual(['a', 'b', 'c']);
  });

  it('applies offset then limit', () => {
    expect(keysOf({ sort: 'title', offset: 1, limit: 2 })).toEqual(['t4', 't3']);
    expect(keysOf({ limit: 0 })).toEqual([]);
    expect(keysOf({ offset: 10 })).toEqual([]);
  });

  it('projects fields into fresh objects without touching the records', () => {
    const rows = evaluateQuery<Task>(
      { where: { title: 'Buy milk' }, fields: ['title', 'author.name', 'missing' as never] },
      tasks,
    );
    expect(rows).toEqual([{ key: 't1', value: { title: 'Buy milk', author: { name: 'Ann' } } }]);
    const nested = evaluateQuery<Task>(
      { where: { title: 'Buy milk' }, fields: ['author', 'author.name'] },
      tasks,
    );
    expect(nested[0]!.value).toEqual({ author: { name: 'Ann', team: 'a' } });
    expect(tasks[0]![1].author).toEqual({ name: 'Ann', team: 'a' });
  });

  it('returns the stored value objects when not projecting', () => {
    const [row] = evaluateQuery({ where: { title: 'Fix bug' } }, tasks);
    expect(row!.value).toBe(tasks[2]![1]);
  });

  it('runs over an LWW map', () => {
    const map = new LWWMap<Task>(new HLC({ nodeId: 'q', now: () => 1 }));
    for (const [key, value] of tasks) map.set(key, value);
    map.delete('t1');
    expect(evaluateQuery({ where: { done: false } }, map.entries()).map((row) => row.key)).toEqual([
      't3',
      't4',
    ]);
  });
});

describe('invalid queries', () => {
  it.each<[unknown, string]>([
    [null, 'query'],
    [{ filter: {} }, 'query.filter'],
    [{ where: 'done' }, 'where'],
    [{ where: { age: { gtt: 1 } } }, 'where.age.gtt'],
    [{ where: { age: {} } }, 'where.age'],
    [{ where: { age: { gt: {} } } }, 'where.age.gt'],
    [{ where: { age: { gt: Number.NaN } } }, 'where.age.gt'],
    [{ where: { age: { in: 3 } } }, 'where.age.in'],
    [{ where: { age: { in: new Array(1001).fill(1) } } }, 'where.age.in'],
    [{ where: { age: { startsWith: 1 } } }, 'where.age.startsWith'],
    [{ where: { age: { exists: 'yes' } } }, 'where.age.exists'],
    [{ where: { age: { eq: undefined } } }, 'where.age.eq'],
    [{ where: { age: { eq: () => 1 } } }, 'where.age.eq'],
    [{ where: { and: {} } }, 'where.and'],
    [{ where: { or: [1] } }, 'where.or[0]'],
    [{ where: { '__proto__.polluted': 1 } }, 'where.__proto__.polluted'],
    [{ where: { 'a.constructor': 1 } }, 'where.a.constructor'],
    [{ where: { 'a..b': 1 } }, 'where.a..b'],
    [JSON.parse('{"where": {"__proto__": {"eq": 1}}}'), 'where.__proto__'],
    [{ sort: 5 }, 'sort'],
    [{ sort: [{ field: 'a', direction: 'up' }] }, 'sort[0].direction'],
    [{ sort: [{ field: 'a', order: 'asc' }] }, 'sort[0].order'],
    [{ limit: -1 }, 'limit'],
    [{ limit: 1.5 }, 'limit'],
    [{ offset: '2' }, 'offset'],
    [{ fields: [] }, 'fields'],
    [{ fields: ['prototype'] }, 'fields[0]'],
  ])('rejects query #%# at %s', (query, path) => {
    let caught: unknown;
    try {
      evaluateQuery(query as Query, []);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(QueryError);
    expect(caught).toMatchObject({ code: 'INVALID_QUERY', path });
  });

  it('rejects queries nested or sized beyond the limits', () => {
    let deep: Record<string, unknown> = { a: 1 };
    for (let i = 0; i < 20; i++) deep = { not: deep };
    expect(() => evaluateQuery({ where: deep } as Query, [])).toThrow(/nested deeper/);
    const wide = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`f${i}`, i]));
    expect(() => evaluateQuery({ where: wide } as Query, [])).toThrow(/more than 256 conditions/);
  });
});

describe('in and nin with arrays and objects', () => {
  it('matches exactly the records whose field equals an option under compareValues', () => {
    const valueArbitrary = fc.oneof(
      fc.record(
        { a: fc.integer({ min: 0, max: 2 }), b: fc.constantFrom('x', 'y') },
        { requiredKeys: [] },
      ),
      fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 2 }),
      fc.integer({ min: 0, max: 2 }),
    );
    fc.assert(
      fc.property(fc.array(valueArbitrary, { maxLength: 6 }), valueArbitrary, (options, field) => {
        // Field order must not matter: the same object written the other way round.
        const reordered = JSON.parse(JSON.stringify(field), (_key, value) =>
          typeof value === 'object' && value !== null && !Array.isArray(value)
            ? Object.fromEntries(Object.entries(value).reverse())
            : value,
        );
        const expected = options.some((option) => compareValues(field, option) === 0);
        const matches = compileQuery({ where: { f: { in: options } } } as never).matches;
        expect(matches({ f: reordered } as never)).toBe(expected);
        const excludes = compileQuery({ where: { f: { nin: options } } } as never).matches;
        expect(excludes({ f: reordered } as never)).toBe(!expected);
      }),
    );
  });
});

describe('query cost limits', () => {
  it('refuses a query whose in lists hold more than 10 000 values in all', () => {
    const list = Array.from({ length: 1000 }, (_, i) => ({ i }));
    const conditions = Array.from({ length: 11 }, (_, n) => ({ [`f${n}`]: { in: list } }));
    expect(() => compileQuery({ where: { or: conditions } } as never)).toThrow(
      /more than 10000 values in all lists/,
    );
    expect(() => compileQuery({ where: { or: conditions.slice(0, 10) } } as never)).not.toThrow();
  });
});
