import { formatTimestamp, type MessageOf } from '@topgun/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordWrite, Storage } from '../../src/storage/storage.js';
import { postgresAvailable } from '../postgres.js';
import { eventually, startServer } from '../serverHarness.js';
import { replicaOf, TestClient } from '../testClient.js';
import {
  openStorage,
  takeChangedEntries,
  takeReceived,
  usePostgresDatabase,
} from './adversarialKit.js';

const available = await postgresAvailable();

/**
 * A storage over `storage` whose next write of `map` commits and then fails, as when the
 * connection drops after COMMIT but before its answer: `loseNextAnswer()` arms it.
 */
function answerLosingStorage(storage: Storage, map: string) {
  let armed = false;
  const wrapped: Storage = Object.create(storage, {
    writeRecords: {
      value: async (writes: readonly RecordWrite[]) => {
        const outcomes = await storage.writeRecords(writes);
        if (armed && writes.some((write) => write.map === map)) {
          armed = false;
          throw new Error('Connection terminated unexpectedly');
        }
        return outcomes;
      },
    },
  });
  return {
    storage: wrapped,
    loseNextAnswer: () => {
      armed = true;
    },
  };
}

// Attack (or bad luck): a commit whose answer is lost. The client is told `unavailable` and
// retries; the retry finds the records stored and is acknowledged from the read-back. Those
// records must still reach every other client and live query, as any committed change does.
describe.runIf(available)('changes acknowledged through the read-back path', () => {
  const database = usePostgresDatabase();
  let storage: Storage;

  beforeAll(async () => {
    storage = await openStorage(database.url);
  });
  afterAll(() => storage.close());

  it('pushes records committed by a lost attempt to replicas and live queries', async () => {
    const lossy = answerLosingStorage(storage, 'inbox');
    const { server, url } = await startServer({
      storage: lossy.storage,
      auth: { allowAnonymous: true },
    });
    const replica = await TestClient.connect(url);
    expect((await replica.sync('inbox', replicaOf())).converged).toBe(true);
    const watcher = await TestClient.connect(url);
    watcher.send({ type: 'subscribe', id: 1, map: 'inbox', query: {} });
    expect(await watcher.next('query_snapshot')).toMatchObject({ entries: [], last: true });

    const writer = await TestClient.connect(url);
    await writer.sync('inbox', replicaOf());
    const ops: MessageOf<'ops'>['ops'] = Array.from({ length: 20 }, (_, index) => ({
      id: index + 1,
      map: 'inbox',
      entry: [`m${index}`, formatTimestamp(writer.hlc.now()), { index }],
    }));
    lossy.loseNextAnswer();
    const lost = await writer.sendOps(ops);
    expect(lost.ack).toBeUndefined();
    expect(lost.reject?.rejections.every((rejection) => rejection.reason === 'UNAVAILABLE')).toBe(
      true,
    );
    // The first attempt did commit.
    const keys = ops.map((op) => op.entry[0]);
    expect(await storage.getRecords('inbox', keys)).toHaveLength(20);

    const retry = await writer.sendOps(ops.map((op) => ({ ...op, id: op.id + 100 })));
    expect(retry.ack).toMatchObject({ ids: ops.map((op) => op.id + 100), superseded: [] });

    const pushed = new Map<string, unknown>();
    await eventually(() => {
      for (const [key, , value] of takeChangedEntries(replica, 'inbox')) pushed.set(key, value);
      return pushed.size === 20;
    }, 2_000);
    expect(pushed.get('m7')).toEqual({ index: 7 });

    const entered = new Set<string>();
    await eventually(() => {
      for (const update of takeReceived(watcher, (message) => message.type === 'query_update'))
        if (update.type === 'query_update') for (const [key] of update.enter) entered.add(key);
      return entered.size === 20;
    }, 2_000);
    // The writer already holds its records: they are not echoed back to it.
    writer.send({ type: 'ping', time: 1 });
    await writer.next('pong');
    expect(writer.pending('changes')).toEqual([]);
    for (const client of [replica, watcher, writer]) client.close();
    await server.close();
  });

  it('never pushes a change once a newer one of the same key went out', async () => {
    // The first write of `race` commits, then its answer waits: another group commits a newer
    // record of the same key and publishes it first.
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let held = false;
    const holding: Storage = Object.create(storage, {
      writeRecords: {
        value: async (writes: readonly RecordWrite[]) => {
          const outcomes = await storage.writeRecords(writes);
          if (!held && writes.some((write) => write.map === 'race')) {
            held = true;
            await gate;
          }
          return outcomes;
        },
      },
    });
    const { server, url } = await startServer({ storage: holding, auth: { allowAnonymous: true } });
    const watcher = await TestClient.connect(url);
    watcher.send({ type: 'subscribe', id: 1, map: 'race', query: { where: { v: 'new' } } });
    await watcher.next('query_snapshot');
    const slow = await TestClient.connect(url);
    const fast = await TestClient.connect(url);
    const older = slow.write('race', [['k', { v: 'old' }]]);
    await eventually(() => held);
    const later = () => ({ millis: Date.now() + 1_000, counter: 0, nodeId: fast.nodeId });
    expect((await fast.write('race', [['k', { v: 'new' }]], later)).ack?.superseded).toEqual([]);
    const entered = await watcher.next('query_update');
    expect(entered.type === 'query_update' && entered.enter.map(([key]) => key)).toEqual(['k']);
    release();
    expect((await older).ack?.superseded).toEqual([]);
    // A later change of another key: once it is in, the older one of `k` would have been too.
    await fast.write('race', [['z', { v: 'new' }]], later);
    const updates = [];
    for (;;) {
      const update = await watcher.next('query_update');
      updates.push(update);
      if (update.type === 'query_update' && update.enter.some(([key]) => key === 'z')) break;
    }
    for (const update of updates) expect(update).toMatchObject({ leave: [] });
    for (const client of [watcher, slow, fast]) client.close();
    await server.close();
  });

  it('pushes a record another process committed, learned from a write it superseded', async () => {
    const first = await database.startServer({ auth: { allowAnonymous: true } });
    const second = await database.startServer({ auth: { allowAnonymous: true } });
    // The reader's walk loads the map into the second server before the first one writes.
    const reader = await TestClient.connect(second.url);
    expect((await reader.sync('ledger', replicaOf())).converged).toBe(true);

    const elsewhere = await TestClient.connect(first.url);
    const older = await TestClient.connect(second.url);
    await elsewhere.write('ledger', [['total', 'newer']]);
    const lost = await older.write('ledger', [['total', 'older']], () => ({
      millis: Date.now() - 1_000,
      counter: 0,
      nodeId: older.nodeId,
    }));
    expect(lost.ack?.superseded).toEqual(lost.ids);

    await eventually(() =>
      takeChangedEntries(reader, 'ledger').some(
        ([key, , value]) => key === 'total' && value === 'newer',
      ),
    );
    for (const client of [reader, elsewhere, older]) client.close();
    await first.server.close();
    await second.server.close();
  });
});
