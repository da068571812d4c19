import {
  compareRecords,
  encodeMessage,
  formatTimestamp,
  fromWireEntry,
  type LWWMap,
  type LWWRecord,
  type Message,
  PROTOCOL_VERSION,
  rootBytes,
  type Value,
} from '@topgun/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { postgresAvailable } from '../postgres.js';
import { eventually } from '../serverHarness.js';
import { replicaOf, TestClient } from '../testClient.js';
import {
  metricValue,
  readByOwnerOrShared,
  TOKEN_SECRET,
  tokenFor,
  usePostgresServer,
  walkLikeAClient,
  writtenByOwner,
} from './adversarialKit.js';

/*
 * A seeded protocol fuzzer: hostile clients, each authenticated, send random valid messages,
 * mutated frames and garbage for a bounded time while honest clients write and walk; then
 * the server must be healthy, have crashed on nothing, hold every write it acknowledged, and
 * every honest replica must converge with what its user may see. TOPGUN_FUZZ_SECONDS runs it
 * longer; TOPGUN_SEED replays the same generated messages (the seed is printed; how they
 * interleave with the honest clients depends on timing, so a failure may take a few runs).
 */

const SECONDS = Number(process.env['TOPGUN_FUZZ_SECONDS'] ?? 6);
const SEED = Number(process.env['TOPGUN_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const HOSTILE = 3;
const MAPS = ['open', 'notes', 'readonly', 'walked', 'nope/x'] as const;

/** A small seeded generator (mulberry32): the same seed, the same run. */
class Random {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
  int(below: number): number {
    return Math.floor(this.next() * below);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(length: number): Uint8Array {
    return Uint8Array.from({ length }, () => this.int(256));
  }
}

function randomValue(random: Random, depth = 0): Value {
  switch (random.int(depth > 2 ? 4 : 6)) {
    case 0:
      return random.int(1000) - 500;
    case 1:
      return random.pick(['a', 'b', 'ab', '', 'é', '🚀', 'x'.repeat(random.int(300))]);
    case 2:
      return random.chance(0.5);
    case 3:
      return random.next() * 1e6;
    case 4:
      return Array.from({ length: random.int(5) }, () => randomValue(random, depth + 1));
    default: {
      const value: Record<string, Value> = {};
      for (let i = random.int(5); i > 0; i--)
        value[random.pick(['owner', 'shared', 'n', 'title', 'x'])] = randomValue(random, depth + 1);
      if (random.chance(0.5)) value['owner'] = random.pick(['alice', 'bob', 'h0', 'h1']);
      return value;
    }
  }
}

/** A random message a hostile client might send: mostly well formed, often absurd. */
function randomMessage(random: Random, nodeId: string, now: number): Message {
  const map = random.chance(0.9) ? random.pick(MAPS) : `m${random.int(1000)}`;
  const key = () =>
    random.chance(0.8) ? `k${random.int(40)}` : random.pick(['键'.repeat(300), 'a/b', '🚀', 'z']);
  const stamp = () =>
    formatTimestamp({
      millis: random.pick([
        now,
        now - random.int(60_000),
        now + random.int(90_000),
        random.int(1_000_000),
        now - 8 * 24 * 3600 * 1000,
      ]),
      counter: random.int(4),
      nodeId: random.chance(0.8)
        ? nodeId
        : random.pick(['alice-node', 'bob-node', 'srv', `${nodeId}-t`]),
    });
  const entry = (): [string, string, Value | null] => [
    key(),
    stamp(),
    random.chance(0.2) ? null : randomValue(random),
  ];
  switch (random.int(10)) {
    case 0:
    case 1:
    case 2:
      return {
        type: 'ops',
        ops: Array.from({ length: 1 + random.int(random.chance(0.1) ? 1200 : 20) }, (_, id) => ({
          id,
          map,
          entry: entry(),
        })),
      };
    case 3:
      return {
        type: 'sync',
        map,
        session: random.int(6),
        ...(random.chance(0.3) ? { lastSync: random.int(now) } : {}),
        width: random.pick([4, 8] as const),
        root: random.bytes(8),
        marks: random.bytes(random.int(80)),
        hashes: random.bytes(random.pick([0, 271 * 4, 271 * 8, random.int(2000)])),
        digestSizes: Array.from({ length: random.int(4) }, () => random.int(4)),
        digestKeys: Array.from({ length: random.int(6) }, key),
        digestStamps: random.bytes(random.int(100)),
        nodeIds: [nodeId],
        wants: random.bytes(random.int(4)),
        records: Array.from({ length: random.int(5) }, entry),
      };
    case 4:
      return {
        type: 'sync_records',
        map,
        session: random.int(6),
        records: Array.from({ length: random.int(30) }, entry),
        last: random.chance(0.5),
      };
    case 5:
      return { type: 'sync_done', map, session: random.int(6), root: random.bytes(8) };
    case 6:
      return {
        type: 'subscribe',
        id: random.int(5),
        map,
        query: random.pick([
          {},
          { where: { owner: 'alice' }, sort: 'n', limit: 1 },
          {
            where: {
              or: [{ n: { in: Array.from({ length: 500 }, (_, i) => ({ i })) } }, { x: 1 }],
            },
          },
          { sort: [{ field: 'title', direction: 'desc' }], offset: 3 },
        ]),
      };
    case 7:
      return { type: 'unsubscribe', id: random.int(5) };
    case 8:
      return random.chance(0.5)
        ? { type: 'ping', time: random.int(now) }
        : { type: 'hello', protocol: PROTOCOL_VERSION, nodeId };
    default:
      return { type: 'ack', ids: [1], superseded: [] };
  }
}

/** A frame: a random message, encoded, sometimes mutated, sometimes not MessagePack at all. */
function randomFrame(random: Random, nodeId: string, now: number): Uint8Array {
  const frame = encodeMessage(randomMessage(random, nodeId, now));
  switch (random.int(8)) {
    case 0:
      return random.bytes(1 + random.int(64));
    case 1: {
      const flipped = frame.slice();
      for (let i = 1 + random.int(4); i > 0; i--)
        flipped[random.int(flipped.length)] = random.int(256);
      return flipped;
    }
    case 2:
      return frame.subarray(0, random.int(frame.length));
    case 3:
      return Uint8Array.from([...frame, ...random.bytes(1 + random.int(8))]);
    default:
      return frame;
  }
}

interface Acked {
  readonly map: string;
  readonly key: string;
  readonly record: LWWRecord<Value>;
}

const available = await postgresAvailable();

describe.runIf(available)(`protocol fuzzing (seed ${SEED}, ${SECONDS} s)`, () => {
  const crashes: string[] = [];

  beforeAll(() => {
    console.log(`fuzz seed ${SEED} (replay: TOPGUN_SEED=${SEED}), ${SECONDS} s`);
  });
  const target = usePostgresServer({
    auth: { secret: TOKEN_SECRET },
    permissions: [
      { map: 'open', read: true, write: 'authenticated' },
      { map: 'walked', read: true, write: true },
      { map: 'readonly', read: true, write: false },
      { map: 'notes', read: readByOwnerOrShared, write: writtenByOwner },
    ],
    limits: { handshakeTimeoutMs: 2_000, maxViolations: 50 },
    logger: {
      level: 'error',
      stream: {
        write: (line: string) => {
          if (line.includes('unexpected error') || line.includes('write group failed'))
            crashes.push(line);
        },
      },
    },
  });

  it(
    'survives hostile clients: healthy, nothing crashed, every ack stored, honest replicas converge',
    async () => {
      const random = new Random(SEED);
      const deadline = Date.now() + SECONDS * 1000;
      const acked: Acked[] = [];
      const honest = await Promise.all(
        (['alice', 'bob'] as const).map(async (user) => ({
          user,
          client: await TestClient.connect(target.url, await tokenFor(user), `${user}-node`),
        })),
      );

      const hostile = async (index: number) => {
        const own = new Random(SEED + index + 1);
        let frames = 0;
        while (Date.now() < deadline) {
          const nodeId = `h${index}-${own.int(3)}`;
          let client: TestClient;
          try {
            client = await TestClient.open(target.url, nodeId);
          } catch {
            await new Promise((resolve) => setTimeout(resolve, 50));
            continue;
          }
          if (own.chance(0.9))
            client.send({
              type: 'hello',
              protocol: PROTOCOL_VERSION,
              nodeId,
              token: await tokenFor(`h${index}`),
            });
          while (Date.now() < deadline && client.closeCode === undefined) {
            if (client.socket.readyState !== client.socket.OPEN) break;
            if (own.chance(0.02)) client.socket.send('text frame');
            else client.socket.send(randomFrame(own, nodeId, Date.now()));
            frames++;
            if (frames % 8 === 0) await new Promise((resolve) => setTimeout(resolve, own.int(6)));
          }
          client.close();
        }
        return frames;
      };

      // Each honest user's replica of each map, kept as a client keeps it: its writes applied
      // at once, rolled back to what the server answers when refused.
      const replicas = new Map<string, LWWMap<Value>>();
      const replicaFor = (user: string, map: string) => {
        const name = `${user}-${map}`;
        const replica = replicas.get(name) ?? replicaOf(name);
        replicas.set(name, replica);
        return replica;
      };
      const honestWork = async () => {
        let round = 0;
        while (Date.now() < deadline) {
          for (const { user, client } of honest) {
            const map = random.pick(['open', 'notes', 'walked'] as const);
            const writes: Array<[string, Value | null]> = Array.from(
              { length: 1 + random.int(5) },
              () => [
                `k${random.int(40)}`,
                random.chance(0.15)
                  ? null
                  : { owner: user, shared: random.chance(0.5), n: random.int(100), round },
              ],
            );
            const stamps = writes.map(() => client.hlc.now());
            const replica = replicaFor(user, map);
            writes.forEach(([key, value], index) => {
              replica.merge(key, { value, timestamp: stamps[index]! });
            });
            let next = 0;
            const result = await client.write(map, writes, () => stamps[next++]!);
            for (const rejection of result.reject?.rejections ?? []) {
              const [key] = writes[result.ids.indexOf(rejection.id)]!;
              if (rejection.current === null) replica.restore(key, undefined);
              else if (rejection.current !== undefined)
                replica.restore(key, fromWireEntry<Value>(rejection.current)[1]);
            }
            // Acknowledged and applied: superseded ones were acknowledged as not applied.
            const superseded = new Set(result.ack?.superseded ?? []);
            const ackedIds = new Set(result.ack?.ids ?? []);
            result.ids.forEach((id, index) => {
              if (!ackedIds.has(id) || superseded.has(id)) return;
              const [key, value] = writes[index]!;
              acked.push({ map, key, record: { value, timestamp: stamps[index]! } });
            });
          }
          round++;
        }
        return round;
      };

      const [rounds, ...sent] = await Promise.all([
        honestWork(),
        ...Array.from({ length: HOSTILE }, (_, index) => hostile(index)),
      ]);
      console.log(
        `fuzz: ${rounds} honest rounds, ${acked.length} acked writes, ${sent.join('+')} hostile frames`,
      );
      expect(rounds).toBeGreaterThan(0);
      // Every hostile client got its frames in (the upgrade limit did not keep it out).
      expect(Math.min(...sent)).toBeGreaterThan(100);

      // What the hostile clients sent is all handled before anything is checked: their
      // sockets are closed on the server's side, and writes have stopped landing.
      await eventually(
        async () => (await metricValue(target.server, 'topgun_connections')) === honest.length,
        15_000,
      );
      for (let applied = -1; ; ) {
        const now = await metricValue(target.server, 'topgun_ops_applied_total');
        if (now === applied) break;
        applied = now;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }

      // Healthy: ready, and answering at once.
      const ready = await target.server.app.inject({ method: 'GET', url: '/ready' });
      expect(ready.statusCode).toBe(200);
      for (const { client } of honest) {
        const started = performance.now();
        client.send({ type: 'ping', time: 1 });
        await client.next('pong', 5_000);
        expect(performance.now() - started).toBeLessThan(1_000);
      }
      expect(crashes).toEqual([]);

      // Every acknowledged write is stored, or lost to a newer record.
      const byMap = new Map<string, Acked[]>();
      for (const write of acked) byMap.set(write.map, [...(byMap.get(write.map) ?? []), write]);
      for (const [map, writes] of byMap) {
        const stored = new Map(
          (
            await target.server.storage.getRecords(map, [
              ...new Set(writes.map((write) => write.key)),
            ])
          ).map(({ key, record }) => [key, record] as const),
        );
        for (const write of writes) {
          const record = stored.get(write.key);
          expect(record, `${map}/${write.key} acknowledged and missing`).toBeDefined();
          expect(
            compareRecords(record!, write.record),
            `${map}/${write.key}: stored ${JSON.stringify(record)}, acknowledged ${JSON.stringify(write.record)}`,
          ).toBeGreaterThanOrEqual(0);
        }
      }

      // Honest replicas converge: each user's replica, walked until converged, equals a fresh
      // replica of the same user's view.
      for (const { user, client } of honest) {
        for (const map of ['open', 'notes', 'walked']) {
          const replica = replicaFor(user, map);
          await walkUntilConverged(client, map, replica);
          const fresh = await connectPatiently(target.url, await tokenFor(user), `${user}-fresh`);
          const check = replicaOf(`${user}-check`);
          await walkUntilConverged(fresh, map, check);
          fresh.close();
          expect(hexOf(rootBytes(replica.merkleTree)), `${user}'s ${map}`).toBe(
            hexOf(rootBytes(check.merkleTree)),
          );
        }
        client.close();
      }
    },
    60_000 + SECONDS * 2_000,
  );
});

/**
 * Connects, waiting out the per-address upgrade limit the hostile clients (on the same address)
 * may have used up.
 */
async function connectPatiently(url: string, token: string, nodeId: string): Promise<TestClient> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await TestClient.connect(url, token, nodeId);
    } catch (error) {
      if (attempt > 20 || !/HTTP 429/.test((error as Error).message)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** Walks `map` until the server's root equals the replica's, applying revokes (bounded). */
async function walkUntilConverged(client: TestClient, map: string, replica: LWWMap<Value>) {
  for (let walks = 0; walks < 40; walks++) {
    if ((await walkLikeAClient(client, map, replica, { framing: 'inline' })).converged) return;
  }
  throw new Error(`${map} did not converge`);
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
