import { HLC, LWWMap, type Value } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import type { PermissionRule } from '../../src/index.js';
import { postgresAvailable } from '../postgres.js';
import { eventually } from '../serverHarness.js';
import { replicaOf, TestClient } from '../testClient.js';
import {
  longestRoundTrip,
  metricValue,
  readByOwnerOrShared,
  seedMap,
  spawnServer,
  startPinger,
  TOKEN_SECRET,
  takeReceived,
  tokenFor,
  usePostgresServer,
  writtenByOwner,
} from './adversarialKit.js';

const available = await postgresAvailable();

const NOTES: readonly PermissionRule[] = [
  { map: 'notes', read: readByOwnerOrShared, write: writtenByOwner },
  { map: 'big', read: true, write: true },
];

/** Records of the map the walk attack differs from everywhere. */
const BIG = 100_000;

// Attacks through the Merkle walk itself: a walk that costs the server a long block of work,
// records pushed in walks to learn what exists, or to write past every write limit.
describe.runIf(available)('walks a client drives', () => {
  const served = usePostgresServer({
    auth: { secret: TOKEN_SECRET },
    permissions: NOTES,
    seed: (storage) => seedMap(storage, 'big', BIG, (index) => ({ n: index })),
  });

  it('answers a walk that differs on every record of a large map without holding other pings', async () => {
    // A replica holding every key under another timestamp: every leaf differs, so an answer
    // the server builds in one go would digest and compare the whole map.
    const replica = new LWWMap<Value>(
      new HLC({ nodeId: 'mallory-node', maxDriftMs: Number.POSITIVE_INFINITY }),
    );
    replica.loadRecords(
      Array.from({ length: BIG }, (_, index) => [
        `r${index}`,
        { value: { n: -index }, timestamp: { millis: 1_000, counter: 0, nodeId: 'seed' } },
      ]),
    );
    // The server in a process of its own: the attacker's side of the walk is heavy too, and
    // what the bystander waits for must be the server's work alone.
    const { url } = await spawnServer(served.database.url);
    const pinger = startPinger(url, 10, await tokenFor('bystander'));
    await pinger.ready;
    const attacker = await TestClient.connect(url, await tokenFor('mallory'), 'mallory-node');
    const started = performance.now();
    const walk = await attacker.sync('big', replica);
    const walkMs = performance.now() - started;
    const roundTrips = await pinger.stop();
    expect(walk.done.type).toBe('sync_done');
    // The server's newer records reached the attacker, at most as many as a walk may move.
    expect(walk.received).toBeGreaterThan(0);
    // Unbudgeted, one answer compares the whole map (the old code held the bystander 160 ms at
    // 30 000 records; it grows with the map, to about a third of the whole walk). Budgeted
    // answers held it 25-130 ms of a walk of about 1.1 s. Bounded by the walk's own time too:
    // a machine busy with other work slows both alike.
    expect(longestRoundTrip(roundTrips)).toBeLessThan(Math.max(250, walkMs / 4));
    attacker.close();
  }, 60_000);

  it('answers records pushed for hidden, deleted and absent keys alike: no oracle', async () => {
    const alice = await TestClient.connect(served.url, await tokenFor('alice'));
    await alice.write('notes', [
      ['hidden', { owner: 'alice' }],
      ['deleted', { owner: 'alice' }],
    ]);
    await alice.write('notes', [['deleted', null]]);
    const bob = await TestClient.connect(served.url, await tokenFor('bob'), 'bob-node');
    // Records Bob did not write, for a key hidden from him, a deleted one, and one that never
    // existed: pushed outside any walk of his, they are ignored.
    const foreign = {
      value: { owner: 'alice' },
      timestamp: { millis: 1, counter: 0, nodeId: 'x' },
    };
    bob.send({
      type: 'sync_records',
      map: 'notes',
      session: 41,
      records: ['hidden', 'deleted', 'never'].map((key) => [
        key,
        '0000000000010000x',
        { owner: 'alice' },
      ]),
      last: true,
    });
    // A walk of the same session is handled after the push (one chain per session).
    expect((await bob.sync('notes', replicaOf('bob-empty'), { session: 41 })).converged).toBe(true);
    expect(takeReceived(bob, (message) => message.type === 'revoke')).toEqual([]);

    // Inside a walk, the three get the same answer: drop them.
    const replica = replicaOf('bob-probe');
    for (const key of ['hidden', 'deleted', 'never']) replica.merge(key, foreign);
    await bob.sync('notes', replica);
    const revoked = takeReceived(bob, (message) => message.type === 'revoke').flatMap((message) =>
      message.type === 'revoke' ? message.keys : [],
    );
    expect(new Set(revoked)).toEqual(new Set(['hidden', 'deleted', 'never']));
    alice.close();
    bob.close();
  });

  it('takes no more records from one walk message than a chunk', async () => {
    const client = await TestClient.connect(served.url, await tokenFor('carol'), 'carol-node');
    const before = await metricValue(served.server, 'topgun_violations_total', {
      kind: 'batch_size',
    });
    const replica = replicaOf('carol');
    const walk = client.sync('big', replica);
    const stamp = client.hlc.now();
    const entries = Array.from(
      { length: 1_001 },
      (_, index) =>
        [`carol-${index}`, `${stamp.millis.toString(16).padStart(12, '0')}0000carol-node`, 1] as [
          string,
          string,
          Value,
        ],
    );
    await walk;
    client.send({ type: 'sync_records', map: 'big', session: 1, records: entries, last: true });
    await eventually(
      async () =>
        (await metricValue(served.server, 'topgun_violations_total', { kind: 'batch_size' })) >
        before,
    );
    const keys = entries.map(([key]) => key);
    expect(await served.server.storage.getRecords('big', keys)).toEqual([]);
    client.close();
  });
});
