import { toWireEntry } from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { Outbox } from '../src/outbox/outbox.js';
import type { OutboxEntry } from '../src/storage/clientStorage.js';

const write = (n: number, millis = n): OutboxEntry => ({
  id: `tab/${n}`,
  map: 'todos',
  key: `k${n}`,
  record: { value: { n }, timestamp: { millis, counter: 0, nodeId: 'tab' } },
});

describe('the outbox', () => {
  it('sends pending writes oldest first, in batches, never one twice while it is on its way', () => {
    const outbox = new Outbox();
    outbox.put([write(3, 30), write(1, 10), write(2, 20), write(4, 40), write(5, 50)]);
    const first = outbox.takeBatches(2, 2);
    expect(first.map((ops) => ops.map((op) => op.entry[0]))).toEqual([
      ['k1', 'k2'],
      ['k3', 'k4'],
    ]);
    // Two batches unanswered: no room for a third.
    expect(outbox.takeBatches(2, 2)).toEqual([]);
    expect(outbox.answered(first[0]![0]!.id)?.id).toBe('tab/1');
    expect(outbox.takeBatches(2, 2)).toEqual([]);
    outbox.answered(first[0]![1]!.id);
    outbox.settle(['tab/1', 'tab/2']);
    // The first batch is answered and acknowledged: the rest goes, and nothing on its way
    // goes again.
    expect(outbox.takeBatches(2, 2).map((ops) => ops.map((op) => op.entry[0]))).toEqual([['k5']]);
  });

  it('sends again a write answered but kept (a refusal worth retrying)', () => {
    const outbox = new Outbox();
    outbox.put([write(1)]);
    const [sent] = outbox.takeBatches(10, 1).flat();
    outbox.answered(sent!.id);
    expect(
      outbox
        .takeBatches(10, 1)
        .flat()
        .map((op) => op.entry[0]),
    ).toEqual(['k1']);
  });

  it('settles an answered write once: a repeated answer names nothing', () => {
    const outbox = new Outbox();
    outbox.put([write(1)]);
    const [op] = outbox.takeBatches(10, 1).flat();
    expect(outbox.answered(op!.id)?.id).toBe('tab/1');
    expect(outbox.answered(op!.id)).toBeUndefined();
    expect(outbox.answered(op!.id + 100)).toBeUndefined();
  });

  it('takes no answer for a write stamped again while it was on its way: the new stamp goes', () => {
    const outbox = new Outbox();
    outbox.put([write(1, 10)]);
    const [op] = outbox.takeBatches(10, 1).flat();
    outbox.put([write(1, 20)]);
    expect(outbox.answered(op!.id)).toBeUndefined();
    const [again] = outbox.takeBatches(10, 1).flat();
    expect(again?.entry[1]).toBe(toWireEntry('k1', write(1, 20).record)[1]);
    // A copy with the same stamp (a tab handing its writes to a new leader) is the write sent.
    outbox.put([{ ...write(1, 20) }]);
    expect(outbox.answered(again!.id)?.id).toBe('tab/1');
  });

  it('sends everything again, under new op ids, after the connection is lost', () => {
    const outbox = new Outbox();
    outbox.put([write(1), write(2)]);
    const before = outbox.takeBatches(10, 4).flat();
    outbox.forgetSent();
    const after = outbox.takeBatches(10, 4).flat();
    expect(after.map((op) => op.entry[0])).toEqual(['k1', 'k2']);
    expect(after.map((op) => op.id)).not.toEqual(before.map((op) => op.id));
    // An answer meant for the lost connection settles nothing.
    expect(outbox.answered(before[0]!.id)).toBeUndefined();
  });

  it('counts pending writes, replaces a re-stamped one by id, and says when it is empty', async () => {
    const sizes: number[] = [];
    const outbox = new Outbox((size) => sizes.push(size));
    outbox.put([write(1), write(2)]);
    outbox.put([{ ...write(2), record: write(2, 99).record }]);
    expect(outbox.size).toBe(2);
    expect(outbox.get('tab/2')?.record.timestamp.millis).toBe(99);
    let empty = false;
    const emptied = outbox.whenEmpty().then(() => {
      empty = true;
    });
    outbox.settle(['tab/1']);
    await Promise.resolve();
    expect(empty).toBe(false);
    outbox.settle(['tab/2', 'tab/2']);
    await emptied;
    expect(sizes).toEqual([2, 2, 1, 0]);
  });
});
