/** The `topgun-server` command, after `cli.ts` has tuned the VM. */
import { optionsFromEnvironment } from './config.js';
import { createServer } from './createServer.js';
import type { ServerOptions } from './options.js';
import { ServerConfigurationError } from './serverConfigurationError.js';

export async function serve(): Promise<void> {
  let options: ServerOptions;
  try {
    options = optionsFromEnvironment(process.env, { terminal: process.stdout.isTTY === true });
  } catch (error) {
    console.error(`topgun-server: ${(error as Error).message}`);
    process.exit(1);
  }
  let server: Awaited<ReturnType<typeof createServer>>;
  try {
    server = await createServer(options);
  } catch (error) {
    // A setting it cannot start with (a key no algorithm fits, say): one line, as above.
    if (!(error instanceof ServerConfigurationError)) throw error;
    console.error(`topgun-server: ${error.message}`);
    process.exit(1);
  }
  const url = await server.listen();
  const anonymous = options.auth?.allowAnonymous === true;
  const auth = !anonymous
    ? 'JWT required'
    : options.host === undefined
      ? 'anonymous clients allowed, so listening on this machine only (set HOST=0.0.0.0 to open it to the network)'
      : 'anonymous clients allowed';
  server.app.log.info(
    `TopGun server listening on ${url.replace('0.0.0.0', 'localhost')} (WebSocket /sync), storage: ${server.storage.description}, ${auth}`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.app.log.info(`${signal}: shutting down`);
    server.close().then(
      () => process.exit(0),
      (error) => {
        server.app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
