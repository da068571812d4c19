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
