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
