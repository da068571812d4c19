import type { MessageOf } from '@topgun/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoundRobinBalancer } from '../src/testing/roundRobinBalancer.js';
import {
  metricValueAt,
  type ServerProcess,
  startServerProcess,
  takeChangedEntries,
  usePostgresDatabase,
} from './adversarial/adversarialKit.js';
import { postgresAvailable } from './postgres.js';
import { replicaOf, TestClient } from './testClient.js';

const available = await postgresAvailable();
const ANONYMOUS = { TOPGUN_ALLOW_ANONYMOUS: '1' };

/** Waits until `check` holds, polling; fails with `what` after `timeoutMs`. */
async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.runIf(available)('three server processes behind a round-robin balancer', () => {
  const database = usePostgresDatabase();
  let processes: ServerProcess[] = [];
  let balancer: RoundRobinBalancer;
  let balancerUrl: string;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    processes = await Promise.all([1, 2, 3].map(() => startServerProcess(database.url, ANONYMOUS)));
    balancer = RoundRobinBalancer.of(processes.map((process) => process.url));
    balancerUrl = await balancer.start();
  }, 60_000);
  afterAll(async () => {
    for (const client of clients) client.close();
    await balancer?.stop();
    await Promise.all(processes.map((process) => process.kill()));
  });

  /** Connects through the balancer; resolves with the client and the process it reached. */
  async function connect(): Promise<{ client: TestClient; process: number }> {
    const client = await TestClient.connect(balancerUrl);
    clients.push(client);
    return { client, process: balancer.lastBackend };
  }

  /** Three clients through the balancer, one on each process. */
  async function onEachProcess(): Promise<TestClient[]> {
    const reached = [await connect(), await connect(), await connect()];
    expect(new Set(reached.map(({ process }) => process)).size).toBe(3);
    return reached.sort((a, b) => a.process - b.process).map(({ client }) => client);
  }

  it('a write through one process reaches the clients of the other two live', async () => {
    const [a, b, c] = await onEachProcess();
    for (const client of [a!, b!, c!]) await client.sync('live', replicaOf());

    await a!.write('live', [['from-a', 'hello']]);
    await c!.write('live', [['from-c', 'world']]);
    for (const [client, expected] of [
      [b!, ['from-a', 'from-c']],
      [a!, ['from-c']],
      [c!, ['from-a']],
    ] as const) {
      const seen = new Set<string>();
      await eventually(`${expected.join(', ')} reached a client of another process`, () => {
        for (const [key] of takeChangedEntries(client, 'live')) seen.add(key);
        return expected.every((key) => seen.has(key));
      });
      // A client never gets its own write echoed, whichever process it went through.
      expect([...seen].sort()).toEqual([...expected].sort());
    }
  });

  it('a live query on one process follows writes through the other two', async () => {
    const [watcher, second, third] = await onEachProcess();
    watcher!.send({ type: 'subscribe', id: 1, map: 'tasks', query: { where: { done: false } } });
    const snapshot = (await watcher!.next('query_snapshot')) as MessageOf<'query_snapshot'>;
    expect(snapshot.entries).toEqual([]);

    await second!.write('tasks', [['t1', { done: false, title: 'one' }]]);
    await third!.write('tasks', [['t2', { done: false, title: 'two' }]]);
    await second!.write('tasks', [['t1', { done: true, title: 'one' }]]);

    const entered = new Set<string>();
    const left = new Set<string>();
    await eventually('the query saw both tasks enter and one leave', () => {
      for (const message of watcher!.pending('query_update')) {
        for (const [key] of message.enter) entered.add(key);
        for (const key of message.leave) left.add(key);
      }
      watcher!.received.splice(0, watcher!.received.length);
      return entered.has('t2') && left.has('t1');
    });
    expect(entered.has('t2')).toBe(true);
  });

  it('a process that held a map before writes through another serves all of them at once', async () => {
    const [writer, reader] = await onEachProcess();
    // The reader's process loads the map before the writes.
    expect((await reader!.sync('catalog', replicaOf())).converged).toBe(true);

    const keys = Array.from({ length: 2_000 }, (_, index) => `item-${index}`);
    for (let start = 0; start < keys.length; start += 250) {
      const { ack } = await writer!.write(
        'catalog',
        keys.slice(start, start + 250).map((key) => [key, { key }]),
      );
      expect(ack?.ids.length).toBe(250);
    }
    // At once, on every process: no waiting for announcements to arrive.
    for (let process = 0; process < 3; process++) {
      const fresh = await connect();
      const replica = replicaOf(`fresh-${process}`);
      const result = await fresh.client.sync('catalog', replica);
      expect(result.converged).toBe(true);
      expect(replica.size).toBe(keys.length);
    }
    // And a snapshot through a live query likewise.
    const { client } = await connect();
    client.send({ type: 'subscribe', id: 9, map: 'catalog', query: {} });
    let rows = 0;
    for (;;) {
      const chunk = (await client.next('query_snapshot')) as MessageOf<'query_snapshot'>;
      rows += chunk.entries.length;
      if (chunk.last) break;
    }
    expect(rows).toBe(keys.length);
  });

  it('a process whose listening connection is terminated under load serves no stale read and loses no change', async () => {
    const map = 'terminated';
    const acked = new Map<string, number>();
    let writing = true;
    let reconnects = 0;
    // A writer per process, each writing its own keys until told to stop, reconnecting
    // (through the balancer) when its process closes the connection, and re-sending what
    // was not acknowledged.
    const writers = [0, 1, 2].map(async (writerIndex) => {
      let client = (await connect()).client;
      let round = 0;
      while (writing) {
        const batch = Array.from(
          { length: 20 },
          (_, index) => [`w${writerIndex}-${round}-${index}`, round] as [string, number],
        );
        for (;;) {
          try {
            const { ack } = await client.write(map, batch);
            if (ack === undefined || ack.ids.length !== batch.length) throw new Error('not acked');
            break;
          } catch {
            client.close();
            reconnects++;
            for (;;) {
              try {
                client = (await connect()).client;
                break;
              } catch {
                await new Promise((resolve) => setTimeout(resolve, 50));
              }
            }
          }
        }
        for (const [key] of batch) acked.set(key, round);
        round++;
      }
      client.close();
    });
    // A follower of the map on each process.
    const followers = await onEachProcess();
    for (const follower of followers) await follower.sync(map, replicaOf());
    await eventually('writes flowed', () => acked.size >= 300);

    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    const { rows } = await admin.query<{ terminated: boolean }>(
      `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
       WHERE datname = current_database() AND application_name LIKE 'topgun-listener-%'`,
    );
    await admin.end();
    expect(rows.length).toBe(3);
    const ackedAtTermination = acked.size;

    // Every process tells its clients to walk again.
    for (const follower of followers) expect(await follower.closed(10_000)).toBe(1013);
    // Writes go on once the processes listen again.
    await eventually('writes resumed', () => acked.size >= ackedAtTermination + 300, 15_000);
    writing = false;
    await Promise.all(writers);
    expect(reconnects).toBeGreaterThan(0);

    // No stale read, and nothing lost: a fresh walk on each process holds every acked write.
    for (let process = 0; process < 3; process++) {
      const reader = await connect();
      const replica = replicaOf(`after-${process}`);
      expect((await reader.client.sync(map, replica)).converged).toBe(true);
      for (const [key, round] of acked) expect(replica.get(key), key).toBe(round);
    }
    const losses = await Promise.all(
      processes.map((process) => metricValueAt(process.url, 'topgun_announcement_losses_total')),
    );
    expect(losses.every((count) => count >= 1)).toBe(true);
  }, 60_000);
});
