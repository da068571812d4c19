import { describe, expect, it } from 'vitest';
import {
  compareRecords,
  DIGEST_STAMP_BYTES,
  encodeMessage,
  type HashWidth,
  itemHash,
  keyHash,
  LEAF_DIGEST_MAX,
  type LWWMap,
  leafPathOf,
  MARK_PROBE,
  PARTITION_COUNT,
  rootHashHex,
  type SyncMessage,
  SyncSession,
  toSyncWire,
  ValidationError,
  type Value,
} from '../src/index.js';
import { fc } from './property.js';
import { createReplicas, FakeClock, visibleState } from './replicas.js';
import { walk, walkUntilConverged } from './syncWalk.js';

type Doc = { n: number };

function differingKeys(a: LWWMap<Doc>, b: LWWMap<Doc>): Set<string> {
  const keys = new Set<string>();
  for (const [key, record] of a.allRecords()) {
    const other = b.getRecord(key);
    if (other === undefined || compareRecords(record, other) !== 0) keys.add(key);
  }
  for (const [key] of b.allRecords()) if (a.getRecord(key) === undefined) keys.add(key);
  return keys;
}

/** Two replicas sharing `shared` keys, then each written on alone. */
function diverged(shared: number, onlyLeft: number[], onlyRight: number[], deletes: number[]) {
  const clock = new FakeClock();
  const [left, right] = createReplicas<Doc>(2, clock) as [LWWMap<Doc>, LWWMap<Doc>];
  for (let i = 0; i < shared; i++) {
    const record = left.set(`key-${i}`, { n: i });
    right.merge(`key-${i}`, record);
  }
  clock.time += 10;
  for (const i of onlyLeft) left.set(`key-${i}`, { n: -i });
  for (const i of onlyRight) right.set(`key-${i}`, { n: i * 2 });
  for (const i of deletes) right.delete(`key-${i}`);
  return { left, right };
}

/** Two replicas equal but for key-3: one timestamp, two values. */
function tiedOnKey3() {
  const clock = new FakeClock();
  const [left, right] = createReplicas<Doc>(2, clock) as [LWWMap<Doc>, LWWMap<Doc>];
  for (let i = 0; i < 500; i++) {
    const record = left.set(`key-${i}`, { n: i });
    right.merge(`key-${i}`, record);
  }
  const timestamp = { millis: clock.time + 5, counter: 0, nodeId: 'x' };
  left.merge('key-3', { value: { n: 1 }, timestamp });
  right.merge('key-3', { value: { n: 2 }, timestamp });
  return { left, right };
}

describe('Merkle walk', () => {
  it('ends at once when the replicas are equal', () => {
    const { left, right } = diverged(300, [], [], []);
    const report = walk(left, right);
    expect(report.messages).toHaveLength(1);
    expect(report.converged).toBe(true);
  });

  it('a replica with nothing asks for everything in one round trip', () => {
    const { left } = diverged(1_000, [], [], []);
    const [empty] = createReplicas<Doc>(1, new FakeClock());
    const report = walk(empty!, left);
    expect(report.messages).toHaveLength(2);
    expect(report.messages[0]!.hashes).toHaveLength(0);
    expect(empty!.size).toBe(1_000);
    expect(report.converged).toBe(true);
  });

  it('an empty replica opening a walk over an empty one gets no answer: the walk ends at once', () => {
    const [initiator, responder] = createReplicas<Doc>(2, new FakeClock());
    const report = walk(initiator!, responder!);
    expect(report.messages).toHaveLength(1);
    expect(report.converged).toBe(true);
  });

  it.each([4, 8] as const)(
    'transfers exactly the differing keys, converges, in at most 4 round trips (width %i)',
    (width: HashWidth) => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 2_000 }),
          fc.uniqueArray(fc.integer({ min: 0, max: 2_500 }), { maxLength: 40 }),
          fc.uniqueArray(fc.integer({ min: 0, max: 2_500 }), { maxLength: 40 }),
          fc.uniqueArray(fc.integer({ min: 0, max: 2_500 }), { maxLength: 20 }),
          (shared, onlyLeft, onlyRight, deletes) => {
            const { left, right } = diverged(shared, onlyLeft, onlyRight, deletes);
            const expected = differingKeys(left, right);
            const report = walk(left, right, width);
            const transferred = new Set([...report.sentByInitiator, ...report.sentByResponder]);
            expect(transferred).toEqual(expected);
            expect(visibleState(left)).toEqual(visibleState(right));
            expect(rootHashHex(left.merkleTree)).toBe(rootHashHex(right.merkleTree));
            expect(report.converged).toBe(true);
            expect(report.messages.length).toBeLessThanOrEqual(8);
          },
        ),
        { numRuns: 40 },
      );
    },
  );

  it('sends each side only the records the other lacks or holds older', () => {
    const { left, right } = diverged(500, [1, 2, 600], [3, 700], [4]);
    const report = walk(left, right);
    expect(report.sentByInitiator).toEqual(new Set(['key-1', 'key-2', 'key-600']));
    expect(report.sentByResponder).toEqual(new Set(['key-3', 'key-4', 'key-700']));
  });

  it('rejects malformed messages with a typed error', () => {
    const { left, right } = diverged(200, [1, 2, 3], [], []);
    const opening = new SyncSession(left, { width: 4 }).open();
    const malformedOpenings: Array<SyncMessage<Doc>> = [
      { ...opening, width: 3 as HashWidth },
      { ...opening, root: new Uint8Array(7) },
      { ...opening, hashes: new Uint8Array(5) },
      { ...opening, marks: new Uint8Array(1) },
      { ...opening, wants: new Uint8Array(1) },
      { ...opening, digestSizes: [1] },
    ];
    for (const message of malformedOpenings) {
      expect(() => new SyncSession(right).receive(message)).toThrow(ValidationError);
    }

    // A reply that does not fit what the session sent.
    const initiator = new SyncSession(left, { width: 4 });
    const responder = new SyncSession(right);
    const reply = responder.receive(initiator.open()).message!;
    const malformedReplies: Array<SyncMessage<Doc>> = [
      { ...reply, width: 8 },
      { ...reply, marks: reply.marks.subarray(1) },
      { ...reply, hashes: new Uint8Array(reply.hashes.length + 4) },
      { ...reply, digestKeys: [...reply.digestKeys, 'extra'] },
      { ...reply, digestStamps: new Uint8Array(3) },
      { ...reply, nodeIds: ['bad id'] },
      { ...reply, marks: new Uint8Array(reply.marks.length).fill(0xff) },
    ];
    for (const message of malformedReplies) {
      expect(() => new SyncSession(left, { width: 4 }).receive(message)).toThrow(ValidationError);
      const fresh = new SyncSession(left, { width: 4 });
      fresh.open();
      expect(() => fresh.receive(message)).toThrow(ValidationError);
    }
    expect(MARK_PROBE).toBe(1);
  });
});

describe('Merkle walk within a message budget', () => {
  const sizeOf = (message: SyncMessage<Doc>) =>
    encodeMessage(toSyncWire('m', 1, message as SyncMessage<Value>)).length;

  it('keeps every message within its budget however much differs, and converges over several walks', () => {
    const { left, right } = diverged(
      3_000,
      Array.from({ length: 1_500 }, (_, i) => i),
      Array.from({ length: 1_500 }, (_, i) => 1_500 + i),
      [],
    );
    const budget = 8 * 1024;
    const reports = walkUntilConverged(left, right, budget);
    expect(reports.length).toBeGreaterThan(1);
    expect(reports.slice(0, -1).every((report) => report.truncated)).toBe(true);
    for (const report of reports) {
      for (const message of report.messages) {
        // The records beyond the budget went in bulk, which `walk` appends to the message.
        expect(sizeOf({ ...message, records: message.records.slice(0, 1) })).toBeLessThan(
          budget + 512,
        );
      }
    }
    expect(visibleState(left)).toEqual(visibleState(right));
  });

  it('counts digest keys in the budget: long keys do not carry a message past it', () => {
    const clock = new FakeClock();
    const [left, right] = createReplicas<Doc>(2, clock) as [LWWMap<Doc>, LWWMap<Doc>];
    const keyOf = (i: number) => `${String(i).padStart(6, '0')}-${'k'.repeat(1_000)}`;
    for (let i = 0; i < 2_000; i++) right.merge(keyOf(i), left.set(keyOf(i), { n: i }));
    clock.time += 10;
    for (let i = 0; i < 2_000; i += 2) left.set(keyOf(i), { n: -i });
    const budget = 16 * 1024;
    const reports = walkUntilConverged(left, right, budget);
    for (const report of reports) {
      for (const message of report.messages) {
        // Records beyond the budget go in bulk (appended by `walk`): digests and hashes only.
        expect(sizeOf({ ...message, records: [] })).toBeLessThan(budget + 512);
      }
    }
    expect(visibleState(left)).toEqual(visibleState(right));
  });

  it('splits a leaf crowded by chosen keys into sub-leaves: no digest or message grows with it', () => {
    // 100 keys brute-forced into the leaf of `target`, as an attacker steering keys would.
    // Same partition and leaf = same keyHash modulo 271 * 256.
    const target = keyHash('target') % (PARTITION_COUNT * 256);
    const crowded: string[] = [];
    for (let i = 0; crowded.length < 100; i++) {
      if (keyHash(`c${i}`) % (PARTITION_COUNT * 256) === target) crowded.push(`c${i}`);
    }
    expect(leafPathOf(crowded[0]!)).toEqual(leafPathOf('target'));
    const clock = new FakeClock();
    const [left, right] = createReplicas<Doc>(2, clock) as [LWWMap<Doc>, LWWMap<Doc>];
    for (const [index, key] of crowded.entries()) {
      const record = left.set(key, { n: index });
      right.merge(key, record);
    }
    clock.time += 10;
    left.set(crowded[7]!, { n: -7 });
    right.set(crowded[90]!, { n: -90 });
    left.set('target', { n: 1 });

    const reports = walkUntilConverged(left, right, 4 * 1024);
    const messages = reports.flatMap((report) => report.messages);
    // The walk went below the leaf: more round trips than the 4 levels of the stored tree.
    expect(Math.max(...reports.map((report) => report.messages.length))).toBeGreaterThan(8);
    for (const message of messages) {
      for (const size of message.digestSizes) expect(size).toBeLessThanOrEqual(LEAF_DIGEST_MAX);
      expect(sizeOf(message)).toBeLessThan(4 * 1024 + 512);
    }
    const transferred = new Set(
      reports.flatMap((report) => [...report.sentByInitiator, ...report.sentByResponder]),
    );
    // Only the differing records crossed, not the crowded leaf.
    expect(transferred.size).toBeLessThanOrEqual(8);
    expect(transferred).toContain(crowded[7]);
    expect(transferred).toContain(crowded[90]);
    expect(right.get('target')).toEqual({ n: 1 });
    expect(visibleState(left)).toEqual(visibleState(right));
  }, 30_000);

  it('exchanges records with equal timestamps and different values, converging on the tie winner', () => {
    const { left, right } = tiedOnKey3();
    expect(rootHashHex(left.merkleTree)).not.toBe(rootHashHex(right.merkleTree));
    const report = walk(left, right);
    expect(report.converged).toBe(true);
    expect(left.get('key-3')).toEqual({ n: 2 });
    expect(right.get('key-3')).toEqual({ n: 2 });
  });

  it('tells equal-timestamp records apart in digests by both lanes of their hash', () => {
    const { left, right } = tiedOnKey3();
    // Walk until a digest lists key-3; its stamp is then made to match the receiver's lane 1
    // (what a writer trying 2^32 values could arrange): lane 2 must still tell them apart.
    const replicas = [left, right] as const;
    const sessions = [new SyncSession(left, { width: 4 }), new SyncSession(right)] as const;
    let message = sessions[0].open();
    for (let turn = 0; turn < 20; turn++) {
      const receiver = (turn + 1) % 2;
      const entry = message.digestKeys.indexOf('key-3');
      if (entry >= 0) {
        const own = replicas[receiver]!;
        const [ownLane1] = itemHash('key-3', own.getRecord('key-3')!);
        const stamps = message.digestStamps.slice();
        new DataView(stamps.buffer).setUint32(entry * DIGEST_STAMP_BYTES + 10, ownLane1 >>> 0);
        const answer = sessions[receiver]!.receive({ ...message, digestStamps: stamps }).message!;
        expect(answer.records.map(([key]) => key)).toContain('key-3');
        return;
      }
      const next = sessions[receiver]!.receive(message).message;
      if (next === undefined) break;
      message = next;
    }
    throw new Error('no digest listed key-3');
  });
});

describe('Merkle walk within a work budget', () => {
  it('visits a bounded number of items per answer however much differs, and converges over several walks', () => {
    const { left, right } = diverged(
      2_000,
      Array.from({ length: 1_000 }, (_, i) => i),
      Array.from({ length: 1_000 }, (_, i) => 1_000 + i),
      [],
    );
    const work = 300;
    const reports = walkUntilConverged(left, right, 1024 * 1024, 80, work);
    expect(reports.length).toBeGreaterThan(3);
    for (const report of reports) {
      for (const message of report.messages) {
        // Every item an answer names cost at least one unit of its budget (bulk records
        // appended by `walk` aside, which are streamed, not built by the answer).
        expect(message.digestKeys.length + message.hashes.length / 8).toBeLessThanOrEqual(work + 8);
      }
    }
    expect(visibleState(left)).toEqual(visibleState(right));
  });
});
