import type { SyncMarks } from '../replica/syncMarks.js';

/**
 * For one session with the server: which walk of each map resumes from the map's cursor (its
 * first of the session; those after it walk), and which cursors the server's changes move on
 * (those of maps this session reconciled, which hold every change before). See
 * `specifications/protocol.md`, "Resuming from a cursor".
 */
export class ResumeCursors {
  readonly #resumed = new Set<string>();
  readonly #current = new Set<string>();
  readonly #marks: SyncMarks;

  constructor(marks: SyncMarks) {
    this.#marks = marks;
  }

  /** The cursor the walk of `map` starting now resumes from, if it resumes. */
  take(map: string): string | undefined {
    const cursor = this.#marks.cursor(map);
    if (this.#resumed.has(map) || this.#marks.get(map) === undefined) return undefined;
    return cursor;
  }

  /** A resumed walk of `map` ended (served or refused): the map's next walks walk. */
  spent(map: string): void {
    this.#resumed.add(map);
  }

  /** A walk of `map` ended apart: what the server's changes say no longer vouches for it. */
  apart(map: string): void {
    this.#current.delete(map);
  }

  /** A walk of `map` converged: its mark and cursor (if the server gave one) are stored. */
  synced(map: string, syncedAt: number, cursor: string | undefined): void {
    this.#marks.set(map, syncedAt, cursor);
    if (cursor === undefined) this.#current.delete(map);
    else this.#current.add(map);
  }

  /** The server's changes of `map`, merged, end at `cursor`. */
  advance(map: string, cursor: string): void {
    if (this.#current.has(map)) this.#marks.advance(map, cursor);
  }

  /** The server reset `map`: its next walk starts from nothing. */
  reset(map: string): void {
    this.#marks.forget(map);
    this.#current.delete(map);
  }

  /** The session is gone. */
  clear(): void {
    this.#resumed.clear();
    this.#current.clear();
  }
}
