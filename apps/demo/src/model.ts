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

/** The demo's one map. */
export const TODOS = 'todos';
