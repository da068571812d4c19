import { createServer, type ServerOptions, type TopGunServer } from '../src/index.js';

/** A server on a free port, quiet, with fast timers for tests. */
export async function startServer(
  options: ServerOptions,
): Promise<{ server: TopGunServer; url: string }> {
  const server = await createServer({
    port: 0,
    host: '127.0.0.1',
    logger: { level: process.env['TOPGUN_TEST_LOG'] ?? 'silent' },
    ...options,
  });
  const url = await server.listen();
  return { server, url };
}

/** Resolves after `condition` holds, polling; fails after `timeoutMs`. */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
