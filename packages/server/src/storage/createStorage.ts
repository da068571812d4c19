import { createPgAnnouncementChannel } from './pgAnnouncementChannel.js';
import { createPgDriver } from './pgDriver.js';
import { createPgliteDriver } from './pgliteDriver.js';
import { SqlStorage } from './sqlStorage.js';
import type { Storage } from './storage.js';

/** Where to store data. */
export type StorageConfig =
  /** A real PostgreSQL server; any number of server processes may share its database. */
  | {
      readonly kind: 'postgres';
      readonly connectionString: string;
      readonly maxConnections?: number;
      /**
       * Where the process listens for other processes' commits, if not `connectionString`:
       * `LISTEN` needs a session of its own, so behind PgBouncer in transaction mode this
       * must reach PostgreSQL directly (or a session-mode pool).
       */
      readonly listenConnectionString?: string;
    }
  /** Embedded PGlite, persisted in `dataDir`, or in memory when it is omitted: one process. */
  | { readonly kind: 'pglite'; readonly dataDir?: string };

/** Opens the configured storage (not yet migrated). */
export async function createStorage(
  config: StorageConfig,
  onError?: (error: Error) => void,
): Promise<Storage> {
  if (config.kind === 'postgres') {
    return new SqlStorage(
      createPgDriver({
        connectionString: config.connectionString,
        ...(config.maxConnections === undefined ? {} : { maxConnections: config.maxConnections }),
        ...(onError === undefined ? {} : { onError }),
      }),
      {
        announcements: createPgAnnouncementChannel(
          config.listenConnectionString ?? config.connectionString,
        ),
      },
    );
  }
  return new SqlStorage(await createPgliteDriver(config.dataDir));
}
