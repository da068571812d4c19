import { decodeMessage, type Message } from '@topgun/core';
import { createServer, type ServerOptions, type TopGunServer } from '@topgun/server';
import { afterAll, beforeAll } from 'vitest';
import WebSocket from 'ws';
import {
  type ClientOptions,
  createClient,
  manualOnlineManager,
  type TopGunClient,
} from '../src/index.js';

/** A sync server on a free port with an in-memory database. */
export async function startServer(
  options: ServerOptions = {},
): Promise<{ server: TopGunServer; url: string }> {
  const server = await createServer({
    port: 0,
    host: '127.0.0.1',
    logger: { level: process.env['TOPGUN_TEST_LOG'] ?? 'silent' },
    auth: { allowAnonymous: true },
    ...options,
  });
  const base = await server.listen();
  return { server, url: `${base.replace('http', 'ws')}/sync` };
}

/** A client for tests: memory storage, fast retries, a network switch. */
export function testClient(url: string | readonly string[], options: Partial<ClientOptions> = {}) {
  const online = manualOnlineManager(true);
  const client: TopGunClient = createClient({
    url,
    storage: 'memory',
    WebSocket: WebSocket as unknown as ClientOptions['WebSocket'] & object,
    online,
    minRetryMs: 10,
    maxRetryMs: 100,
    ...options,
  });
  return { client, online };
}

/** Polls until `condition` holds. */
export async function waitFor(
  condition: () => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Sorted visible entries of a map, for comparisons. */
export function contents(client: TopGunClient, map: string): Array<readonly [string, unknown]> {
  return [...client.getMap(map).entries()].sort(([a], [b]) => (a < b ? -1 : 1));
}

/**
 * A server for the tests of one file: started before them, closed after them with the
 * clients pushed onto `clients`. Read `url` and `server` inside tests.
 */
export function useServer(options: ServerOptions = {}) {
  const state = {
    url: '',
    server: undefined as unknown as TopGunServer,
    clients: [] as TopGunClient[],
  };
  beforeAll(async () => {
    ({ server: state.server, url: state.url } = await startServer(options));
  });
  afterAll(async () => {
    await Promise.all(state.clients.map((client) => client.close()));
    await state.server.close();
  });
  return state;
}

/** The `ws` WebSocket, telling `onMessage` every message the server sends it. */
export function spyingWebSocket(
  onMessage: (message: Message) => void,
): NonNullable<ClientOptions['WebSocket']> {
  return class extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[]) {
      super(address, protocols);
      this.on('message', (data) => onMessage(decodeMessage(new Uint8Array(data as Buffer))));
    }
  } as unknown as NonNullable<ClientOptions['WebSocket']>;
}
