import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoundRobinBalancer } from '../src/testing/roundRobinBalancer.js';
import { createTestDatabase, postgresAvailable } from './postgres.js';
import { eventually, startServer } from './serverHarness.js';
import { TestClient } from './testClient.js';

const available = await postgresAvailable();

describe.runIf(available)('PostgreSQL outage', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  // A proxy to the database that the test cuts and restores: one backend, same port again.
  let proxy: RoundRobinBalancer;
  let started: Awaited<ReturnType<typeof startServer>>;

  beforeAll(async () => {
    database = await createTestDatabase();
    const target = new URL(database.url);
    proxy = new RoundRobinBalancer([{ host: target.hostname, port: Number(target.port || 5432) }]);
    await proxy.start();
    const port = proxy.port;
    const viaProxy = new URL(database.url);
    viaProxy.port = String(port);
    started = await startServer({
      storage: { kind: 'postgres', connectionString: viaProxy.toString() },
      auth: { allowAnonymous: true },
    });
  });
  afterAll(async () => {
    await started.server.close();
    await proxy.stop();
    await database.drop();
  });

  it('closes its connections as retry-later while the database is away, reports it, and recovers by itself', async () => {
    const { url } = started;
    const client = await TestClient.connect(url);
    expect((await client.write('outage', [['before', 1]])).ack).toBeDefined();

    await proxy.stop();
    // It can no longer tell what other processes commit: clients are sent elsewhere, or to
    // come back later, and walk again then.
    expect(await client.closed()).toBe(1013);
    expect((await fetch(`${url}/ready`)).status).toBe(503);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    await expect(TestClient.connect(url)).rejects.toThrow('HTTP 503');

    await proxy.start();
    await eventually(async () => (await fetch(`${url}/ready`)).status === 200, 10_000);
    const again = await TestClient.connect(url);
    const after = await again.write('outage', [['during', 2]]);
    expect(after.ack?.ids).toEqual(after.ids);
    again.close();
  });
});
