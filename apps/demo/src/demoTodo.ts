import type { Todo } from './model.js';

/** Who the generated todos are by, with how much each of them does. */
const PEOPLE: readonly (readonly [name: string, weight: number])[] = [
  ['Amara', 9],
  ['Diego', 7],
  ['Hana', 6],
  ['Jonas', 5],
  ['Leila', 4],
  ['Mateo', 3],
  ['Priya', 2],
  ['Sven', 1],
];
const TOTAL_WEIGHT = PEOPLE.reduce((sum, [, weight]) => sum + weight, 0);

/** What teams write down. */
const TITLES = [
  'Review the Q3 budget',
  'Draft the onboarding guide',
  'Fix the flaky login test',
  'Book the venue for the offsite',
  'Write the release notes',
  'Renew the supplier contract',
  'Update the pricing page',
  'Tune the sync server alerts',
  'Prepare the design review',
  'Schedule customer interviews',
  'Send the quarterly report',
  'Plan the office move',
  'Answer the support backlog',
  'Upgrade the staging database',
  'Proofread the blog post',
  'Order new laptops',
  'Triage the open bugs',
  'Record the product demo',
  'Clean up the feature flags',
  'Sign the partner agreement',
  'Translate the help center',
  'Rotate the API keys',
  'Collect feedback on the beta',
  'Archive last year’s invoices',
];

const DAY_MS = 86_400_000;
/** How far back generated todos were created. */
const CREATED_WITHIN_MS = 14 * DAY_MS;
/** Done todos completed so recently that the dashboard's chart (30 minutes) shows them. */
const RECENT_MS = 30 * 60_000;
const DONE_SHARE = 0.45;
const RECENT_SHARE_OF_DONE = 0.25;

function pick<T>(items: readonly T[], random: () => number): T {
  return items[Math.floor(random() * items.length)]!;
}

function person(random: () => number): string {
  let left = random() * TOTAL_WEIGHT;
  for (const [name, weight] of PEOPLE) {
    left -= weight;
    if (left < 0) return name;
  }
  return PEOPLE[0]![0];
}

/**
 * A todo that looks like one people wrote: created in the last two weeks by one of a team
 * (some busier than others), almost half of them done, a quarter of those in the last 30
 * minutes. A done todo was last changed when it was completed, as the Todos view does it.
 */
export function demoTodo(now: number, random: () => number = Math.random): Todo {
  const title = pick(TITLES, random);
  const createdAt = now - Math.floor(random() * CREATED_WITHIN_MS);
  const updatedBy = person(random);
  if (random() >= DONE_SHARE) {
    const updatedAt = createdAt + Math.floor(random() * (now - createdAt));
    return { title, done: false, createdAt, updatedAt, updatedBy };
  }
  const completedAt =
    random() < RECENT_SHARE_OF_DONE
      ? now - Math.floor(random() * RECENT_MS)
      : createdAt + Math.floor(random() * Math.max(0, now - RECENT_MS - createdAt));
  return {
    title,
    done: true,
    createdAt: Math.min(createdAt, completedAt),
    updatedAt: completedAt,
    updatedBy,
    completedAt,
  };
}
