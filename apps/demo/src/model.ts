/** A todo as stored in the `todos` map. */
export interface Todo {
  title: string;
  done: boolean;
  createdAt: number;
  updatedAt: number;
  /** Who changed it last. */
  updatedBy: string;
  /** When it was last completed (ms), if it is done. */
  completedAt?: number;
}

/** The todos map, replicated whole. */
export const TODOS = 'todos';

/** What happened, in an activity event. */
export const EVENT_KINDS = ['created', 'completed', 'commented', 'assigned', 'reopened'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** An activity event as stored in the `events` map. */
export interface ActivityEvent {
  /** When it happened (ms since the epoch). */
  at: number;
  /** Who did it. */
  actor: string;
  kind: EventKind;
  /** What they did, after their name: `completed “Ship TopGun”`. */
  text: string;
}

/**
 * The activity log: too large for a browser (`scripts/seed-events.mjs` writes a million), so
 * it is replicated by query (see `client.ts`).
 */
export const EVENTS = 'events';
