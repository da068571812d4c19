import 'fake-indexeddb/auto';
import { act, render, screen } from '@testing-library/react';
import type { AggregateRow } from '@topgun/core';
import { describe, expect, it, vi } from 'vitest';
import { useAggregate, useSuspenseAggregate } from '../src/index.js';
import { flush, newClient, renderWhileLoading, wrapper } from './harness.js';

interface Todo {
  title: string;
  owner: string;
  done: boolean;
  points?: number;
}

describe('useAggregate', () => {
  const seen: Array<readonly AggregateRow<'owner', 'open' | 'points'>[]> = [];
  function OpenByOwner() {
    // An inline query object: a new object on every render.
    const { data, status } = useAggregate<Todo, 'owner', 'open' | 'points'>('todos', {
      where: { done: false },
      groupBy: { owner: 'owner' },
      aggregate: { open: 'count', points: { sum: 'points' } },
      sort: [{ field: 'open', direction: 'desc' }],
    });
    seen.push(data);
    return (
      <p data-status={status}>
        {data.map(({ value }) => `${value.owner}:${value.open}/${value.points}`).join(' ')}
      </p>
    );
  }

  it('shows the groups, and re-renders only when a figure changes, keeping unchanged rows', async () => {
    const client = newClient();
    const todos = client.getMap<Todo>('todos');
    todos.set('a', { title: 'A', owner: 'ann', done: false, points: 2 });
    todos.set('b', { title: 'B', owner: 'bob', done: false, points: 1 });
    todos.set('c', { title: 'C', owner: 'bob', done: true });
    seen.length = 0;
    render(<OpenByOwner />, { wrapper: wrapper(client) });
    expect(screen.getByText('ann:1/2 bob:1/1').dataset['status']).toBe('local');
    const renders = seen.length;

    act(() => todos.set('a', { title: 'Renamed', owner: 'ann', done: false, points: 2 }));
    await flush();
    expect(seen.length).toBe(renders); // no figure moved

    act(() => todos.set('d', { title: 'D', owner: 'bob', done: false, points: 4 }));
    await flush();
    expect(screen.getByText('bob:2/5 ann:1/2')).toBeTruthy();
    const [before, after] = [seen[renders - 1]!, seen.at(-1)!];
    expect(after.find((row) => row.key === '["ann"]')).toBe(
      before.find((row) => row.key === '["ann"]'),
    );
  });

  it('keeps one maintainer for an inline query across re-renders', () => {
    const client = newClient();
    const aggregate = vi.spyOn(client, 'aggregate');
    const { rerender } = render(<OpenByOwner />, { wrapper: wrapper(client) });
    for (let i = 0; i < 5; i++) rerender(<OpenByOwner />);
    expect(aggregate).toHaveBeenCalledTimes(1);
  });

  it('says why an aggregate is invalid, waits for the server on a map replicated by query, and is disabled by a falsy query', () => {
    const client = newClient({ maps: { events: { replicate: 'queries' } } });
    function Probe({ map, query }: { map: string; query: unknown }) {
      const { status, error } = useAggregate(map, query as never);
      return <p>{`${status} ${error?.message ?? ''}`}</p>;
    }
    const { rerender } = render(<Probe map="todos" query={{ aggregate: { n: 'median' } }} />, {
      wrapper: wrapper(client),
    });
    expect(screen.getByText(/^error aggregate\.n: expected 'count'/)).toBeTruthy();
    rerender(<Probe map="events" query={{ aggregate: { n: 'count' } }} />);
    // Computed by the server: local (and empty) until it answers.
    expect(screen.getByText('local')).toBeTruthy();
    rerender(<Probe map="todos" query={false} />);
    expect(screen.getByText('disabled')).toBeTruthy();
  });
});

describe('useSuspenseAggregate', () => {
  it('suspends until the stored replica is loaded, then counts it', async () => {
    function Count() {
      const { data } = useSuspenseAggregate<Todo, never, 'n'>('todos', {
        aggregate: { n: 'count' },
      });
      return <p>{`count ${data[0]?.value.n}`}</p>;
    }
    await renderWhileLoading({ title: 'Stored', owner: 'ann', done: false }, <Count />);
    expect(await screen.findByText('count 1')).toBeTruthy();
  });
});
