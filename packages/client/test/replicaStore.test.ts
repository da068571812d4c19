import {
  EMPTY_WRITE_TIMESTAMP,
  HLC,
  type LWWRecord,
  type Value,
  withFieldWrites,
} from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { createMemoryStorage } from '../src/index.js';
import { type ReplicaChange, ReplicaStore } from '../src/replica/replicaStore.js';
import { PersistQueue } from '../src/storage/persistQueue.js';

/** A store over memory storage, recording what it tells the other tabs. */
function store() {
  const storage = createMemoryStorage();
  const persist = new PersistQueue(storage, () => {});
  const told: ReplicaChange[] = [];
  const opened: string[] = [];
  const replicas = new ReplicaStore({
    hlc: new HLC({ nodeId: 'tab', now: () => 1_000 }),
    persist,
    share: (change) => told.push(change),
    write: () => {},
    opened: (map) => opened.push(map),
  });
  const stored = async () => {
    await persist.committed();
    return (await storage.load()).records.map(({ key, record }) => [key, record.value]);
  };
  return { replicas, told, opened, stored };
}

const at = (millis: number, value: Value | null): LWWRecord<Value> => ({
  value,
  timestamp: { millis, counter: 0, nodeId: 'server' },
});

describe('the replica store', () => {
  it('persists and shares, once per chunk, only the merged records that changed the replica', async () => {
    const { replicas, told, stored } = store();
    expect(
      replicas.merge(
        'todos',
        [
          ['a', at(10, 'A')],
          ['b', at(10, 'B')],
        ],
        true,
      ),
    ).toBe(2);
    // An older version, a repeat and a malformed record change nothing.
    const malformed = { value: 'x', timestamp: { millis: -1 } } as unknown as LWWRecord<Value>;
    const changed = replicas.merge(
      'todos',
      [
        ['a', at(5, 'old')],
        ['b', at(10, 'B')],
        ['c', malformed],
        ['d', at(20, 'D')],
      ],
      true,
    );
    expect(changed).toBe(1);
    expect(told.map((message) => message.type === 'records' && message.entries.length)).toEqual([
      2, 1,
    ]);
    expect(await stored()).toEqual([
      ['a', 'A'],
      ['b', 'B'],
      ['d', 'D'],
    ]);
  });

  it('persists and shares the record merged from both when field writes meet', async () => {
    const { replicas, told, stored } = store();
    replicas.merge('todos', [['a', at(10, { title: 'a', done: false })]], true);
    const edit = (millis: number, fields: Record<string, Value>) =>
      withFieldWrites<Value>(
        { value: null, timestamp: EMPTY_WRITE_TIMESTAMP },
        Object.fromEntries(
          Object.entries(fields).map(([name, value]) => [
            name,
            { timestamp: { millis, counter: 0, nodeId: 'server' }, value },
          ]),
        ),
      );
    expect(replicas.merge('todos', [['a', edit(11, { done: true })]], true)).toBe(1);
    expect(replicas.merge('todos', [['a', edit(12, { title: 'b' })]], true)).toBe(1);
    expect(await stored()).toEqual([['a', { title: 'b', done: true }]]);
    const last = told.at(-1);
    expect(last?.type === 'records' && last.entries[0]![1].value).toEqual({
      title: 'b',
      done: true,
    });
    // The same field writes again change nothing, and nothing is persisted or shared.
    expect(replicas.merge('todos', [['a', edit(12, { title: 'b' })]], true)).toBe(0);
    expect(told).toHaveLength(3);
  });

  it('applies what another tab merged without persisting or sharing it again', async () => {
    const { replicas, told, stored } = store();
    expect(replicas.merge('todos', [['a', at(10, 'A')]], false)).toBe(1);
    expect(replicas.entry('todos').handle.get('a')).toBe('A');
    expect(told).toEqual([]);
    expect(await stored()).toEqual([]);
  });

  it('applies what another tab restored, and what was stored, without persisting or sharing again', async () => {
    const { replicas, told, stored } = store();
    replicas.load('todos', [
      ['a', at(10, 'A')],
      ['b', at(10, 'B')],
    ]);
    replicas.restoreFromTab('todos', [
      ['a', at(5, 'rolled back'), at(10, 'A')],
      ['b', null, at(10, 'B')],
    ]);
    expect(replicas.entry('todos').replica.getRecord('a')?.value).toBe('rolled back');
    expect(replicas.entry('todos').replica.getRecord('b')).toBeUndefined();
    expect(told).toEqual([]);
    expect(await stored()).toEqual([]);
  });

  it('keeps, over what another tab restored, the writes that tab had not merged, and stores them', async () => {
    const { replicas, told, stored } = store();
    const seen = at(10, { title: 'seen' });
    // What both tabs held, then an update made here that the other tab had not merged when it
    // rolled the record back; and a record this tab holds that the other removed (it had seen all).
    replicas.load('todos', [
      ['a', seen],
      ['b', at(10, 'B')],
    ]);
    replicas.write(
      'todos',
      'a',
      (replica) => replica.update('a', { done: true }) as LWWRecord<Value>,
      false,
    );
    told.length = 0;
    replicas.restoreFromTab('todos', [
      ['a', at(5, { title: 'rolled back' }), seen],
      ['b', null, at(10, 'B')],
    ]);
    expect(replicas.entry('todos').handle.get('a')).toEqual({ title: 'rolled back', done: true });
    expect(replicas.entry('todos').replica.getRecord('b')).toBeUndefined();
    expect(told).toEqual([]);
    expect(await stored()).toEqual([['a', { title: 'rolled back', done: true }]]);
  });

  it('restores a record whatever the timestamps, and removes one outright', async () => {
    const { replicas, told, stored } = store();
    replicas.merge(
      'todos',
      [
        ['a', at(10, 'new')],
        ['b', at(10, 'B')],
      ],
      true,
    );
    replicas.restore('todos', 'a', at(5, 'rolled back'));
    replicas.restore('todos', 'b', undefined);
    expect(replicas.entry('todos').replica.getRecord('a')?.value).toBe('rolled back');
    expect(replicas.entry('todos').replica.getRecord('b')).toBeUndefined();
    expect(told.slice(-2)).toEqual([
      { type: 'restore', map: 'todos', entries: [['a', at(5, 'rolled back'), at(10, 'new')]] },
      { type: 'restore', map: 'todos', entries: [['b', null, at(10, 'B')]] },
    ]);
    expect(await stored()).toEqual([['a', 'rolled back']]);
  });

  it('opens each map once, tells who asked, and counts records across maps', () => {
    const { replicas, opened } = store();
    replicas.entry('a');
    replicas.entry('a');
    replicas.merge('b', [['k', at(1, null)]], true);
    expect(opened).toEqual(['a', 'b']);
    expect(replicas.names()).toEqual(['a', 'b']);
    expect(replicas.recordCount()).toBe(1);
  });
});
