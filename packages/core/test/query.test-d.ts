import { describe, expectTypeOf, it } from 'vitest';
import type { AggregateQuery, FieldPath, PathValue, Query, Where } from '../src/index.js';

interface Task {
  title: string;
  done: boolean;
  priority?: number;
  tags: string[];
  author: { name: string; address?: { city: string } };
}

describe('query types', () => {
  it('derives dotted field paths and their value types', () => {
    expectTypeOf<FieldPath<Task>>().toEqualTypeOf<
      | 'title'
      | 'done'
      | 'priority'
      | 'tags'
      | 'author'
      | 'author.name'
      | 'author.address'
      | 'author.address.city'
    >();
    expectTypeOf<PathValue<Task, 'author.address.city'>>().toEqualTypeOf<string>();
    expectTypeOf<PathValue<Task, 'priority'>>().toEqualTypeOf<number | undefined>();
  });

  it('accepts well-typed queries', () => {
    const query: Query<Task> = {
      where: {
        done: false,
        priority: { gte: 2, lt: 10 },
        title: { startsWith: 'Buy', contains: 'milk' },
        tags: { contains: 'home' },
        'author.address.city': { in: ['Paris', 'Oslo'] },
        or: [{ 'author.name': 'Ann' }, { not: { done: true } }],
      },
      sort: ['priority', { field: 'title', direction: 'desc' }],
      limit: 10,
      offset: 5,
      fields: ['title', 'author.name'],
    };
    expectTypeOf(query).toExtend<Query<Task>>();
  });

  it('rejects unknown fields and wrongly typed operands', () => {
    // @ts-expect-error: no such field
    const unknownField: Where<Task> = { titel: 'x' };
    // @ts-expect-error: done is a boolean
    const wrongType: Where<Task> = { done: 'yes' };
    // @ts-expect-error: startsWith needs a string field
    const startsWithNumber: Where<Task> = { priority: { startsWith: '1' } };
    // @ts-expect-error: contains on a string[] takes a string element
    const containsNumber: Where<Task> = { tags: { contains: 3 } };
    // @ts-expect-error: gt on a boolean field
    const gtBoolean: Where<Task> = { done: { gt: true } };
    // @ts-expect-error: unknown sort field
    const badSort: Query<Task> = { sort: 'nope' };
    // @ts-expect-error: bad direction
    const badDirection: Query<Task> = { sort: { field: 'title', direction: 'up' } };
    // @ts-expect-error: unknown projected field
    const badFields: Query<Task> = { fields: ['nope'] };
    expectTypeOf([
      unknownField,
      wrongType,
      startsWithNumber,
      containsNumber,
      gtBoolean,
    ]).toBeArray();
    expectTypeOf([badSort, badDirection, badFields]).toBeArray();
  });

  it('accepts any field on untyped records', () => {
    const query: Query = { where: { anything: { gt: 1 }, 'deep.path': 'x' }, sort: 'whatever' };
    expectTypeOf(query).toExtend<Query<unknown>>();
  });

  it('types aggregates: figures and group keys over field paths, sort keys over their names', () => {
    const query: AggregateQuery<Task, 'who' | 'day', 'n' | 'top'> = {
      where: { done: true },
      groupBy: { who: 'author.name', day: { field: 'priority', bucket: '1d' } },
      aggregate: { n: 'count', top: { max: 'priority' } },
      sort: [{ field: 'n', direction: 'desc' }, 'who'],
      limit: 10,
    };
    expectTypeOf(query).toMatchTypeOf<AggregateQuery<Task>>();
    const badField: AggregateQuery<Task> = {
      // @ts-expect-error: not a field of Task
      aggregate: { n: { sum: 'nope' } },
    };
    const badBucket: AggregateQuery<Task> = {
      aggregate: { n: 'count' },
      // @ts-expect-error: not a bucket
      groupBy: { d: { field: 'priority', bucket: '5m' } },
    };
    const badSort: AggregateQuery<Task, 'who', 'n'> = {
      aggregate: { n: 'count' },
      groupBy: { who: 'title' },
      // @ts-expect-error: sorted by a name the query does not have
      sort: 'title',
    };
    expectTypeOf([badField, badBucket, badSort]).not.toBeNever();
  });
});
