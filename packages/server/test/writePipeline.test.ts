import { HLC, LWWMap, toWireEntry, type Value } from '@topgun/core';
import type { FastifyBaseLogger } from 'fastify';
import { describe, expect, it } from 'vitest';
import type { MapGrid } from '../src/mapGrid.js';
import { ServerMetrics } from '../src/metrics.js';
import { Permissions } from '../src/permissions.js';
import type { RecordWrite, Storage } from '../src/storage/storage.js';
import { type CommittedChanges, WritePipeline } from '../src/writePipeline.js';
import { FakePeer } from './fakePeer.js';

const silent = { warn() {}, error() {}, info() {}, debug() {} } as unknown as FastifyBaseLogger;

/** A pipeline over an in-memory grid and a storage that stores every write. */
function pipelineOf(concurrency: number, permissions = new Permissions()) {
  const maps = new Map<string, LWWMap<Value>>();
  const writes: RecordWrite[][] = [];
  const grid = {
    hold: () => () => {},
    getWithin: (name: string) => {
      let map = maps.get(name);
      if (map === undefined) {
        map = new LWWMap<Value>(new HLC({ nodeId: 'server', maxDriftMs: Infinity }));
        maps.set(name, map);
      }
      return Promise.resolve(map);
    },
  } as unknown as MapGrid;
  const storage = {
    writeRecords: async (batch: readonly RecordWrite[]) => {
      writes.push([...batch]);
      return batch.map(() => ({ stored: true }));
    },
  } as unknown as Storage;
  const pipeline = new WritePipeline({
    storage,
    grid,
    permissions,
    metrics: new ServerMetrics(),
    clock: new HLC({ nodeId: 'server' }),
    logger: silent,
    maxGroupOps: 100,
    concurrency,
    maxWriteAgeMs: 60_000,
    now: Date.now,
  });
  return { pipeline, writes };
}

/** A client's write of one record, as an `ops` message carries it. */
function opOf(peer: FakePeer, id: number, key: string, value: Value) {
  const hlc = new HLC({ nodeId: peer.nodeId });
  return { id, map: 'todos', entry: toWireEntry(key, { value, timestamp: hlc.now() }) };
}

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

describe('the write pipeline’s committed event', () => {
  it('frees the commit slot before listeners run: a second commit proceeds meanwhile', async () => {
    // One slot: were listeners run while holding it, the second batch could not commit
    // before the first listener returned, and this test would time out.
    const { pipeline, writes } = pipelineOf(1);
    const heard: string[] = [];
    const firstHeard = gate();
    const firstDone = gate();
    pipeline.onCommitted(async ({ changes }: CommittedChanges) => {
      const keys = changes.map((change) => change.key);
      heard.push(...keys);
      if (keys.includes('a')) {
        firstHeard.open();
        await firstDone.opened;
      }
    });
    const [first, second] = [new FakePeer(), new FakePeer()];

    expect(await pipeline.submit(first, [opOf(first, 1, 'a', 1)])).toMatchObject({ acked: [1] });
    await firstHeard.opened;
    expect(await pipeline.submit(second, [opOf(second, 1, 'b', 2)])).toMatchObject({
      acked: [1],
    });
    expect(writes.map((batch) => batch.map((write) => write.key))).toEqual([['a'], ['b']]);

    // The second group is heard of only once the first's listener is done: commit order.
    let idle = false;
    const becameIdle = pipeline.idle().then(() => {
      idle = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(heard).toEqual(['a']);
    expect(idle).toBe(false);
    firstDone.open();
    await becameIdle;
    expect(heard).toEqual(['a', 'b']);
  });

  it('answers a batch before its listeners hear of it', async () => {
    const { pipeline } = pipelineOf(1);
    const peer = new FakePeer();
    let answered = false;
    const answeredWhenHeard: boolean[] = [];
    pipeline.onCommitted(() => {
      answeredWhenHeard.push(answered);
    });
    await pipeline.submit(peer, [opOf(peer, 1, 'a', 1)]).then(() => {
      answered = true;
    });
    await pipeline.idle();
    expect(answeredWhenHeard).toEqual([true]);
  });

  it('hears of each group in the order it committed, with its origin', async () => {
    const { pipeline } = pipelineOf(1);
    const heard: Array<{ keys: string[]; origin: FakePeer | undefined }> = [];
    pipeline.onCommitted(({ changes, origin }) => {
      heard.push({ keys: changes.map((change) => change.key), origin: origin as FakePeer });
    });
    const peers = [new FakePeer(), new FakePeer(), new FakePeer()];
    await Promise.all(
      peers.map((peer, index) => pipeline.submit(peer, [opOf(peer, 1, `k${index}`, index)])),
    );
    await pipeline.idle();
    expect(heard).toEqual([
      { keys: ['k0'], origin: peers[0] },
      // k1 and k2 waited while k0 committed and formed the next group: heard of per client.
      { keys: ['k1'], origin: peers[1] },
      { keys: ['k2'], origin: peers[2] },
    ]);
  });

  it('sends a change another group superseded as the record the grid holds, against its own previous', async () => {
    // A read rule that looks at records: changes carry the record they replaced.
    // Two slots: three committed groups may wait for their listeners.
    const { pipeline } = pipelineOf(
      2,
      new Permissions([{ map: '*', read: () => true, write: true }]),
    );
    const heard: Array<{ key: string; value: unknown; previous: unknown }> = [];
    const zHeard = gate();
    const zDone = gate();
    pipeline.onCommitted(async ({ changes }) => {
      for (const { key, record, previous } of changes)
        heard.push({ key, value: record.value, previous: previous?.value });
      if (changes.some((change) => change.key === 'z')) {
        zHeard.open();
        await zDone.opened;
      }
    });
    const [writer, other, third] = [new FakePeer(), new FakePeer(), new FakePeer()];
    await pipeline.submit(writer, [opOf(writer, 1, 'z', 0)]);
    await zHeard.opened;
    // While z's listener runs, a is written twice, by two groups: the second supersedes the
    // first before the first is heard of.
    await pipeline.submit(other, [opOf(other, 1, 'a', 1)]);
    await pipeline.submit(third, [opOf(third, 1, 'a', 2)]);
    zDone.open();
    await pipeline.idle();
    expect(heard).toEqual([
      { key: 'z', value: 0, previous: undefined },
      // The first write of a still goes out (as the record now held), measured against the
      // record before it: a listener that could see that one may have to forget the key.
      { key: 'a', value: 2, previous: undefined },
      { key: 'a', value: 2, previous: 1 },
    ]);
  });

  it('holds commits back while twice the concurrency of groups wait for slow listeners', async () => {
    const { pipeline, writes } = pipelineOf(1);
    const release = gate();
    pipeline.onCommitted(() => release.opened);
    const [a, b, c] = [new FakePeer(), new FakePeer(), new FakePeer()];
    await pipeline.submit(a, [opOf(a, 1, 'k0', 0)]);
    await pipeline.submit(b, [opOf(b, 1, 'k1', 1)]);
    const third = pipeline.submit(c, [opOf(c, 1, 'k2', 2)]);
    await new Promise((resolve) => setImmediate(resolve));
    // Two groups committed and wait for their listeners: the third waits to commit.
    expect(writes).toHaveLength(2);
    release.open();
    await third;
    await pipeline.idle();
    expect(writes).toHaveLength(3);
  });

  it('goes on after a listener throws', async () => {
    const { pipeline } = pipelineOf(1);
    const heard: string[] = [];
    pipeline.onCommitted(() => {
      throw new Error('a listener with a bug');
    });
    pipeline.onCommitted(({ changes }) => {
      heard.push(...changes.map((change) => change.key));
    });
    const peer = new FakePeer();
    await pipeline.submit(peer, [opOf(peer, 1, 'a', 1)]);
    await pipeline.submit(peer, [opOf(peer, 2, 'b', 2)]);
    await pipeline.idle();
    expect(heard).toEqual(['a', 'b']);
  });
});
