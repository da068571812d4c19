import 'fake-indexeddb/auto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createIndexedDbStorage, type TopGunClient } from '../src/index.js';
import { startServer, testClient, waitFor } from './harness.js';

const RECORDS = 20_000;
let server: Awaited<ReturnType<typeof startServer>>['server'];
let url: string;
const clients: TopGunClient[] = [];

beforeAll(async () => {
  ({ server, url } = await startServer());
  for (let start = 0; start < RECORDS; start += 5_000) {
    await server.storage.writeRecords(
      Array.from({ length: 5_000 }, (_, index) => ({
        map: 'big',
        key: `k${String(start + index).padStart(6, '0')}`,
        record: {
          value: { n: start + index, title: `Record ${start + index}` },
          timestamp: { millis: 1_700_000_000_000 + start + index, counter: 0, nodeId: 'seed' },
        },
      })),
    );
  }
});
afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await server.close();
});

/** A client on IndexedDB database `dbName` that counts the records its walks receive. */
function start(dbName: string) {
  const { client } = testClient(url, {
    storage: createIndexedDbStorage(dbName, { compactAfterIdleMs: Number.POSITIVE_INFINITY }),
  });
  clients.push(client);
  // Progress restarts from zero with each walk: sum the walks' counts.
  const seen = { received: 0, expected: 0 };
  let walk = { received: 0, expected: 0 };
  client.status.subscribe(({ initialSync }) => {
    const progress = initialSync ?? { received: 0, expected: 0 };
    if (progress.received < walk.received) {
      seen.received += walk.received;
      seen.expected += walk.expected;
    }
    walk = progress;
  });
  const counted = () => ({
    received: seen.received + walk.received,
    expected: seen.expected + walk.expected,
  });
  client.getMap('big');
  return { client, counted };
}

it('resumes a first sync cut short: the next start fetches what was not stored, not everything', async () => {
  const first = start('resume-1');
  // The tab goes away in the middle of the download, as soon as a third has arrived (what it
  // stored by then stays).
  let closing: Promise<void> | undefined;
  first.client.status.subscribe(() => {
    if (first.counted().received >= RECORDS / 3) closing ??= first.client.close();
  });
  await waitFor(() => closing !== undefined, 20_000, 'a third of the download');
  await closing;
  const stored = first.client.getMap('big').size;
  expect(stored).toBeGreaterThanOrEqual(RECORDS / 3);
  expect(stored).toBeLessThan(RECORDS);
  expect(first.counted().expected).toBe(RECORDS);

  const second = start('resume-1');
  await second.client.ready;
  expect(second.client.getMap('big').size).toBe(stored);
  await waitFor(() => second.client.getMap('big').size === RECORDS, 20_000, 'the rest');
  await waitFor(() => second.client.status.getState().connection === 'online', 10_000, 'idle');
  // The resumed walk asked for the records this replica lacked, give or take partitions it
  // held only in part (progress counts bulk chunks, not the few records of leaf messages).
  const { received } = second.counted();
  expect(received).toBeGreaterThan(0.9 * (RECORDS - stored));
  expect(received).toBeLessThan(RECORDS - stored + RECORDS / 10);
});

it('resumes a synced replica from its cursor after a restart: only what changed since crosses', async () => {
  const online = (client: TopGunClient) => client.status.getState().connection === 'online';
  const first = start('cursor-1');
  await waitFor(
    () => first.client.getMap('big').size === RECORDS && online(first.client),
    20_000,
    'the first sync',
  );
  await first.client.close();

  const { client: writer } = testClient(url);
  clients.push(writer);
  const map = writer.getMap<{ n: number }>('big');
  await waitFor(() => online(writer), 20_000, 'the writer');
  for (const key of ['k000001', 'k000002', 'new']) map.set(key, { n: -1 });
  await waitFor(() => writer.status.getState().pendingOps === 0, 10_000, 'the writes');

  const second = start('cursor-1');
  await waitFor(
    () => second.client.getMap('big').get('new') !== undefined && online(second.client),
    10_000,
    'the changes',
  );
  expect(second.client.getMap<{ n: number }>('big').get('k000001')).toEqual({ n: -1 });
  expect(second.counted().received).toBe(3);
});
