import { addTodo, consoleErrors, expect, openDemo, test } from './fixtures.js';

test('the demo opens, adds todos and shows the dashboard (screenshots)', async ({
  page,
  demo,
}, testInfo) => {
  await openDemo(page, demo.url, 'Ada');
  await addTodo(page, 'Buy milk');
  await addTodo(page, 'Write the spec');
  await addTodo(page, 'Ship TopGun');
  await page.getByRole('checkbox', { name: 'Complete Write the spec' }).check();
  await expect(page.getByTestId('pending')).toHaveText('All changes saved');
  await page.screenshot({ path: testInfo.outputPath('todos.png'), fullPage: true });
  await testInfo.attach('todos', {
    path: testInfo.outputPath('todos.png'),
    contentType: 'image/png',
  });

  await page.getByRole('button', { name: 'Dashboard' }).click();
  await expect(page.getByTestId('count-open')).toHaveText('2');
  await expect(page.getByTestId('count-done')).toHaveText('1');
  await page.screenshot({ path: testInfo.outputPath('dashboard.png'), fullPage: true });
  await testInfo.attach('dashboard', {
    path: testInfo.outputPath('dashboard.png'),
    contentType: 'image/png',
  });
  expect(consoleErrors(page)).toEqual([]);
});

test('the demo works on a narrow screen', async ({ browser, demo }, testInfo) => {
  const page = await (
    await browser.newContext({
      viewport: { width: 375, height: 740 },
      isMobile: true,
      hasTouch: true,
    })
  ).newPage();
  await openDemo(page, demo.url, 'Mo');
  await addTodo(page, 'A todo with a rather long title that has to wrap on a phone screen');
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth > window.innerWidth,
  );
  expect(overflow).toBe(false);
  await page.screenshot({ path: testInfo.outputPath('todos-narrow.png'), fullPage: true });
  await testInfo.attach('todos-narrow', {
    path: testInfo.outputPath('todos-narrow.png'),
    contentType: 'image/png',
  });
  expect(consoleErrors(page)).toEqual([]);
});
