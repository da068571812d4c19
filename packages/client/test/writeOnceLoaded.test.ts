import {
  EMPTY_WRITE_TIMESTAMP,
  type FieldWrite,
  HLC,
  type LWWRecord,
  type Value,
  withFieldWrites,
} from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { writeOnceLoaded } from '../src/outbox/writeOnceLoaded.js';

const at = (millis: number, nodeId = 'tab') => ({ millis, counter: 0, nodeId });
/** The tab's clock once the stored records are loaded (it has seen their stamps, up to 30). */
const clock = () => new HLC({ nodeId: 'tab', now: () => 40, maxDriftMs: Number.POSITIVE_INFINITY });
/** Field writes alone at `millis`. */
const fields = (millis: number, values: Record<string, Value>, nodeId = 'tab') => {
  const writes: Record<string, FieldWrite> = {};
  for (const [name, value] of Object.entries(values))
    writes[name] = { timestamp: at(millis, nodeId), value };
  return withFieldWrites<Value>({ value: null, timestamp: EMPTY_WRITE_TIMESTAMP }, writes);
};
const whole = (millis: number, value: Value | null, nodeId = 'tab'): LWWRecord<Value> => ({
  value,
  timestamp: at(millis, nodeId),
});

describe('a write made before the stored replica loaded, once it is loaded', () => {
  it('stays as made when its stored record replaces none of it, or there is none', () => {
    const set = whole(10, { title: 'mine' });
    expect(writeOnceLoaded(set, undefined, true, clock())).toBe(set);
    expect(writeOnceLoaded(set, whole(5, { title: 'stored' }, 'x'), true, clock())).toBe(set);
    // A record another tab persisted with a later update on top of this very write.
    const stored = withFieldWrites(set, { done: { timestamp: at(15, 'x'), value: true } });
    expect(writeOnceLoaded(set, stored, true, clock())).toBe(set);
    const update = fields(10, { done: true });
    expect(writeOnceLoaded(update, whole(5, { title: 'stored' }, 'x'), true, clock())).toBe(update);
  });

  it('is stamped again where its stored record, stamped later, replaces it', () => {
    const set = whole(10, { title: 'mine' });
    expect(writeOnceLoaded(set, whole(30, { title: 'stored' }, 'x'), true, clock())).toEqual({
      value: { title: 'mine' },
      timestamp: at(40),
    });
    // Of an update, only the field writes the stored record replaces.
    const stored = withFieldWrites(whole(5, { a: 0, b: 0 }, 'x'), {
      a: { timestamp: at(30, 'x'), value: 9 },
    });
    const again = writeOnceLoaded(fields(10, { a: 1, b: 1 }), stored, true, clock());
    expect(again.timestamp).toEqual(EMPTY_WRITE_TIMESTAMP);
    expect(again.fields).toEqual({
      a: { timestamp: at(40), value: 1 },
      b: { timestamp: at(10), value: 1 },
    });
  });

  it('makes an update of a key that holds no object the set of its patch, at its time', () => {
    const update = withFieldWrites<Value>(
      { value: null, timestamp: EMPTY_WRITE_TIMESTAMP },
      { title: { timestamp: at(10), value: 'new' }, gone: { timestamp: at(10) } },
    );
    expect(writeOnceLoaded(update, undefined, false, clock())).toEqual(whole(10, { title: 'new' }));
    // Over a later stored tombstone, stamped again.
    expect(writeOnceLoaded(update, whole(30, null, 'x'), false, clock())).toEqual({
      value: { title: 'new' },
      timestamp: at(40),
    });
  });
});
