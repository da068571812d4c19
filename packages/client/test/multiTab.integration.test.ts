import 'fake-indexeddb/auto';
import type { TopGunServer } from '@topgun/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, testClient, waitFor } from './harness.js';
import { sharedLock } from './sharedLock.js';

describe('tabs sharing one replica', () => {
  let server: TopGunServer;
  let url: string;
  beforeAll(async () => {
    ({ server, url } = await startServer({
      permissions: [
        { map: 'locked', read: true, write: false },
        { map: '*', read: true, write: true },
      ],
    }));
  });
  afterAll(() => server.close());

  it('see each other at once, send through one connection, and hand over leadership', async () => {
    const election = sharedLock();
    const options = {
      storage: 'indexeddb' as const,
      dbName: 'tabs',
      multiTab: true,
      nodeId: 'profile1',
    };
    const tabA = testClient(url, { ...options, leaderElection: election() }).client;
    const tabB = testClient(url, { ...options, leaderElection: election() }).client;
    const other = testClient(url).client;
    const otherTodos = other.getMap<{ title: string }>('shared');
    const todosA = tabA.getMap<{ title: string }>('shared');
    const todosB = tabB.getMap<{ title: string }>('shared');
    await Promise.all([tabA.ready, tabB.ready]);
    await waitFor(
      () => tabA.status.getState().isLeader && tabA.status.getState().connection === 'online',
    );
    expect(tabB.status.getState().isLeader).toBe(false);

    todosB.set('fromB', { title: 'written in tab B' });
    // Visible in tab A without a round trip to the server.
    await waitFor(
      () => todosA.get('fromB')?.title === 'written in tab B',
      1_000,
      'tab A to see tab B',
    );
    // Sent by the leader, acknowledged, and settled in the follower too.
    await waitFor(
      () => otherTodos.get('fromB') !== undefined,
      5_000,
      'the server to get tab B’s write',
    );
    await waitFor(() => tabB.status.getState().pendingOps === 0, 5_000, 'tab B’s outbox to settle');
    expect(tabB.status.getState().connection).toBe('online');
    const metrics = await (
      await fetch(`${url.replace('ws', 'http').replace('/sync', '')}/metrics`)
    ).text();
    expect(metrics).toMatch(/topgun_connections 2/); // tab A and the other client: tab B has none

    // A write the server refuses, made in the follower: rolled back in both tabs, reported once,
    // by the tab that made it. The leader only holds structured clones of tab B's write.
    const rejectedInA: string[] = [];
    const rejectedInB: string[] = [];
    tabA.onRejected(({ key }) => rejectedInA.push(key));
    tabB.onRejected(({ key }) => rejectedInB.push(key));
    const lockedA = tabA.getMap<{ title: string }>('locked');
    const lockedB = tabB.getMap<{ title: string }>('locked');
    lockedB.set('refused', { title: 'not allowed' });
    await waitFor(() => rejectedInB.length === 1, 5_000, 'tab B to hear of the refusal');
    expect(rejectedInB).toEqual(['refused']);
    expect(lockedB.get('refused')).toBeUndefined();
    await waitFor(() => lockedA.get('refused') === undefined, 1_000, 'tab A to roll back');
    expect(rejectedInA).toEqual([]);
    expect(tabB.status.getState().pendingOps).toBe(0);

    otherTodos.set('fromServer', { title: 'pushed' });
    await waitFor(
      () => todosB.get('fromServer') !== undefined,
      5_000,
      'tab B to get server changes through tab A',
    );

    await tabA.close();
    await waitFor(
      () => tabB.status.getState().isLeader && tabB.status.getState().connection === 'online',
      5_000,
      'tab B to lead',
    );
    todosB.set('afterHandover', { title: 'sent by the new leader' });
    await waitFor(
      () => otherTodos.get('afterHandover') !== undefined,
      5_000,
      'the new leader to send',
    );
    await tabB.close();
    await other.close();
  });
});
