import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SqlArray, type SqlDriver, type SqlExecutor } from './sqlDriver.js';

/**
 * Settings added to PGlite's own start parameters: a buffer pool of 16 MB rather than
 * PostgreSQL's 128 MB. The pool lives in PGlite's WebAssembly memory, which never shrinks, so
 * whatever it once held stays resident in the server's process.
 */
const START_SETTINGS = ['-c', 'shared_buffers=16MB'];

/** PGlite serializes plain arrays itself. */
function toPgliteParams(params: readonly unknown[] | undefined): unknown[] | undefined {
  return params?.map((param) => (param instanceof SqlArray ? [...param.values] : param));
}

const CREATE_IN_CHILD = `
const { PGlite } = require(process.argv[1]);
PGlite.create({ dataDir: process.argv[2] })
  .then((database) => database.close())
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
`;

/**
 * Creates a new database cluster at `dataDir` in a child process. Creating one grows PGlite's
 * WebAssembly memory to several hundred MB, and that memory cannot be given back: in the
 * server's process it would stay resident for the life of the server.
 */
async function createDataDirInChild(dataDir: string): Promise<void> {
  const pglite = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  try {
    await promisify(execFile)(process.execPath, ['-e', CREATE_IN_CHILD, pglite, dataDir], {
      maxBuffer: 1 << 20,
    });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`could not create a PGlite database at ${dataDir}: ${stderr || String(error)}`);
  }
}

/**
 * A driver over embedded PGlite: PostgreSQL compiled to WebAssembly, in-process.
 * @param dataDir Directory to persist to; omit for an in-memory database.
 */
export async function createPgliteDriver(dataDir?: string): Promise<SqlDriver> {
  // Loaded here rather than with the module: a server on PostgreSQL never needs it.
  const { PGlite } = await import('@electric-sql/pglite');
  if (dataDir !== undefined && !existsSync(join(dataDir, 'PG_VERSION'))) {
    await createDataDirInChild(dataDir);
  }
  const database = await PGlite.create({
    ...(dataDir === undefined ? {} : { dataDir }),
    startParams: [...PGlite.defaultStartParams, ...START_SETTINGS],
  });
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
