import type { TopGunServer } from '@topgun/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TopGunClient } from '../src/index.js';
import { contents, startServer, testClient, waitFor } from './harness.js';

/** mulberry32: a tiny seeded generator, so a failing run can be replayed with its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const seeds = [
  Number(process.env['TOPGUN_SEED'] ?? 20_261_125),
  ...(process.env['TOPGUN_SEED'] === undefined ? [Math.floor(Math.random() * 2 ** 31)] : []),
];

describe('20 clients with random writes and random disconnects', () => {
  let server: TopGunServer;
  let url: string;
  beforeAll(async () => {
    ({ server, url } = await startServer());
  });
  afterAll(() => server.close());

  it.each(seeds)(
    'all converge to the server state (seed %i; replay with TOPGUN_SEED)',
    async (seed) => {
      const next = random(seed);
      const map = `chaos-${seed}`;
      const peers = Array.from({ length: 20 }, () => testClient(url));
      const clients: TopGunClient[] = peers.map((peer) => peer.client);
      try {
        for (const client of clients) client.getMap(map);
        await waitFor(
          () => clients.every((client) => client.status.getState().connection === 'online'),
          10_000,
          'all online',
        );
        for (let step = 0; step < 400; step++) {
          const index = Math.floor(next() * clients.length);
          const { client, online } = peers[index]!;
          const roll = next();
          if (roll < 0.1) {
            online.set(!online.isOnline());
          } else if (roll < 0.8) {
            client
              .getMap(map)
              .set(`k${Math.floor(next() * 30)}`, { v: Math.floor(next() * 1000), by: index });
          } else {
            client.getMap(map).delete(`k${Math.floor(next() * 30)}`);
          }
          if (next() < 0.2)
            await new Promise((resolve) => setTimeout(resolve, Math.floor(next() * 5)));
        }
        for (const { online } of peers) online.set(true);
        await Promise.all(clients.map((client) => client.flush()));

        const observer = testClient(url).client;
        clients.push(observer);
        observer.getMap(map);
        await waitFor(
          () => observer.status.getState().connection === 'online',
          10_000,
          'the observer',
        );
        const truth = contents(observer, map);
        await waitFor(
          () =>
            clients.every(
              (client) => JSON.stringify(contents(client, map)) === JSON.stringify(truth),
            ),
          15_000,
          `every client to match the server (seed ${seed})`,
        );
        expect(truth.length).toBeGreaterThan(0);
      } finally {
        await Promise.all(clients.map((client) => client.close()));
      }
    },
  );
});
