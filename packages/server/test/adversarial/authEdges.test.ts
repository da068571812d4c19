import {
  CLOSE_CODES,
  formatTimestamp,
  PROTOCOL_VERSION,
  SyncSession,
  toSyncWire,
} from '@topgun/core';
import { describe, expect, it } from 'vitest';
import { createStorage } from '../../src/storage/createStorage.js';
import { postgresAvailable } from '../postgres.js';
import { eventually, startServer } from '../serverHarness.js';
import { replicaOf, TestClient } from '../testClient.js';
import {
  signToken,
  TOKEN_SECRET,
  takeChangedEntries,
  tokenFor,
  usePostgresDatabase,
  usePostgresServer,
} from './adversarialKit.js';

const available = await postgresAvailable();

// Attacks on the edges of a session: subjects that are not user ids, sessions outliving
// their token, sockets that never authenticate, and node ids taken over by another user.
describe.runIf(available)('session edges', () => {
  const database = usePostgresDatabase();

  describe('token subjects', () => {
    const target = usePostgresServer({ database, auth: { secret: TOKEN_SECRET } });

    it.each([
      ['an array', ['alice']],
      ['an object', { id: 'alice' }],
      ['a number', 42],
      ['an empty string', ''],
      ['a string of 257 characters', 'a'.repeat(257)],
    ])('refuses a signed subject that is %s', async (_name, sub) => {
      const client = await TestClient.open(target.url);
      const answer = await client.hello(
        await signToken({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }),
      );
      expect(answer).toMatchObject({ type: 'auth_error', code: 'INVALID_TOKEN' });
      expect(await client.closed()).toBe(CLOSE_CODES.unauthorized);
    });
  });

  it('ends a listening session at token expiry; it receives no changes after', async () => {
    const { server, url } = await database.startServer({
      auth: { secret: TOKEN_SECRET },
    });
    const writer = await TestClient.connect(url, await tokenFor('writer'));
    const listener = await TestClient.open(url);
    // `exp` may be fractional: a session of one second, without waiting for a second boundary.
    const expiresAt = Date.now() + 1_000;
    const welcome = await listener.hello(
      await signToken({ sub: 'listener', exp: expiresAt / 1000 }),
    );
    expect(welcome.type).toBe('welcome');
    await listener.sync('feed', replicaOf());

    await writer.write('feed', [['before', 1]]);
    await eventually(() => takeChangedEntries(listener, 'feed').length > 0);

    expect(await listener.next('error', 3_000)).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(await listener.closed(1_000)).toBe(CLOSE_CODES.unauthorized);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    await writer.write('feed', [['after', 2]]);
    writer.send({ type: 'ping', time: 1 });
    await writer.next('pong');
    expect(takeChangedEntries(listener, 'feed')).toEqual([]);
    writer.close();
    await server.close();
  });

  it('closes a socket that says no hello within the handshake timeout; others stay', async () => {
    const { server, url } = await database.startServer({
      auth: { allowAnonymous: true },
      limits: { handshakeTimeoutMs: 200 },
    });
    const [silent, talker] = await Promise.all([TestClient.open(url), TestClient.connect(url)]);
    expect(await silent.next('error', 2_000)).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(await silent.closed(1_000)).toBe(CLOSE_CODES.handshakeTimeout);
    talker.send({ type: 'ping', time: 7 });
    expect(await talker.next('pong')).toMatchObject({ time: 7 });
    talker.close();
    await server.close();
  });

  it('refuses upgrades beyond the connection cap with HTTP 503, and admits again below it', async () => {
    const { server, url } = await database.startServer({
      auth: { allowAnonymous: true },
      limits: { maxConnections: 3 },
    });
    const admitted = await Promise.all([
      TestClient.connect(url),
      TestClient.open(url),
      TestClient.open(url),
    ]);
    await expect(TestClient.open(url)).rejects.toThrow('HTTP 503');
    admitted[1]!.close();
    await admitted[1]!.closed();
    let next: TestClient | undefined;
    await eventually(async () => {
      next = await TestClient.open(url).catch(() => undefined);
      return next !== undefined;
    });
    for (const client of [...admitted, next!]) client.close();
    await server.close();
  });

  it('caps the connections of one user, and reads nothing larger than a hello before hello', async () => {
    const { server, url } = await database.startServer({
      auth: { secret: TOKEN_SECRET },
      limits: { maxConnectionsPerUser: 2 },
    });
    const first = await TestClient.connect(url, await tokenFor('dave'));
    const second = await TestClient.connect(url, await tokenFor('dave'));
    const third = await TestClient.open(url);
    expect(await third.hello(await tokenFor('dave'))).toMatchObject({
      type: 'error',
      code: 'POLICY_VIOLATION',
    });
    expect(await third.closed()).toBe(CLOSE_CODES.policyViolation);
    // Another user is not counted against Dave.
    const erin = await TestClient.connect(url, await tokenFor('erin'));
    // Hellos in a burst, all sent before any is answered, do not all pass the check.
    const token = await tokenFor('frank');
    const burst = await Promise.all(Array.from({ length: 8 }, () => TestClient.open(url)));
    const answers = await Promise.all(burst.map((client) => client.hello(token)));
    expect(answers.filter((answer) => answer.type === 'welcome')).toHaveLength(2);
    for (const client of burst) client.close();

    const stranger = await TestClient.open(url);
    stranger.sendRaw(new Uint8Array(64 * 1024));
    expect(await stranger.closed()).toBe(CLOSE_CODES.protocolError);
    for (const client of [first, second, erin]) client.close();
    await server.close();
  });

  it('answers walks sent right behind hello once it has welcomed the client, and none when the handshake fails', async () => {
    const { server, url } = await database.startServer({ auth: { secret: TOKEN_SECRET } });
    const writer = await TestClient.connect(url, await tokenFor('gina'));
    await writer.write('behind', [['k', 'v']]);
    const client = await TestClient.open(url);
    const welcomed = client.hello(await tokenFor('gina'));
    const walked = client.sync('behind', replicaOf());
    const empty = client.sync('nothing-here', replicaOf());
    expect(await welcomed).toMatchObject({ type: 'welcome' });
    expect(await walked).toMatchObject({ converged: true, received: 1 });
    // An empty replica of an empty map: the server's sync_done answers the opening at once.
    expect(await empty).toMatchObject({ converged: true, messages: 1 });

    const refused = await TestClient.open(url);
    const answer = refused.hello('not-a-token');
    refused.send(toSyncWire('behind', 1, new SyncSession(replicaOf()).open()));
    expect(await answer).toMatchObject({ type: 'auth_error' });
    expect(await refused.closed()).toBe(CLOSE_CODES.unauthorized);
    expect([...refused.pending('sync'), ...refused.pending('sync_done')]).toEqual([]);
    for (const each of [writer, client]) each.close();
    await server.close();
  });

  it('counts frames sent behind hello, before its welcome, against the byte rate', async () => {
    const { server, url } = await database.startServer({
      auth: { secret: TOKEN_SECRET },
      limits: { bytesBurst: 2048, bytesPerSecond: 1 },
    });
    const replica = replicaOf();
    replica.set('k', 'v');
    const opening = toSyncWire('rated', 1, new SyncSession(replica).open());
    const client = await TestClient.open(url);
    const token = await tokenFor('hank');
    // Sent at once, so that the server reads them all before its welcome.
    client.send({ type: 'hello', protocol: PROTOCOL_VERSION, nodeId: client.nodeId, token });
    client.send(opening);
    client.send({ ...opening, session: 2 });
    expect(await client.next('error')).toMatchObject({
      code: 'MALFORMED',
      message: 'too many bytes per second',
    });
    expect(await client.next('welcome')).toBeDefined();
    client.close();
    await server.close();
  });

  /** A storage on the test database whose node id claims wait until `release()`. */
  async function heldClaims() {
    const storage = await createStorage({ kind: 'postgres', connectionString: database.url });
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const claims: string[] = [];
    // The storage's own methods, but a claim that waits for the test.
    const slowClaims: typeof storage = Object.create(storage);
    slowClaims.claimNodeId = async (nodeId, userId, now) => {
      claims.push(nodeId);
      await held;
      return storage.claimNodeId(nodeId, userId, now);
    };
    return { storage, slowClaims, claims, release: () => release() };
  }

  it('answers, when it shuts down, a batch that was waiting for its node id claim', async () => {
    const { storage, slowClaims, release } = await heldClaims();
    const { server, url } = await startServer({
      storage: slowClaims,
      auth: { allowAnonymous: true },
    });
    const client = await TestClient.open(url, `n${Math.random().toString(36).slice(2, 10)}`);
    expect(await client.hello()).toMatchObject({ type: 'welcome' });
    const written = client.write('closing', [['k', 'v']]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const closing = server.close();
    release();
    expect((await written).ack).toBeDefined();
    expect(await client.closed()).toBe(CLOSE_CODES.goingAway);
    await closing;
    expect((await storage.getRecords('closing', ['k']))[0]?.record.value).toBe('v');
    await storage.close();
  });

  it('starts a session before its node id claim is settled, and holds its writes until then', async () => {
    const { storage, slowClaims, claims, release } = await heldClaims();
    const { server, url } = await startServer({
      storage: slowClaims,
      auth: { secret: TOKEN_SECRET },
    });
    const nodeId = `n${Math.random().toString(36).slice(2, 10)}`;
    const client = await TestClient.open(url, nodeId);
    expect(await client.hello(await tokenFor('carol'))).toMatchObject({ type: 'welcome' });
    // A walk needs no claim: none is made for it.
    expect((await client.sync('held', replicaOf())).converged).toBe(true);
    expect(claims).toHaveLength(0);
    // A walk that brings records the server lacks writes them: it waits too. (Before the
    // ops: a walk also waits for the connection's ops to be answered.)
    const replica = replicaOf(nodeId);
    replica.set('w', 'walked');
    const walked = client.sync('walked', replica);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(claims).toHaveLength(1);
    expect(await server.storage.getRecords('walked', ['w'])).toEqual([]);
    const written = client.write('held', [['k', 'v']]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(client.pending('ack')).toEqual([]);
    expect(await server.storage.getRecords('held', ['k'])).toEqual([]);
    expect(await server.storage.getRecords('walked', ['w'])).toEqual([]);
    release();
    expect((await written).ack).toBeDefined();
    expect((await server.storage.getRecords('held', ['k']))[0]?.record.value).toBe('v');
    expect((await walked).converged).toBe(true);
    expect((await server.storage.getRecords('walked', ['w']))[0]?.record.value).toBe('walked');
    client.close();
    await server.close();
    await storage.close();
  });

  it("refuses another user the node id a user claimed, its tabs' ids and its prefixes", async () => {
    const { server, url } = await database.startServer({
      auth: { secret: TOKEN_SECRET },
    });
    const base = `n${Math.random().toString(36).slice(2, 10)}`;
    const claimed = `${base}-laptop`;
    const alice = await TestClient.connect(url, await tokenFor('alice'), claimed);
    expect((await alice.write('notes', [['mine', 'alice']])).ack).toBeDefined();
    // Alice's own tabs stamp `<id>-<tab>`: they are hers.
    const tab = await TestClient.connect(url, await tokenFor('alice'), `${claimed}-tab2`);
    tab.close();

    const attempts = [claimed, `${claimed}-tab2`, `${claimed}-tab9`, base];
    for (const nodeId of attempts) {
      const bob = await TestClient.open(url, nodeId);
      const answer = bob.hello(await tokenFor('bob'));
      // A write sent right behind the hello, as a client that expects to be admitted does.
      bob.send({
        type: 'ops',
        ops: [
          {
            id: 1,
            map: 'notes',
            entry: ['mine', formatTimestamp({ millis: Date.now(), counter: 0, nodeId }), 'bob'],
          },
        ],
      });
      // The session starts before the claim is settled; its writes wait for it.
      expect(await answer).toMatchObject({ type: 'welcome' });
      expect(await bob.next('auth_error')).toMatchObject({ code: 'NODE_ID_TAKEN' });
      expect(await bob.closed()).toBe(CLOSE_CODES.forbidden);
      expect(bob.pending('ack')).toEqual([]);
    }
    // Claimed for good: still refused once Alice is gone.
    alice.close();
    await alice.closed();
    const late = await TestClient.open(url, claimed);
    await late.hello(await tokenFor('bob'));
    // Reading needs no claim: refused at the first write.
    expect((await late.sync('notes', replicaOf())).converged).toBe(true);
    void late.write('notes', [['late', 'bob']]).catch(() => undefined);
    expect(await late.next('auth_error')).toMatchObject({ code: 'NODE_ID_TAKEN' });
    expect(await late.closed()).toBe(CLOSE_CODES.forbidden);

    const [stored] = await server.storage.getRecords('notes', ['mine']);
    expect(stored?.record.value).toBe('alice');
    await server.close();
  });
});
