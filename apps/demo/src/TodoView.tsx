import type { SortKey } from '@topgun/core';
import { useClient, useOnRejected, useQuery } from '@topgun/react';
import { type FormEvent, useState } from 'react';
import { TODOS, type Todo } from './model.js';
import { timeAgo } from './timeAgo.js';
import { userName } from './user.js';

type Filter = 'all' | 'active' | 'done';
type Sort = 'newest' | 'oldest' | 'title';

const SORTS: Record<Sort, SortKey<Todo>> = {
  newest: { field: 'createdAt', direction: 'desc' },
  oldest: 'createdAt',
  title: 'title',
};

/** Most todos listed: a page, not the whole replica (which may hold a hundred thousand). */
const LIST_LIMIT = 200;

function newId(): string {
  return `todo-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export function TodoView() {
  const [filter, setFilter] = useState<Filter>('all');
  const [sort, setSort] = useState<Sort>('newest');
  const [draft, setDraft] = useState('');
  const [notice, setNotice] = useState<string | null>(null);
  // The map handle for writing: `useMap` would also re-render with a copy of every entry
  // (a hundred thousand after the dashboard's generator) on each change.
  const todos = useClient().getMap<Todo>(TODOS);
  const { data } = useQuery<Todo>(TODOS, {
    ...(filter === 'all' ? {} : { where: { done: filter === 'done' } }),
    sort: SORTS[sort],
    limit: LIST_LIMIT,
  });
  useOnRejected((rejected) =>
    setNotice(`The server refused a change to ${rejected.key}: ${rejected.message}`),
  );

  const add = (event: FormEvent) => {
    event.preventDefault();
    const title = draft.trim();
    if (title === '') return;
    const now = Date.now();
    todos.set(newId(), {
      title,
      done: false,
      createdAt: now,
      updatedAt: now,
      updatedBy: userName(),
    });
    setDraft('');
  };

  return (
    <section className="card" aria-label="Todos">
      <form className="add" onSubmit={add}>
        <input
          aria-label="New todo"
          data-testid="new-todo"
          placeholder="What needs to be done?"
          value={draft}
          onChange={(event) => setDraft(event.target.value)}
        />
        <button type="submit">Add</button>
      </form>
      <div className="toolbar">
        <fieldset className="segmented">
          <legend className="visually-hidden">Filter</legend>
          {(['all', 'active', 'done'] as const).map((option) => (
            <button
              key={option}
              type="button"
              aria-pressed={filter === option}
              onClick={() => setFilter(option)}
            >
              {option[0]!.toUpperCase() + option.slice(1)}
            </button>
          ))}
        </fieldset>
        <label className="sort">
          Sort
          <select
            aria-label="Sort"
            value={sort}
            onChange={(event) => setSort(event.target.value as Sort)}
          >
            <option value="newest">Newest first</option>
            <option value="oldest">Oldest first</option>
            <option value="title">Title</option>
          </select>
        </label>
      </div>
      {notice !== null ? (
        <p className="notice" role="alert">
          {notice}
          <button type="button" className="link" onClick={() => setNotice(null)}>
            dismiss
          </button>
        </p>
      ) : null}
      {data.length === 0 ? (
        <p className="empty">
          {filter === 'all' ? 'Nothing to do. Add a todo above.' : `No ${filter} todos.`}
        </p>
      ) : (
        <ul className="todos" data-testid="todo-list">
          {data.map(({ key, value }) => (
            <TodoItem
              key={key}
              todo={value}
              onToggle={() => {
                const now = Date.now();
                todos.update(key, {
                  done: !value.done,
                  updatedAt: now,
                  updatedBy: userName(),
                  completedAt: value.done ? undefined : now,
                });
              }}
              onRename={(title) =>
                todos.update(key, { title, updatedAt: Date.now(), updatedBy: userName() })
              }
              onDelete={() => todos.delete(key)}
            />
          ))}
        </ul>
      )}
      {data.length === LIST_LIMIT ? (
        <p className="more" data-testid="list-limit">
          Showing the first {LIST_LIMIT} todos.
        </p>
      ) : null}
    </section>
  );
}

function TodoItem({
  todo,
  onToggle,
  onRename,
  onDelete,
}: {
  todo: Todo;
  onToggle: () => void;
  onRename: (title: string) => void;
  onDelete: () => void;
}) {
  const [editing, setEditing] = useState(false);
  const finish = (title: string) => {
    setEditing(false);
    const trimmed = title.trim();
    if (trimmed !== '' && trimmed !== todo.title) onRename(trimmed);
  };
  return (
    <li className={todo.done ? 'todo done' : 'todo'} data-testid="todo" data-title={todo.title}>
      <input
        type="checkbox"
        checked={todo.done}
        onChange={onToggle}
        aria-label={`Complete ${todo.title}`}
      />
      <div className="body">
        {editing ? (
          <input
            className="edit"
            aria-label="Edit title"
            defaultValue={todo.title}
            // biome-ignore lint/a11y/noAutofocus: the field appears because the user asked to edit
            autoFocus
            onBlur={(event) => finish(event.target.value)}
            onKeyDown={(event) => {
              if (event.key === 'Enter') finish(event.currentTarget.value);
              if (event.key === 'Escape') setEditing(false);
            }}
          />
        ) : (
          <button
            type="button"
            className="title"
            onDoubleClick={() => setEditing(true)}
            title="Double-click to edit"
          >
            {todo.title}
          </button>
        )}
        <span className="meta" data-testid="changed-by">
          {todo.updatedBy} · {timeAgo(todo.updatedAt)}
        </span>
      </div>
      <button
        type="button"
        className="icon"
        aria-label={`Edit ${todo.title}`}
        onClick={() => setEditing(true)}
      >
        ✎
      </button>
      <button
        type="button"
        className="icon danger"
        aria-label={`Delete ${todo.title}`}
        onClick={onDelete}
      >
        ✕
      </button>
    </li>
  );
}
