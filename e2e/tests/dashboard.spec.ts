import type { Page } from '@playwright/test';
import { addTodo, consoleErrors, expect, openDemo, test } from './fixtures.js';

const MINUTE_MS = 60_000;
/** How soon a change made in one browser must show on another's dashboard. */
const WITHIN_A_SECOND = { timeout: 1_000 };

/** The chart's bars, oldest minute first: the minute each stands for and its completions. */
function chartBars(page: Page): Promise<Array<{ minute: number; count: number }>> {
  return page.getByTestId('chart-bar').evaluateAll((bars) =>
    bars.map((bar) => ({
      minute: Number(bar.getAttribute('data-minute')),
      count: Number(bar.getAttribute('data-count')),
    })),
  );
}

/** A figure of the dashboard as a number (the text is formatted: `12,345`). */
async function figure(page: Page, testId: string): Promise<number> {
  return Number(await page.getByTestId(testId).getAttribute('data-value'));
}

test('a todo ticked in one browser moves the counts and the chart in another within a second', async ({
  browser,
  demo,
}) => {
  const ada = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await openDemo(ada, demo.url, 'Ada');
  await openDemo(bob, demo.url, 'Bob');
  await addTodo(bob, 'Water the plants');
  await addTodo(bob, 'Call the bank');
  await expect(ada.getByTestId('todo')).toHaveCount(2);
  // Over a replica already loaded, the figures are there as soon as the view opens.
  await ada.getByRole('button', { name: 'Dashboard', exact: true }).click();
  expect(await ada.getByTestId('count-open').count()).toBe(1);
  await expect(ada.getByTestId('count-open')).toHaveText('2');
  await expect(ada.getByTestId('count-done')).toHaveText('0');
  await expect(ada.getByTestId('chart-total')).toHaveText('0 completed');
  await expect(ada.getByTestId('dashboard-status')).toHaveAttribute('data-state', 'synced');

  const tickedFrom = Date.now();
  await bob.getByLabel('Complete Water the plants').check();
  const tickedBy = Date.now();
  await expect(ada.getByTestId('count-done')).toHaveText('1', WITHIN_A_SECOND);
  await expect(ada.getByTestId('count-open')).toHaveText('1', WITHIN_A_SECOND);
  await expect(ada.getByTestId('completion')).toHaveText('50%', WITHIN_A_SECOND);
  await expect(ada.getByTestId('chart-total')).toHaveText('1 completed', WITHIN_A_SECOND);
  // One bar moved: the minute it was ticked in, the last of the chart (or the one before,
  // when a minute began since).
  const bars = await chartBars(ada);
  expect(bars).toHaveLength(30);
  const moved = bars.flatMap((bar, index) => (bar.count > 0 ? [{ ...bar, index }] : []));
  expect(moved).toHaveLength(1);
  expect(moved[0]!.count).toBe(1);
  expect(moved[0]!.index).toBeGreaterThanOrEqual(28);
  expect([tickedFrom, tickedBy].map((at) => at - (at % MINUTE_MS))).toContain(moved[0]!.minute);
  await expect(ada.getByTestId('person').filter({ hasText: 'Bob' })).toContainText('2 todos');

  // Unticked: it leaves the counts and the chart again.
  await bob.getByLabel('Complete Water the plants').uncheck();
  await expect(ada.getByTestId('count-done')).toHaveText('0', WITHIN_A_SECOND);
  await expect(ada.getByTestId('count-open')).toHaveText('2', WITHIN_A_SECOND);
  await expect(ada.getByTestId('chart-total')).toHaveText('0 completed', WITHIN_A_SECOND);
  expect((await chartBars(ada)).every(({ count }) => count === 0)).toBe(true);
  expect(consoleErrors(ada)).toEqual([]);
  expect(consoleErrors(bob)).toEqual([]);
});

test('offline, the dashboard keeps counting from the local replica, across a reload', async ({
  browser,
  demo,
}) => {
  const context = await browser.newContext();
  const todos = await context.newPage();
  await openDemo(todos, demo.url, 'Ada');
  await addTodo(todos, 'Water the plants');
  await addTodo(todos, 'Call the bank');
  await expect(todos.getByTestId('pending')).toHaveText('All changes saved');
  // The offline app shell is in place once the service worker controls the page.
  await todos.evaluate(async () => {
    await navigator.serviceWorker.ready;
  });
  // A second tab of the same browser shows the dashboard.
  const dashboard = await context.newPage();
  await openDemo(dashboard, demo.url, 'Ada', '#dashboard');
  await expect(dashboard.getByTestId('count-open')).toHaveText('2');

  await context.setOffline(true);
  for (const page of [todos, dashboard])
    await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'offline');
  await todos.getByLabel('Complete Water the plants').check();
  await expect(todos.getByTestId('pending')).toContainText('1 change waiting to sync');
  await expect(dashboard.getByTestId('count-done')).toHaveText('1', WITHIN_A_SECOND);
  await expect(dashboard.getByTestId('count-open')).toHaveText('1', WITHIN_A_SECOND);
  await expect(dashboard.getByTestId('chart-total')).toHaveText('1 completed', WITHIN_A_SECOND);

  // Reloaded without network: the same figures, from what this browser stored, and said to be
  // this device's (the server has not confirmed them).
  await dashboard.reload();
  await expect(dashboard.getByTestId('count-done')).toHaveText('1');
  await expect(dashboard.getByTestId('count-open')).toHaveText('1');
  await expect(dashboard.getByTestId('chart-total')).toHaveText('1 completed');
  await expect(dashboard.getByTestId('dashboard-status')).toHaveAttribute('data-state', 'local');
  await expect(dashboard.getByTestId('person').filter({ hasText: 'Ada' })).toContainText('2 todos');

  // Back online: confirmed, and the tick reaches another browser.
  await context.setOffline(false);
  await expect(todos.getByTestId('pending')).toHaveText('All changes saved');
  await expect(dashboard.getByTestId('dashboard-status')).toHaveAttribute('data-state', 'synced');
  const bob = await (await browser.newContext()).newPage();
  await openDemo(bob, demo.url, 'Bob', '#dashboard');
  await expect(bob.getByTestId('count-done')).toHaveText('1');
  await expect(bob.getByTestId('chart-total')).toHaveText('1 completed');
  for (const page of [todos, dashboard, bob]) expect(consoleErrors(page)).toEqual([]);
});

test('the generator writes todos slice by slice, the figures follow, and they reach the server', async ({
  browser,
  demo,
}) => {
  // 100,000 by default; fewer here (`?generate=`), enough for many slices.
  const count = 3_000;
  const page = await (await browser.newContext()).newPage();
  await openDemo(page, demo.url, 'Ada', `?generate=${count}#dashboard`);
  await expect(page.getByTestId('count-total')).toHaveAttribute('data-value', '0');
  // Every total the page shows on the way.
  await page.getByTestId('count-total').evaluate((total) => {
    const shown: number[] = [];
    (window as Window & { shownTotals?: number[] }).shownTotals = shown;
    new MutationObserver(() => shown.push(Number(total.getAttribute('data-value')))).observe(
      total,
      { attributes: true, attributeFilter: ['data-value'] },
    );
  });

  await page
    .getByRole('button', { name: `Generate ${count.toLocaleString('en-US')} todos` })
    .click();
  await expect(page.getByTestId('generate-progress')).toHaveAttribute('data-state', 'done');
  await expect(page.getByTestId('generate-progress')).toContainText(
    `${count.toLocaleString('en-US')} / ${count.toLocaleString('en-US')} written`,
  );
  await expect(page.getByTestId('count-total')).toHaveAttribute('data-value', String(count));
  // The figures kept up: the page rendered totals between none and all, only ever growing.
  const shown = await page.evaluate(
    () => (window as Window & { shownTotals?: number[] }).shownTotals ?? [],
  );
  expect(shown.filter((total) => total > 0 && total < count).length).toBeGreaterThanOrEqual(3);
  expect(shown).toEqual([...shown].sort((a, b) => a - b));

  // They look like a team's todos: open and done, some completed in the last half hour,
  // spread over people.
  const [open, done] = [await figure(page, 'count-open'), await figure(page, 'count-done')];
  expect(open + done).toBe(count);
  expect(open).toBeGreaterThan(0);
  expect(done).toBeGreaterThan(0);
  expect(await figure(page, 'chart-total')).toBeGreaterThan(0);
  expect(await figure(page, 'chart-total')).toBeLessThan(done);
  const people = await page
    .getByTestId('person')
    .evaluateAll((items) => items.map((item) => Number(item.getAttribute('data-todos'))));
  expect(people.length).toBeGreaterThanOrEqual(5);
  expect(people.reduce((sum, todos) => sum + todos, 0)).toBe(count);

  // Through the server to a fresh browser, on a phone-sized screen that does not overflow.
  await expect(page.getByTestId('pending')).toHaveText('All changes saved', { timeout: 30_000 });
  const phone = await (
    await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true })
  ).newPage();
  await openDemo(phone, demo.url, 'Mo', '#dashboard');
  await expect(phone.getByTestId('count-total')).toHaveAttribute('data-value', String(count));
  await expect(phone.getByTestId('count-done')).toHaveAttribute('data-value', String(done));
  expect(await phone.evaluate(() => document.documentElement.scrollWidth > window.innerWidth)).toBe(
    false,
  );
  expect(consoleErrors(page)).toEqual([]);
  expect(consoleErrors(phone)).toEqual([]);
});
