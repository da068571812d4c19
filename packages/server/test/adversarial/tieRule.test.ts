import {
  compareRecords,
  formatTimestamp,
  type LWWRecord,
  rootHashHex,
  type Timestamp,
  type Value,
} from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../postgres.js';
import { replicaOf, TestClient } from '../testClient.js';
import { usePostgresServer } from './adversarialKit.js';

const available = await postgresAvailable();

/** Two values at one timestamp, ordered by the tie rule (`compareRecords`). */
function tieOrder(timestamp: Timestamp, a: Value, b: Value): { winner: Value; loser: Value } {
  const order = compareRecords<Value>({ value: a, timestamp }, { value: b, timestamp });
  expect(order).not.toBe(0);
  return order > 0 ? { winner: a, loser: b } : { winner: b, loser: a };
}

// Attack: a node writes one key twice with one timestamp and different values. The stored
// row must be the tie winner whatever the arrival order, the loser must be told it lost, and
// a replica holding the loser must be repaired by a walk, never reported converged.
describe.runIf(available)('writes that tie on timestamp with different values', () => {
  const target = usePostgresServer({ auth: { allowAnonymous: true } });

  async function storedValues(map: string, keys: readonly string[]) {
    const records = await target.server.storage.getRecords(map, keys);
    return Object.fromEntries(records.map(({ key, record }) => [key, record.value]));
  }

  it('stores the tie winner whichever write arrives first, and acks the loser as superseded', async () => {
    const client = await TestClient.connect(target.url);
    const timestamp = client.hlc.now();
    const stamp = formatTimestamp(timestamp);
    const { winner, loser } = tieOrder(timestamp, { title: 'draft' }, { title: 'final' });

    const loserFirst = [
      await client.sendOps([{ id: 1, map: 'tie', entry: ['loser-first', stamp, loser] }]),
      await client.sendOps([{ id: 2, map: 'tie', entry: ['loser-first', stamp, winner] }]),
    ];
    expect(loserFirst.map((answer) => answer.ack)).toEqual([
      { type: 'ack', ids: [1], superseded: [] },
      { type: 'ack', ids: [2], superseded: [] },
    ]);

    const winnerFirst = [
      await client.sendOps([{ id: 3, map: 'tie', entry: ['winner-first', stamp, winner] }]),
      await client.sendOps([{ id: 4, map: 'tie', entry: ['winner-first', stamp, loser] }]),
    ];
    expect(winnerFirst.map((answer) => answer.ack)).toEqual([
      { type: 'ack', ids: [3], superseded: [] },
      { type: 'ack', ids: [4], superseded: [4] },
    ]);

    expect(await storedValues('tie', ['loser-first', 'winner-first'])).toEqual({
      'loser-first': winner,
      'winner-first': winner,
    });
    client.close();
  });

  it('lets a tombstone win a tie whichever arrives first, and settles ties within one message', async () => {
    const client = await TestClient.connect(target.url);
    const stamp = formatTimestamp(client.hlc.now());
    const answers = [
      await client.sendOps([{ id: 1, map: 'tie-delete', entry: ['value-first', stamp, 'kept?'] }]),
      await client.sendOps([{ id: 2, map: 'tie-delete', entry: ['value-first', stamp, null] }]),
      await client.sendOps([{ id: 3, map: 'tie-delete', entry: ['delete-first', stamp, null] }]),
      await client.sendOps([{ id: 4, map: 'tie-delete', entry: ['delete-first', stamp, 'back?'] }]),
    ];
    expect(answers.map((answer) => answer.ack?.superseded)).toEqual([[], [], [], [4]]);

    const timestamp = client.hlc.now();
    const { winner, loser } = tieOrder(timestamp, [1, 2], [1, 3]);
    const together = await client.sendOps([
      { id: 5, map: 'tie-delete', entry: ['together', formatTimestamp(timestamp), winner] },
      { id: 6, map: 'tie-delete', entry: ['together', formatTimestamp(timestamp), loser] },
    ]);
    expect(together.ack).toEqual({ type: 'ack', ids: [5, 6], superseded: [6] });

    expect(await storedValues('tie-delete', ['value-first', 'delete-first', 'together'])).toEqual({
      'value-first': null,
      'delete-first': null,
      together: winner,
    });
    client.close();
  });

  it('brings both tabs of a node that wrote one timestamp twice to the winner', async () => {
    const nodeId = `node-${Math.random().toString(36).slice(2, 10)}`;
    const first = await TestClient.connect(target.url, undefined, nodeId);
    const second = await TestClient.connect(target.url, undefined, nodeId);
    const timestamp = first.hlc.now();
    const { winner, loser } = tieOrder(timestamp, 'left', 'right');
    // Each connection keeps in its replica what it wrote, as an offline-first client does.
    const firstReplica = replicaOf('first');
    const secondReplica = replicaOf('second');
    firstReplica.merge('k', { value: loser, timestamp });
    secondReplica.merge('k', { value: winner, timestamp });
    const entry = (value: Value) => ['k', formatTimestamp(timestamp), value] as const;
    expect((await first.sendOps([{ id: 1, map: 'tabs', entry: [...entry(loser)] }])).ack).toEqual({
      type: 'ack',
      ids: [1],
      superseded: [],
    });
    expect((await second.sendOps([{ id: 1, map: 'tabs', entry: [...entry(winner)] }])).ack).toEqual(
      { type: 'ack', ids: [1], superseded: [] },
    );
    expect(await storedValues('tabs', ['k'])).toEqual({ k: winner });

    for (const [client, replica] of [
      [first, firstReplica],
      [second, secondReplica],
    ] as const) {
      const walk = await client.sync('tabs', replica);
      expect(walk.converged).toBe(true);
      expect(replica.get('k')).toEqual(winner);
    }
    first.close();
    second.close();
  });

  it('repairs a replica holding losers of ties in a larger map, and converges only then', async () => {
    const writer = await TestClient.connect(target.url);
    const count = 300;
    const stamps: Timestamp[] = Array.from({ length: count }, () => writer.hlc.now());
    const { ack } = await writer.sendOps(
      stamps.map((timestamp, index) => ({
        id: index + 1,
        map: 'crowd',
        entry: [`item-${index}`, formatTimestamp(timestamp), { n: index, v: 'b' }],
      })),
    );
    expect(ack?.ids).toHaveLength(count);

    const reader = await TestClient.connect(target.url);
    const replica = replicaOf('reader');
    expect((await reader.sync('crowd', replica)).converged).toBe(true);
    const syncedRoot = rootHashHex(replica.merkleTree);

    // The replica ends up with other values at the same timestamps (from the writer's other
    // tab, say): values that lose the tie.
    const tampered = [7, 150, 299];
    for (const index of tampered) {
      const loser: LWWRecord<Value> = { value: { n: index, v: 'a' }, timestamp: stamps[index]! };
      expect(compareRecords(loser, replica.getRecord(`item-${index}`)!)).toBeLessThan(0);
      replica.restore(`item-${index}`, loser);
    }

    // Record hashes cover values, so the walk finds the three records and repairs them.
    const repair = await reader.sync('crowd', replica);
    expect(repair.converged).toBe(true);
    for (const index of tampered)
      expect(replica.get(`item-${index}`)).toEqual({ n: index, v: 'b' });
    expect(repair.received).toBeGreaterThanOrEqual(tampered.length);
    expect(rootHashHex(replica.merkleTree)).toBe(syncedRoot);
    writer.close();
    reader.close();
  });
});
