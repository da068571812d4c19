import { encodeBinaryArray } from './binaryArray.js';
import { loadPg } from './loadPg.js';
import { SqlArray, type SqlDriver, type SqlExecutor } from './sqlDriver.js';

/** `pg` parameters: {@link SqlArray}s in PostgreSQL's binary array format. */
function toPgParams(params: readonly unknown[] | undefined): unknown[] | undefined {
  return params?.map((param) => (param instanceof SqlArray ? encodeBinaryArray(param) : param));
}

/**
 * Every parameterized statement runs as a named prepared statement: each pooled connection
 * parses and plans it once instead of on every call. The SQL texts are the storage's own
 * constants, so the set of names stays small.
 */
const statementNames = new Map<string, string>();
function prepared(text: string, params: readonly unknown[] | undefined) {
  if (params === undefined) return text;
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `topgun_${statementNames.size + 1}`;
    statementNames.set(text, name);
  }
  return { name, text, values: toPgParams(params) };
}

/** Options of {@link createPgDriver}. */
export interface PgDriverOptions {
  /** A PostgreSQL connection string, e.g. `postgres://user@host:5432/db`. */
  readonly connectionString: string;
  /** Most pooled connections. Default: 10. */
  readonly maxConnections?: number;
  /** Called when an idle pooled connection fails (the database went away). */
  readonly onError?: (error: Error) => void;
}

/** A driver over a `pg` connection pool. */
export function createPgDriver(options: PgDriverOptions): SqlDriver {
  const maxConnections = options.maxConnections ?? 10;
  const pool = new (loadPg().Pool)({
    connectionString: options.connectionString,
    max: maxConnections,
    connectionTimeoutMillis: 5_000,
    // Statements fail instead of hanging when the database stops answering.
    query_timeout: 30_000,
  });
  // Without a listener, an idle client's error (database restart) would crash the process.
  pool.on('error', (error) => options.onError?.(error));
  const url = new URL(options.connectionString);
  return {
    // Several group commits in flight: one commits while the next ones run their statements,
    // and a backlog after a pause drains in parallel. Two connections stay free for reads
    // (loading maps, reading records back).
    concurrency: Math.max(1, Math.min(8, maxConnections - 2)),
    description: `PostgreSQL at ${url.hostname}:${url.port || 5432}${url.pathname}`,
    query: (text, params) => pool.query(prepared(text, params) as never) as never,
    exec: async (script) => {
      await pool.query(script);
    },
    async transaction(work) {
      const client = await pool.connect();
      let broken: Error | undefined;
      // A connection lost while checked out emits 'error' on the client; without a listener
      // that would crash the process. The failing query rejects on its own.
      const onClientError = (error: Error) => {
        broken = error;
        options.onError?.(error);
      };
      client.on('error', onClientError);
      try {
        await client.query('BEGIN');
        const executor: SqlExecutor = {
          query: (text, params) => client.query(prepared(text, params) as never) as never,
          exec: async (script) => {
            await client.query(script);
          },
        };
        const result = await work(executor);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          broken = rollbackError as Error;
        }
        throw error;
      } finally {
        client.off('error', onClientError);
        // A connection that failed or could not roll back is destroyed rather than reused.
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}
