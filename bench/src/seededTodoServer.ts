/**
 * A real server process over a PostgreSQL database of its own holding `records` todos in map
 * `todos`, for the browser bench to sync from.
 */
import { createServer as createNetServer } from 'node:net';
import { createClient } from '@topgun/client';
import type { Value } from '@topgun/core';
import {
  createDatabase,
  dropDatabase,
  SERVER_CLI,
  seedDatabase,
  startServer,
  stopServer,
} from './serverProcesses.js';
import { paddedKeyOf, todoOf } from './workload.js';

/** Servers started by this process, naming their databases. */
let servers = 0;

/** Records per storage transaction while seeding. */

/** A running server holding the todos; `stop` ends it and drops its database. */
export interface SeededTodoServer {
  /** The server's WebSocket URL (`ws://127.0.0.1:<port>/sync`). */
  readonly url: string;
  /** How long writing the records into PostgreSQL took. */
  readonly seedMs: number;
  /** How long a Node client (memory storage) took to sync them all, which loads the server's map. */
  readonly warmUpMs: number;
  stop(): Promise<void>;
}

/**
 * Creates a database, writes `records` todos straight through the server's storage API (the
 * fastest honest way in: the same rows the server would have stored), starts this tree's
 * server process on it, and syncs the map once from a Node client so the server holds the map
 * in memory, as a server that has been running would. Throws (after cleaning up) when the
 * warm-up client does not see every record within `timeoutMs`. `environment` is added to the
 * server process's (e.g. `TOPGUN_STATIC_DIR` to serve an app); `todoValue` gives todo `i`
 * (default: the bench's `todoOf`); `cli` is the server to start (default: this tree's).
 */
export async function startSeededTodoServer(
  records: number,
  timeoutMs: number,
  environment: Record<string, string> = {},
  todoValue: (i: number) => Record<string, Value> = (i) => ({ ...todoOf(i) }),
  cli = SERVER_CLI,
): Promise<SeededTodoServer> {
  // A database of its own: a bench may run several servers side by side.
  const databaseUrl = await createDatabase(`_browser${++servers}`);
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  const stop = async () => {
    if (server !== undefined) await stopServer(server);
    await dropDatabase(databaseUrl);
  };
  try {
    const seedMs = await seedDatabase(databaseUrl, 'todos', records, (i) => [
      paddedKeyOf(i),
      todoValue(i),
    ]);

    const port = await freePort();
    server = await startServer(databaseUrl, port, cli, environment);
    const url = `ws://127.0.0.1:${port}/sync`;
    const warmUpStart = performance.now();
    await syncAllOnce(url, records, timeoutMs);
    const warmUpMs = performance.now() - warmUpStart;
    return { url, seedMs, warmUpMs, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Syncs map `todos` into a throwaway Node client until it holds `records` records. */
async function syncAllOnce(url: string, records: number, timeoutMs: number): Promise<void> {
  const client = createClient({
    url,
    storage: 'memory',
    multiTab: false,
    cacheQueryResults: false,
  });
  const todos = client.getMap('todos');
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `the warm-up client had ${todos.size} of ${records} records after ${timeoutMs / 1000} s`,
            ),
          ),
        timeoutMs,
      );
      const check = () => {
        if (todos.size < records) return;
        clearTimeout(timer);
        unsubscribe();
        resolve();
      };
      const unsubscribe = todos.subscribe(check);
      check();
    });
  } finally {
    await client.close();
  }
}

/** A TCP port nothing listens on right now. */
async function freePort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
