import { toWireEntry } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { SyncError } from '../src/clientErrors.js';
import type { RejectedWrite } from '../src/outbox/localWrites.js';
import type { TabChannel, TabMessage } from '../src/tabs/tabChannel.js';
import { TabSync } from '../src/tabs/tabSync.js';
import { clientRooms } from './rooms.js';
import { sharedLock } from './sharedLock.js';

/**
 * Tabs joined by a fake BroadcastChannel: a message reaches every other open tab a task
 * later, structured-cloned, as the real one delivers it.
 */
function fakeTabs() {
  const open = new Set<(message: TabMessage) => void>();
  const election = sharedLock();
  const tab = (name: string, options: { readonly loaded?: boolean } = {}) => {
    const sendSoon: number[] = [];
    const receive = (message: TabMessage) => sync.receive(message, () => sendSoon.push(1));
    const channel: TabChannel = {
      post: (message) => {
        for (const other of open)
          if (other !== receive) setTimeout(() => other(structuredClone(message)));
      },
      close: () => open.delete(receive),
    };
    open.add(receive);
    const rooms = clientRooms({
      tabNodeId: `profile-${name}`,
      share: (message) => channel.post(message),
      ...options,
    });
    const sync: TabSync = new TabSync(rooms, channel, election());
    const rejected: RejectedWrite[] = [];
    rooms.writes.onRejected((write) => rejected.push(write));
    let leads = 0;
    sync.start(() => leads++);
    return { name, rooms, sync, sendSoon, rejected, leads: () => leads };
  };
  return { tab };
}

/** Lets the fake channel deliver what was posted (and what the answers post). */
const delivered = async () => {
  for (let round = 0; round < 3; round++) await new Promise((resolve) => setTimeout(resolve));
};

describe('tabs sharing one replica', () => {
  it('elects one leader; followers apply its changes and show its status, errors keeping their type', async () => {
    const { tab } = fakeTabs();
    const a = tab('a');
    const b = tab('b');
    await delivered();
    expect([a, b].map((tab) => tab.rooms.status.getState().isLeader)).toEqual([true, false]);
    expect(a.leads()).toBe(1);
    a.rooms.replicas.entry('todos').handle.set('t1', { title: 'from a' });
    a.rooms.status.setState({
      connection: 'offline',
      lastError: new SyncError('AUTH_FAILED', 'authentication failed: expired', 'EXPIRED_TOKEN'),
    });
    await delivered();
    expect(b.rooms.replicas.entry('todos').replica.get('t1')).toEqual({ title: 'from a' });
    const { lastError, isLeader } = b.rooms.status.getState();
    expect(isLeader).toBe(false);
    expect(lastError).toBeInstanceOf(SyncError);
    expect(lastError).toMatchObject({ code: 'AUTH_FAILED', serverCode: 'EXPIRED_TOKEN' });
  });

  it('merges an update made in one tab into the other tab, with that tab’s own concurrent update', async () => {
    const { tab } = fakeTabs();
    const a = tab('a');
    const b = tab('b');
    await delivered();
    const todosA = a.rooms.replicas.entry('todos').handle;
    const todosB = b.rooms.replicas.entry('todos').handle;
    todosA.set('t1', { title: 'milk', done: false });
    await delivered();
    // Both tabs update a field before hearing of the other's update.
    todosA.update('t1', { done: true });
    todosB.update('t1', { title: 'oat milk' });
    await delivered();
    for (const each of [a, b]) {
      expect(each.rooms.replicas.entry('todos').replica.get('t1')).toEqual({
        title: 'oat milk',
        done: true,
      });
      // Both field writes are in the leader's outbox, as field writes alone.
      expect(each.rooms.outbox.size).toBe(3);
    }
    expect(
      a.rooms.outbox
        .inOrder()
        .slice(1)
        .map((entry) => toWireEntry('t1', entry.record).length),
    ).toEqual([5, 5]);
  });

  it('rolls a refused write back in every tab and reports it only in the tab that made it', async () => {
    const { tab } = fakeTabs();
    const leader = tab('a');
    const follower = tab('b');
    await delivered();
    follower.rooms.replicas.entry('todos').handle.set('t1', { title: 'mine' });
    await delivered();
    // The leader sends the follower's write; the server refuses it.
    expect(leader.rooms.outbox.size).toBe(1);
    expect(leader.sendSoon.length).toBeGreaterThan(0);
    const [entry] = leader.rooms.outbox.inOrder();
    if (entry === undefined) throw new Error('no write reached the leader');
    const current = toWireEntry('t1', {
      value: { title: 'server' },
      timestamp: { millis: 1, counter: 0, nodeId: 'server' },
    });
    leader.rooms.writes.rejected(entry, 'PERMISSION', 'read-only', current);
    await delivered();
    for (const each of [leader, follower]) {
      expect(each.rooms.replicas.entry('todos').replica.get('t1')).toEqual({ title: 'server' });
      expect(each.rooms.outbox.size).toBe(0);
    }
    expect(leader.rejected).toEqual([]);
    expect(follower.rejected).toMatchObject([
      { map: 'todos', key: 't1', reason: 'PERMISSION', error: { code: 'WRITE_REJECTED' } },
    ]);
  });

  it('hands every tab’s pending writes to the next leader when the leader dies', async () => {
    const { tab } = fakeTabs();
    const leader = tab('a');
    const follower = tab('b');
    const third = tab('c');
    await delivered();
    follower.rooms.replicas.entry('todos').handle.set('b1', { title: 'B' });
    third.rooms.replicas.entry('todos').handle.set('c1', { title: 'C' });
    await delivered();
    leader.sync.close();
    await delivered();
    expect(follower.rooms.status.getState().isLeader).toBe(true);
    expect(follower.leads()).toBe(1);
    expect(
      follower.rooms.outbox
        .inOrder()
        .map((entry) => entry.key)
        .sort(),
    ).toEqual(['b1', 'c1']);
    // The new leader sends them soon; a tab that leads hands nothing over.
    expect(follower.sendSoon.length).toBeGreaterThan(0);
    expect(third.rooms.status.getState().isLeader).toBe(false);
  });

  it('keeps another tab’s update of a write made before the stored replica loaded: nothing is stamped again', async () => {
    const { tab } = fakeTabs();
    const leader = tab('a');
    const loading = tab('b', { loaded: false });
    await delivered();
    loading.rooms.replicas.entry('todos').handle.set('t1', { title: 'milk', done: false });
    await delivered();
    // The leader ticks the todo; the loading tab merges it before its stored replica is in.
    leader.rooms.replicas.entry('todos').handle.update('t1', { done: true });
    await delivered();
    const made = loading.rooms.outbox.inOrder();
    loading.rooms.writes.loadedFromStorage([]);
    await delivered();
    for (const each of [leader, loading]) {
      expect(each.rooms.replicas.entry('todos').replica.get('t1')).toEqual({
        title: 'milk',
        done: true,
      });
      expect(each.rooms.outbox.inOrder()).toEqual(made);
    }
  });

  it('hands a write stamped again to every tab, so that the next leader sends its new stamp', async () => {
    const { tab } = fakeTabs();
    const leader = tab('a');
    const follower = tab('b');
    await delivered();
    follower.rooms.replicas.entry('todos').handle.set('t1', { title: 'offline' });
    await delivered();
    const [sent] = leader.rooms.outbox.inOrder();
    leader.rooms.writes.tooOld([sent!]);
    await delivered();
    const [again] = leader.rooms.outbox.inOrder();
    expect(again?.id).toBe(sent?.id);
    expect(again?.record.timestamp).not.toEqual(sent?.record.timestamp);
    expect(follower.rooms.outbox.inOrder()).toEqual([again]);
    leader.sync.close();
    await delivered();
    expect(follower.rooms.status.getState().isLeader).toBe(true);
    expect(follower.rooms.writes.own()).toEqual([again]);
  });

  it('confirms queries in every tab once the leader reconciled their map', async () => {
    const { tab } = fakeTabs();
    const leader = tab('a');
    const follower = tab('b');
    await delivered();
    const handle = follower.rooms.queries.query('todos', {});
    handle.subscribe(() => {});
    expect(handle.getSnapshot().status).not.toBe('synced');
    leader.rooms.marks.set('todos', 1_000);
    await delivered();
    expect(follower.rooms.marks.get('todos')).toBe(1_000);
    expect(handle.getSnapshot().status).toBe('synced');
  });
});
