import { toWireEntry, type Value } from '@topgun/core';
import { beforeEach, describe, expect, it } from 'vitest';
import { ChangeFanout, type CommittedChange } from '../src/changeFanout.js';
import type { GridRecord } from '../src/mapGrid.js';
import { ServerMetrics } from '../src/metrics.js';
import { Permissions, type ReadContext } from '../src/permissions.js';
import { FakePeer } from './fakePeer.js';

let millis = 1_000;

function change(key: string, value: Value | null, previous?: GridRecord): CommittedChange {
  const record: GridRecord = { value, timestamp: { millis: millis++, counter: 0, nodeId: 'w' } };
  return { key, record, entry: toWireEntry(key, record), previous };
}

/** `private` records are read by their owner only. */
const ownerOnly = ({ user, value }: ReadContext) =>
  value === undefined || (value as { owner?: string }).owner === user.id;

describe('the fan-out’s registry of who follows which map', () => {
  let fanout: ChangeFanout;

  beforeEach(() => {
    fanout = new ChangeFanout(
      new Permissions([
        { map: 'todos', read: true, write: true },
        { map: 'private', read: ownerOnly, write: true },
        { map: 'sealed', read: false, write: true },
      ]),
      new ServerMetrics(),
      500,
      1 << 20,
      5,
    );
  });

  it('sends a map’s changes to the peers that follow it, except their origin', () => {
    const [writer, follower, bystander] = [new FakePeer(), new FakePeer(), new FakePeer()];
    fanout.follow(writer, 'todos');
    fanout.follow(follower, 'todos');
    expect(fanout.follows(follower, 'todos')).toBe(true);
    expect(fanout.follows(bystander, 'todos')).toBe(false);

    fanout.publish('todos', [change('t1', { title: 'milk' })], writer);
    fanout.flush();
    expect(follower.changedKeys('todos')).toEqual(['t1']);
    expect(writer.received).toEqual([]);
    expect(bystander.received).toEqual([]);
  });

  it('follows a map once however often it is walked', () => {
    const follower = new FakePeer();
    fanout.follow(follower, 'todos');
    fanout.follow(follower, 'todos');
    fanout.publish('todos', [change('t1', 1)], undefined);
    fanout.flush();
    expect(follower.changedKeys('todos')).toEqual(['t1']);
  });

  it('forgets a peer on disconnect, with whatever was pending for it', () => {
    const [leaving, staying] = [new FakePeer(), new FakePeer()];
    for (const peer of [leaving, staying]) fanout.follow(peer, 'todos');
    fanout.publish('todos', [change('t1', 1)], undefined);
    fanout.forget(leaving);
    expect(fanout.follows(leaving, 'todos')).toBe(false);
    fanout.publish('todos', [change('t2', 2)], undefined);
    fanout.flush();
    expect(leaving.received).toEqual([]);
    expect(staying.changedKeys('todos')).toEqual(['t1', 't2']);
  });

  it('does not register a peer already closed (a walk that opened after its client left)', () => {
    const gone = new FakePeer();
    gone.open = false;
    fanout.follow(gone, 'todos');
    expect(fanout.follows(gone, 'todos')).toBe(false);
  });

  it('does not register a peer for a map it may not read', () => {
    const peer = new FakePeer('alice');
    fanout.follow(peer, 'sealed');
    expect(fanout.follows(peer, 'sealed')).toBe(false);
  });

  it('sends each follower only what its read filter lets it see, and revokes what it lost', () => {
    const [alice, bob] = [new FakePeer('alice'), new FakePeer('bob')];
    for (const peer of [alice, bob]) fanout.follow(peer, 'private');
    const aliceNote = change('n1', { owner: 'alice' });
    fanout.publish('private', [aliceNote, change('n2', { owner: 'bob' })], undefined);
    fanout.flush();
    expect(alice.changedKeys('private')).toEqual(['n1']);
    expect(bob.changedKeys('private')).toEqual(['n2']);

    // n1 handed to bob: alice could see it and no longer can.
    fanout.publish('private', [change('n1', { owner: 'bob' }, aliceNote.record)], undefined);
    fanout.flush();
    expect(alice.messages('revoke')).toEqual([{ type: 'revoke', map: 'private', keys: ['n1'] }]);
    expect(bob.changedKeys('private')).toEqual(['n2', 'n1']);
  });
});

describe('when the fan-out sends', () => {
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  function fanoutWithWindow(windowMs: number): ChangeFanout {
    return new ChangeFanout(
      new Permissions([{ map: 'todos', read: true, write: true }]),
      new ServerMetrics(),
      500,
      1 << 20,
      windowMs,
    );
  }

  it('pushes a change at the end of its turn when the server was quiet', async () => {
    const fanout = fanoutWithWindow(10_000);
    const follower = new FakePeer();
    fanout.follow(follower, 'todos');
    fanout.publish('todos', [change('t1', { n: 1 })], undefined);
    fanout.publish('todos', [change('t2', { n: 2 })], undefined);
    expect(follower.received).toEqual([]);
    await turn();
    // Both of the turn's changes, in one message, long before the window.
    expect(follower.messages('changes')).toHaveLength(1);
    expect(follower.changedKeys('todos')).toEqual(['t1', 't2']);
  });

  it('under load, gathers the changes of a window into one message', async () => {
    const fanout = fanoutWithWindow(200);
    const follower = new FakePeer();
    fanout.follow(follower, 'todos');
    fanout.publish('todos', [change('t1', { n: 1 })], undefined);
    await turn();
    expect(follower.changedKeys('todos')).toEqual(['t1']);
    // Sent just now: what follows waits for the window, however many turns it spans.
    fanout.publish('todos', [change('t2', { n: 2 })], undefined);
    await turn();
    fanout.publish('todos', [change('t3', { n: 3 })], undefined);
    await turn();
    expect(follower.changedKeys('todos')).toEqual(['t1']);
    await sleep(250);
    expect(follower.messages('changes')).toHaveLength(2);
    expect(follower.changedKeys('todos')).toEqual(['t1', 't2', 't3']);
  });
});

describe('the fan-out’s cursors', () => {
  /** A change log standing for the grid's: each map's cursor is how many changes it logged. */
  function counting() {
    const logged = new Map<string, number>();
    return {
      logChanges: (map: string, keys: Iterable<string>) =>
        logged.set(map, (logged.get(map) ?? 0) + [...keys].length),
      loadOf: () => 'c',
      cursorOf: (map: string) => `c.${logged.get(map) ?? 0}`,
    };
  }

  it('logs every change published, followed or not, and sends its cursor to who sees all', () => {
    const fanout = new ChangeFanout(
      new Permissions([
        { map: 'todos', read: true, write: true },
        { map: 'private', read: ownerOnly, write: true },
      ]),
      new ServerMetrics(),
      500,
      1 << 20,
      60_000,
      counting(),
    );
    fanout.publish('todos', [change('t0', 0)], undefined);
    const [follower, other, owner] = [new FakePeer(), new FakePeer(), new FakePeer('ann')];
    fanout.follow(follower, 'todos');
    fanout.follow(other, 'todos');
    fanout.follow(owner, 'private');
    fanout.publish('todos', [change('t1', 1), change('t2', 2)], undefined);
    fanout.publish('private', [change('p1', { owner: 'ann' })], undefined);
    // A walk of one peer ends: its changes go now, the others' at the next flush.
    fanout.flushFor(follower);
    expect(follower.messages('changes')).toEqual([
      expect.objectContaining({
        changes: [expect.objectContaining({ map: 'todos', cursor: 'c.3' })],
      }),
    ]);
    expect(other.received).toEqual([]);
    fanout.flush();
    expect(other.messages('changes')[0]!.changes[0]!.cursor).toBe('c.3');
    expect(follower.messages('changes')).toHaveLength(1);
    expect(owner.messages('changes')[0]!.changes[0]).not.toHaveProperty('cursor');
  });

  it('sends a follower cursors of the load of the map it followed, or last finished a walk of', () => {
    let load = 'g1';
    const fanout = new ChangeFanout(
      new Permissions([{ map: 'todos', read: true, write: true }]),
      new ServerMetrics(),
      500,
      1 << 20,
      60_000,
      { logChanges: () => {}, loadOf: () => load, cursorOf: () => `${load}.7` },
    );
    const follower = new FakePeer();
    fanout.follow(follower, 'todos');
    const cursors = () => {
      fanout.publish('todos', [change('t', 1)], undefined);
      fanout.flush();
      return follower.messages('changes').map((message) => message.changes[0]!.cursor);
    };
    expect(cursors()).toEqual(['g1.7']);
    // Evicted and loaded again: the follower may have missed what the new load holds.
    load = 'g2';
    // One that follows the new load gets the same changes with its cursor (not the other's frame).
    const newcomer = new FakePeer();
    fanout.follow(newcomer, 'todos');
    expect(cursors()).toEqual(['g1.7', undefined]);
    expect(newcomer.messages('changes').map((message) => message.changes[0]!.cursor)).toEqual([
      'g2.7',
    ]);
    fanout.rebase(follower, 'todos');
    expect(cursors()).toEqual(['g1.7', undefined, 'g2.7']);
  });
});
