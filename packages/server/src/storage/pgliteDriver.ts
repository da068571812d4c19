import { PGlite } from '@electric-sql/pglite';
import { SqlArray, type SqlDriver, type SqlExecutor } from './sqlDriver.js';

/** PGlite serializes plain arrays itself. */
function toPgliteParams(params: readonly unknown[] | undefined): unknown[] | undefined {
  return params?.map((param) => (param instanceof SqlArray ? [...param.values] : param));
}

/**
 * A driver over embedded PGlite: PostgreSQL compiled to WebAssembly, in-process.
 * @param dataDir Directory to persist to; omit for an in-memory database.
 */
export async function createPgliteDriver(dataDir?: string): Promise<SqlDriver> {
  const database = await PGlite.create(dataDir === undefined ? {} : { dataDir });
  const run: SqlExecutor['query'] = (text, params) =>
    database.query(text, toPgliteParams(params)) as never;
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
          query: (text, params) => transaction.query(text, toPgliteParams(params)) as never,
          exec: async (script) => {
            await transaction.exec(script);
          },
        }),
      ),
    close: () => database.close(),
  };
}
