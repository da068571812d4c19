import { describe, expect, it, vi } from 'vitest';
import {
  ClockDriftError,
  compareBytes,
  compareRecords,
  encodeValue,
  HLC,
  LWWMap,
  type LWWRecord,
  type MapChange,
  rootHashHex,
  ValidationError,
  type Value,
} from '../src/index.js';
import { valueArbitrary } from './arbitraries.js';
import { fc } from './property.js';

interface Todo {
  title: string;
  done: boolean;
}

function createMap(nodeId = 'a', start = 1_000) {
  let time = start;
  const hlc = new HLC({ nodeId, now: () => time });
  return {
    map: new LWWMap<Todo>(hlc),
    advance: (ms: number) => {
      time += ms;
    },
  };
}

describe('LWWMap local operations', () => {
  it('sets, gets, updates and deletes', () => {
    const { map } = createMap();
    expect(map.get('t1')).toBeUndefined();
    map.set('t1', { title: 'milk', done: false });
    expect(map.get('t1')).toEqual({ title: 'milk', done: false });
    expect(map.has('t1')).toBe(true);
    expect(map.size).toBe(1);
    map.set('t1', { title: 'milk', done: true });
    expect(map.get('t1')?.done).toBe(true);
    expect(map.size).toBe(1);
    const tombstone = map.delete('t1');
    expect(tombstone.value).toBeNull();
    expect(map.get('t1')).toBeUndefined();
    expect(map.has('t1')).toBe(false);
    expect(map.size).toBe(0);
    expect(map.getRecord('t1')).toBe(tombstone);
    expect(map.recordCount).toBe(1);
  });

  it('lists visible entries only', () => {
    const { map } = createMap();
    map.set('a', { title: 'A', done: false });
    map.set('b', { title: 'B', done: false });
    map.set('c', { title: 'C', done: false });
    map.delete('b');
    expect([...map.entries()].map(([key]) => key)).toEqual(['a', 'c']);
    expect([...map.allRecords()].map(([key]) => key)).toEqual(['a', 'b', 'c']);
  });

  it('stamps every local write with a later timestamp', () => {
    const { map } = createMap();
    const first = map.set('a', { title: 'A', done: false });
    const second = map.set('a', { title: 'B', done: false });
    expect(second.timestamp.counter).toBe(first.timestamp.counter + 1);
  });

  it('rejects bad keys and values without changing anything', () => {
    const { map } = createMap();
    map.set('ok', { title: 'x', done: false });
    const rootBefore = rootHashHex(map.merkleTree);
    const bad: Array<() => unknown> = [
      () => map.set('', { title: 'x', done: false }),
      () => map.set('a\u0000b', { title: 'x', done: false }),
      () => map.set('\uD800', { title: 'x', done: false }),
      () => map.set('x'.repeat(1025), { title: 'x', done: false }),
      // 342 CJK characters are 1026 bytes of UTF-8: too long for a key, though short in units.
      () => map.set('键'.repeat(342), { title: 'x', done: false }),
      () => map.set(42 as unknown as string, { title: 'x', done: false }),
      () => map.set('k', undefined as unknown as Todo),
      () => map.set('k', null as unknown as Todo),
      () => map.set('k', { title: Number.NaN } as unknown as Todo),
      () => map.set('k', { title: undefined } as unknown as Todo),
      () => map.set('k', { title: new Date() } as unknown as Todo),
      () => map.set('k', { title: () => 1 } as unknown as Todo),
      () => map.set('k', JSON.parse('{"__proto__": {"polluted": true}}') as Todo),
      () => map.set('k', { title: 'x', done: false }, { ttlMs: -5 }),
      () => map.set('k', { title: 'x', done: false }, { ttlMs: 1.5 }),
      () => map.delete(''),
    ];
    for (const attempt of bad) expect(attempt).toThrow(ValidationError);
    expect(map.size).toBe(1);
    expect(map.recordCount).toBe(1);
    expect(rootHashHex(map.merkleTree)).toBe(rootBefore);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('names the offending path in value errors', () => {
    const { map } = createMap();
    expect(() =>
      map.set('k', { title: 'x', tags: ['a', Number.POSITIVE_INFINITY] } as unknown as Todo),
    ).toThrow(expect.objectContaining({ path: 'value.tags[1]' }));
  });

  it('rejects values nested too deeply', () => {
    const { map } = createMap();
    let deep: unknown = 'leaf';
    for (let i = 0; i < 40; i++) deep = { child: deep };
    expect(() => map.set('k', deep as Todo)).toThrow(/nested deeper/);
  });
});

describe('LWWMap.merge', () => {
  const record = (millis: number, value: Todo | null, nodeId = 'r'): LWWRecord<Todo> => ({
    value,
    timestamp: { millis, counter: 0, nodeId },
  });

  it('keeps the later write and reports visible changes', () => {
    const { map } = createMap('a', 10_000);
    expect(map.merge('k', record(500, { title: 'old', done: false }))).toBe(true);
    expect(map.merge('k', record(700, { title: 'new', done: false }))).toBe(true);
    expect(map.merge('k', record(600, { title: 'stale', done: false }))).toBe(false);
    expect(map.get('k')?.title).toBe('new');
    expect(map.merge('k', record(700, { title: 'new', done: false }))).toBe(false);
    expect(map.merge('k', record(800, null))).toBe(true);
    expect(map.get('k')).toBeUndefined();
    expect(map.merge('k', record(900, null))).toBe(false);
  });

  it('a delete wins over older writes that arrive later', () => {
    const { map } = createMap('a', 10_000);
    map.merge('k', record(800, null));
    expect(map.merge('k', record(700, { title: 'late', done: false }))).toBe(false);
    expect(map.has('k')).toBe(false);
  });

  it('accepts keys up to 1024 bytes of UTF-8, whatever the characters', () => {
    const { map } = createMap();
    map.set('键'.repeat(341), { title: 'x', done: false });
    map.set('x'.repeat(1024), { title: 'x', done: false });
    map.set('🚀'.repeat(256), { title: 'x', done: false });
    expect(() => map.set(`${'🚀'.repeat(256)}x`, { title: 'x', done: false })).toThrow(
      /1025 bytes long in UTF-8, the limit is 1024/,
    );
  });

  it('breaks timestamp ties by the bytes of the canonical encoding, as PostgreSQL orders bytea', () => {
    const at = { millis: 5, counter: 0, nodeId: 'n' };
    const order = (a: unknown, b: unknown) =>
      Math.sign(compareRecords({ value: a, timestamp: at }, { value: b, timestamp: at }));
    // The header byte comes first: 1 (0x01) < 127 (0x7f) < 'a' (0xa1 0x61) < 'a' < 'b' < 'ab' (0xa2 …).
    expect(order(1, 127)).toBe(-1);
    expect(order('a', 1)).toBe(1);
    expect(order('a', 'b')).toBe(-1);
    expect(order('ab', 'b')).toBe(1);
    expect(order({ a: 1 }, { a: 1 })).toBe(0);
    expect(order({ a: 1, b: 2 }, { b: 2, a: 1 })).not.toBe(0);
    expect(order(null, 'z')).toBe(1);
    expect(compareBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0]))).toBeLessThan(0);
    expect(
      compareRecords({ value: 'a', timestamp: at, ttlMs: 5 }, { value: 'a', timestamp: at }),
    ).toBeGreaterThan(0);
  });

  it('orders every tie as the encodings do, copies and near-copies included', () => {
    // A copy is compared without encoding; anything else must still reach the bytes.
    const at = { millis: 5, counter: 0, nodeId: 'n' };
    const copy = (value: Value): Value => JSON.parse(JSON.stringify(value)) as Value;
    // A record's own value is never null (that is a tombstone, ordered apart).
    const recordValue = valueArbitrary.filter((value) => value !== null);
    const pairs = fc.oneof(
      fc.tuple(recordValue, recordValue),
      recordValue.map((value) => [value, copy(value)] as const),
      fc
        .tuple(valueArbitrary, fc.string({ maxLength: 3 }), valueArbitrary)
        .map(
          ([value, field, extra]) =>
            [{ wrap: value, [field]: extra }, { wrap: copy(value) }] as const,
        ),
      fc.constant([0, -0] as const),
      fc.constant([[1, 2], { 0: 1, 1: 2 }] as const),
    );
    fc.assert(
      fc.property(pairs, ([a, b]) => {
        const tie = Math.sign(
          compareRecords({ value: a, timestamp: at }, { value: b, timestamp: at }),
        );
        expect(tie).toBe(Math.sign(compareBytes(encodeValue(a), encodeValue(b))));
        expect(
          Math.sign(compareRecords({ value: b, timestamp: at }, { value: a, timestamp: at })),
        ).toBe(0 - tie);
      }),
    );
  });

  it('resolves equal timestamps deterministically: tombstone, then greater value', () => {
    const left = createMap('a', 10_000).map;
    const right = createMap('b', 10_000).map;
    const x = record(500, { title: 'x', done: false }, 'same');
    const y = record(500, { title: 'y', done: false }, 'same');
    const tomb = record(500, null, 'same');
    left.merge('k', x);
    left.merge('k', y);
    right.merge('k', y);
    right.merge('k', x);
    expect(left.get('k')).toEqual(right.get('k'));
    expect(left.get('k')?.title).toBe('y');
    left.merge('k', tomb);
    right.merge('k', tomb);
    expect(left.has('k')).toBe(false);
    expect(right.has('k')).toBe(false);
    expect(left.merge('k', y)).toBe(false);
  });

  it('later local writes order after merged ones', () => {
    const { map } = createMap('a', 1_000);
    map.merge('k', record(30_000, { title: 'remote', done: false }));
    const local = map.set('k', { title: 'local', done: false });
    expect(local.timestamp.millis).toBe(30_000);
    expect(map.get('k')?.title).toBe('local');
  });

  it('rejects records from too far in the future without storing them', () => {
    const { map } = createMap('a', 1_000);
    expect(() => map.merge('k', record(1_000 + 60_001, { title: 'future', done: false }))).toThrow(
      ClockDriftError,
    );
    expect(map.recordCount).toBe(0);
    expect(map.hlc.last.millis).toBe(0);
  });

  it('rejects malformed records with a typed error', () => {
    const { map } = createMap('a', 10_000);
    const malformed: unknown[] = [
      null,
      'x',
      [],
      { value: { title: 'x' } },
      { value: { title: 'x' }, timestamp: { millis: -1, counter: 0, nodeId: 'a' } },
      { value: undefined, timestamp: { millis: 1, counter: 0, nodeId: 'a' } },
      { value: { a: Number.NaN }, timestamp: { millis: 1, counter: 0, nodeId: 'a' } },
      { value: 'x', timestamp: { millis: 1, counter: 0, nodeId: 'a' }, ttlMs: 0 },
    ];
    for (const bad of malformed) {
      expect(() => map.merge('k', bad as LWWRecord<Todo>)).toThrow(ValidationError);
    }
    expect(() => map.merge('', record(1, null))).toThrow(ValidationError);
    expect(map.recordCount).toBe(0);
  });
});

describe('LWWMap TTL', () => {
  it('reads expired records as absent', () => {
    const { map, advance } = createMap('a', 1_000);
    map.set('session', { title: 's', done: false }, { ttlMs: 100 });
    map.set('forever', { title: 'f', done: false });
    expect(map.get('session')).toBeDefined();
    expect(map.size).toBe(2);
    advance(99);
    expect(map.has('session')).toBe(true);
    advance(1);
    expect(map.has('session')).toBe(false);
    expect(map.size).toBe(1);
    expect([...map.entries()].map(([key]) => key)).toEqual(['forever']);
  });

  it('a merged expired record is not a visible change', () => {
    const { map } = createMap('a', 10_000);
    const changed = map.merge('k', {
      value: { title: 'gone', done: false },
      timestamp: { millis: 1_000, counter: 0, nodeId: 'r' },
      ttlMs: 10,
    });
    expect(changed).toBe(false);
    expect(map.has('k')).toBe(false);
  });
});

describe('LWWMap.subscribe', () => {
  it('reports visible changes with previous values', () => {
    const { map } = createMap('a', 10_000);
    const changes: Array<MapChange<Todo>> = [];
    const unsubscribe = map.subscribe((change) => changes.push(change));
    map.set('k', { title: '1', done: false });
    map.set('k', { title: '2', done: false });
    map.delete('k');
    map.delete('k'); // deleting an absent key is not a visible change
    map.merge('k', {
      value: { title: 'stale', done: false },
      timestamp: { millis: 1, counter: 0, nodeId: 'r' },
    });
    unsubscribe();
    map.set('k', { title: '3', done: false });
    expect(changes.map((change) => [change.previous?.title, change.value?.title])).toEqual([
      [undefined, '1'],
      ['1', '2'],
      ['2', undefined],
    ]);
  });

  it('a throwing listener does not stop the others or the write', async () => {
    const { map } = createMap();
    const reported = vi.fn();
    process.once('uncaughtException', reported);
    const second = vi.fn();
    map.subscribe(() => {
      throw new Error('listener bug');
    });
    map.subscribe(second);
    map.set('k', { title: 'x', done: false });
    expect(second).toHaveBeenCalledTimes(1);
    expect(map.get('k')).toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(reported).toHaveBeenCalledWith(
      expect.objectContaining({ message: 'listener bug' }),
      expect.anything(),
    );
  });
});

describe('LWWMap.restore', () => {
  it('replaces or removes a record unconditionally, keeping the tree and listeners right', () => {
    const { map } = createMap('a', 10_000);
    const changes: Array<MapChange<Todo>> = [];
    map.subscribe((change) => changes.push(change));
    const optimistic = map.set('k', { title: 'optimistic', done: false });
    const server = {
      value: { title: 'server', done: true },
      timestamp: { millis: 5, counter: 0, nodeId: 's' },
    };
    expect(map.restore('k', server)).toBe(true);
    expect(map.get('k')).toEqual(server.value);
    expect(map.getRecord('k')).toBe(server);
    expect(map.restore('k', undefined)).toBe(true);
    expect(map.has('k')).toBe(false);
    expect(map.recordCount).toBe(0);
    expect(map.merkleTree.root.count).toBe(0);
    expect(changes.map((change) => change.value?.title)).toEqual([
      'optimistic',
      'server',
      undefined,
    ]);
    expect(map.restore('k', undefined)).toBe(false);
    expect(optimistic.value).toEqual({ title: 'optimistic', done: false });
  });
});

describe('LWWMap.loadRecords', () => {
  it('loads stored records in bulk with the same result as merging them, and tells bulk listeners once', () => {
    const records = Array.from(
      { length: 50 },
      (_, i) =>
        [
          `k${i % 20}`,
          {
            value: i % 7 === 0 ? null : { title: `v${i}`, done: false },
            timestamp: { millis: 1_000 + i, counter: 0, nodeId: 'r' },
          },
        ] as const,
    );
    const merged = createMap('a', 500).map;
    for (const [key, record] of records) merged.merge(key, record);
    const loaded = createMap('b', 500).map;
    let bulk = 0;
    let single = 0;
    loaded.subscribeBulk(() => bulk++);
    loaded.subscribe(() => single++);
    loaded.loadRecords(records);
    expect([...loaded.entries()]).toEqual([...merged.entries()]);
    expect(rootHashHex(loaded.merkleTree)).toBe(rootHashHex(merged.merkleTree));
    expect(loaded.size).toBe(merged.size);
    expect(bulk).toBe(1);
    expect(single).toBe(0);
    expect(loaded.hlc.last.millis).toBe(1_049);
  });

  it('hashes loaded records into the tree when it is first read, whatever changed them before', () => {
    const records = Array.from(
      { length: 30 },
      (_, i) =>
        [
          `k${i}`,
          {
            value: { title: `t${i}`, done: false },
            timestamp: { millis: 1_000 + i, counter: 0, nodeId: 'r' },
          },
        ] as const,
    );
    const later = (map: LWWMap<Todo>) => {
      // Changes of loaded keys, made before anything read the tree.
      map.merge('k1', {
        value: { title: 'edited', done: true },
        timestamp: { millis: 5_000, counter: 0, nodeId: 'r' },
      });
      map.merge('k2', { value: null, timestamp: { millis: 5_001, counter: 0, nodeId: 'r' } });
      map.restore('k3', undefined);
      map.loadRecords([
        [
          'k4',
          {
            value: { title: 'reloaded', done: true },
            timestamp: { millis: 5_002, counter: 0, nodeId: 'r' },
          },
        ],
        [
          'k99',
          {
            value: { title: 'new', done: false },
            timestamp: { millis: 5_003, counter: 0, nodeId: 'r' },
          },
        ],
      ]);
    };
    const merged = createMap('a', 500).map;
    for (const [key, record] of records) merged.merge(key, record);
    later(merged);
    const loaded = createMap('b', 500).map;
    loaded.loadRecords(records);
    later(loaded);
    expect([...loaded.entries()]).toEqual([...merged.entries()]);
    expect(rootHashHex(loaded.merkleTree)).toBe(rootHashHex(merged.merkleTree));
    expect(loaded.merkleTree.valueBytes).toBe(merged.merkleTree.valueBytes);
  });
});
