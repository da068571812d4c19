import { type Timestamp, toWireEntry } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../postgres.js';
import { replicaOf, TestClient } from '../testClient.js';
import { usePostgresDatabase, walkLikeAClient } from './adversarialKit.js';

const available = await postgresAvailable();

const DAY_MS = 24 * 60 * 60 * 1000;
/** The server defaults: tombstones pruned after 30 days, writes older than 7 days refused. */
const PRUNE_HORIZON_MS = 30 * DAY_MS;
const MAX_WRITE_AGE_MS = 7 * DAY_MS;

/** Writes `keep` and `gone` to `map`, then deletes `gone`: a tombstone for pruning to delete. */
async function writeKeptAndDeleted(writer: TestClient, map: string): Promise<void> {
  await writer.write(map, [
    ['keep', 1],
    ['gone', 2],
  ]);
  await writer.write(map, [['gone', null]]);
}

// Attack: a tombstone stamped in 1970 is older than any pruning horizon. Were it stored,
// the next prune would delete it at once and every client of the map would be reset and
// download it all again.
describe.runIf(available)('writes stamped long ago, and resets after pruning', () => {
  const database = usePostgresDatabase();

  /** A server whose clock the test moves: `advance(ms)` puts it ahead of the wall clock. */
  async function serverWithClock() {
    let offset = 0;
    const started = await database.startServer({
      auth: { allowAnonymous: true },
      now: () => Date.now() + offset,
      pruneHorizonMs: PRUNE_HORIZON_MS,
      maxWriteAgeMs: MAX_WRITE_AGE_MS,
    });
    return {
      ...started,
      advance: (ms: number) => {
        offset += ms;
      },
    };
  }

  it('refuses a tombstone stamped before the write floor, so pruning resets no one', async () => {
    const { server, url } = await serverWithClock();
    const reader = await TestClient.connect(url);
    await reader.write('epoch', [['doc', { text: 'hello' }]]);
    const first = await reader.sync('epoch', replicaOf());
    if (first.done.type !== 'sync_done') throw new Error('walk failed');

    const attacker = await TestClient.connect(url);
    const at = (millis: number): Timestamp => ({ millis, counter: 0, nodeId: attacker.nodeId });
    const ancient = await attacker.sendOps([
      { id: 1, map: 'epoch', entry: toWireEntry('doc', { value: null, timestamp: at(1) }) },
      { id: 2, map: 'epoch', entry: toWireEntry('planted', { value: null, timestamp: at(1) }) },
    ]);
    expect(ancient.ack).toBeUndefined();
    expect(ancient.reject?.rejections.map((rejection) => rejection.reason)).toEqual([
      'TOO_OLD',
      'TOO_OLD',
    ]);
    const stored = await server.storage.getRecords('epoch', ['doc', 'planted']);
    expect(stored.map(({ key, record }) => [key, record.value])).toEqual([
      ['doc', { text: 'hello' }],
    ]);

    // Just inside the floor is still a write.
    const late = await attacker.sendOps([
      {
        id: 3,
        map: 'epoch',
        entry: toWireEntry('late', {
          value: 1,
          timestamp: at(Date.now() - MAX_WRITE_AGE_MS + 60_000),
        }),
      },
    ]);
    expect(late.ack?.ids).toEqual([3]);

    await server.prune();
    const again = await reader.sync('epoch', replicaOf(), { lastSync: first.done.syncedAt! });
    expect(again.done.type).toBe('sync_done');
    expect(again.converged).toBe(true);
    reader.close();
    attacker.close();
    await server.close();
  });

  it('after a prune, resets only clients whose last sync predates horizon plus floor', async () => {
    const { server, url, advance } = await serverWithClock();
    const writer = await TestClient.connect(url);
    await writeKeptAndDeleted(writer, 'notes');

    const client = await TestClient.connect(url);
    const early = replicaOf('early');
    const earlyWalk = await client.sync('notes', early);
    if (earlyWalk.done.type !== 'sync_done') throw new Error('walk failed');

    advance(9 * DAY_MS);
    const recent = replicaOf('recent');
    const recentWalk = await client.sync('notes', recent);
    if (recentWalk.done.type !== 'sync_done') throw new Error('walk failed');

    advance(22 * DAY_MS);
    expect(await server.prune()).toBeGreaterThanOrEqual(1);
    const mark = await server.storage.pruneMark('notes');
    expect(mark).toBeDefined();
    expect(recentWalk.done.syncedAt!).toBeGreaterThan(mark!.horizonMillis + MAX_WRITE_AGE_MS);
    expect(earlyWalk.done.syncedAt!).toBeLessThan(mark!.horizonMillis + MAX_WRITE_AGE_MS);

    const stale = await client.sync('notes', early, { lastSync: earlyWalk.done.syncedAt! });
    expect(stale.done).toMatchObject({ type: 'sync_reset', reason: 'PRUNED' });

    const kept = await client.sync('notes', recent, { lastSync: recentWalk.done.syncedAt! });
    expect(kept.done.type).toBe('sync_done');
    writer.close();
    client.close();
    await server.close();
  });

  // A client that synced after horizon + floor keeps its replica, and with it the tombstones
  // pruning deleted. Its next walk sends them; the server must have it drop them (`revoke`)
  // before its `sync_done`, or the client judges the walk not converged, stops advancing its
  // last sync, and a later prune resets it after all.
  it('lets a client that synced recently converge again after pruning', async () => {
    const { server, url, advance } = await serverWithClock();
    const writer = await TestClient.connect(url);
    await writeKeptAndDeleted(writer, 'held');

    advance(9 * DAY_MS);
    const client = await TestClient.connect(url);
    const replica = replicaOf('online');
    const walk = await client.sync('held', replica);
    if (walk.done.type !== 'sync_done') throw new Error('walk failed');
    expect(replica.getRecord('gone')?.value).toBeNull();

    advance(22 * DAY_MS);
    expect(await server.prune()).toBeGreaterThanOrEqual(1);
    const next = await walkLikeAClient(client, 'held', replica, {
      lastSync: walk.done.syncedAt!,
    });
    expect(next.done.type).toBe('sync_done');
    expect(next.revoked).toEqual(['gone']);
    expect(next.converged).toBe(true);
    writer.close();
    client.close();
    await server.close();
  });
});
