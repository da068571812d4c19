import type { WebSocket } from '@playwright/test';
import { decodeMessage } from '@topgun/core';
import { expect, test } from './fixtures.js';

const TODOS = 40_000;

/** Counts the records a page's sync socket receives (in bulk chunks and walk messages). */
function countRecords(socket: WebSocket, counter: { records: number }): void {
  socket.on('framereceived', ({ payload }) => {
    if (typeof payload === 'string') return;
    const message = decodeMessage(new Uint8Array(payload));
    if (message.type === 'sync_records' || message.type === 'sync')
      counter.records += message.records.length;
  });
}

test('a first sync shows its progress, keeps what it stored when the tab closes, and resumes', async ({
  browser,
  demo,
}) => {
  const now = Date.now();
  for (let start = 0; start < TODOS; start += 5_000) {
    await demo.server!.storage.writeRecords(
      Array.from({ length: 5_000 }, (_, offset) => {
        const n = start + offset;
        return {
          map: 'todos',
          key: `todo-seed-${String(n).padStart(6, '0')}`,
          record: {
            value: {
              title: `Seeded todo ${n}`,
              done: n % 3 === 0,
              createdAt: now - n,
              updatedAt: now - n,
              updatedBy: 'seed',
            },
            timestamp: { millis: now - TODOS + n, counter: 0, nodeId: 'seed' },
          },
        };
      }),
    );
  }
  const context = await browser.newContext();
  await context.addInitScript(() => localStorage.setItem('topgun-demo:user', 'ann'));

  // First visit: the download starts; the tab closes a third of the way in.
  const first = await context.newPage();
  const firstSocket = { records: 0 };
  let third: () => void = () => {};
  const reachedThird = new Promise<void>((resolve) => {
    third = resolve;
  });
  first.on('websocket', (socket) => {
    countRecords(socket, firstSocket);
    socket.on('framereceived', () => {
      if (firstSocket.records >= TODOS / 3) third();
    });
  });
  await first.goto(`${demo.url}/`);
  await reachedThird;
  await expect(first.getByTestId('progress')).toContainText(`/ ${TODOS.toLocaleString('en-US')}`);
  await first.close();
  expect(firstSocket.records).toBeLessThan(TODOS);

  // Second visit: what the first stored is there at once, and only the rest is downloaded.
  const second = await context.newPage();
  const secondSocket = { records: 0 };
  second.on('websocket', (socket) => countRecords(socket, secondSocket));
  await second.goto(`${demo.url}/#dashboard`);
  await expect(second.getByTestId('connection')).toHaveAttribute('data-state', 'online', {
    timeout: 30_000,
  });
  const open = TODOS - Math.ceil(TODOS / 3);
  // (The figures' text is formatted, `26,666`; `data-value` holds the number.)
  await expect(second.getByTestId('count-open')).toHaveAttribute('data-value', String(open));
  await expect(second.getByTestId('count-done')).toHaveAttribute(
    'data-value',
    String(Math.ceil(TODOS / 3)),
  );
  // (The first page's count is a lower bound: frames still in flight when it closed are not.)
  expect(secondSocket.records).toBeLessThan(TODOS - TODOS / 4);
  await context.close();
});
