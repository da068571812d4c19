import { execFileSync } from 'node:child_process';
import { formatTimestamp, fromWireEntry, type Message, type Value } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import type { RecordWrite, Storage } from '../src/storage/storage.js';
import {
  answersSubscription,
  metricValue,
  openStorage,
  spawnServer,
  tokenFor,
  usePostgresDatabase,
  usePostgresServer,
} from './adversarial/adversarialKit.js';
import { postgresAvailable } from './postgres.js';
import { eventually } from './serverHarness.js';
import { TestClient } from './testClient.js';

const available = await postgresAvailable();

const MiB = 1024 * 1024;
/** Budgets high enough that nothing but the grid limits how fast maps are read. */
const READER_LIMITS = {
  mapLoadsPerSecond: 1_000_000,
  mapLoadsBurst: 1_000_000,
  subscribesPerSecond: 1_000_000,
  subscribesBurst: 1_000_000,
  cpuMsPerSecond: 1_000,
  cpuBurstMs: 100_000,
};

/** Writes maps `m<from>` to `m<to - 1>` of one record each (`k<i>`: `{ index: i }`) to storage. */
async function seedOneRecordMaps(storage: Storage, from: number, to: number): Promise<void> {
  const timestamp = { millis: Date.now() - 1_000, counter: 0, nodeId: 'seed' };
  const serializedTimestamp = formatTimestamp(timestamp);
  for (let start = from; start < to; start += 5_000) {
    const writes: RecordWrite[] = [];
    for (let index = start; index < Math.min(to, start + 5_000); index++) {
      writes.push({
        map: `m${index}`,
        key: `k${index}`,
        record: { value: { index }, timestamp },
        serializedTimestamp,
      });
    }
    await storage.writeRecords(writes);
  }
}

/**
 * Reads maps `m<from>` to `m<to - 1>` through the protocol (a live query over the whole map,
 * ended as soon as its snapshot arrived), many at once over `clients`, and returns the maps
 * whose snapshot was not exactly their one seeded record.
 */
async function readMaps(clients: readonly TestClient[], from: number, to: number) {
  const wrong: Array<{ map: string; answer: Message }> = [];
  let next = from;
  let nextId = 1;
  const worker = async (client: TestClient) => {
    while (next < to) {
      const index = next++;
      const id = nextId++;
      const map = `m${index}`;
      client.send({ type: 'subscribe', id, map, query: {} });
      const answer = await client.next(answersSubscription(id), 30_000);
      client.send({ type: 'unsubscribe', id });
      const entries = answer.type === 'query_snapshot' ? answer.entries : [];
      const [key, record] = entries.length === 1 ? fromWireEntry<Value>(entries[0]!) : [];
      const value = record?.value as { index?: number } | null | undefined;
      const right = key === `k${index}` && value?.index === index;
      if (!right) wrong.push({ map, answer });
    }
  };
  await Promise.all(clients.flatMap((client) => Array.from({ length: 25 }, () => worker(client))));
  return wrong;
}

/** Resident memory of a process, in bytes (`ps`, which reports KiB). */
function residentBytes(pid: number): number {
  return (
    Number(
      execFileSync('ps', ['-o', 'rss=', '-p', String(pid)])
        .toString()
        .trim(),
    ) * 1024
  );
}

/** One sample of the server's `/metrics` text. */
async function scrape(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${sample} `));
  return line === undefined ? Number.NaN : Number(line.slice(sample.length + 1));
}

describe.runIf(available)('a server holding 20 000 maps of one record', () => {
  const database = usePostgresDatabase();
  const MAPS = 20_000;

  // Half of the 256 MiB the issue allows: with a dense 4 KiB Merkle partition per map (8 KB of
  // heap and buffers a map), RSS grows by about 220 MiB here, which 256 would not catch.
  const MAX_GROWTH = 128 * MiB;

  it('grows by less than 128 MiB within a 64 MiB grid, and serves every map', async () => {
    const storage = await openStorage(database.url);
    try {
      await seedOneRecordMaps(storage, 0, MAPS);
    } finally {
      await storage.close();
    }
    const server = await spawnServer(database.url, {
      TOPGUN_GRID_MAX_MB: '64',
      TOPGUN_LIMITS: JSON.stringify(READER_LIMITS),
    });
    const token = await tokenFor('reader');
    const clients = await Promise.all(
      [1, 2, 3, 4].map(() => TestClient.connect(server.url, token)),
    );
    try {
      // Pools, compiled code and buffers in place before the baseline.
      expect(await readMaps(clients, 0, 200)).toEqual([]);
      const before = residentBytes(server.child.pid!);

      expect(await readMaps(clients, 200, MAPS)).toEqual([]);
      const growth = residentBytes(server.child.pid!) - before;
      console.log(
        `RSS grew by ${(growth / MiB).toFixed(1)} MiB for ${MAPS} maps; the grid estimates ${((await scrape(server.url, 'topgun_grid_bytes')) / MiB).toFixed(1)} MiB`,
      );
      expect(growth).toBeLessThan(MAX_GROWTH);
      expect(await scrape(server.url, 'topgun_grid_bytes')).toBeLessThanOrEqual(64 * MiB);

      // Read again: each from memory, or from storage if it was evicted meanwhile.
      expect(await readMaps(clients, 0, MAPS)).toEqual([]);
      expect(await scrape(server.url, 'topgun_grid_maps')).toBeGreaterThan(0);
    } finally {
      for (const client of clients) client.close();
    }
  }, 120_000);
});

describe.runIf(available)('a grid over its memory budget', () => {
  const MAPS = 2_000;
  const BUDGET = 256 * 1024;
  const loads = new Map<string, number>();
  const served = usePostgresServer({
    auth: { allowAnonymous: true },
    gridMaxBytes: BUDGET,
    limits: READER_LIMITS,
    seed: async (storage) => {
      await seedOneRecordMaps(storage, 0, MAPS);
      await storage.writeRecords(
        Array.from({ length: 50 }, (_, index) => {
          const timestamp = { millis: Date.now() - 1_000, counter: index, nodeId: 'seed' };
          return {
            map: 'watched',
            key: `w${index}`,
            record: { value: { index }, timestamp },
            serializedTimestamp: formatTimestamp(timestamp),
          };
        }),
      );
    },
    wrapStorage: (storage) =>
      Object.create(storage, {
        loadMap: {
          value: (map: string, onPage: Parameters<Storage['loadMap']>[1]) => {
            loads.set(map, (loads.get(map) ?? 0) + 1);
            return storage.loadMap(map, onPage);
          },
        },
      }),
  });

  it('evicts idle maps, keeps the map of a live query, and loads evicted maps again', async () => {
    const watcher = await TestClient.connect(served.url);
    watcher.send({ type: 'subscribe', id: 1, map: 'watched', query: {} });
    const snapshot = await watcher.next(answersSubscription(1));
    expect(snapshot).toMatchObject({ type: 'query_snapshot', last: true });
    const clients = await Promise.all([1, 2].map(() => TestClient.connect(served.url)));

    expect(await readMaps(clients, 0, MAPS)).toEqual([]);
    // Each read's subscription ended, and with it its hold on the map.
    await eventually(async () => (await metricValue(served.server, 'topgun_live_queries')) === 1);
    const evicted = await metricValue(served.server, 'topgun_grid_evictions_total', {
      reason: 'budget',
    });
    expect(evicted).toBeGreaterThan(MAPS / 2);
    expect(await metricValue(served.server, 'topgun_grid_bytes')).toBeLessThanOrEqual(BUDGET);
    expect(await metricValue(served.server, 'topgun_grid_maps')).toBeLessThan(MAPS / 2);

    // Every map is read again, most of them from storage once more.
    expect(await readMaps(clients, 0, MAPS)).toEqual([]);
    const reloaded = [...loads].filter(([map, count]) => map.startsWith('m') && count > 1);
    expect(reloaded.length).toBeGreaterThan(MAPS / 2);
    // Held by its subscription throughout: loaded once, and its changes still arrive live.
    expect(loads.get('watched')).toBe(1);
    const writer = clients[0]!;
    const { ack } = await writer.write('watched', [['w0', { index: -1 }]]);
    expect(ack).toBeDefined();
    const update = await watcher.next('query_update');
    expect(update).toMatchObject({ type: 'query_update', id: 1 });
    expect(loads.get('watched')).toBe(1);

    watcher.send({ type: 'unsubscribe', id: 1 });
    for (const client of [watcher, ...clients]) client.close();
  });
});
