/** What the bench's events look like (`src/queryMode.bench.ts`), and the window it opens. */
export interface Event {
  kind: string;
  at: number;
  user: string;
  amount: number;
}

/** A `where` + `sort` + `limit 50` window: the newest orders (5% of the events). */
export const WINDOW = {
  where: { kind: 'order' },
  sort: [{ field: 'at', direction: 'desc' }],
  limit: 50,
} as const;
