import { formatTimestamp } from '@topgun/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_SECRET, tokenFor, writtenByOwner } from './adversarial/adversarialKit.js';
import { createTestDatabase, postgresAvailable } from './postgres.js';
import { startServer } from './serverHarness.js';
import { replicaOf, TestClient, updateEntry } from './testClient.js';

const available = await postgresAvailable();

describe.runIf(available)('two server processes sharing one PostgreSQL', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let first: Awaited<ReturnType<typeof startServer>>;
  let second: Awaited<ReturnType<typeof startServer>>;

  beforeAll(async () => {
    database = await createTestDatabase();
    const storage = { kind: 'postgres' as const, connectionString: database.url };
    first = await startServer({ storage, auth: { allowAnonymous: true } });
    second = await startServer({ storage, auth: { allowAnonymous: true } });
  });
  afterAll(async () => {
    await first.server.close();
    await second.server.close();
    await database.drop();
  });

  it('never stores an older write over a newer one written through the other server', async () => {
    const a = await TestClient.connect(first.url);
    const b = await TestClient.connect(second.url);
    // Both servers load the map before either write, so neither sees the other's in memory.
    await a.sync('shared', replicaOf());
    await b.sync('shared', replicaOf());

    const now = Date.now();
    const newer = await a.sendOps([
      {
        id: 1,
        map: 'shared',
        entry: ['k', formatTimestamp({ millis: now, counter: 5, nodeId: a.nodeId }), 'newer'],
      },
    ]);
    expect(newer.ack?.superseded).toEqual([]);
    const older = await b.sendOps([
      {
        id: 1,
        map: 'shared',
        entry: [
          'k',
          formatTimestamp({ millis: now - 1_000, counter: 0, nodeId: b.nodeId }),
          'older',
        ],
      },
    ]);
    // The second server learns from the database that its write lost.
    expect(older.ack).toMatchObject({ ids: [1], superseded: [1] });

    const reader = await TestClient.connect(second.url);
    const replica = replicaOf('reader');
    const result = await reader.sync('shared', replica);
    expect(result.converged).toBe(true);
    expect(replica.get('k')).toBe('newer');
    for (const client of [a, b, reader]) client.close();
  });

  it('keeps every field updated through either process at once, in the database and both grids', async () => {
    const a = await TestClient.connect(first.url);
    const b = await TestClient.connect(second.url);
    await a.write('board', [['card', { title: 'card', column: 'todo' }]]);
    // Both servers hold the map before the updates, so neither sees the other's in memory.
    await a.sync('board', replicaOf());
    await b.sync('board', replicaOf());
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, index) => {
        const client = index % 2 === 0 ? a : b;
        return client.sendOps([
          {
            id: index,
            map: 'board',
            entry: updateEntry('card', { [`f${index}`]: index }, client.hlc.now()),
          },
        ]);
      }),
    );
    expect(answers.every((answer) => answer.ack?.superseded.length === 0)).toBe(true);
    const expected: Record<string, unknown> = { title: 'card', column: 'todo' };
    for (let index = 0; index < 20; index++) expected[`f${index}`] = index;
    for (const url of [first.url, second.url]) {
      const reader = await TestClient.connect(url);
      const replica = replicaOf(`reader-${url.length}`);
      expect((await reader.sync('board', replica)).converged).toBe(true);
      expect(replica.get('card')).toEqual(expected);
      reader.close();
    }
    a.close();
    b.close();
  });
});

describe.runIf(available)('write rules across two server processes', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let first: Awaited<ReturnType<typeof startServer>>;
  let second: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    database = await createTestDatabase();
    const options = {
      storage: { kind: 'postgres' as const, connectionString: database.url },
      auth: { secret: TOKEN_SECRET },
      permissions: [{ map: 'owned', read: true, write: writtenByOwner }],
    };
    first = await startServer(options);
    second = await startServer(options);
  });
  afterAll(async () => {
    await first.server.close();
    await second.server.close();
    await database.drop();
  });

  it('holds a rule against the record actually replaced, whichever process admitted the write', async () => {
    const victim = await TestClient.connect(first.url, await tokenFor('victim'));
    const attacker = await TestClient.connect(second.url, await tokenFor('attacker'));
    // The attacker's server loads the map before the victim's records exist: in its memory,
    // every key the victim creates next looks free.
    await attacker.sync('owned', replicaOf());
    for (let trial = 0; trial < 10; trial++) {
      const key = `k${trial}`;
      const mine = await victim.write('owned', [[key, { owner: 'victim' }]]);
      expect(mine.ack?.superseded).toEqual([]);
      const ahead = () => ({ ...attacker.hlc.now(), millis: Date.now() + 30_000 });
      const theirs = await attacker.write('owned', [[key, { owner: 'attacker' }]], ahead);
      expect(theirs.reject?.rejections[0]?.reason).toBe('PERMISSION');
      expect((await first.server.storage.getRecords('owned', [key]))[0]!.record.value).toEqual({
        owner: 'victim',
      });
    }
    victim.close();
    attacker.close();
  });
});
