import { toWireEntry } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import type { TabMessage } from '../src/tabs/tabChannel.js';
import { clientRooms } from './rooms.js';

/** The rooms of a tab whose wall clock the test moves. */
function tabAt(start: number) {
  let now = start;
  const told: TabMessage[] = [];
  const rooms = clientRooms({ now: () => now, share: (message) => told.push(message) });
  const todos = rooms.replicas.entry('todos').handle;
  return { ...rooms, todos, told, setNow: (millis: number) => (now = millis) };
}

describe('the rules of local writes', () => {
  it('re-stamps a write the server found too old, keeping the order of the writes', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { n: 1 });
    tab.todos.set('b', { n: 2 });
    const [first, second] = tab.outbox.inOrder();
    if (first === undefined || second === undefined) throw new Error('two writes expected');
    tab.setNow(500_000);
    tab.writes.tooOld(second);
    tab.writes.tooOld(first);
    const again = tab.outbox.inOrder();
    expect(again.map((entry) => entry.id)).toEqual([second.id, first.id]);
    expect(again.every((entry) => entry.record.timestamp.millis === 500_000)).toBe(true);
    // The replica and the other tabs hold the re-stamped records.
    expect(tab.replicas.entry('todos').replica.getRecord('a')).toEqual(again[1]?.record);
    expect(tab.told.filter((message) => message.type === 'restore')).toHaveLength(2);
  });

  it('settles instead of re-stamping a write a newer one of its key replaced', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { n: 1 });
    const [old] = tab.outbox.inOrder();
    if (old === undefined) throw new Error('a write expected');
    // Another user's newer write arrives from the server.
    tab.replicas.merge(
      'todos',
      [['a', { value: { n: 9 }, timestamp: { millis: 2_000, counter: 0, nodeId: 'other' } }]],
      true,
    );
    tab.writes.tooOld(old);
    expect(tab.outbox.size).toBe(0);
    expect(tab.replicas.entry('todos').replica.get('a')).toEqual({ n: 9 });
  });

  it('rolls a refused write back only while the replica still holds it', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { n: 1 });
    tab.todos.set('b', { n: 1 });
    const [a, b] = tab.outbox.inOrder();
    if (a === undefined || b === undefined) throw new Error('two writes expected');
    tab.todos.set('b', { n: 2 }); // a newer write of b, still pending
    const server = toWireEntry('a', {
      value: { n: 0 },
      timestamp: { millis: 10, counter: 0, nodeId: 'server' },
    });
    tab.writes.rejected(a, 'PERMISSION', 'no', server);
    tab.writes.rejected(b, 'VALIDATION', 'no', null);
    const replica = tab.replicas.entry('todos').replica;
    expect(replica.get('a')).toEqual({ n: 0 });
    expect(replica.get('b')).toEqual({ n: 2 });
    expect(tab.outbox.inOrder().map((entry) => entry.key)).toEqual(['b']);
  });

  it('keeps a write made before the stored replica loaded over what was stored', () => {
    const tab = clientRooms({ now: () => 5_000, loaded: false });
    tab.replicas.entry('todos').handle.set('a', { title: 'typed at once' });
    // The stored replica arrives, stamped later than this clock has seen yet.
    tab.replicas.load('todos', [
      ['a', { value: { title: 'stored' }, timestamp: { millis: 9_000, counter: 0, nodeId: 'x' } }],
    ]);
    tab.writes.loadedFromStorage();
    const record = tab.replicas.entry('todos').replica.getRecord('a');
    expect(record?.value).toEqual({ title: 'typed at once' });
    expect(record?.timestamp.millis).toBeGreaterThanOrEqual(9_000);
    // The outbox sends what the replica holds.
    expect(tab.outbox.inOrder().map((entry) => entry.record)).toEqual([record]);
  });

  it('revokes records the user may no longer read, except keys with pending writes', () => {
    const tab = tabAt(1_000);
    tab.replicas.merge(
      'todos',
      [
        ['x', { value: 1, timestamp: { millis: 10, counter: 0, nodeId: 'server' } }],
        ['y', { value: 2, timestamp: { millis: 10, counter: 0, nodeId: 'server' } }],
      ],
      true,
    );
    tab.todos.set('y', 3);
    tab.writes.revoke('todos', ['x', 'y']);
    const replica = tab.replicas.entry('todos').replica;
    expect(replica.getRecord('x')).toBeUndefined();
    expect(replica.get('y')).toBe(3);
  });
});
