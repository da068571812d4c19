import { type UseQueryStatus, useAggregate } from '@topgun/react';
import { GenerateTodos } from './GenerateTodos.js';
import { TODOS, type Todo } from './model.js';
import { QueryStatus } from './QueryStatus.js';
import { useReplicaLoaded } from './replicaLoaded.js';
import { timeAgo } from './timeAgo.js';
import { MINUTE_MS, useMinute } from './useMinute.js';

/** Minutes the chart shows, the current one last. */
const MINUTES = 30;
/** People listed, the busiest first; the others are summed up in a line. */
const PEOPLE_SHOWN = 10;

/**
 * Live figures over every todo, counted on this device from the local replica by aggregate
 * queries: they work offline and move with each change, local or remote, without loading
 * the todos themselves.
 */
export function Dashboard() {
  // Figures over a replica still loading would count too few: none are shown until it is.
  const loaded = useReplicaLoaded();
  return (
    <section className="dashboard" aria-label="Dashboard">
      {loaded ? <Figures /> : <p className="empty">Loading the todos stored on this device…</p>}
      <GenerateTodos />
    </section>
  );
}

function Figures() {
  const minute = useMinute();
  // Whole minutes, so the query changes once a minute (not on every render).
  const since = minute - (MINUTES - 1) * MINUTE_MS;
  const counts = useAggregate<Todo, 'done', 'todos'>(TODOS, {
    groupBy: { done: 'done' },
    aggregate: { todos: 'count' },
  });
  const completions = useAggregate<Todo, 'minute', 'completed'>(TODOS, {
    where: { done: true, completedAt: { gte: since } },
    groupBy: { minute: { field: 'completedAt', bucket: '1m' } },
    aggregate: { completed: 'count' },
  });
  const people = useAggregate<Todo, 'person', 'todos' | 'last'>(TODOS, {
    groupBy: { person: 'updatedBy' },
    aggregate: { todos: 'count', last: { max: 'updatedAt' } },
    // By how much they did: an order that holds still while the figures move.
    sort: [
      { field: 'todos', direction: 'desc' },
      { field: 'last', direction: 'desc' },
    ],
  });

  const countOf = (done: boolean) =>
    Number(counts.data.find(({ value }) => value.done === done)?.value.todos ?? 0);
  const open = countOf(false);
  const done = countOf(true);
  const total = open + done;

  const perMinute = new Array<number>(MINUTES).fill(0);
  for (const { value } of completions.data) {
    // A completion stamped ahead of this clock (another device's) counts in the last minute.
    const index = Math.min(MINUTES - 1, (Number(value.minute) - since) / MINUTE_MS);
    perMinute[index]! += Number(value.completed);
  }

  const results = [counts, completions, people];
  const errors = [
    ...new Set(results.flatMap(({ error }) => (error === null ? [] : [error.message]))),
  ];
  const status: UseQueryStatus =
    errors.length > 0
      ? 'error'
      : results.every((result) => result.status === 'synced')
        ? 'synced'
        : 'local';

  return (
    <>
      <div className="dashboard-head">
        <p className="note">
          Counted live on this device over{' '}
          <strong className="total" data-testid="count-total" data-value={total}>
            {`${total.toLocaleString()} todo${total === 1 ? '' : 's'}`}
          </strong>
          , offline too.
        </p>
        <QueryStatus status={status} testId="dashboard-status" />
      </div>
      {errors.map((message) => (
        <p key={message} className="notice" role="alert">
          {message}
        </p>
      ))}
      <div className="stats">
        <Stat label="Open" value={open} testId="count-open" />
        <Stat label="Done" value={done} testId="count-done" />
        <Stat
          label="Completion"
          value={total === 0 ? '—' : `${Math.round((done / total) * 100)}%`}
          testId="completion"
        />
      </div>
      <CompletionsChart perMinute={perMinute} since={since} />
      <ActivityByPerson
        people={people.data.map(({ value }) => ({
          name: String(value.person),
          todos: Number(value.todos),
          last: Number(value.last),
        }))}
      />
    </>
  );
}

function Stat({ label, value, testId }: { label: string; value: number | string; testId: string }) {
  return (
    <div className="stat">
      <span className="value" data-testid={testId} data-value={value}>
        {value.toLocaleString()}
      </span>
      <span className="label">{label}</span>
    </div>
  );
}

function CompletionsChart({ perMinute, since }: { perMinute: readonly number[]; since: number }) {
  const highest = Math.max(1, ...perMinute);
  const total = perMinute.reduce((sum, count) => sum + count, 0);
  return (
    <div className="card">
      <h2>Completions, last {MINUTES} minutes</h2>
      <svg
        className="chart"
        viewBox={`0 0 ${MINUTES * 10} 60`}
        preserveAspectRatio="none"
        role="img"
        aria-label="Completions per minute"
        data-testid="chart"
      >
        {perMinute.map((count, index) => {
          const at = since + index * MINUTE_MS;
          const height = (count / highest) * 54;
          return (
            <rect
              key={at}
              x={index * 10 + 1}
              y={58 - height}
              width={8}
              height={Math.max(height, count > 0 ? 2 : 0.5)}
              rx={1.5}
              className={count > 0 ? 'bar' : 'bar empty'}
              data-testid="chart-bar"
              data-minute={at}
              data-count={count}
            >
              <title>{`${count.toLocaleString()} completed at ${new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`}</title>
            </rect>
          );
        })}
      </svg>
      <p className="axis">
        <span>{MINUTES} min ago</span>
        <span data-testid="chart-total" data-value={total}>
          {total.toLocaleString()} completed
        </span>
        <span>now</span>
      </p>
    </div>
  );
}

interface Person {
  readonly name: string;
  readonly todos: number;
  readonly last: number;
}

function ActivityByPerson({ people }: { people: readonly Person[] }) {
  const others = people.slice(PEOPLE_SHOWN);
  const othersTodos = others.reduce((sum, { todos }) => sum + todos, 0);
  return (
    <div className="card">
      <h2>Activity by person</h2>
      {people.length === 0 ? (
        <p className="empty">No activity yet.</p>
      ) : (
        <ul className="people" data-testid="activity">
          {people.slice(0, PEOPLE_SHOWN).map(({ name, todos, last }) => (
            <li key={name} data-testid="person" data-name={name} data-todos={todos}>
              <span className="avatar" aria-hidden="true">
                {name.slice(0, 1)}
              </span>
              <span className="name">{name}</span>
              <span className="meta">
                {todos.toLocaleString()} todo{todos === 1 ? '' : 's'} · {timeAgo(last)}
              </span>
            </li>
          ))}
        </ul>
      )}
      {others.length > 0 ? (
        <p className="more" data-testid="people-more">
          {`and ${others.length.toLocaleString()} more ${others.length === 1 ? 'person' : 'people'}, with ${othersTodos.toLocaleString()} todo${othersTodos === 1 ? '' : 's'}`}
        </p>
      ) : null}
    </div>
  );
}
