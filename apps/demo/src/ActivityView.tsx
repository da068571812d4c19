import { MAX_WINDOW_ROWS, type SortKey } from '@topgun/core';
import { useClient, useQuery, useSyncStatus } from '@topgun/react';
import { type FormEvent, useCallback, useRef, useState, useSyncExternalStore } from 'react';
import { type ActivityEvent, EVENT_KINDS, EVENTS, type EventKind } from './model.js';
import { QueryStatus } from './QueryStatus.js';
import { timeAgo } from './timeAgo.js';
import { useInfiniteScroll } from './useInfiniteScroll.js';
import { userName } from './user.js';

const NEWEST_FIRST: SortKey<ActivityEvent> = { field: 'at', direction: 'desc' };
/** Rows of the dashboard window, and of each page of the full list. */
const PAGE = 50;
/** The dashboard window is pinned: it answers after a reload without network. */
const PINNED = { offline: true } as const;
const KIND_STORAGE_KEY = 'topgun-demo:activity-kind';

function storedKind(): EventKind {
  const stored = localStorage.getItem(KIND_STORAGE_KEY);
  return EVENT_KINDS.find((kind) => kind === stored) ?? 'completed';
}

function newId(): string {
  return `ev-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * The activity log, a map too large for the browser, seen through two windows: the latest
 * events of one kind (pinned for offline use) and the recent events, newest first, a page at a
 * time. The browser holds what they need (and a budget of events from windows left behind).
 */
export function ActivityView() {
  const client = useClient();
  const events = client.getMap<ActivityEvent>(EVENTS);
  const held = useSyncExternalStore(events.subscribe, () => events.size);
  return (
    <section className="activity" aria-label="Activity">
      <AddEvent onAdd={(event) => events.set(newId(), event)} />
      <p className="held" data-testid="events-held">
        This browser holds <strong>{held.toLocaleString()}</strong> event{held === 1 ? '' : 's'} of
        the log: what these views need, never the whole map.
      </p>
      <LatestOfKind />
      <AllActivity />
    </section>
  );
}

function AddEvent({ onAdd }: { onAdd: (event: ActivityEvent) => void }) {
  const [kind, setKind] = useState<EventKind>('commented');
  const [text, setText] = useState('');
  const add = (event: FormEvent) => {
    event.preventDefault();
    const trimmed = text.trim();
    if (trimmed === '') return;
    onAdd({ at: Date.now(), actor: userName(), kind, text: trimmed });
    setText('');
  };
  return (
    <form className="card add add-event" onSubmit={add} aria-label="Add an event">
      <select
        aria-label="Kind of the new event"
        data-testid="new-event-kind"
        value={kind}
        onChange={(event) => setKind(event.target.value as EventKind)}
      >
        {EVENT_KINDS.map((option) => (
          <option key={option} value={option}>
            {option}
          </option>
        ))}
      </select>
      <input
        aria-label="What happened"
        data-testid="new-event"
        placeholder="What happened?"
        value={text}
        onChange={(event) => setText(event.target.value)}
      />
      <button type="submit">Add</button>
    </form>
  );
}

/** The dashboard window: the latest events of one kind, kept for offline use. */
function LatestOfKind() {
  const [kind, setKind] = useState(storedKind);
  const { data, status } = useQuery<ActivityEvent>(
    EVENTS,
    { where: { kind }, sort: NEWEST_FIRST, limit: PAGE },
    PINNED,
  );
  const choose = (next: EventKind) => {
    localStorage.setItem(KIND_STORAGE_KEY, next);
    setKind(next);
  };
  return (
    <section className="card" aria-labelledby="latest-heading">
      <div className="card-head">
        <h2 id="latest-heading">Latest {PAGE}</h2>
        <select
          aria-label="Kind of the latest events"
          data-testid="window-kind"
          value={kind}
          onChange={(event) => choose(event.target.value as EventKind)}
        >
          {EVENT_KINDS.map((option) => (
            <option key={option} value={option}>
              {option}
            </option>
          ))}
        </select>
        <QueryStatus status={status} testId="window-status" />
      </div>
      <p className="note">Kept on this device: it still shows after a reload without network.</p>
      {data.length === 0 ? (
        <p className="empty">{status === 'synced' ? `No ${kind} events.` : 'Loading…'}</p>
      ) : (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard
        <section className="window" aria-label={`Latest ${kind} events`} tabIndex={0}>
          <ol className="events" data-testid="window-list">
            {data.map(({ key, value }) => (
              <EventRow key={key} id={key} event={value} testId="window-event" />
            ))}
          </ol>
        </section>
      )}
    </section>
  );
}

const DAY_MS = 86_400_000;
/**
 * How far back the full list reaches. A query of every event would make the server index the
 * whole map: for a million events, all of one connection's index budget
 * (`maxQueryIndexRowsPerConnection`), and the window above would be refused. A window shows
 * at most `MAX_WINDOW_ROWS` rows anyway.
 */
const LIST_DAYS = 30;

/** The list's start: `LIST_DAYS` before today (UTC), so that every client shares one index. */
function listStart(): number {
  return Math.floor(Date.now() / DAY_MS) * DAY_MS - LIST_DAYS * DAY_MS;
}

/** Every recent event, newest first: a page more whenever the end of the list comes near. */
function AllActivity() {
  const [since] = useState(listStart);
  const { data, status, hasMore, loadMore } = useQuery<ActivityEvent>(EVENTS, {
    where: { at: { gte: since } },
    sort: NEWEST_FIRST,
    limit: PAGE,
  });
  const online = useSyncStatus((sync) => sync.connection === 'online');
  // How many rows the list has asked for (the query's limit as `loadMore` grew it).
  const [asked, setAsked] = useState(PAGE);
  const waiting = hasMore && data.length < asked;
  const atCap = data.length >= MAX_WINDOW_ROWS;
  const sentinel = useRef<HTMLParagraphElement>(null);
  const next = useCallback(() => {
    setAsked((rows) => Math.min(rows + PAGE, MAX_WINDOW_ROWS));
    loadMore();
  }, [loadMore]);
  useInfiniteScroll(sentinel, hasMore && !waiting && !atCap, next);

  const end = atCap
    ? `The newest ${MAX_WINDOW_ROWS.toLocaleString()} events: a window goes no further.`
    : waiting
      ? 'Loading more…'
      : hasMore
        ? ''
        : status === 'synced'
          ? `That is everything from the last ${LIST_DAYS} days.`
          : online
            ? 'Loading…'
            : 'That is all this device holds offline.';
  return (
    <section className="card" aria-labelledby="all-heading">
      <div className="card-head">
        <h2 id="all-heading">All activity</h2>
        <span className="count">
          <span data-testid="activity-count">{data.length.toLocaleString()} shown</span> · last{' '}
          {LIST_DAYS} days
        </span>
        <QueryStatus status={status} testId="activity-status" />
      </div>
      {data.length > 0 ? (
        <ol className="events" data-testid="activity-list">
          {data.map(({ key, value }) => (
            <EventRow key={key} id={key} event={value} testId="event" />
          ))}
        </ol>
      ) : null}
      <p
        ref={sentinel}
        className="more"
        data-testid="activity-end"
        data-state={waiting ? 'loading' : hasMore ? 'more' : 'end'}
        aria-live="polite"
      >
        {end}
      </p>
    </section>
  );
}

function EventRow({ id, event, testId }: { id: string; event: ActivityEvent; testId: string }) {
  return (
    <li className="event" data-testid={testId} data-key={id} data-at={event.at}>
      <span className="avatar" aria-hidden="true">
        {event.actor.slice(0, 1)}
      </span>
      <div className="body">
        <span className="line">
          <strong>{event.actor}</strong> {event.text}
        </span>
        <span className="meta">
          <span className={`kind kind-${event.kind}`} data-testid="event-kind">
            {event.kind}
          </span>
          <time dateTime={new Date(event.at).toISOString()} title={new Date(event.at).toString()}>
            {timeAgo(event.at)}
          </time>
        </span>
      </div>
    </li>
  );
}
