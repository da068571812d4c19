import { PGlite } from '@electric-sql/pglite';
import type { SqlDriver, SqlExecutor } from './sqlDriver.js';

/**
 * A driver over embedded PGlite: PostgreSQL compiled to WebAssembly, in-process.
 * @param dataDir Directory to persist to; omit for an in-memory database.
 */
export async function createPgliteDriver(dataDir?: string): Promise<SqlDriver> {
  const database = await PGlite.create(dataDir === undefined ? {} : { dataDir });
  const run: SqlExecutor['query'] = (text, params) =>
    database.query(text, params as unknown[]) as never;
  return {
    concurrency: 1,
    description: dataDir === undefined ? 'PGlite in memory' : `PGlite at ${dataDir}`,
    query: run,
    exec: async (script) => {
      await database.exec(script);
    },
    transaction: (work) =>
      database.transaction((transaction) =>
        work({
          query: (text, params) => transaction.query(text, params as unknown[]) as never,
          exec: async (script) => {
            await transaction.exec(script);
          },
        }),
      ),
    close: () => database.close(),
  };
}
