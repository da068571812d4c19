import {
  type AggregateQuery,
  type AggregateRow,
  compileAggregate,
  type MessageOf,
  stableStringify,
} from '@topgun/core';
import { type AggregateHandle, type AggregateSnapshot, NO_ROWS } from './aggregateHandle.js';
import { Observers } from './observers.js';

/** What a server aggregate tells its registry. */
export interface ServerAggregateEvents<V> {
  /** It started following the server: subscribe it. */
  readonly onActive: (handle: ServerAggregate<V>) => void;
  /** It stopped: unsubscribe it. */
  readonly onIdle: (handle: ServerAggregate<V>) => void;
}

/**
 * A live aggregate of a map replicated by query, computed by the server: its rows are the
 * groups the server sent, kept in the query's order. `local` until the server's result has
 * arrived, `synced` while the connection that sent it lasts, `local` again (with the rows
 * last sent) once it is lost.
 */
export class ServerAggregate<V> implements AggregateHandle<V> {
  readonly #observers = new Observers(
    () => this.#activate(),
    () => this.#deactivate(),
  );
  #snapshot: AggregateSnapshot = { data: NO_ROWS, status: 'local', error: null };
  #active = false;
  /** The server's rows by group key, as last complete. */
  #rows = new Map<string, AggregateRow>();
  /** A result or update arriving in several frames, until its `last`. */
  #incoming: Map<string, AggregateRow> | undefined;
  readonly #compare: (a: AggregateRow, b: AggregateRow) => number;
  readonly #limit: number;
  readonly #events: ServerAggregateEvents<V>;

  /** @throws {QueryError} when the query is invalid. */
  constructor(
    readonly map: string,
    readonly query: AggregateQuery<V>,
    /** The id the server knows it by while it is followed. */
    readonly id: number,
    events: ServerAggregateEvents<V>,
  ) {
    const { compare, limit } = compileAggregate(query);
    this.#compare = compare;
    this.#limit = limit;
    this.#events = events;
  }

  getSnapshot = (): AggregateSnapshot => {
    this.#observers.read();
    return this.#snapshot;
  };

  subscribe = (listener: () => void): (() => void) => this.#observers.subscribe(listener);

  get active(): boolean {
    return this.#active;
  }

  dispose(): void {
    this.#observers.dispose();
  }

  /** Rows the server sent (`aggregate_rows`). */
  receive(message: MessageOf<'aggregate_rows'>): void {
    if (message.reset) this.#incoming = new Map();
    this.#incoming ??= new Map(this.#rows);
    const rows = this.#incoming;
    for (const key of message.left) rows.delete(key);
    for (const row of message.rows) {
      const held = this.#rows.get(row.key);
      // Unchanged figures keep their row object (a result sent again after a reconnect).
      rows.set(row.key, held !== undefined && sameRow(held, row) ? held : row);
    }
    if (!message.last) return;
    this.#rows = rows;
    this.#incoming = undefined;
    const data = [...rows.values()].sort(this.#compare).slice(0, this.#limit);
    const { data: shown } = this.#snapshot;
    const same = data.length === shown.length && data.every((row, index) => row === shown[index]);
    this.#update({ data: same ? shown : data, status: 'synced', error: null });
  }

  /** The server refused it, or ended it: told as its error; its rows are no longer current. */
  refused(error: Error): void {
    this.#incoming = undefined;
    this.#update({ status: 'local', error });
  }

  /** The connection is gone: the rows are the last the server sent. */
  disconnected(): void {
    this.#incoming = undefined;
    if (this.#snapshot.status === 'synced') this.#update({ status: 'local' });
  }

  /** (Another tab) The leader's snapshot of the same aggregate. */
  learn(snapshot: AggregateSnapshot): void {
    const held = new Map(this.#snapshot.data.map((row) => [row.key, row]));
    const data = snapshot.data.map((row) => {
      const kept = held.get(row.key);
      return kept !== undefined && sameRow(kept, row) ? kept : row;
    });
    this.#rows = new Map(data.map((row) => [row.key, row]));
    this.#update({ data, status: snapshot.status, error: snapshot.error });
  }

  #activate(): void {
    if (this.#active) return;
    this.#active = true;
    this.#events.onActive(this);
  }

  #deactivate(): void {
    if (!this.#active) return;
    this.#active = false;
    this.#events.onIdle(this);
  }

  #update(change: Partial<AggregateSnapshot>): void {
    const next = { ...this.#snapshot, ...change };
    const { data, status, error } = this.#snapshot;
    if (next.data === data && next.status === status && next.error === error) return;
    this.#snapshot = next;
    this.#observers.tell();
  }
}

/** Whether two rows of a group have the same figures (and keys). */
function sameRow(a: AggregateRow, b: AggregateRow): boolean {
  return stableStringify(a.value) === stableStringify(b.value);
}
