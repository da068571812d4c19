import { DEFAULT_DECODE_LIMITS, decodeMessage, type Message } from '@topgun/core';
import type { ServerOptions, TopGunServer } from '@topgun/server';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { TopGunClient } from '../src/index.js';
import { startServer, testClient, waitFor } from './harness.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const DAY_MS = 24 * 60 * 60 * 1000;

function token(user: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .sign(new TextEncoder().encode(SECRET));
}

type Direction = 'toClient' | 'toServer';

/**
 * A WebSocket relay between clients and a server that can replace frames on the way: what a
 * lossy network or a hostile middlebox does to a walk.
 */
async function relay(
  target: string,
  mangle: (frame: Buffer, direction: Direction) => Buffer,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  server.on('connection', (client) => {
    const upstream = new WebSocket(target);
    const early: Buffer[] = [];
    upstream.on('open', () => {
      for (const frame of early.splice(0)) upstream.send(frame);
    });
    client.on('message', (data) => {
      const frame = mangle(data as Buffer, 'toServer');
      if (upstream.readyState === WebSocket.OPEN) upstream.send(frame);
      else early.push(frame);
    });
    upstream.on('message', (data) => client.send(mangle(data as Buffer, 'toClient')));
    client.on('close', () => upstream.close());
    upstream.on('close', () => client.close());
    upstream.on('error', () => client.terminate());
  });
  const { port } = server.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => resolve());
      }),
  };
}

function typeOf(frame: Buffer): Message['type'] | undefined {
  try {
    return decodeMessage(new Uint8Array(frame), {
      ...DEFAULT_DECODE_LIMITS,
      maxFrameBytes: 64 * 1024 * 1024,
    }).type;
  } catch {
    return undefined;
  }
}

async function metric(server: TopGunServer, name: string): Promise<number | undefined> {
  return (await server.metrics.registry.getSingleMetric(name)?.get())?.values[0]?.value;
}

describe('a client facing a hostile network or a demanding server', () => {
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  const serve = async (options: ServerOptions) => {
    const started = await startServer(options);
    cleanups.push(() => started.server.close());
    return started;
  };
  const client = (url: string, options: Parameters<typeof testClient>[1] = {}): TopGunClient => {
    const created = testClient(url, { walkRetryMs: 100, ...options }).client;
    cleanups.push(() => created.close());
    return created;
  };
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it.each<[string, Direction]>([
    ['a malformed frame from the server in the middle of a walk', 'toClient'],
    ['its own walk message refused by the server as malformed', 'toServer'],
  ])('reports %s and recovers: the walk starts again and converges', async (_name, direction) => {
    const { server, url } = await serve({});
    const seeder = client(url);
    const seeded = seeder.getMap<{ n: number }>('walked');
    for (let n = 0; n < 50; n++) seeded.set(`k${n}`, { n });
    await seeder.flush();

    let mangled = 0;
    const proxy = await relay(url, (frame, way) => {
      if (way !== direction || mangled > 0 || typeOf(frame) !== 'sync') return frame;
      mangled++;
      return Buffer.from([0xc1]);
    });
    cleanups.push(() => proxy.close());
    const victim = client(proxy.url);
    const errors: string[] = [];
    victim.status.subscribe((state) => {
      if (state.lastError !== null) errors.push(state.lastError.message);
    });
    const map = victim.getMap<{ n: number }>('walked');
    await waitFor(() => map.size === 50, 10_000, 'the walk to recover');
    await waitFor(() => victim.status.getState().connection === 'online', 5_000, 'online');
    expect(mangled).toBe(1);
    expect(errors.some((error) => /malformed|frames must|MessagePack|0xc1/i.test(error))).toBe(
      true,
    );
    // The abandoned walk was ended by the client, not left to idle out on the server (60 s).
    await vi.waitFor(
      async () => expect(await metric(server, 'topgun_sync_sessions_active')).toBe(0),
      { timeout: 5_000, interval: 20 },
    );
  });

  it('walks again while walks make progress, so a replica differing everywhere converges within small messages', async () => {
    const { server, url } = await serve({ limits: { walkMessageBytes: 2048 } });
    const seeder = client(url);
    const shared = seeder.getMap<{ n: number }>('wide');
    for (let n = 0; n < 2_000; n++) shared.set(`server-${n}`, { n });
    await seeder.flush();

    const { client: offline, online } = testClient(url, { walkRetryMs: 100 });
    cleanups.push(() => offline.close());
    online.set(false);
    const local = offline.getMap<{ n: number }>('wide');
    await offline.ready;
    for (let n = 0; n < 600; n++) local.set(`offline-${n}`, { n });
    // The replica also holds some of the server's keys, under other (newer) values.
    for (let n = 0; n < 300; n++) local.set(`server-${n}`, { n: -n });
    online.set(true);
    await waitFor(() => local.size === 2_600, 30_000, 'every record on the client');
    await waitFor(() => shared.size === 2_600, 30_000, 'every record on the server side');
    const walks = await metric(server, 'topgun_sync_sessions_total');
    expect(walks).toBeGreaterThan(3);
    await waitFor(() => shared.get('server-299')?.n === -299, 10_000, 'the newer values');
    expect(local.get('server-300')?.n).toBe(300);
  });

  it('stamps a write again when the server refuses it as too old, and delivers it', async () => {
    // The server's clock is 8 days ahead: writes made offline "now" are past its write floor.
    const { url } = await serve({ now: () => Date.now() + 8 * DAY_MS });
    let clockShiftMs = 0;
    const { client: writer, online } = testClient(url, {
      walkRetryMs: 100,
      now: () => Date.now() + clockShiftMs,
    });
    cleanups.push(() => writer.close());
    online.set(false);
    const rejected: unknown[] = [];
    writer.onRejected((event) => rejected.push(event));
    const notes = writer.getMap<{ title: string }>('floor');
    await writer.ready;
    notes.set('old', { title: 'written long ago' });
    // A key written twice offline: first past the write floor, then 6 days later within it.
    // Only the first is refused; stamped again, it would replace the second.
    notes.set('twice', { title: 'first' });
    clockShiftMs = 6 * DAY_MS;
    notes.set('twice', { title: 'second' });
    online.set(true);
    await writer.flush();
    const reader = client(url);
    const seen = reader.getMap<{ title: string }>('floor');
    await waitFor(() => seen.get('old')?.title === 'written long ago', 10_000, 'the write');
    await waitFor(() => seen.has('twice'), 10_000, 'the key written twice');
    expect(seen.get('twice')?.title).toBe('second');
    expect(rejected).toEqual([]);
    expect(notes.get('old')?.title).toBe('written long ago');
    // The writer's next walk brings back what the server holds: still the newer write.
    online.set(false);
    online.set(true);
    await waitFor(() => writer.status.getState().connection === 'online', 10_000, 'a new walk');
    expect(notes.get('twice')?.title).toBe('second');
  });

  it('drops records it may no longer see, from changes and from walks', async () => {
    const { url } = await serve({
      auth: { secret: SECRET },
      permissions: [
        {
          map: 'shared',
          read: ({ user, value }) =>
            value === undefined ||
            (value as { owner?: string }).owner === user.id ||
            (value as { public?: boolean }).public === true,
          write: 'authenticated',
        },
      ],
    });
    const alice = client(url, { token: await token('alice') });
    let bobClockShiftMs = 0;
    const { client: bob, online: bobOnline } = testClient(url, {
      token: await token('bob'),
      walkRetryMs: 100,
      now: () => Date.now() + bobClockShiftMs,
    });
    cleanups.push(() => bob.close());
    const aliceNotes = alice.getMap<{ owner: string; public: boolean }>('shared');
    const bobNotes = bob.getMap<{ owner: string; public: boolean }>('shared');
    aliceNotes.set('n1', { owner: 'alice', public: true });
    aliceNotes.set('n2', { owner: 'alice', public: true });
    await alice.flush();
    await waitFor(() => bobNotes.size === 2, 10_000, 'bob to see both notes');

    // Live: n1 becomes private while Bob is connected.
    aliceNotes.set('n1', { owner: 'alice', public: false });
    await waitFor(() => !bobNotes.has('n1'), 10_000, 'the revoke of n1');

    // Offline: n2 becomes private while Bob is away; his next walk removes it.
    bobOnline.set(false);
    // Bob writes n3 meanwhile (his clock a minute slow, so that it is older than Alice's),
    // and Alice makes n3 a private note: his write loses to one he may not see. His walk
    // sends it and is told to forget n3, but an unacknowledged write stays until answered.
    bobClockShiftMs = -60_000;
    bobNotes.set('n3', { owner: 'bob', public: false });
    bobClockShiftMs = 0;
    aliceNotes.set('n2', { owner: 'alice', public: false });
    aliceNotes.set('n3', { owner: 'alice', public: false });
    await alice.flush();
    let droppedWhilePending = false;
    const unsubscribe = bobNotes.subscribe(() => {
      if (!bobNotes.has('n3') && bob.status.getState().pendingOps > 0) droppedWhilePending = true;
    });
    cleanups.push(unsubscribe);
    bobOnline.set(true);
    await waitFor(() => !bobNotes.has('n2'), 10_000, 'the walk to revoke n2');
    await waitFor(() => bob.status.getState().connection === 'online', 10_000, 'bob synced');
    expect(bob.status.getState().lastSyncedAt).not.toBeNull();
    await bob.flush();
    await waitFor(() => !bobNotes.has('n3'), 10_000, 'n3 dropped once its write was answered');
    expect(droppedWhilePending).toBe(false);
  });

  it('is refused at its first write, and says why, with a node id that belongs to another user', async () => {
    const { url } = await serve({ auth: { secret: SECRET } });
    const alice = client(url, { token: await token('alice'), nodeId: 'sharedNode' });
    await waitFor(() => alice.status.getState().connection === 'online', 10_000, 'alice');
    alice.getMap('notes').set('a1', { owner: 'alice', public: true });
    await alice.flush();
    const mallory = client(url, { token: await token('mallory'), nodeId: 'sharedNode' });
    await waitFor(() => mallory.status.getState().connection === 'online', 10_000, 'mallory');
    mallory.getMap('notes').set('m1', { owner: 'mallory', public: true });
    await waitFor(
      () => /belongs to another user/.test(mallory.status.getState().lastError?.message ?? ''),
      10_000,
      'the refusal',
    );
    expect(mallory.status.getState().connection).not.toBe('online');
  });
});
