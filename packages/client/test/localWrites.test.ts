import {
  formatTimestamp,
  fromWireEntry,
  type LWWRecord,
  latestTimestamp,
  mergeRecords,
  toWireEntry,
  type Value,
  type WireEntry,
} from '@topgun/core';
import { describe, expect, it } from 'vitest';
import type { ClientMap } from '../src/index.js';
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
    tab.writes.tooOld([second]);
    tab.writes.tooOld([first]);
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
    tab.writes.tooOld([old]);
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
    const stored: LWWRecord<Value> = {
      value: { title: 'stored' },
      timestamp: { millis: 9_000, counter: 0, nodeId: 'x' },
    };
    tab.replicas.load('todos', [['a', stored]]);
    tab.writes.loadedFromStorage([{ map: 'todos', key: 'a', record: stored }]);
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

type Todo = { title: string; done: boolean; n?: number };

/** A record from another writer, merged as the server sends it. */
const fromServer = (tab: ReturnType<typeof tabAt>, entry: WireEntry) =>
  tab.replicas.merge('todos', [fromWireEntry<Value>(entry)], true);

/** Field writes of another writer at `millis`. */
const otherFields = (key: string, millis: number, fields: Record<string, Value>): WireEntry => [
  key,
  null,
  null,
  null,
  Object.fromEntries(
    Object.entries(fields).map(([name, value]) => [
      name,
      [formatTimestamp({ millis, counter: 0, nodeId: 'other' }), value],
    ]),
  ),
];

describe('updates: field writes through the client', () => {
  it('writes only the patch: the outbox sends the field writes alone, the replica stores and shares the merged record', async () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { title: 'milk', done: false, n: 1 });
    tab.setNow(2_000);
    tab.todos.update('a', { done: true, n: undefined });
    const [, patch] = tab.outbox.inOrder();
    if (patch === undefined) throw new Error('two writes expected');
    const stamp = formatTimestamp({ millis: 2_000, counter: 0, nodeId: 'client-tab' });
    expect(toWireEntry(patch.key, patch.record)).toEqual([
      'a',
      null,
      null,
      null,
      { done: [stamp, true], n: [stamp] },
    ]);
    const held = tab.replicas.entry('todos').replica.getRecord('a');
    expect(held?.value).toEqual({ title: 'milk', done: true });
    // Stored and told to the other tabs: the merged record, not the patch.
    await tab.persist.committed();
    const stored = (await tab.storage.load()).records.find(({ key }) => key === 'a');
    expect(stored?.record).toEqual(held);
    expect(tab.told.filter((message) => message.type === 'records').at(-1)).toEqual({
      type: 'records',
      map: 'todos',
      entries: [['a', held]],
    });
    // An empty patch writes nothing.
    tab.todos.update('a', {});
    expect(tab.outbox.size).toBe(2);
  });

  it('sets the patch as the whole value of a key holding no object', () => {
    const tab = tabAt(1_000);
    tab.todos.update('a', { title: 'new', n: undefined });
    const [entry] = tab.outbox.inOrder();
    expect(entry?.record.fields).toBeUndefined();
    expect(toWireEntry('a', entry!.record)).toHaveLength(3);
    expect(tab.todos.get('a')).toEqual({ title: 'new' });
  });

  it('keeps concurrent updates of different fields made on two clients', () => {
    const [left, right] = [tabAt(1_000), tabAt(1_000)];
    left.todos.set('a', { title: 'milk', done: false });
    const [created] = left.outbox.inOrder();
    fromServer(right, toWireEntry('a', created!.record));
    left.setNow(2_000);
    right.setNow(2_000);
    (left.todos as ClientMap<Todo>).update('a', { done: true });
    (right.todos as ClientMap<Todo>).update('a', { title: 'oat milk' });
    // The server passes each one's write on to the other.
    const [, fromLeft] = left.outbox.inOrder();
    const [fromRight] = right.outbox.inOrder();
    fromServer(right, toWireEntry('a', fromLeft!.record));
    fromServer(left, toWireEntry('a', fromRight!.record));
    for (const tab of [left, right])
      expect(tab.todos.get('a')).toEqual({ title: 'oat milk', done: true });
  });

  it('sends and re-stamps writes in the order they were made, field writes alone by their own time', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { title: 'milk', done: false });
    tab.setNow(2_000);
    tab.todos.update('a', { done: true });
    tab.setNow(3_000);
    tab.todos.set('b', { title: 'eggs', done: false });
    expect(tab.outbox.inOrder().map((entry) => entry.record.fields === undefined)).toEqual([
      true,
      false,
      true,
    ]);
    // Its own patch is not taken for another client's write.
    tab.writes.adoptForeignWrites();
    expect(tab.told.some((message) => message.type === 'restore')).toBe(false);
    // The clock ran ahead: every write is stamped again in order, the set before the update
    // of its key, which stays on top of it.
    tab.setNow(500);
    tab.writes.repairClock();
    expect(tab.todos.get('a')).toEqual({ title: 'milk', done: true });
    const again = tab.outbox.inOrder();
    expect(again.map((entry) => latestTimestamp(entry.record).millis)).toEqual([500, 500, 500]);
    expect(again[1]?.record.fields?.['done']?.value).toBe(true);
    expect(tab.replicas.entry('todos').replica.getRecord('a')?.fields).toEqual(
      again[1]?.record.fields,
    );
  });

  it('rolls back a refused update field by field, keeping later writes, then merges the server record', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { title: 'milk', done: false, n: 0 });
    const [created] = tab.outbox.inOrder();
    tab.writes.acknowledged([created!.id]);
    tab.setNow(2_000);
    tab.todos.update('a', { done: true, n: 1 });
    const [refused] = tab.outbox.inOrder();
    // Later: another user's write of n, and this client's own rename, still pending.
    fromServer(tab, otherFields('a', 3_000, { n: 7 }));
    tab.setNow(4_000);
    tab.todos.update('a', { title: 'oat milk' });
    // The server holds the set and another user's tick at 1 500, not seen here yet.
    const tick = fromWireEntry<Value>(otherFields('a', 1_500, { done: 'ticked' }))[1];
    const server = toWireEntry('a', mergeRecords(created!.record, tick));
    tab.writes.rejected(refused!, 'PERMISSION', 'no', server);
    expect(tab.todos.get('a')).toEqual({ title: 'oat milk', done: 'ticked', n: 7 });
    const record = tab.replicas.entry('todos').replica.getRecord('a');
    expect(Object.keys(record?.fields ?? {}).sort()).toEqual(['done', 'n', 'title']);
    expect(tab.outbox.inOrder().map((entry) => Object.keys(entry.record.fields ?? {}))).toEqual([
      ['title'],
    ]);
    // The other tabs are told the record as it is now.
    const restored = tab.told.filter((message) => message.type === 'restore');
    expect(restored.at(-1)).toEqual({
      type: 'restore',
      map: 'todos',
      entries: [['a', record, expect.objectContaining({ timestamp: created!.record.timestamp })]],
    });
  });

  it('rolls back a refused update without a server record to the fields before it', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { title: 'milk', done: false });
    tab.setNow(2_000);
    tab.todos.update('a', { done: true, title: undefined });
    const [, refused] = tab.outbox.inOrder();
    tab.writes.rejected(refused!, 'VALIDATION', 'no', null);
    expect(tab.todos.get('a')).toEqual({ title: 'milk', done: false });
    expect(tab.replicas.entry('todos').replica.getRecord('a')?.fields).toBeUndefined();
  });

  it('leaves the record alone when every field of a refused update was written again since', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { title: 'milk', done: false });
    tab.setNow(2_000);
    tab.todos.update('a', { done: true });
    const [, refused] = tab.outbox.inOrder();
    fromServer(tab, otherFields('a', 3_000, { done: 'later' }));
    const before = tab.replicas.entry('todos').replica.getRecord('a');
    tab.writes.rejected(refused!, 'PERMISSION', 'no', toWireEntry('a', created(900)));
    expect(tab.replicas.entry('todos').replica.getRecord('a')).toBe(before);
    expect(tab.todos.get('a')).toEqual({ title: 'milk', done: 'later' });
  });

  it('rolls back a refused set under a later update, keeping the update', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { title: 'milk', done: false });
    tab.setNow(2_000);
    tab.todos.update('a', { done: true });
    const [refused] = tab.outbox.inOrder();
    tab.writes.rejected(refused!, 'PERMISSION', 'no', toWireEntry('a', created(900)));
    expect(tab.todos.get('a')).toEqual({ title: 'server', done: true });
  });

  it('re-stamps the field writes of an update the server found too old that still hold, settling one replaced altogether', () => {
    const tab = tabAt(1_000);
    fromServer(tab, toWireEntry('a', created(900)));
    tab.todos.update('a', { done: true, title: 'mine', n: undefined });
    tab.todos.update('b', { title: 'new' });
    tab.setNow(1_500);
    tab.todos.update('b', { done: true });
    const [old, , replaced] = tab.outbox.inOrder();
    // Since: another user's later title, and a set of b that replaces the update of b.
    fromServer(tab, otherFields('a', 2_000, { title: 'theirs' }));
    fromServer(tab, toWireEntry('b', created(3_000)));
    tab.setNow(500_000);
    tab.writes.tooOld([old!]);
    tab.writes.tooOld([replaced!]);
    const [, again] = tab.outbox.inOrder();
    expect(again?.id).toBe(old?.id);
    const stamp = formatTimestamp({ millis: 500_000, counter: 0, nodeId: 'client-tab' });
    // The title lost to a later write: not stamped again, it would beat it.
    expect(toWireEntry('a', again!.record)).toEqual([
      'a',
      null,
      null,
      null,
      { done: [stamp, true], n: [stamp] },
    ]);
    expect(tab.todos.get('a')).toEqual({ title: 'theirs', done: true });
    expect(tab.replicas.entry('todos').replica.getRecord('a')?.fields?.['done']).toEqual(
      again!.record.fields?.['done'],
    );
    expect(tab.outbox.get(replaced!.id)).toBeUndefined();
    expect(tab.todos.get('b')).toEqual({ title: 'server', done: false });
  });

  it('re-stamps a set the server found too old with the updates made on top of it', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { title: 'milk', done: false });
    tab.setNow(2_000);
    tab.todos.update('a', { done: true });
    fromServer(tab, otherFields('a', 3_000, { title: 'oat milk' }));
    const [old, update] = tab.outbox.inOrder();
    // The update was recent enough; the set, made long before, is refused.
    tab.writes.acknowledged([update!.id]);
    tab.setNow(500_000);
    tab.writes.tooOld([old!]);
    const [again] = tab.outbox.inOrder();
    expect(again?.record).toEqual({
      value: { title: 'oat milk', done: true },
      timestamp: { millis: 500_000, counter: 0, nodeId: 'client-tab' },
    });
    expect(tab.replicas.entry('todos').replica.getRecord('a')).toEqual(again?.record);
  });

  it('applies a set and an update made before the stored replica loaded again, both', () => {
    const tab = clientRooms({ now: () => 5_000, loaded: false });
    const todos = tab.replicas.entry('todos').handle as ClientMap<Todo>;
    todos.set('a', { title: 'typed at once', done: false });
    todos.update('a', { done: true });
    // The stored replica arrives, stamped later than this clock has seen yet.
    tab.replicas.load('todos', [['a', created(9_000)]]);
    tab.writes.loadedFromStorage([{ map: 'todos', key: 'a', record: created(9_000) }]);
    expect(todos.get('a')).toEqual({ title: 'typed at once', done: true });
    const [set, update] = tab.outbox.inOrder();
    expect(set?.record.timestamp.millis).toBeGreaterThanOrEqual(9_000);
    expect(update?.record.fields?.['done']?.timestamp.millis).toBeGreaterThanOrEqual(9_000);
    expect(tab.replicas.entry('todos').replica.getRecord('a')).toEqual(
      mergeRecords(set!.record, update!.record),
    );
  });
});

describe('review fixes: writes before load, refusals and re-stamps', () => {
  /** Rooms before the stored replica loaded, at `now`, telling the other tabs to `told`. */
  const loading = (now: number) => {
    const told: TabMessage[] = [];
    const rooms = clientRooms({ now: () => now, loaded: false, share: (m) => told.push(m) });
    const todos = rooms.replicas.entry('todos').handle as ClientMap<Todo>;
    /** Loads `records` as the stored replica of map todos. */
    const load = (...records: Array<readonly [string, LWWRecord<Value>]>) => {
      rooms.replicas.load('todos', records);
      rooms.writes.loadedFromStorage(
        records.map(([key, record]) => ({ map: 'todos', key, record })),
      );
    };
    return { ...rooms, todos, told, load };
  };

  it('writes an update made before the stored replica loaded as field writes over the stored record', () => {
    const tab = loading(5_000);
    tab.todos.update('a', { done: true });
    tab.load(['a', created(1_000)]);
    expect(tab.todos.get('a')).toEqual({ title: 'server', done: true });
    const [entry] = tab.outbox.inOrder();
    const stamp = formatTimestamp({ millis: 5_000, counter: 0, nodeId: 'client-tab' });
    expect(toWireEntry('a', entry!.record)).toEqual([
      'a',
      null,
      null,
      null,
      { done: [stamp, true] },
    ]);
  });

  it('stamps again the field writes of an update made before load that a later stored record replaced, and tells the other tabs', () => {
    const tab = loading(5_000);
    tab.todos.update('a', { done: true });
    const [made] = tab.outbox.inOrder();
    tab.load(['a', created(9_000)]);
    expect(tab.todos.get('a')).toEqual({ title: 'server', done: true });
    const [entry] = tab.outbox.inOrder();
    expect(entry?.id).toBe(made?.id);
    expect(entry?.record.timestamp).toEqual(made?.record.timestamp); // still field writes alone
    expect(entry?.record.fields?.['done']?.timestamp.millis).toBeGreaterThanOrEqual(9_000);
    expect(tab.told.at(-1)).toEqual({ type: 'outbox', entries: [entry] });
  });

  it('makes an update made before load the set of its patch when the key holds no object once loaded', () => {
    const tab = loading(5_000);
    tab.todos.update('absent', { title: 'new', n: undefined });
    tab.todos.update('deleted', { title: 'again' });
    tab.load(['deleted', { value: null, timestamp: { millis: 9_000, counter: 0, nodeId: 'x' } }]);
    expect(tab.todos.get('absent')).toEqual({ title: 'new' });
    expect(tab.todos.get('deleted')).toEqual({ title: 'again' });
    const [absent, deleted] = tab.outbox.inOrder();
    expect(absent?.record).toEqual({
      value: { title: 'new' },
      timestamp: { millis: 5_000, counter: 0, nodeId: 'client-tab' },
    });
    expect(deleted?.record.fields).toBeUndefined();
    expect(deleted?.record.timestamp.millis).toBeGreaterThanOrEqual(9_000);
  });

  it('keeps an earlier pending write of a field when a later one of the same field is refused', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { title: 'a', done: false });
    const [set] = tab.outbox.inOrder();
    tab.writes.acknowledged([set!.id]);
    tab.setNow(2_000);
    tab.todos.update('a', { title: 'b' });
    tab.setNow(3_000);
    tab.todos.update('a', { title: 'c' });
    const [first, refused] = tab.outbox.inOrder();
    // The server's record does not hold the first update yet.
    tab.writes.rejected(refused!, 'PERMISSION', 'no', toWireEntry('a', set!.record));
    expect(tab.todos.get('a')).toEqual({ title: 'b', done: false });
    expect(tab.outbox.inOrder()).toEqual([first]);
  });

  it('re-stamps a set found too old without the pending update made on it, which follows it and can still be refused alone', () => {
    const tab = tabAt(1_000);
    tab.todos.set('a', { title: 'milk', done: false });
    tab.setNow(2_000);
    tab.todos.update('a', { done: true });
    fromServer(tab, otherFields('a', 3_000, { title: 'oat milk' }));
    const [old, update] = tab.outbox.inOrder();
    tab.setNow(500_000);
    tab.writes.tooOld([old!]);
    const [set, patch] = tab.outbox.inOrder();
    // Another user's field write is folded into the set; this client's pending one is not.
    expect(set).toEqual({
      ...old,
      record: {
        value: { title: 'oat milk', done: false },
        timestamp: { millis: 500_000, counter: 0, nodeId: 'client-tab' },
      },
    });
    expect(patch?.id).toBe(update?.id);
    expect(patch?.record.fields).toEqual({
      done: { timestamp: { millis: 500_000, counter: 1, nodeId: 'client-tab' }, value: true },
    });
    expect(tab.todos.get('a')).toEqual({ title: 'oat milk', done: true });
    // The other tabs hold both re-stamped entries.
    expect(tab.told.filter((message) => message.type === 'outbox').at(-1)).toEqual({
      type: 'outbox',
      entries: [set, patch],
    });
    tab.writes.rejected(patch!, 'PERMISSION', 'no', null);
    expect(tab.todos.get('a')).toEqual({ title: 'oat milk', done: false });
  });
});

/** The server's record of `a`: a set by another user at `millis`. */
function created(millis: number): LWWRecord<Value> {
  return {
    value: { title: 'server', done: false },
    timestamp: { millis, counter: 0, nodeId: 'other' },
  };
}
