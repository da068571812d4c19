import { fromWireEntry, type MessageOf, resumeWire, type Value } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { usePostgresDatabase } from './adversarial/adversarialKit.js';
import { postgresAvailable } from './postgres.js';
import { eventually } from './serverHarness.js';
import { replicaOf, TestClient } from './testClient.js';

const available = await postgresAvailable();

/** The `changes` messages a client received so far, taken. */
function takeChanges(client: TestClient): Array<MessageOf<'changes'>> {
  const taken = client.received.filter(
    (message): message is MessageOf<'changes'> => message.type === 'changes',
  );
  for (const message of taken) client.received.splice(client.received.indexOf(message), 1);
  return taken;
}

describe.runIf(available)('resuming a map from a cursor', () => {
  const database = usePostgresDatabase();

  it('sends a reconnecting client what changed since its cursor, and nothing of its own, in one round trip', async () => {
    const { server, url } = await database.startServer({ auth: { allowAnonymous: true } });
    const writer = await TestClient.connect(url);
    await writer.write(
      'feed',
      Array.from({ length: 50 }, (_, n): [string, number] => [`k${n}`, n]),
    );
    const reader = await TestClient.connect(url);
    const replica = replicaOf(reader.nodeId);
    const walked = await reader.sync('feed', replica);
    expect(walked.converged).toBe(true);
    const { cursor, syncedAt } = walked.done as MessageOf<'sync_done'>;
    expect(cursor).toMatch(/^[a-z0-9]+\.\d+\.\d+$/);
    // Its own write, made before it goes away, it holds.
    const timestamp = { millis: Date.now(), counter: 0, nodeId: reader.nodeId };
    await reader.write('feed', [['own', 'mine']], () => timestamp);
    replica.merge('own', { value: 'mine', timestamp });
    reader.close();

    await writer.write('feed', [
      ['k1', 'changed'],
      ['k2', null],
      ['k50', 50],
    ]);
    const back = await TestClient.connect(url, undefined, reader.nodeId);
    const resumed = await back.resume('feed', replica, cursor!, syncedAt!);
    expect(new Set(resumed.keys)).toEqual(new Set(['k1', 'k2', 'k50']));
    expect(resumed.converged).toBe(true);
    expect(resumed.done.syncedAt).toBeGreaterThanOrEqual(syncedAt!);
    expect(resumed.done.cursor).not.toBe(cursor);
    // Resumed again from the new cursor: nothing, in one message.
    const again = await back.resume('feed', replica, resumed.done.cursor!, syncedAt!);
    expect(again).toMatchObject({ keys: [], messages: 1, converged: true });
    // It follows the map from then on, like after a walk.
    await writer.write('feed', [['k3', 'live']]);
    await eventually(() => back.received.some((message) => message.type === 'changes'));
    for (const client of [writer, back]) client.close();
    await server.close();
  });

  it('answers a cursor it did not give, or cannot resume from, with its root alone', async () => {
    const { server, url } = await database.startServer({ auth: { allowAnonymous: true } });
    const writer = await TestClient.connect(url);
    await writer.write('other', [['a', 1]]);
    const reader = await TestClient.connect(url);
    const walked = await reader.sync('other', replicaOf());
    const [epoch, generation, version] = (walked.done as MessageOf<'sync_done'>).cursor!.split('.');
    for (const cursor of [
      `x${epoch}.${generation}.${version}`,
      `${epoch}.${Number(generation) + 1}.${version}`,
      `${epoch}.${generation}.${Number(version) + 1}`,
      `${epoch}.${generation}.-1`,
      `${epoch}.${generation}`,
      'not a cursor',
    ]) {
      const answer = await reader.resume('other', replicaOf(reader.nodeId), cursor, 1);
      expect(answer.keys).toEqual([]);
      expect(answer.done).not.toHaveProperty('syncedAt');
      expect(answer.done).not.toHaveProperty('cursor');
    }
    // A client that holds the map as it is gets the current cursor all the same.
    const replica = replicaOf();
    await reader.sync('other', replica);
    const current = await reader.resume('other', replica, 'not a cursor', 1);
    expect(current.done.syncedAt).toBeGreaterThan(0);
    expect(current.done.cursor).toBe((walked.done as MessageOf<'sync_done'>).cursor);
    // Longer than a cursor may be: a malformed message.
    reader.send(resumeWire('other', 99, new Uint8Array(8), 1, 'c'.repeat(129)));
    expect(await reader.next('error')).toMatchObject({ code: 'MALFORMED' });
    for (const client of [writer, reader]) client.close();
    await server.close();
  });

  it('gives cursors only to clients that see every record of a map', async () => {
    const { server, url } = await database.startServer({
      auth: { allowAnonymous: true },
      permissions: [
        { map: 'open', read: true, write: true },
        {
          map: 'partial',
          read: ({ value }) =>
            value === undefined || (value as { hidden?: boolean }).hidden !== true,
          write: true,
        },
      ],
    });
    const writer = await TestClient.connect(url);
    await writer.write('partial', [['seen', { hidden: false }]]);
    const reader = await TestClient.connect(url);
    const walked = await reader.sync('partial', replicaOf());
    expect(walked.converged).toBe(true);
    expect(walked.done).not.toHaveProperty('cursor');
    await writer.write('partial', [['also', { hidden: false }]]);
    await eventually(() => reader.received.some((message) => message.type === 'changes'));
    expect(takeChanges(reader).flatMap((message) => message.changes)).toEqual([
      expect.not.objectContaining({ cursor: expect.anything() }),
    ]);
    // Nor does a cursor of another map resume this one.
    const open = await reader.sync('open', replicaOf());
    const answer = await reader.resume(
      'partial',
      replicaOf(),
      (open.done as MessageOf<'sync_done'>).cursor!,
      1,
    );
    expect(answer.done).not.toHaveProperty('cursor');
    for (const client of [writer, reader]) client.close();
    await server.close();
  });

  it('moves a follower’s cursor on with the changes it sends, on the last message of each map', async () => {
    const { server, url } = await database.startServer({
      auth: { allowAnonymous: true },
      limits: { chunkRecords: 2 },
    });
    const writer = await TestClient.connect(url);
    const reader = await TestClient.connect(url);
    const replica = replicaOf();
    const walked = await reader.sync('moving', replica);
    const { syncedAt } = walked.done as MessageOf<'sync_done'>;
    await writer.write(
      'moving',
      Array.from({ length: 5 }, (_, n): [string, number] => [`m${n}`, n]),
    );
    await eventually(
      () =>
        reader.received
          .filter((message) => message.type === 'changes')
          .flatMap((message) =>
            message.type === 'changes' ? message.changes.flatMap((change) => change.entries) : [],
          ).length === 5,
    );
    const changes = takeChanges(reader).flatMap((message) => message.changes);
    expect(changes).toHaveLength(3);
    expect(changes.map((change) => change.cursor !== undefined)).toEqual([false, false, true]);
    for (const change of changes)
      for (const entry of change.entries) replica.merge(...fromWireEntry<Value>(entry));
    // The cursor they end with is current: resuming from it brings nothing.
    const answer = await reader.resume('moving', replica, changes[2]!.cursor!, syncedAt!);
    expect(answer).toMatchObject({ keys: [], converged: true });
    for (const client of [writer, reader]) client.close();
    await server.close();
  });
});
