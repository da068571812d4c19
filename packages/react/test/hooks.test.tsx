import 'fake-indexeddb/auto';
import { act, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { useMap, useQuery, useRecord, useSuspenseQuery, useSyncStatus } from '../src/index.js';
import { flush, newClient, renderWhileLoading, wrapper } from './harness.js';

interface Todo {
  title: string;
  done: boolean;
}

describe('useMap', () => {
  it('renders entries and re-renders on writes', async () => {
    const client = newClient();
    function Todos() {
      const { entries, set } = useMap<Todo>('todos');
      return (
        <>
          <ul>
            {entries.map(([key, todo]) => (
              <li key={key}>{todo.title}</li>
            ))}
          </ul>
          <button
            type="button"
            onClick={() =>
              set(`t${entries.length}`, { title: `Todo ${entries.length}`, done: false })
            }
          >
            add
          </button>
        </>
      );
    }
    render(<Todos />, { wrapper: wrapper(client) });
    expect(screen.queryAllByRole('listitem')).toHaveLength(0);
    await act(async () => screen.getByRole('button').click());
    await act(async () => screen.getByRole('button').click());
    expect(screen.getAllByRole('listitem').map((item) => item.textContent)).toEqual([
      'Todo 0',
      'Todo 1',
    ]);
    act(() => client.getMap<Todo>('todos').delete('t0'));
    await flush();
    expect(screen.getAllByRole('listitem').map((item) => item.textContent)).toEqual(['Todo 1']);
  });
});

describe('useQuery', () => {
  function Open({ onRender }: { onRender: () => void }) {
    onRender();
    // An inline query object: a new object on every render.
    const { data, status } = useQuery<Todo>('todos', { where: { done: false }, sort: 'title' });
    return <p data-status={status}>{data.map((row) => row.value.title).join(', ')}</p>;
  }

  it('shows the result, and re-renders only when the result changes', async () => {
    const client = newClient();
    const todos = client.getMap<Todo>('todos');
    todos.set('a', { title: 'Apples', done: false });
    todos.set('b', { title: 'Bread', done: true });
    const renders = vi.fn();
    render(<Open onRender={renders} />, { wrapper: wrapper(client) });
    expect(screen.getByText('Apples')).toBeTruthy();
    expect(screen.getByText('Apples').dataset['status']).toBe('local');
    const before = renders.mock.calls.length;

    act(() => todos.set('b', { title: 'Brown bread', done: true })); // not in the result
    await flush();
    expect(renders.mock.calls.length).toBe(before);

    act(() => todos.set('c', { title: 'Cheese', done: false }));
    await flush();
    expect(screen.getByText('Apples, Cheese')).toBeTruthy();
    expect(renders.mock.calls.length).toBe(before + 1);
  });

  it('keeps one subscription for an inline query across re-renders', async () => {
    const client = newClient();
    const query = vi.spyOn(client, 'query');
    const { rerender } = render(<Open onRender={() => {}} />, { wrapper: wrapper(client) });
    for (let i = 0; i < 5; i++) rerender(<Open onRender={() => {}} />);
    expect(query).toHaveBeenCalledTimes(1);
  });

  it('stops following the replica after unmount', async () => {
    vi.useFakeTimers();
    const client = newClient();
    const { unmount } = render(<Open onRender={() => {}} />, { wrapper: wrapper(client) });
    const handle = client.query<Todo>('todos', { where: { done: false }, sort: 'title' });
    expect(handle.active).toBe(true);
    unmount();
    await act(async () => {
      vi.advanceTimersByTime(1_500);
    });
    expect(handle.active).toBe(false);
  });

  it('works under StrictMode double mounting', async () => {
    const client = newClient();
    render(<Open onRender={() => {}} />, { wrapper: wrapper(client, true) });
    act(() => client.getMap<Todo>('todos').set('x', { title: 'Strict', done: false }));
    await flush();
    expect(screen.getByText('Strict')).toBeTruthy();
  });

  it('loads more rows a page at a time, and says whether more follow', async () => {
    const client = newClient();
    const todos = client.getMap<Todo>('todos');
    for (const title of ['A', 'B', 'C', 'D', 'E']) todos.set(title, { title, done: false });
    let loadMore = () => {};
    function Page() {
      const result = useQuery<Todo>('todos', { sort: 'title', limit: 2 });
      loadMore = result.loadMore;
      return <p>{`${result.data.map((row) => row.key).join('')}:${result.hasMore}`}</p>;
    }
    render(<Page />, { wrapper: wrapper(client) });
    expect(screen.getByText('AB:true')).toBeTruthy();
    const first = loadMore;
    act(() => loadMore());
    await flush();
    expect(screen.getByText('ABCD:true')).toBeTruthy();
    act(() => loadMore());
    await flush();
    expect(screen.getByText('ABCDE:false')).toBeTruthy();
    expect(loadMore).toBe(first);
    // A record past the window's end: more rows follow again.
    act(() => todos.set('F', { title: 'F', done: false }));
    await flush();
    expect(screen.getByText('ABCDEF:false')).toBeTruthy();
    act(() => todos.set('G', { title: 'G', done: false }));
    await flush();
    expect(screen.getByText('ABCDEF:true')).toBeTruthy();
  });

  it('is disabled by a falsy query and reports an invalid one', () => {
    const client = newClient();
    function Probe({ query }: { query: unknown }) {
      const { status, error, data } = useQuery<Todo>('todos', query as never);
      return <p>{`${status}:${data.length}:${error?.message ?? ''}`}</p>;
    }
    const { rerender } = render(<Probe query={null} />, { wrapper: wrapper(client) });
    expect(screen.getByText('disabled:0:')).toBeTruthy();
    rerender(<Probe query={{ where: { done: { gtt: 1 } } }} />);
    expect(screen.getByText(/^error:0:where\.done\.gtt: unknown operator/)).toBeTruthy();
  });
});

describe('useSuspenseQuery', () => {
  it('suspends until the stored replica is loaded, then shows it', async () => {
    function Stored() {
      const { data } = useSuspenseQuery<Todo>('todos', {});
      return <p>{data.map((row) => row.value.title).join()}</p>;
    }
    await renderWhileLoading({ title: 'Stored', done: false }, <Stored />);
    expect(await screen.findByText('Stored')).toBeTruthy();
  });
});

describe('useRecord and useSyncStatus', () => {
  it('re-renders a record only when it changes', async () => {
    const client = newClient();
    const todos = client.getMap<Todo>('todos');
    todos.set('a', { title: 'A', done: false });
    const renders = vi.fn();
    function One() {
      renders();
      const todo = useRecord<Todo>('todos', 'a');
      return <p>{todo?.title}</p>;
    }
    render(<One />, { wrapper: wrapper(client) });
    const before = renders.mock.calls.length;
    act(() => todos.set('b', { title: 'B', done: false }));
    await flush();
    expect(renders.mock.calls.length).toBe(before);
    act(() => todos.set('a', { title: 'A2', done: false }));
    await flush();
    expect(screen.getByText('A2')).toBeTruthy();
  });

  it('selects a slice of the status', async () => {
    const { manualOnlineManager } = await import('@topgun/client');
    // A server configured but unreachable: writes wait in the outbox.
    const client = newClient({ url: 'ws://127.0.0.1:9/sync', online: manualOnlineManager(false) });
    function Pending() {
      const pending = useSyncStatus((status) => status.pendingOps);
      const connection = useSyncStatus().connection;
      return <p>{`${connection}:${pending}`}</p>;
    }
    render(<Pending />, { wrapper: wrapper(client) });
    expect(screen.getByText('offline:0')).toBeTruthy();
    act(() => client.getMap<Todo>('todos').set('a', { title: 'A', done: false }));
    await flush();
    expect(screen.getByText('offline:1')).toBeTruthy();
  });
});

describe('renders per animation frame', () => {
  /** Animation frames that run only when the test says so. */
  function manualFrames() {
    const callbacks = new Map<number, FrameRequestCallback>();
    let next = 1;
    vi.stubGlobal('requestAnimationFrame', (callback: FrameRequestCallback) => {
      callbacks.set(next, callback);
      return next++;
    });
    vi.stubGlobal('cancelAnimationFrame', (id: number) => callbacks.delete(id));
    return {
      pending: () => callbacks.size,
      run: () =>
        act(() => {
          const due = [...callbacks.values()];
          callbacks.clear();
          for (const callback of due) callback(performance.now());
        }),
    };
  }
  afterEach(() => vi.unstubAllGlobals());

  it('renders the first change at once, then a stream of changes once per frame, with everything the frame saw', async () => {
    const frames = manualFrames();
    const client = newClient();
    const todos = client.getMap<Todo>('todos');
    const renders = { query: 0, map: 0, status: 0 };
    function Open() {
      const { data } = useQuery<Todo>('todos', { where: { done: false } });
      renders.query++;
      return <p>{`open:${data.length}`}</p>;
    }
    function Count() {
      const { entries } = useMap<Todo>('todos');
      renders.map++;
      return <p>{`all:${entries.length}`}</p>;
    }
    function Status() {
      const pending = useSyncStatus((status) => status.pendingOps);
      renders.status++;
      return <p>{`status:${pending}`}</p>;
    }
    render(
      <>
        <Open />
        <Count />
        <Status />
      </>,
      { wrapper: wrapper(client) },
    );
    await flush();
    const before = { ...renders };
    // A hundred chunks of changes, each in a task of its own, as sync messages arrive.
    for (let chunk = 0; chunk < 100; chunk++) {
      await act(async () => {
        for (let index = 0; index < 10; index++)
          todos.set(`t${chunk}-${index}`, { title: 'T', done: index % 2 === 0 });
        await new Promise((resolve) => setTimeout(resolve, 0));
      });
    }
    // The first change renders at once; the 99 chunks after it wait for the frame.
    expect(renders).toEqual({
      query: before.query + 1,
      map: before.map + 1,
      status: before.status,
    });
    expect(screen.getByText('open:5')).toBeTruthy();
    expect(frames.pending()).toBeGreaterThan(0);
    frames.run();
    expect(renders).toEqual({
      query: before.query + 2,
      map: before.map + 2,
      status: before.status,
    });
    expect(screen.getByText('open:500')).toBeTruthy();
    expect(screen.getByText('all:1000')).toBeTruthy();
    // A frame without changes renders nothing and ends the wait: the next change is immediate.
    frames.run();
    expect(frames.pending()).toBe(0);
    act(() => todos.set('late', { title: 'Late', done: false }));
    await flush();
    expect(screen.getByText('open:501')).toBeTruthy();
    expect(renders.query).toBe(before.query + 3);
  });
});
