import { describe, expect, it } from 'vitest';
import {
  compareFieldWrites,
  compareRecords,
  compareTimestamps,
  decodeEntries,
  EMPTY_WRITE_TIMESTAMP,
  type FieldWrite,
  fromWireEntry,
  HLC,
  itemHash,
  LWWMap,
  type LWWRecord,
  mergeRecords,
  restampWrite,
  rootHashHex,
  splitWrite,
  type Timestamp,
  toWireEntry,
  ValidationError,
  type Value,
  withFieldWrites,
} from '../src/index.js';
import { itObeysTheMergeLaws } from './mergeLaws.js';
import { fc } from './property.js';
import { createReplicas, FakeClock, visibleState } from './replicas.js';
import { walk } from './syncWalk.js';

type Doc = Record<string, Value>;

const REMOVED = Symbol('removed');

/** A timestamp of the vectors: time `t`, on node `n` (ties: the same t and node). */
const at = (t: number, node = 'n'): Timestamp => ({ millis: t, counter: 0, nodeId: node });
/** Whole write at time t. */
const W = (t: number, value: Value | null): LWWRecord<Value> => ({ value, timestamp: at(t) });
/** Field writes at time t, `REMOVED` for a removal. */
const F = (t: number, fields: Record<string, Value | typeof REMOVED>): LWWRecord<Value> => {
  const writes: Record<string, FieldWrite> = {};
  for (const [name, value] of Object.entries(fields))
    writes[name] = value === REMOVED ? { timestamp: at(t) } : { timestamp: at(t), value };
  return withFieldWrites<Value>({ value: null, timestamp: EMPTY_WRITE_TIMESTAMP }, writes);
};

function freshMap(): LWWMap<Value> {
  return new LWWMap<Value>(
    new HLC({ nodeId: 'replica', now: () => 10, maxDriftMs: Number.POSITIVE_INFINITY }),
  );
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, index) =>
    permutations([...items.slice(0, index), ...items.slice(index + 1)]).map((rest) => [
      item,
      ...rest,
    ]),
  );
}

/** Every field of a stored record, for comparing states exactly. */
function stateOf(map: LWWMap<Value>) {
  return {
    records: Object.fromEntries(
      [...map.allRecords()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([key, record]) => [key, toWireEntry(key, record)]),
    ),
    root: rootHashHex(map.merkleTree),
  };
}

describe('per-field merge: the vectors of specifications/data-model.md', () => {
  // [writes, value after merging all of them in any order (undefined: absent)]
  const vectors: Array<[string, LWWRecord<Value>[], Value | undefined]> = [
    [
      'two fields edited after the set',
      [W(1, { title: 'a', done: false }), F(2, { done: true }), F(3, { title: 'b' })],
      { title: 'b', done: true },
    ],
    [
      'a later field write survives an earlier concurrent set',
      [W(1, { title: 'a', done: false }), F(3, { done: true }), W(2, { title: 'b', done: false })],
      { title: 'b', done: true },
    ],
    [
      'a later set drops earlier field writes',
      [W(1, { title: 'a', done: false }), F(2, { done: true }), W(3, { title: 'b', done: false })],
      { title: 'b', done: false },
    ],
    [
      'a later removal wins over an earlier field value',
      [W(1, { title: 'a' }), F(2, { tag: 'x' }), F(3, { tag: REMOVED })],
      { title: 'a' },
    ],
    [
      'equal timestamps: the greater encoding wins',
      [W(1, { title: 'a' }), F(2, { title: 'b' }), F(2, { title: 'c' })],
      { title: 'c' },
    ],
    [
      'equal timestamps: a removal beats a value',
      [W(1, { title: 'a' }), F(2, { title: 'b' }), F(2, { title: REMOVED })],
      {},
    ],
    [
      'an update after a delete does not bring the record back',
      [W(1, { title: 'a' }), W(2, null), F(3, { done: true })],
      undefined,
    ],
    [
      'a set after the delete shows the later field writes',
      [W(1, { title: 'a' }), W(2, null), F(4, { done: true }), W(3, { title: 'b' })],
      { title: 'b', done: true },
    ],
    ['field writes do not apply to a string', [W(1, 'text'), F(2, { done: true })], 'text'],
    ['field writes alone are absent', [F(2, { done: true })], undefined],
  ];

  it.each(vectors)('%s, in every order, with duplicates', (_name, writes, expected) => {
    let reference: ReturnType<typeof stateOf> | undefined;
    for (const order of permutations(writes)) {
      const map = freshMap();
      for (const write of [...order, ...order.slice(0, 2)]) map.merge('k', write);
      expect(map.get('k')).toEqual(expected);
      reference ??= stateOf(map);
      expect(stateOf(map)).toEqual(reference);
    }
  });

  it('keeps the whole write order for its fields and adds new ones in name order', () => {
    const writes = [W(1, { a: 1, b: 2 }), F(2, { z: 1, c: 1 }), F(3, { a: REMOVED })];
    for (const order of permutations(writes)) {
      const map = freshMap();
      for (const write of order) map.merge('k', write);
      expect(Object.entries(map.get('k') as Doc)).toEqual([
        ['b', 2],
        ['c', 1],
        ['z', 1],
      ]);
    }
  });

  it('orders field writes: later, then a removal, then the greater encoding', () => {
    expect(compareFieldWrites({ timestamp: at(2), value: 1 }, { timestamp: at(1) })).toBe(1);
    expect(compareFieldWrites({ timestamp: at(2) }, { timestamp: at(2), value: 1 })).toBe(1);
    expect(
      Math.sign(
        compareFieldWrites({ timestamp: at(2), value: 'b' }, { timestamp: at(2), value: 'a' }),
      ),
    ).toBe(1);
    expect(
      compareFieldWrites({ timestamp: at(2), value: 'a' }, { timestamp: at(2), value: 'a' }),
    ).toBe(0);
  });
});

describe('LWWMap.update', () => {
  it('writes only the fields of the patch, with one timestamp, and returns them', () => {
    const map = freshMap();
    map.set('k', { title: 'a', done: false, n: 1 });
    const patch = map.update('k', { done: true, n: undefined });
    expect(map.get('k')).toEqual({ title: 'a', done: true });
    expect(Object.keys(patch!.fields!)).toEqual(['done', 'n']);
    expect(patch!.fields!['done']!.timestamp).toEqual(patch!.fields!['n']!.timestamp);
    expect(patch!.fields!['n']!.value).toBeUndefined();
    expect(patch!.timestamp).toEqual(EMPTY_WRITE_TIMESTAMP);
    expect(patch!.value).toBeNull();
  });

  it('sets the patch as the whole value when the key holds no plain object', () => {
    const map = freshMap();
    const absent = map.update('k', { done: true, gone: undefined });
    expect(absent!.fields).toBeUndefined();
    expect(map.get('k')).toEqual({ done: true });
    map.set('s', 'text');
    map.update('s', { done: true });
    expect(map.get('s')).toEqual({ done: true });
    map.delete('k');
    map.update('k', { title: 'again' });
    expect(map.get('k')).toEqual({ title: 'again' });
    expect(map.update('k', {})).toBeUndefined();
  });

  it('writes field writes whatever the key holds when asked to (a replica still loading)', () => {
    const map = freshMap();
    const absent = map.update('k', { done: true }, true);
    expect(absent?.timestamp).toEqual(EMPTY_WRITE_TIMESTAMP);
    expect(absent?.fields?.['done']?.value).toBe(true);
    expect(map.getRecord('k')).toEqual(absent);
    expect(map.has('k')).toBe(false);
    // The stored record arrives: the field writes apply to it.
    map.merge('k', W(5, { title: 'stored', done: false }));
    expect(map.get('k')).toEqual({ title: 'stored', done: true });
    map.set('s', 'text');
    expect(map.update('s', { done: true }, true)?.fields).toBeDefined();
    expect(map.get('s')).toBe('text');
  });

  it("takes field names like Object.prototype's members as any other", () => {
    const map = freshMap();
    map.set('k', { title: 'a', hasOwnProperty: 'h' });
    map.update('k', { done: true, valueOf: 1 });
    map.update('k', { title: 'b', toString: undefined });
    expect(map.get('k')).toEqual({ title: 'b', hasOwnProperty: 'h', done: true, valueOf: 1 });
    const other = freshMap();
    for (const [key, record] of [...map.allRecords()].reverse()) other.merge(key, record);
    expect(other.get('k')).toEqual(map.get('k'));
  });

  it('checks the names of removals too', () => {
    const map = freshMap();
    map.set('k', { title: 'a' });
    expect(() => map.update('k', { '\uD800': undefined })).toThrow(ValidationError);
    expect(() => map.update('k', JSON.parse('{"__proto__": null}'))).toThrow(ValidationError);
    expect(map.getRecord('k')!.fields).toBeUndefined();
  });

  it('rejects a malformed patch and writes nothing', () => {
    const map = freshMap();
    map.set('k', { title: 'a' });
    expect(() => map.update('k', { bad: Number.NaN })).toThrow(/patch\.bad/);
    expect(map.getRecord('k')!.fields).toBeUndefined();
  });

  it('keeps a tick and a rename made concurrently on two replicas', () => {
    const clock = new FakeClock();
    const [a, b] = createReplicas<Doc>(2, clock);
    const created = a!.set('todo', { title: 'draft', done: false });
    b!.merge('todo', created);
    clock.time += 5;
    const tick = a!.update('todo', { done: true })!;
    const rename = b!.update('todo', { title: 'final' })!;
    a!.merge('todo', rename);
    b!.merge('todo', tick);
    expect(a!.get('todo')).toEqual({ title: 'final', done: true });
    expect(visibleState(a!)).toEqual(visibleState(b!));
    expect(rootHashHex(a!.merkleTree)).toBe(rootHashHex(b!.merkleTree));
  });
});

describe('records with field writes', () => {
  it('merge into the very record that already holds every write of the other', () => {
    const whole = { value: { a: 1 }, timestamp: { millis: 1, counter: 0, nodeId: 'w' } };
    const f = (millis: number, value: Value): FieldWrite => ({
      timestamp: { millis, counter: 0, nodeId: 'w' },
      value,
    });
    const older = withFieldWrites<Value>(whole, { b: f(2, 1) });
    // Same whole write, the same field write object and one more: `newer` is the result,
    // itself (a server keeps properties of its own on it, such as a tombstone's prior).
    const newer = { ...withFieldWrites<Value>(whole, { ...older.fields, c: f(3, 1) }), extra: 1 };
    expect(mergeRecords(older, newer)).toBe(newer);
    expect(mergeRecords(newer, older)).toBe(newer);
    // A field write only `older` holds: a new record.
    const other = withFieldWrites<Value>(whole, { d: f(4, 1) });
    expect(mergeRecords(other, newer)).not.toBe(newer);
  });

  it('travel on the wire and come back as the same record', () => {
    const map = freshMap();
    map.set('k', { title: 'a', done: false }, { ttlMs: 60_000 });
    map.update('k', { done: true, title: undefined });
    const record = map.getRecord('k')!;
    const [key, back] = fromWireEntry<Value>(toWireEntry('k', record));
    expect(key).toBe('k');
    expect(back).toEqual(record);
    const patch = F(4, { x: 1, y: REMOVED });
    expect(fromWireEntry<Value>(toWireEntry('p', patch))[1]).toEqual(patch);
    expect(toWireEntry('p', patch)).toEqual(['p', null, null, null, expect.any(Object)]);
  });

  it('never hash like a record without field writes, and hash every field stamp', () => {
    const base = W(1, { a: 1 });
    const fielded = mergeRecords(base, F(2, { a: 2 }));
    const restamped = mergeRecords(base, {
      ...F(2, { a: 2 }),
      fields: { a: { timestamp: at(2, 'm'), value: 2 } },
    });
    const hashes = [base, fielded, restamped, W(1, { a: 2 })].map((record) =>
      itemHash('k', record).join(),
    );
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it('are refused when malformed, and nothing changes', () => {
    const map = freshMap();
    map.set('k', { title: 'a' });
    const before = map.getRecord('k');
    const fielded = mergeRecords(W(1, { title: 'a' }), F(2, { done: true }));
    const malformed: unknown[] = [
      { ...fielded, base: undefined },
      {
        ...fielded,
        fields: JSON.parse(
          '{"__proto__": {"timestamp": {"millis": 2, "counter": 0, "nodeId": "n"}}}',
        ),
      },
      {
        ...fielded,
        fields: { done: { timestamp: { millis: 2, counter: 0, nodeId: '' }, value: 1 } },
      },
      { ...fielded, fields: { done: { timestamp: at(2), value: Number.NaN } } },
      { ...fielded, fields: [] },
      { ...fielded, timestamp: EMPTY_WRITE_TIMESTAMP, base: 'text' },
    ];
    for (const record of malformed) {
      expect(() => map.merge('k', record as LWWRecord<Value>)).toThrow(ValidationError);
      expect(map.getRecord('k')).toBe(before);
    }
  });

  it('order whole writes by their own value, not by the field writes on top', () => {
    const x = mergeRecords(W(1, { v: 'x' }), F(2, { v: 'zzz' }));
    const y = W(1, { v: 'y' });
    // 'y' > 'x': y's whole write wins; x's later field write still applies on top of it.
    expect(compareRecords(y, x)).toBeGreaterThan(0);
    expect(mergeRecords(x, y).value).toEqual({ v: 'zzz' });
    expect(mergeRecords(x, y).base).toEqual({ v: 'y' });
  });
});

// ---- Properties over random writes: small domains so that ties come up often ----

const stampArbitrary = fc.record({
  millis: fc.integer({ min: 1, max: 4 }),
  counter: fc.integer({ min: 0, max: 1 }),
  nodeId: fc.constantFrom('x', 'y'),
});
const fieldValueArbitrary = fc.oneof(fc.integer({ min: 0, max: 2 }), fc.constantFrom('s', null));
const wholeArbitrary: fc.Arbitrary<LWWRecord<Value>> = fc
  .tuple(
    stampArbitrary,
    fc.oneof(
      fc.constant(null),
      fc.constant('text'),
      // Names like Object.prototype's members too: never a field write by inheritance.
      fc.dictionary(fc.constantFrom('a', 'b', 'c', 'hasOwnProperty'), fieldValueArbitrary, {
        maxKeys: 3,
      }),
    ),
    fc.option(fc.constant(1_000_000), { nil: undefined }),
  )
  .map(([timestamp, value, ttlMs]) =>
    ttlMs === undefined ? { value, timestamp } : { value, timestamp, ttlMs },
  );
const patchArbitrary: fc.Arbitrary<LWWRecord<Value>> = fc
  .tuple(
    stampArbitrary,
    fc.dictionary(
      fc.constantFrom('a', 'b', 'd', 'valueOf', 'toString'),
      fc.option(fieldValueArbitrary, { nil: undefined, freq: 3 }),
      { minKeys: 1, maxKeys: 2 },
    ),
  )
  .map(([timestamp, fields]) => {
    const writes: Record<string, FieldWrite> = {};
    for (const [name, value] of Object.entries(fields))
      writes[name] = value === undefined ? { timestamp } : { timestamp, value };
    return withFieldWrites<Value>({ value: null, timestamp: EMPTY_WRITE_TIMESTAMP }, writes);
  });
const writeArbitrary = fc.tuple(
  fc.constantFrom('k1', 'k2'),
  fc.oneof(wholeArbitrary, patchArbitrary),
);

function mergedState(writes: ReadonlyArray<readonly [string, LWWRecord<Value>]>): LWWMap<Value> {
  const map = freshMap();
  for (const [key, record] of writes) map.merge(key, record);
  return map;
}

/**
 * The spec's reference model, written from the text rather than from the code: the greatest
 * whole write; per field name the greatest field write later than it; the value from those.
 */
function referenceValue(writes: readonly LWWRecord<Value>[]): Value | undefined {
  let whole: LWWRecord<Value> = { value: null, timestamp: EMPTY_WRITE_TIMESTAMP };
  for (const write of writes) {
    if (write.timestamp === EMPTY_WRITE_TIMESTAMP) continue;
    if (compareRecords(write, whole) > 0) whole = write;
  }
  const later = new Map<string, FieldWrite>();
  for (const write of writes) {
    for (const [name, field] of Object.entries(write.fields ?? {})) {
      if (compareTimestamps(field.timestamp, whole.timestamp) <= 0) continue;
      const current = later.get(name);
      if (current === undefined || compareFieldWrites(field, current) > 0) later.set(name, field);
    }
  }
  const value = whole.value;
  if (value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) return value;
  const result: Doc = {};
  for (const [name, field] of Object.entries(value)) {
    const write = later.get(name);
    if (write === undefined) result[name] = field;
    else if (write.value !== undefined) result[name] = write.value;
  }
  for (const name of [...later.keys()].sort())
    if (!Object.hasOwn(value, name) && later.get(name)!.value !== undefined)
      result[name] = later.get(name)!.value!;
  return result;
}

describe('per-field merge laws (ties included)', () => {
  it('agrees with the reference model of the spec', () => {
    fc.assert(
      fc.property(fc.array(writeArbitrary, { maxLength: 25 }), (writes) => {
        const map = mergedState(writes);
        for (const key of ['k1', 'k2']) {
          const expected = referenceValue(writes.filter(([k]) => k === key).map(([, w]) => w));
          expect(map.get(key)).toEqual(expected);
          if (typeof expected === 'object' && expected !== null)
            expect(Object.keys(map.get(key) as Doc)).toEqual(Object.keys(expected));
        }
      }),
    );
  });

  itObeysTheMergeLaws(writeArbitrary, mergedState, stateOf);
});

describe('a Merkle walk over records with field writes', () => {
  /** Two replicas of 200 todos, equal but for what `edit` does to each. */
  function pair(edit: (left: LWWMap<Doc>, right: LWWMap<Doc>) => void) {
    const clock = new FakeClock();
    const [left, right] = createReplicas<Doc>(2, clock);
    for (let i = 0; i < 200; i++) {
      const record = left!.set(`todo-${i}`, { title: `t${i}`, done: false });
      right!.merge(`todo-${i}`, record);
    }
    clock.time += 10;
    edit(left!, right!);
    return { left: left!, right: right! };
  }

  it('exchanges both records when neither holds every write of the other', () => {
    const { left, right } = pair((left, right) => {
      right.merge('todo-1', left.update('todo-1', { done: true })!);
      left.set('todo-1', { title: 'renamed', done: false });
      right.update('todo-1', { title: 'mine' });
    });
    // left: a later set; right: the older set with later field writes on top.
    const report = walk(left, right);
    expect(report.converged).toBe(true);
    expect([...report.sentByInitiator]).toEqual(['todo-1']);
    expect([...report.sentByResponder]).toEqual(['todo-1']);
    expect(left.get('todo-1')).toEqual({ title: 'mine', done: false });
    expect(stateOf(left as unknown as LWWMap<Value>)).toEqual(
      stateOf(right as unknown as LWWMap<Value>),
    );
  });

  it('moves only the differing records', () => {
    const { left, right } = pair((left, right) => {
      for (const key of ['todo-3', 'todo-50', 'todo-199'])
        right.merge(key, left.update(key, { done: true })!);
      left.update('todo-7', { title: 'edited' });
      left.update('todo-8', { tag: 'x' });
    });
    const report = walk(right, left);
    expect(report.converged).toBe(true);
    // Records with field writes may cross both ways (a digest gives only their latest
    // timestamp); nothing else crosses.
    expect([...report.sentByResponder].sort()).toEqual(['todo-7', 'todo-8']);
    for (const key of report.sentByInitiator) expect(['todo-7', 'todo-8']).toContain(key);
    expect(right.get('todo-8')).toEqual({ title: 't8', done: false, tag: 'x' });
  });
});

describe('taking back a write a replica made (splitWrite, restampWrite)', () => {
  it('splits off the field writes of a patch the record still holds, and keeps the rest', () => {
    const set = W(1, { title: 'a', done: false, tag: 'x' });
    const patch = F(3, { done: true, tag: REMOVED, n: 1 });
    // Other writers' field writes: an earlier one of title, a later one of n.
    const others = [F(2, { title: 'b' }), F(4, { n: 2 })];
    const record = [patch, ...others].reduce(mergeRecords, set);
    const split = splitWrite(record, patch);
    expect(split?.held).toEqual(F(3, { done: true, tag: REMOVED }));
    expect(split?.rest).toEqual(others.reduce(mergeRecords, set));
    expect(split?.rest?.value).toEqual({ title: 'b', done: false, tag: 'x', n: 2 });
  });

  it('finds nothing of a write that later writes replaced', () => {
    const patch = F(2, { done: true });
    expect(splitWrite(mergeRecords(W(1, {}), F(3, { done: false })), patch)).toBeUndefined();
    expect(splitWrite(W(3, { done: false }), patch)).toBeUndefined();
    // A field write of the same name and value, stamped otherwise, is not this write.
    expect(splitWrite(mergeRecords(W(1, {}), patch), F(5, { done: true }))).toBeUndefined();
    expect(splitWrite(W(2, 'x'), W(1, 'x'))).toBeUndefined();
  });

  it('splits off a whole write, leaving the later field writes alone, or nothing', () => {
    const set = W(2, { title: 'a' });
    expect(splitWrite(mergeRecords(set, F(3, { done: true })), set)).toEqual({
      held: set,
      rest: F(3, { done: true }),
    });
    expect(splitWrite(set, set)).toEqual({ held: set, rest: undefined });
    const expiring: LWWRecord<Value> = { ...W(2, 'v'), ttlMs: 5 };
    expect(splitWrite(expiring, { ...expiring })).toEqual({ held: expiring, rest: undefined });
  });

  it('leaves nothing of a record of field writes alone that held only this write', () => {
    const patch = F(2, { done: true });
    expect(splitWrite(patch, patch)).toEqual({ held: patch, rest: undefined });
    // The empty write is nobody's write: only the field writes count.
    expect(splitWrite(F(2, { other: 1 }), patch)).toBeUndefined();
  });

  it('parts a record in two that merge back into it (random records and writes)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(wholeArbitrary, patchArbitrary), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        (writes, pick) => {
          const record = writes.reduce(mergeRecords);
          const write = writes[pick % writes.length]!;
          const split = splitWrite(record, write);
          if (split === undefined) return;
          const { held, rest } = split;
          expect(rest === undefined ? held : mergeRecords(rest, held)).toEqual(record);
          for (const name in held.fields) {
            expect(held.fields[name]!.timestamp).toEqual(write.fields![name]!.timestamp);
            expect(Object.hasOwn(rest?.fields ?? {}, name)).toBe(false);
          }
        },
      ),
    );
  });

  it('stamps a whole write or field writes again, values and removals kept', () => {
    const later = at(9, 'again');
    expect(restampWrite({ ...W(2, 'v'), ttlMs: 5 }, later)).toEqual({
      value: 'v',
      timestamp: later,
      ttlMs: 5,
    });
    const again = restampWrite(F(2, { done: true, tag: REMOVED }), later);
    expect(again).toEqual({
      value: null,
      timestamp: EMPTY_WRITE_TIMESTAMP,
      base: null,
      fields: { done: { timestamp: later, value: true }, tag: { timestamp: later } },
    });
    // Stamped later, the field writes win again over what they won over.
    expect(
      mergeRecords(mergeRecords(W(1, { done: false }), F(3, { tag: 'x' })), again).value,
    ).toEqual({ done: true });
  });
});

describe('upgrading from data model 1', () => {
  // Entries as a replica of the previous release (data model 1, protocol 3) stored them in its
  // IndexedDB record log and sent them: `encodeEntries` of that release, byte for byte.
  const written =
    '9393a4746f646fba303030303030303030336538303030306f6c642d636c69656e7482a57469746c65a161a4646f6e65c294a46e6f7465ba303030303030303030336539303030306f6c642d636c69656e74a178cdea6093a4676f6e65ba303030303030303030336561303030306f6c642d636c69656e74c0';
  const bytes = Uint8Array.from(written.match(/../g)!.map((pair) => Number.parseInt(pair, 16)));
  const at = (millis: number): Timestamp => ({ millis, counter: 0, nodeId: 'old-client' });

  it('reads stored records as records without field writes, every field as old as the record', () => {
    const records = decodeEntries(bytes).map((entry) => fromWireEntry<Value>(entry));
    expect(records).toEqual([
      ['todo', { value: { title: 'a', done: false }, timestamp: at(1000) }],
      ['note', { value: 'x', timestamp: at(1001), ttlMs: 60_000 }],
      ['gone', { value: null, timestamp: at(1002) }],
    ]);
    // An update made now changes only its field of the upgraded record.
    const map = new LWWMap<Value>(new HLC({ nodeId: 'new-client' }));
    map.loadRecords(records);
    map.update('todo', { done: true });
    expect(map.get('todo')).toEqual({ title: 'a', done: true });
    expect(map.getRecord('todo')!.fields!['done']!.timestamp.nodeId).toBe('new-client');
  });
});
