import { useQuery } from '@topgun/react';
import { TODOS, type Todo } from './model.js';
import { timeAgo } from './timeAgo.js';

const BUCKET_MS = 60_000;
const BUCKETS = 30;

export function Dashboard() {
  const open = useQuery<Todo>(TODOS, { where: { done: false } });
  // Counted into minutes below: the order does not matter, so the query keeps none.
  const done = useQuery<Todo>(TODOS, { where: { done: true } });
  const recent = useQuery<Todo>(TODOS, { sort: { field: 'updatedAt', direction: 'desc' } });

  const people = new Map<string, { changes: number; last: number }>();
  for (const { value } of recent.data) {
    const entry = people.get(value.updatedBy) ?? { changes: 0, last: 0 };
    entry.changes++;
    entry.last = Math.max(entry.last, value.updatedAt);
    people.set(value.updatedBy, entry);
  }

  const now = Date.now();
  const start = Math.floor(now / BUCKET_MS) * BUCKET_MS - (BUCKETS - 1) * BUCKET_MS;
  const buckets = new Array<number>(BUCKETS).fill(0);
  for (const { value } of done.data) {
    if (value.completedAt === undefined || value.completedAt < start) continue;
    const index = Math.min(BUCKETS - 1, Math.floor((value.completedAt - start) / BUCKET_MS));
    buckets[index]!++;
  }
  const highest = Math.max(1, ...buckets);
  const series = buckets.map((count, index) => ({
    at: start + index * BUCKET_MS,
    x: index * 10 + 1,
    count,
  }));
  const total = open.data.length + done.data.length;

  return (
    <section className="dashboard" aria-label="Dashboard">
      <div className="stats">
        <Stat label="Open" value={open.data.length} testId="count-open" />
        <Stat label="Done" value={done.data.length} testId="count-done" />
        <Stat
          label="Completion"
          value={total === 0 ? '—' : `${Math.round((done.data.length / total) * 100)}%`}
          testId="completion"
        />
      </div>
      <div className="card">
        <h2>Completions, last 30 minutes</h2>
        <svg
          className="chart"
          viewBox={`0 0 ${BUCKETS * 10} 60`}
          preserveAspectRatio="none"
          role="img"
          aria-label="Completions per minute"
          data-testid="chart"
        >
          {series.map(({ at, x, count }) => {
            const height = (count / highest) * 54;
            return (
              <rect
                key={at}
                x={x}
                y={58 - height}
                width={8}
                height={Math.max(height, count > 0 ? 2 : 0.5)}
                rx={1.5}
                className={count > 0 ? 'bar' : 'bar empty'}
              >
                <title>{`${count} completed`}</title>
              </rect>
            );
          })}
        </svg>
        <p className="axis">
          <span>30 min ago</span>
          <span data-testid="chart-total">
            {buckets.reduce((sum, count) => sum + count, 0)} completed
          </span>
          <span>now</span>
        </p>
      </div>
      <div className="card">
        <h2>Activity by person</h2>
        {people.size === 0 ? (
          <p className="empty">No activity yet.</p>
        ) : (
          <ul className="people" data-testid="activity">
            {[...people].map(([name, { changes, last }]) => (
              <li key={name} data-testid="person" data-name={name}>
                <span className="avatar" aria-hidden="true">
                  {name.slice(0, 1)}
                </span>
                <span className="name">{name}</span>
                <span className="meta">
                  {changes} todo{changes === 1 ? '' : 's'} · {timeAgo(last)}
                </span>
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}

function Stat({ label, value, testId }: { label: string; value: number | string; testId: string }) {
  return (
    <div className="stat">
      <span className="value" data-testid={testId}>
        {value}
      </span>
      <span className="label">{label}</span>
    </div>
  );
}
