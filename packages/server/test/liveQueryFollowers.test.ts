import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TopGunServer } from '../src/index.js';
import type { ReadContext } from '../src/permissions.js';
import { startServer } from './serverHarness.js';
import { replicaOf, TestClient } from './testClient.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';

function tokenFor(subject: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(subject)
    .setIssuedAt()
    .sign(new TextEncoder().encode(SECRET));
}

/** Notes are read by their owner. */
const ownNotes = ({ user, value }: ReadContext) =>
  value === undefined || (value as { owner?: string }).owner === user.id;

/** The keys a client received in `changes` of `map`, in order. */
function changedKeys(client: TestClient, map: string): string[] {
  return client
    .pending('changes')
    .flatMap((message) =>
      message.changes
        .filter((change) => change.map === map)
        .flatMap((change) => change.entries.map(([key]) => key)),
    );
}

// A client that walked a map receives its changes as `changes`, and evaluates its live
// queries over its replica: a `query_update` would carry the same records a second time.
describe('live queries of a client that follows their map', () => {
  let server: TopGunServer;
  let url: string;

  beforeAll(async () => {
    ({ server, url } = await startServer({
      auth: { secret: SECRET },
      permissions: [
        { map: 'tasks', read: true, write: true },
        { map: 'notes', read: ownNotes, write: true },
      ],
    }));
  });
  afterAll(() => server.close());

  it('confirms the query with its snapshot, then sends changes only, no query_update', async () => {
    const writer = await TestClient.connect(url, await tokenFor('writer'));
    await writer.write('tasks', [['t1', { done: false }]]);

    const follower = await TestClient.connect(url, await tokenFor('follower'));
    expect((await follower.sync('tasks', replicaOf())).converged).toBe(true);
    follower.send({ type: 'subscribe', id: 1, map: 'tasks', query: { where: { done: false } } });
    const snapshot = await follower.next('query_snapshot');
    expect(snapshot).toMatchObject({
      id: 1,
      last: true,
      entries: [['t1', expect.any(String), { done: false }]],
    });

    // Only subscribed: it still learns the result's changes from query_update.
    const watcher = await TestClient.connect(url, await tokenFor('watcher'));
    watcher.send({ type: 'subscribe', id: 1, map: 'tasks', query: { where: { done: false } } });
    expect(await watcher.next('query_snapshot')).toMatchObject({ id: 1, last: true });

    await writer.write('tasks', [
      ['t2', { done: false }],
      ['t1', { done: true }],
    ]);
    expect(await watcher.next('query_update')).toMatchObject({
      id: 1,
      enter: [['t2', expect.any(String), { done: false }]],
      leave: ['t1'],
    });
    const changes = await follower.next('changes');
    expect(changes).toMatchObject({
      changes: [
        {
          map: 'tasks',
          entries: [
            ['t2', expect.any(String), { done: false }],
            ['t1', expect.any(String), { done: true }],
          ],
        },
      ],
    });
    // A query_update goes out at once, changes after their window: one would be here by now.
    expect(follower.pending('query_update')).toEqual([]);
    for (const client of [writer, follower, watcher]) client.close();
  });

  it('tells a follower to forget a record it lost once, not once more for its query', async () => {
    const alice = await TestClient.connect(url, await tokenFor('alice'));
    await alice.write('notes', [['plan', { owner: 'alice' }]]);
    expect((await alice.sync('notes', replicaOf())).converged).toBe(true);
    alice.send({ type: 'subscribe', id: 1, map: 'notes', query: {} });
    expect(await alice.next('query_snapshot')).toMatchObject({
      entries: [['plan', expect.any(String), { owner: 'alice' }]],
    });

    // Another client of alice's hands the note to bob: alice may no longer see it.
    const other = await TestClient.connect(url, await tokenFor('alice'));
    await other.write('notes', [['plan', { owner: 'bob' }]]);
    expect(await alice.next('revoke')).toEqual({ type: 'revoke', map: 'notes', keys: ['plan'] });
    // Changes of a later commit come after everything the earlier one caused.
    await other.write('notes', [['marker', { owner: 'alice' }]]);
    await alice.next(
      (message) => message.type === 'changes' && changedKeys(alice, 'notes').includes('marker'),
    );
    expect(alice.pending('revoke')).toEqual([]);
    expect(alice.pending('query_update')).toEqual([]);
    alice.close();
    other.close();
  });
});
