/** The benchmark's record shape, as in the issue: `{ title, done, n }`. */
export interface Todo {
  title: string;
  done: boolean;
  n: number;
}

/** Key `i` of the workload. */
export function keyOf(i: number): string {
  return `todo-${i}`;
}

/** Value `i` of the workload. */
export function todoOf(i: number): Todo {
  return { title: `Task number ${i}`, done: i % 3 === 0, n: i };
}

/**
 * Key `i` of the browser bench, zero-padded to six digits (`todo-000042`) as in the issue, so
 * that keys sort like their numbers up to 1 000 000 records.
 */
export function paddedKeyOf(i: number): string {
  return `todo-${String(i).padStart(6, '0')}`;
}
