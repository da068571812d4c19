import type { Page } from '@playwright/test';
import { decodeEntries, decodeServerMessage } from '@topgun/core';
import { EVENT_KINDS, EVENTS_MAP, seedEvents, seededEvent } from '../../scripts/seed-events.mjs';
import { consoleErrors, expect, openDemo, test } from './fixtures.js';

const SEEDED = 20_000;
const PAGE = 50;

/** The seeded events' keys, newest first (by `at`, then key: the query's order). */
function newestFirst(now: number, kind?: string): string[] {
  return Array.from({ length: SEEDED }, (_, index) => seededEvent(index, SEEDED, now))
    .filter(({ value }) => kind === undefined || value.kind === kind)
    .sort((a, b) => b.value.at - a.value.at || (a.key < b.key ? -1 : 1))
    .map(({ key }) => key);
}

/** The keys of the listed rows with this test id, in order. */
function rowKeys(page: Page, testId: 'event' | 'window-event'): Promise<string[]> {
  return page
    .getByTestId(testId)
    .evaluateAll((rows) => rows.map((row) => row.getAttribute('data-key') ?? ''));
}

/**
 * The keys of map `events` the page's IndexedDB replica stores: its record log replayed
 * (`specifications/client-storage.md`), the entries decoded here (parts cross as latin1
 * strings, one character a byte).
 */
async function storedEventKeys(page: Page): Promise<Set<string>> {
  const segments = await page.evaluate(
    (map) =>
      new Promise<Array<{ parts: string[]; removed: string[] }>>((resolve, reject) => {
        const latin1 = (bytes: Uint8Array) => {
          let text = '';
          for (let start = 0; start < bytes.length; start += 8192)
            text += String.fromCharCode(...bytes.subarray(start, start + 8192));
          return text;
        };
        const open = indexedDB.open('topgun');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const read = open.result.transaction('segments').objectStore('segments').getAll();
          read.onerror = () => reject(read.error);
          read.onsuccess = () => {
            open.result.close();
            const stored = read.result as Array<{
              maps: Array<{ map: string; parts: Uint8Array[]; removed: string[] }>;
            }>;
            resolve(
              stored.flatMap((segment) =>
                segment.maps
                  .filter((changes) => changes.map === map)
                  .map((changes) => ({
                    parts: changes.parts.map(latin1),
                    removed: changes.removed,
                  })),
              ),
            );
          };
        };
      }),
    EVENTS_MAP,
  );
  const keys = new Set<string>();
  for (const { parts, removed } of segments) {
    for (const key of removed) keys.delete(key);
    for (const part of parts)
      for (const [key, , value] of decodeEntries(new Uint8Array(Buffer.from(part, 'latin1'))))
        if (value === null) keys.delete(key);
        else keys.add(key);
  }
  return keys;
}

test('the activity view pages through 20,000 events it never downloads whole; its pinned window works offline', async ({
  browser,
  demo,
}, testInfo) => {
  const now = Date.now();
  const seedStarted = performance.now();
  await seedEvents(demo.server!.storage, { count: SEEDED, now });
  testInfo.annotations.push({
    type: 'seed',
    description: `${SEEDED} events in ${Math.round(performance.now() - seedStarted)} ms`,
  });
  const all = newestFirst(now);
  const context = await browser.newContext();
  const page = await context.newPage();
  // Records of the map the server sends, in query snapshots and updates.
  let received = 0;
  page.on('websocket', (socket) =>
    socket.on('framereceived', ({ payload }) => {
      if (typeof payload === 'string') return;
      const message = decodeServerMessage(new Uint8Array(payload));
      if (message.type === 'query_snapshot') received += message.entries.length;
      if (message.type === 'query_update') received += message.enter.length + message.update.length;
    }),
  );
  await openDemo(page, demo.url, 'Ada', '#activity');
  const kind = page.getByTestId('window-kind');
  await expect(kind.locator('option')).toHaveText([...EVENT_KINDS]);

  // The dashboard window: the latest 50 of one kind, newest first; then of another kind.
  const completed = newestFirst(now, 'completed').slice(0, PAGE);
  const reopened = newestFirst(now, 'reopened').slice(0, PAGE);
  await kind.selectOption('completed');
  await expect(page.getByTestId('window-status')).toHaveAttribute('data-state', 'synced');
  await expect.poll(() => rowKeys(page, 'window-event')).toEqual(completed);
  await expect(page.getByTestId('window-event').getByTestId('event-kind')).toHaveText(
    Array<string>(PAGE).fill('completed'),
  );
  await kind.selectOption('reopened');
  await expect.poll(() => rowKeys(page, 'window-event')).toEqual(reopened);
  await expect(page.getByTestId('window-status')).toHaveAttribute('data-state', 'synced');

  // Every event, newest first, a page more each time the end of the list comes into view.
  const rows = page.getByTestId('event');
  await expect(page.getByTestId('activity-status')).toHaveAttribute('data-state', 'synced');
  await expect.poll(() => rowKeys(page, 'event')).toEqual(all.slice(0, PAGE));
  await page.screenshot({ path: testInfo.outputPath('activity.png') });
  while ((await rows.count()) < 3 * PAGE) {
    const before = await rows.count();
    await page.getByTestId('activity-end').scrollIntoViewIfNeeded();
    await expect.poll(() => rows.count()).toBeGreaterThan(before);
  }
  await expect(page.getByTestId('activity-end')).toHaveAttribute('data-state', 'more');
  const listed = await rowKeys(page, 'event');
  expect(new Set(listed).size).toBe(listed.length);
  expect(listed).toEqual(all.slice(0, listed.length));
  await expect(page.getByTestId('activity-count')).toHaveText(`${listed.length} shown`);
  await page.screenshot({ path: testInfo.outputPath('activity-scrolled.png') });

  // Only what the views show reached the browser, and only that is stored.
  const shown = new Set([...listed, ...completed, ...reopened]);
  let stored = new Set<string>();
  await expect
    .poll(
      async () => {
        stored = await storedEventKeys(page);
        return [...shown].filter((key) => !stored.has(key));
      },
      { message: 'rows shown but not stored' },
    )
    .toEqual([]);
  expect(stored.size).toBeLessThan(SEEDED / 20);
  expect(received).toBeLessThan(SEEDED / 20);
  const held = Number(
    (await page.getByTestId('events-held').locator('strong').textContent())?.replace(/\D/g, ''),
  );
  expect(held).toBeGreaterThanOrEqual(shown.size);
  expect(held).toBeLessThan(SEEDED / 20);
  testInfo.annotations.push({
    type: 'held',
    description: `${stored.size} of ${SEEDED} events stored in IndexedDB, ${received} received`,
  });
  expect(consoleErrors(page)).toEqual([]);

  // Reloaded without network (the app shell from the service worker): the pinned windows
  // answer from the device.
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
  });
  await context.setOffline(true);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'offline');
  await page.reload();
  await expect(kind).toHaveValue('reopened');
  await expect.poll(() => rowKeys(page, 'window-event')).toEqual(reopened);
  await expect(page.getByTestId('window-status')).toHaveAttribute('data-state', 'local');
  await kind.selectOption('completed');
  await expect.poll(() => rowKeys(page, 'window-event')).toEqual(completed);

  // An event added offline shows at once, and reaches the server once back online.
  await page.getByTestId('new-event-kind').selectOption('completed');
  await page.getByTestId('new-event').fill('Shipped it on the train');
  await page.getByTestId('new-event').press('Enter');
  const added = page.getByTestId('window-event').first();
  await expect(added).toContainText('Ada Shipped it on the train');
  const key = (await added.getAttribute('data-key'))!;
  await expect.poll(() => rowKeys(page, 'window-event')).toEqual([key, ...completed.slice(0, -1)]);
  await expect(rows.first()).toHaveAttribute('data-key', key);
  await expect(page.getByTestId('pending')).toHaveText('1 change waiting to sync');
  expect(await demo.server!.storage.getRecords(EVENTS_MAP, [key])).toEqual([]);

  await context.setOffline(false);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'online', {
    timeout: 30_000,
  });
  await expect(page.getByTestId('pending')).toHaveText('All changes saved');
  await expect(page.getByTestId('window-status')).toHaveAttribute('data-state', 'synced');
  await expect.poll(() => rowKeys(page, 'window-event')).toEqual([key, ...completed.slice(0, -1)]);
  const [record] = await demo.server!.storage.getRecords(EVENTS_MAP, [key]);
  expect(record?.record.value).toMatchObject({
    actor: 'Ada',
    kind: 'completed',
    text: 'Shipped it on the train',
  });
  await context.close();

  // On a phone: nothing wider than the screen.
  const phone = await (
    await browser.newContext({
      viewport: { width: 375, height: 740 },
      isMobile: true,
      hasTouch: true,
    })
  ).newPage();
  await openDemo(phone, demo.url, 'Mo', '#activity');
  await expect(phone.getByTestId('window-event')).toHaveCount(PAGE);
  await expect(phone.getByTestId('event')).toHaveCount(PAGE);
  expect(await phone.evaluate(() => document.documentElement.scrollWidth > window.innerWidth)).toBe(
    false,
  );
  await phone.screenshot({ path: testInfo.outputPath('activity-narrow.png') });
  expect(consoleErrors(phone)).toEqual([]);
});
