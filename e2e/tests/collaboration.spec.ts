import type { Browser } from '@playwright/test';
import { addTodo, consoleErrors, expect, openDemo, test, titles } from './fixtures.js';

test('two users see each other’s adds, edits and deletes live', async ({ browser, demo }) => {
  const ada = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await openDemo(ada, demo.url, 'Ada');
  await openDemo(bob, demo.url, 'Bob');

  await addTodo(ada, 'Plan the offsite');
  await expect(bob.getByTestId('todo').filter({ hasText: 'Plan the offsite' })).toBeVisible({
    timeout: 1_000,
  });
  await expect(bob.getByTestId('changed-by')).toContainText('Ada');

  await bob.getByRole('button', { name: 'Edit Plan the offsite' }).click();
  await bob.getByLabel('Edit title').fill('Plan the offsite in May');
  await bob.getByLabel('Edit title').press('Enter');
  await expect(ada.getByTestId('todo').filter({ hasText: 'Plan the offsite in May' })).toBeVisible({
    timeout: 1_000,
  });
  await expect(ada.getByTestId('changed-by')).toContainText('Bob', { timeout: 1_000 });

  await ada.getByRole('checkbox', { name: 'Complete Plan the offsite in May' }).check();
  await expect(bob.getByRole('checkbox', { name: 'Complete Plan the offsite in May' })).toBeChecked(
    { timeout: 1_000 },
  );

  await bob.getByRole('button', { name: 'Delete Plan the offsite in May' }).click();
  await expect(ada.getByTestId('todo')).toHaveCount(0, { timeout: 1_000 });
  expect(consoleErrors(ada)).toEqual([]);
  expect(consoleErrors(bob)).toEqual([]);
});

test('edits made offline survive a reload without network and reach the other user', async ({
  browser,
  demo,
}) => {
  const contextA = await browser.newContext();
  const ada = await contextA.newPage();
  const bob = await (await browser.newContext()).newPage();
  await openDemo(ada, demo.url, 'Ada');
  await openDemo(bob, demo.url, 'Bob');
  // The offline app shell is in place once the service worker controls the page.
  await ada.evaluate(async () => {
    await navigator.serviceWorker.ready;
  });
  await ada.reload();
  await expect(ada.getByTestId('connection')).toHaveAttribute('data-state', 'online');

  await contextA.setOffline(true);
  await expect(ada.getByTestId('connection')).toHaveAttribute('data-state', 'offline');
  await addTodo(ada, 'Written on the train');
  await addTodo(ada, 'Also offline');
  await expect(ada.getByTestId('pending')).toContainText('waiting to sync');

  await ada.reload();
  await expect(ada.getByTestId('todo').filter({ hasText: 'Written on the train' })).toBeVisible();
  await expect(ada.getByTestId('todo').filter({ hasText: 'Also offline' })).toBeVisible();
  await expect(bob.getByTestId('todo')).toHaveCount(0);

  await contextA.setOffline(false);
  await expect(ada.getByTestId('connection')).toHaveAttribute('data-state', 'online');
  await expect(bob.getByTestId('todo').filter({ hasText: 'Written on the train' })).toBeVisible();
  await expect(bob.getByTestId('todo').filter({ hasText: 'Also offline' })).toBeVisible();
  await expect(ada.getByTestId('pending')).toHaveText('All changes saved');
});

test('concurrent offline edits of one todo converge to the same winner everywhere', async ({
  browser,
  demo,
}) => {
  const { ada, bob, setOffline } = await adaAndBobShare(browser, demo.url, 'Shared');
  await setOffline(true);
  for (const [page, title] of [
    [ada, 'Ada’s version'],
    [bob, 'Bob’s version'],
  ] as const) {
    await page.getByRole('button', { name: 'Edit Shared' }).click();
    await page.getByLabel('Edit title').fill(title);
    await page.getByLabel('Edit title').press('Enter');
  }
  await setOffline(false);
  await expect
    .poll(async () => {
      const [a, b] = await Promise.all([titles(ada), titles(bob)]);
      return a.length === 1 && a[0] === b[0] ? a[0] : `diverged: ${a} / ${b}`;
    })
    .toMatch(/’s version$/);
});

test('a todo ticked in one browser while renamed offline in another keeps both changes', async ({
  browser,
  demo,
}) => {
  const { ada, bob, setOffline } = await adaAndBobShare(browser, demo.url, 'Draft the spec');
  // Both offline: neither sees the other's edit before both are made.
  await setOffline(true);
  await ada.getByLabel('Complete Draft the spec').check();
  await bob.getByRole('button', { name: 'Edit Draft the spec' }).click();
  await bob.getByLabel('Edit title').fill('Write the spec');
  await bob.getByLabel('Edit title').press('Enter');
  await expect(bob.getByTestId('todo').filter({ hasText: 'Write the spec' })).toBeVisible();

  await setOffline(false);
  // Everywhere: the new title, ticked.
  for (const page of [ada, bob]) {
    await expect(page.getByLabel('Complete Write the spec')).toBeChecked();
    await expect.poll(() => titles(page)).toEqual(['Write the spec']);
  }
  // And after a reload, from the replica and the server alike.
  await bob.reload();
  await expect(bob.getByLabel('Complete Write the spec')).toBeChecked();
});

test('two tabs of one browser stay in sync through the shared replica', async ({
  browser,
  demo,
}) => {
  const context = await browser.newContext();
  const first = await context.newPage();
  const second = await context.newPage();
  await openDemo(first, demo.url, 'Ada');
  await openDemo(second, demo.url, 'Ada');
  await addTodo(first, 'From the first tab');
  await expect(second.getByTestId('todo').filter({ hasText: 'From the first tab' })).toBeVisible({
    timeout: 1_000,
  });
  await addTodo(second, 'From the second tab');
  await expect(first.getByTestId('todo').filter({ hasText: 'From the second tab' })).toBeVisible({
    timeout: 1_000,
  });
  await second.getByRole('checkbox', { name: 'Complete From the first tab' }).check();
  await expect(first.getByRole('checkbox', { name: 'Complete From the first tab' })).toBeChecked({
    timeout: 1_000,
  });
  // One connection for the two tabs: the server sees a single client.
  const metrics = await (await fetch(`${demo.url}/metrics`)).text();
  expect(metrics).toMatch(/topgun_connections 1\b/);
  await expect(first.getByTestId('pending')).toHaveText('All changes saved');
  await expect(second.getByTestId('pending')).toHaveText('All changes saved');
});

test('clients reconnect by themselves after a server restart and lose no acknowledged edit', async ({
  browser,
  demo,
}) => {
  const ada = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await openDemo(ada, demo.url, 'Ada');
  await openDemo(bob, demo.url, 'Bob');
  await addTodo(ada, 'Acknowledged before the restart');
  await expect(ada.getByTestId('pending')).toHaveText('All changes saved');

  await demo.stop();
  await expect(ada.getByTestId('connection')).not.toHaveAttribute('data-state', 'online');
  await addTodo(bob, 'Written while the server was down');
  await demo.start();

  await expect(ada.getByTestId('connection')).toHaveAttribute('data-state', 'online', {
    timeout: 30_000,
  });
  await expect(bob.getByTestId('connection')).toHaveAttribute('data-state', 'online', {
    timeout: 30_000,
  });
  await expect(
    ada.getByTestId('todo').filter({ hasText: 'Written while the server was down' }),
  ).toBeVisible();
  await expect(
    bob.getByTestId('todo').filter({ hasText: 'Acknowledged before the restart' }),
  ).toBeVisible();
  // A fresh browser sees both from the server.
  const carol = await (await browser.newContext()).newPage();
  await openDemo(carol, demo.url, 'Carol');
  await expect(carol.getByTestId('todo')).toHaveCount(2);
});

test('the dashboard follows edits made in another browser', async ({ browser, demo }) => {
  const ada = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await openDemo(ada, demo.url, 'Ada', '#dashboard');
  await openDemo(bob, demo.url, 'Bob');
  await expect(ada.getByTestId('count-open')).toHaveText('0');

  await addTodo(bob, 'One');
  await addTodo(bob, 'Two');
  await expect(ada.getByTestId('count-open')).toHaveText('2', { timeout: 1_000 });
  await bob.getByRole('checkbox', { name: 'Complete One' }).check();
  await expect(ada.getByTestId('count-done')).toHaveText('1', { timeout: 1_000 });
  await expect(ada.getByTestId('count-open')).toHaveText('1');
  await expect(ada.getByTestId('chart-total')).toHaveText('1 completed');
  await expect(ada.getByTestId('person').filter({ hasText: 'Bob' })).toContainText('2 todos');
});

/**
 * Ada and Bob, each in a browser of their own, both seeing a todo Ada added; `setOffline`
 * takes both offline (until each page says so) or back online (until both saved everything).
 */
async function adaAndBobShare(browser: Browser, url: string, title: string) {
  const contexts = [await browser.newContext(), await browser.newContext()];
  const [ada, bob] = [await contexts[0]!.newPage(), await contexts[1]!.newPage()];
  await openDemo(ada, url, 'Ada');
  await openDemo(bob, url, 'Bob');
  await addTodo(ada, title);
  await expect(bob.getByTestId('todo').filter({ hasText: title })).toBeVisible();
  const setOffline = async (offline: boolean) => {
    for (const context of contexts) await context.setOffline(offline);
    for (const page of [ada, bob]) {
      if (offline)
        await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'offline');
      else await expect(page.getByTestId('pending')).toHaveText('All changes saved');
    }
  };
  return { ada, bob, setOffline };
}
