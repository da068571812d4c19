import 'fake-indexeddb/auto';
import { afterEach, expect, it } from 'vitest';
import { createClient, manualOnlineManager, type TopGunClient } from '../src/index.js';
import { FakeTransport } from './fakeTransport.js';
import { sharedLock } from './sharedLock.js';

interface Todo {
  title: string;
}

const clients: TopGunClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

it('hands the connection to the next tab when the leader goes, which sends every unacknowledged write', async () => {
  const transport = new FakeTransport();
  const election = sharedLock();
  const tab = () => {
    const client = createClient({
      url: 'fake://server/sync',
      transport,
      storage: 'indexeddb',
      dbName: 'tabs-over-a-fake-transport',
      multiTab: true,
      nodeId: 'profile1',
      leaderElection: election(),
      online: manualOnlineManager(true),
      minRetryMs: 1,
      maxRetryMs: 5,
      random: () => 0,
    });
    clients.push(client);
    return client;
  };
  const leader = tab();
  const follower = tab();
  const first = await transport.connection(0);
  await first.welcome();
  leader.getMap<Todo>('todos').set('from-leader', { title: 'A' });
  follower.getMap<Todo>('todos').set('from-follower', { title: 'B' });
  await first.endWalk();
  // Both tabs' writes go out through the leader's one connection, and stay unacknowledged.
  const sent = new Set<string>();
  while (sent.size < 2) for (const op of (await first.next('ops')).ops) sent.add(op.entry[0]);
  expect([...sent].sort()).toEqual(['from-follower', 'from-leader']);
  expect(transport.connections).toHaveLength(1);

  await leader.close();
  clients.splice(clients.indexOf(leader), 1);
  const second = await transport.connection(1);
  await second.welcome();
  await second.endWalk();
  const { ops } = await second.next('ops');
  expect(ops.map((op) => op.entry[0]).sort()).toEqual(['from-follower', 'from-leader']);
  const flushed = follower.flush();
  second.receive({ type: 'ack', ids: ops.map((op) => op.id), superseded: [] });
  await flushed;
  expect(follower.status.getState()).toMatchObject({ isLeader: true, pendingOps: 0 });
});
