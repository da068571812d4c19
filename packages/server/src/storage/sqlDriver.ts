/** Element types of {@link SqlArray} parameters. */
export type SqlArrayType = 'text' | 'bytea' | 'int8' | 'int2';

/**
 * A one-dimensional array parameter with its element type, so that each driver can send it
 * the cheapest way it can: `pg` in PostgreSQL's binary array format (no text escaping, bytea
 * as raw bytes), PGlite as a plain array.
 */
export class SqlArray<
  T extends string | Uint8Array | number | null = string | Uint8Array | number | null,
> {
  constructor(
    readonly type: SqlArrayType,
    readonly values: readonly T[],
  ) {}
}

/** The subset of a PostgreSQL client that `SqlStorage` needs; `pg` and PGlite both fit. */
export interface SqlExecutor {
  /** Runs one statement with `$n` parameters. */
  query<Row = Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
  ): Promise<{ rows: Row[] }>;
  /** Runs a script of several statements, without parameters. */
  exec(script: string): Promise<void>;
}

/** A connection (pool) that can also run transactions and be closed. */
export interface SqlDriver extends SqlExecutor {
  /** What the database is, for logs. */
  readonly description: string;
  /** Transactions that can usefully run at once. */
  readonly concurrency: number;
  /** Runs `work` in a transaction: COMMIT when it resolves, ROLLBACK when it throws. */
  transaction<T>(work: (executor: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
