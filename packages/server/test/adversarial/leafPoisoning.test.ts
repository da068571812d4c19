import {
  decodeMessage,
  keyHash,
  LEAF_DIGEST_MAX,
  LEAVES_PER_PARTITION,
  leafPathOf,
  type Message,
  PARTITION_COUNT,
} from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { postgresAvailable } from '../postgres.js';
import { replicaOf, TestClient } from '../testClient.js';
import { usePostgresServer } from './adversarialKit.js';

const available = await postgresAvailable();

/** A small walk budget, so that a few hundred crowded keys are far over it. */
const WALK_MESSAGE_BYTES = 2_048;
/** What the server's size estimate of a walk message may be off by. */
const ESTIMATE_SLACK_BYTES = 256;
const MAX_FRAME_BYTES = 64 * 1024;
const CROWD = 400;
/** Walks the victim may need before its replica converges (a walk may end truncated). */
const MAX_WALKS = 10;

/**
 * Keys whose Merkle leaf is `victimKey`'s, found by brute force as an attacker would: the
 * leaf is a function of the unkeyed 32-bit key hash (`keyHash mod 271 * 256`).
 */
function keysInLeafOf(victimKey: string, count: number): string[] {
  const leaves = PARTITION_COUNT * LEAVES_PER_PARTITION;
  const target = keyHash(victimKey) % leaves;
  const keys: string[] = [];
  for (let candidate = 0; keys.length < count; candidate++) {
    const key = candidate.toString(36);
    if (keyHash(key) % leaves === target) keys.push(key);
  }
  return keys;
}

/** Every frame a client receives, with its size on the wire. */
function recordFrames(client: TestClient): Array<{ bytes: number; message: Message }> {
  const frames: Array<{ bytes: number; message: Message }> = [];
  client.socket.on('message', (data: Buffer) => {
    frames.push({ bytes: data.length, message: decodeMessage(new Uint8Array(data)) });
  });
  return frames;
}

describe.runIf(available)('a Merkle leaf crowded on purpose', () => {
  const target = usePostgresServer({
    auth: { allowAnonymous: true },
    limits: { walkMessageBytes: WALK_MESSAGE_BYTES, maxFrameBytes: MAX_FRAME_BYTES },
  });

  it('keeps every walk message within budget and delivers the offline edit in that leaf', async () => {
    const map = 'poisoned';
    const victimKey = 'victim-note';
    const crowd = keysInLeafOf(victimKey, CROWD);
    expect(new Set(crowd.map((key) => leafPathOf(key).join('/')))).toEqual(
      new Set([leafPathOf(victimKey).join('/')]),
    );

    const attacker = await TestClient.connect(target.url);
    const written = await attacker.write(
      map,
      crowd.map((key, index) => [key, { filler: index, padding: 'x'.repeat(64) }]),
    );
    expect(written.ack?.ids).toHaveLength(CROWD);

    // The victim holds the whole crowd, then edits its own note while offline.
    const victim = await TestClient.connect(target.url);
    const replica = replicaOf('victim-replica');
    const frames = recordFrames(victim);
    expect((await victim.sync(map, replica)).converged).toBe(true);
    expect(replica.size).toBe(CROWD);
    replica.merge(victimKey, { value: { text: 'written offline' }, timestamp: victim.hlc.now() });

    let walks = 0;
    let converged = false;
    while (!converged && walks < MAX_WALKS) {
      walks++;
      converged = (await victim.sync(map, replica)).converged;
    }
    expect(converged, `converged after ${walks} walks`).toBe(true);
    const stored = await target.server.storage.getRecords(map, [victimKey]);
    expect(stored[0]?.record.value).toEqual({ text: 'written offline' });

    const walkFrames = frames.filter(({ message }) => message.type === 'sync');
    const largestWalk = Math.max(...walkFrames.map(({ bytes }) => bytes));
    const largestDigest = Math.max(
      0,
      ...walkFrames.flatMap(({ message }) => (message.type === 'sync' ? message.digestSizes : [])),
    );
    expect(
      largestWalk,
      `largest walk message ${largestWalk} B; largest digest ${largestDigest} entries; ${walks} walks`,
    ).toBeLessThanOrEqual(WALK_MESSAGE_BYTES + ESTIMATE_SLACK_BYTES);
    expect(largestDigest).toBeLessThanOrEqual(LEAF_DIGEST_MAX);
    for (const { bytes, message } of frames) {
      if (message.type === 'sync_records') expect(bytes).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    }
    attacker.close();
    victim.close();
  });
});
