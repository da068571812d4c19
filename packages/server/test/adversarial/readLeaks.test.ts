import { encodeHave, type Message, type Value } from '@topgun/core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { PermissionRule } from '../../src/index.js';
import { postgresAvailable } from '../postgres.js';
import { eventually } from '../serverHarness.js';
import { replicaOf, TestClient } from '../testClient.js';
import {
  answersSubscription,
  metricValue,
  readByOwnerOrShared,
  seedMap,
  TOKEN_SECRET,
  takeChangedEntries,
  takeReceived,
  tokenFor,
  usePostgresServer,
  walkLikeAClient,
  writtenByOwner,
} from './adversarialKit.js';

const available = await postgresAvailable();

/** Notes are read by their owner, or by everyone once shared; only owners write them. */
const NOTES: readonly PermissionRule[] = [
  { map: 'notes', read: readByOwnerOrShared, write: writtenByOwner },
];

/**
 * What kind of answer a write got: acknowledged (applied or superseded: a write may always
 * lose to one the writer cannot see), or rejected with a reason and the record it reveals.
 */
function kindOf(answer: Awaited<ReturnType<TestClient['write']>>) {
  if (answer.ack !== undefined) return { acked: true };
  const rejection = answer.reject?.rejections[0];
  return { acked: false, reason: rejection?.reason, current: rejection?.current };
}

// Attacks on record-level read rules: what a user may not read must not reach them through
// deletions, stale replicas or the answers to their own writes.
describe.runIf(available)('records a user may not read', () => {
  const target = usePostgresServer({ auth: { secret: TOKEN_SECRET }, permissions: NOTES });
  let alice: TestClient;

  beforeAll(async () => {
    alice = await TestClient.connect(target.url, await tokenFor('alice'));
  });
  afterAll(() => alice?.close());

  const connectBob = async () => TestClient.connect(target.url, await tokenFor('bob'));

  it('never tells Bob of the deletion of a record he could not read, live or by walk', async () => {
    const bob = await connectBob();
    await bob.sync('notes', replicaOf());
    await alice.write('notes', [['diary', { owner: 'alice', text: 'private' }]]);
    await alice.write('notes', [['diary', null]]);
    // A change Bob may see, committed after the deletion: once it arrives, the deletion would have.
    await alice.write('notes', [['menu', { owner: 'alice', shared: true }]]);
    const seen = new Map<string, Value | null>();
    await eventually(() => {
      for (const [key, , value] of takeChangedEntries(bob, 'notes')) seen.set(key, value);
      return seen.has('menu');
    });
    expect([...seen.keys()]).toEqual(['menu']);

    const walk = await walkLikeAClient(bob, 'notes', replicaOf('bob'));
    expect(walk.converged).toBe(true);
    expect(walk.replica.getRecord('diary')).toBeUndefined();
    expect(walk.replica.get('menu')).toEqual({ owner: 'alice', shared: true });
    bob.close();
  });

  it('tells Bob of the deletion of a record he could read, live and by walk', async () => {
    const bob = await connectBob();
    await alice.write('notes', [['poster', { owner: 'alice', shared: true }]]);
    const replica = replicaOf('bob-poster');
    expect((await walkLikeAClient(bob, 'notes', replica)).converged).toBe(true);
    expect(replica.get('poster')).toEqual({ owner: 'alice', shared: true });

    await alice.write('notes', [['poster', null]]);
    await eventually(() =>
      takeChangedEntries(bob, 'notes').some(([key, , value]) => key === 'poster' && value === null),
    );
    const offline = replicaOf('bob-offline');
    offline.merge('poster', replica.getRecord('poster')!);
    const later = await connectBob();
    expect((await walkLikeAClient(later, 'notes', offline)).converged).toBe(true);
    expect(offline.getRecord('poster')?.value).toBeNull();
    bob.close();
    later.close();
  });

  it('revokes a shared record from Bob when it turns private: live, in live queries, by walk', async () => {
    await alice.write('notes', [['plan', { owner: 'alice', shared: true, v: 1 }]]);
    // Bob's replica, which he takes offline with the shared version.
    const offline = replicaOf('bob-plan');
    const before = await connectBob();
    expect((await walkLikeAClient(before, 'notes', offline)).converged).toBe(true);
    expect(offline.get('plan')).toMatchObject({ v: 1 });
    before.close();

    const live = await connectBob();
    await live.sync('notes', replicaOf());
    const watcher = await connectBob();
    watcher.send({ type: 'subscribe', id: 1, map: 'notes', query: {} });
    const snapshot = await watcher.next('query_snapshot');
    expect(snapshot.type === 'query_snapshot' && snapshot.entries.map(([key]) => key)).toContain(
      'plan',
    );

    await alice.write('notes', [['plan', { owner: 'alice', shared: false, v: 2 }]]);

    const after = await connectBob();
    const walk = await walkLikeAClient(after, 'notes', offline, { framing: 'inline' });
    expect(walk.converged).toBe(true);
    expect(walk.revoked).toEqual(['plan']);
    expect(offline.getRecord('plan')).toBeUndefined();

    expect(await live.next('revoke')).toEqual({ type: 'revoke', map: 'notes', keys: ['plan'] });
    expect(await watcher.next('revoke')).toEqual({ type: 'revoke', map: 'notes', keys: ['plan'] });
    expect(await watcher.next('query_update')).toMatchObject({ leave: ['plan'] });
    const leaked = takeChangedEntries(live, 'notes').filter(([key]) => key === 'plan');
    expect(leaked).toEqual([]);
    for (const client of [live, watcher, after]) client.close();
  });

  // The client sends the records a walk asks for as `sync_records` before its `sync` answer,
  // so the `revoke` they cause reaches it before the server's `sync_done`.
  it('converges in one walk, as @topgun/client frames it, when a record turned private', async () => {
    await alice.write('notes', [['memo', { owner: 'alice', shared: true }]]);
    const offline = replicaOf('bob-memo');
    const before = await connectBob();
    expect((await walkLikeAClient(before, 'notes', offline)).converged).toBe(true);
    before.close();
    await alice.write('notes', [['memo', { owner: 'alice', shared: false }]]);

    const after = await connectBob();
    const walk = await walkLikeAClient(after, 'notes', offline);
    expect(walk.revoked).toEqual(['memo']);
    expect(walk.converged).toBe(true);
    after.close();
  });

  it('answers writes to a key Bob may not see exactly as writes to an absent key', async () => {
    await alice.write('notes', [
      ['locked-1', { owner: 'alice' }],
      ['locked-2', { owner: 'alice' }],
    ]);
    const bob = await connectBob();

    // Bob may create a note of his own: both writes are acknowledged.
    const overHidden = await bob.write('notes', [['locked-1', { owner: 'bob' }]]);
    const overAbsent = await bob.write('notes', [['free-1', { owner: 'bob' }]]);
    expect(kindOf(overHidden)).toEqual({ acked: true });
    expect(kindOf(overAbsent)).toEqual(kindOf(overHidden));
    // Written over by someone else as far as Bob knows: he drops the key.
    expect(await bob.next('revoke')).toEqual({ type: 'revoke', map: 'notes', keys: ['locked-1'] });

    // Bob may not create a note in Alice's name: both keys are refused, both as absent.
    const forgedHidden = await bob.write('notes', [['locked-2', { owner: 'alice' }]]);
    const forgedAbsent = await bob.write('notes', [['free-2', { owner: 'alice' }]]);
    expect(kindOf(forgedHidden)).toEqual({ acked: false, reason: 'PERMISSION', current: null });
    expect(kindOf(forgedAbsent)).toEqual(kindOf(forgedHidden));

    const stored = await target.server.storage.getRecords('notes', [
      'locked-1',
      'locked-2',
      'free-2',
    ]);
    expect(Object.fromEntries(stored.map(({ key, record }) => [key, record.value]))).toEqual({
      'locked-1': { owner: 'alice' },
      'locked-2': { owner: 'alice' },
    });
    bob.send({ type: 'ping', time: 1 });
    await bob.next('pong');
    expect(takeReceived(bob, (message) => message.type === 'revoke')).toEqual([]);
    bob.close();
  });

  it('answers a query-scoped client naming hidden, deleted and absent keys alike, and leaks none', async () => {
    await alice.write('notes', [
      ['q-hidden', { owner: 'alice', secret: 'recipe' }],
      ['q-deleted', { owner: 'alice', shared: true }],
      ['q-shared', { owner: 'alice', shared: true, v: 1 }],
    ]);
    await alice.write('notes', [['q-deleted', null]]);
    const bob = await connectBob();
    // Bob names keys he guessed (with made-up hashes) besides what he may read.
    const guessed = (key: string) =>
      [key, { value: 1, timestamp: { millis: 1, counter: 0, nodeId: 'b' } }] as const;
    bob.send({
      type: 'subscribe',
      id: 1,
      map: 'notes',
      query: { where: { shared: true } },
      have: encodeHave(['q-hidden', 'q-deleted', 'q-absent'].map(guessed)),
    });
    const snapshot = await bob.next('query_snapshot');
    if (snapshot.type !== 'query_snapshot') throw new Error();
    expect(snapshot.entries.map(([key]) => key)).toContain('q-shared');
    // The three alike: dropped without a tombstone or a record.
    const revoked = takeReceived(bob, (message) => message.type === 'revoke');
    expect(revoked).toEqual([
      { type: 'revoke', map: 'notes', keys: ['q-hidden', 'q-deleted', 'q-absent'] },
    ]);
    const named = snapshot.entries.map(([key]) => key).filter((key) => key.startsWith('q-'));
    expect(named).toEqual(['q-shared']);

    // A record of his window turning private: revoked, and its new version never sent.
    await alice.write('notes', [['q-shared', { owner: 'alice', shared: false, v: 2 }]]);
    expect(await bob.next('revoke')).toEqual({ type: 'revoke', map: 'notes', keys: ['q-shared'] });
    const update = await bob.next('query_update');
    expect(update).toMatchObject({ leave: ['q-shared'], update: [], enter: [] });
    expect(JSON.stringify(bob.received)).not.toContain('recipe');
    bob.close();
  });
});

/** Whether a message sends `key`'s record in a live query's answer. */
const sendsRecordOf = (key: string) => (message: Message) =>
  (message.type === 'query_snapshot' && message.entries.some(([named]) => named === key)) ||
  (message.type === 'query_update' &&
    [...message.enter, ...message.update].some(([named]) => named === key));

/** Whether a message tells its client to forget `key`. */
const revokes = (key: string) => (message: Message) =>
  message.type === 'revoke' && message.keys.includes(key);

// A snapshot larger than what the kernel takes for a reader that stops reading waits for
// that reader between chunks: records that change meanwhile must reach it as they are when
// their chunk is sent, after what their own change told it, never before.
describe.runIf(available)('records that change while a snapshot streams to a slow reader', () => {
  /** Alice's shared notes r0…r79 of 256 KiB each: 20 MiB, far more than a socket buffers. */
  const ROWS = 80;
  const target = usePostgresServer({
    auth: { secret: TOKEN_SECRET },
    permissions: NOTES,
    // Streams wait once 1 MiB is queued; a chunk of the snapshot is at most 1 MiB.
    limits: { sendHighWaterMark: 4 * 1024 * 1024 },
    seed: (storage) =>
      seedMap(storage, 'notes', ROWS, (index) => ({
        owner: 'alice',
        shared: true,
        n: index,
        pad: 'x'.repeat(256 * 1024),
      })),
  });
  let alice: TestClient;
  beforeAll(async () => {
    alice = await TestClient.connect(target.url, await tokenFor('alice'));
  });
  afterAll(() => alice?.close());

  const rowsHeld = () => metricValue(target.server, 'topgun_live_query_rows');
  /**
   * Bob, who can stop reading his socket: what the server sends him then waits after the
   * first MiBs. The only subscriber: once the server holds rows, his query is built.
   */
  const slowBob = async () => {
    await eventually(async () => (await rowsHeld()) === 0);
    const bob = await TestClient.connect(target.url, await tokenFor('bob'));
    onTestFinished(() => bob.close());
    const socket = (bob.socket as unknown as { _socket: { pause(): void; resume(): void } })
      ._socket;
    return { bob, pause: () => socket.pause(), resume: () => socket.resume() };
  };
  /** Alice makes row `index` private, with a secret. */
  const hide = (index: number) =>
    alice.write('notes', [[`r${index}`, { owner: 'alice', n: index, secret: 'recipe' }]]);
  /**
   * Checks that row `index`, hidden while Bob's answer streamed, was revoked and never sent
   * after that, though the row before it was; returns where the revoke is.
   */
  const expectForgotten = (bob: TestClient, index: number) => {
    const revokedAt = bob.received.findIndex(revokes(`r${index}`));
    expect(revokedAt, `r${index} is revoked`).toBeGreaterThanOrEqual(0);
    expect(bob.received.slice(revokedAt).filter(sendsRecordOf(`r${index}`))).toEqual([]);
    expect(bob.received.findIndex(sendsRecordOf(`r${index - 1}`))).toBeGreaterThan(revokedAt);
    expect(JSON.stringify(bob.received)).not.toContain('recipe');
    return revokedAt;
  };

  it('never sends a row of the snapshot that turned private once Bob was told to forget it', async () => {
    const { bob, pause, resume } = await slowBob();
    pause();
    bob.send({ type: 'subscribe', id: 1, map: 'notes', query: { sort: 'n' } });
    await eventually(async () => (await rowsHeld()) === ROWS, 10_000);
    // The snapshot's last row turns private while its first chunks wait for Bob.
    await hide(79);
    resume();
    await eventually(() => bob.received.some(answersSubscription(1)), 20_000);

    const revokedAt = expectForgotten(bob, 79);
    // While the snapshot streamed.
    expect(revokedAt).toBeLessThan(bob.received.findIndex(answersSubscription(1)));
  });

  it('streams the rows a grown window brings in, none after Bob was told to forget it', async () => {
    const { bob, pause, resume } = await slowBob();
    bob.send({ type: 'subscribe', id: 3, map: 'notes', query: { sort: 'n', limit: 1 } });
    await bob.next(answersSubscription(3));
    bob.send({ type: 'query_more', id: 3, limit: ROWS });
    // Its first rows are in: the window has grown, and 20 MiB of rows wait for Bob.
    await bob.next('query_update');
    pause();
    // A row near the end of the window turns private (r79 is the first test's).
    await hide(78);
    resume();
    // Answered in order: the pong follows the whole answer to query_more.
    bob.send({ type: 'ping', time: 3 });
    await bob.next('pong', 20_000);

    const left = bob.received.filter(
      (message) => message.type === 'query_update' && message.leave.includes('r78'),
    );
    expect(left, 'r78 leaves the grown window while its rows stream').toHaveLength(1);
    expectForgotten(bob, 78);
  });

  it('revokes a key Bob names before the snapshot, not after it was created and entered', async () => {
    const { bob, pause, resume } = await slowBob();
    pause();
    const guessed = {
      value: { owner: 'alice', shared: true, n: -1 },
      timestamp: { millis: 1, counter: 0, nodeId: 'b' },
    };
    bob.send({
      type: 'subscribe',
      id: 2,
      map: 'notes',
      query: { where: { n: { lt: 60 } }, sort: 'n' },
      have: encodeHave([['fresh', guessed]]),
    });
    await eventually(async () => (await rowsHeld()) === 60, 10_000);
    // Absent when the snapshot was planned; created, in the result, while it streams.
    await alice.write('notes', [['fresh', { owner: 'alice', shared: true, n: -1 }]]);
    resume();
    await eventually(() => bob.received.some(answersSubscription(2)), 20_000);

    const enteredAt = bob.received.findIndex(sendsRecordOf('fresh'));
    expect(enteredAt, 'fresh enters while the snapshot streams').toBeGreaterThanOrEqual(0);
    expect(enteredAt).toBeLessThan(bob.received.findIndex(answersSubscription(2)));
    // Bob keeps it: no revoke follows the record.
    expect(bob.received.slice(enteredAt).filter(revokes('fresh'))).toEqual([]);
  });
});
