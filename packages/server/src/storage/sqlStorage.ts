import {
  compareRecords,
  decodeValue,
  encodeValue,
  formatTimestamp,
  type LWWRecord,
  PARTITION_COUNT,
  parseTimestamp,
  partitionOf,
  type Timestamp,
  type Value,
} from '@topgun/core';
import { MIGRATIONS } from './migrations.js';
import { SqlArray, type SqlDriver, type SqlExecutor } from './sqlDriver.js';
import type { RecordWrite, Storage, StoredRecord } from './storage.js';

/** Partitions per query when loading a map: 17 queries, about 60 000 rows each at 1 000 000. */
const PARTITIONS_PER_PAGE = 16;
/** Rows per INSERT statement. */
const ROWS_PER_STATEMENT = 5_000;
/** Serializes schema migrations across processes sharing one database. */
const MIGRATION_LOCK = 7_274_827;

interface RecordRow {
  key: string;
  ts: string;
  value: Uint8Array | null;
  ttl_ms: string | number | bigint | null;
}

/** The storage over any PostgreSQL dialect driver: the same SQL for `pg` and PGlite. */
export class SqlStorage implements Storage {
  readonly description: string;
  readonly writeConcurrency: number;

  constructor(private readonly driver: SqlDriver) {
    this.description = driver.description;
    this.writeConcurrency = driver.concurrency;
  }

  async migrate(): Promise<void> {
    await this.driver.transaction(async (sql) => {
      await sql.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await sql.query(
        'CREATE TABLE IF NOT EXISTS topgun_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const { rows } = await sql.query<{ version: number }>(
        'SELECT version FROM topgun_migrations',
      );
      const applied = new Set(rows.map((row) => Number(row.version)));
      for (const migration of MIGRATIONS) {
        if (applied.has(migration.version)) continue;
        await sql.exec(migration.sql);
        await sql.query('INSERT INTO topgun_migrations (version) VALUES ($1)', [migration.version]);
      }
    });
  }

  async ping(): Promise<void> {
    await this.driver.query('SELECT 1');
  }

  async writeRecords(writes: readonly RecordWrite[]): Promise<boolean[]> {
    // One row per (map, key): ON CONFLICT cannot touch a row twice in one statement. The
    // other writes to that key in the batch are not stored.
    const unstored = new Set<RecordWrite>();
    const winners = new Map<string, Map<string, RecordWrite>>();
    for (const write of writes) {
      let byKey = winners.get(write.map);
      if (byKey === undefined) {
        byKey = new Map();
        winners.set(write.map, byKey);
      }
      const current = byKey.get(write.key);
      if (current === undefined || compareRecords(write.record, current.record) > 0) {
        byKey.set(write.key, write);
        if (current !== undefined) unstored.add(current);
      } else {
        unstored.add(write);
      }
    }
    // Rows in one global order: concurrent transactions then lock rows in the same order and
    // cannot deadlock each other.
    const rows: RecordWrite[] = [];
    for (const byKey of winners.values()) for (const write of byKey.values()) rows.push(write);
    rows.sort((a, b) =>
      a.map === b.map ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : a.map < b.map ? -1 : 1,
    );
    const insert = async (sql: SqlExecutor, chunk: readonly RecordWrite[]) => {
      // One short statement with array parameters, whatever the number of rows. It answers
      // with the rows it did not store (an older or equal timestamp was already there),
      // usually none, rather than with every row it stored.
      const { rows: skipped } = await sql.query<{ ordinal: number }>(
        `WITH input AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[], $6::smallint[])
             WITH ORDINALITY AS input (map, key, ts, value, ttl_ms, partition, ordinal)
         ), written AS (
           INSERT INTO topgun_records (map, key, ts, value, ttl_ms, partition)
           SELECT map, key, ts, value, ttl_ms, partition FROM input ORDER BY ordinal
           ON CONFLICT (map, partition, key) DO UPDATE
             SET ts = EXCLUDED.ts, value = EXCLUDED.value, ttl_ms = EXCLUDED.ttl_ms
             WHERE topgun_records.ts < EXCLUDED.ts
           RETURNING map, key
         )
         SELECT input.ordinal::integer AS ordinal FROM input
         WHERE NOT EXISTS (SELECT 1 FROM written WHERE written.map = input.map AND written.key = input.key)`,
        [
          new SqlArray(
            'text',
            chunk.map((row) => row.map),
          ),
          new SqlArray(
            'text',
            chunk.map((row) => row.key),
          ),
          new SqlArray(
            'text',
            chunk.map((row) => row.serializedTimestamp ?? formatTimestamp(row.record.timestamp)),
          ),
          new SqlArray(
            'bytea',
            chunk.map((row) => (row.record.value === null ? null : encodeValue(row.record.value))),
          ),
          new SqlArray(
            'int8',
            chunk.map((row) => row.record.ttlMs ?? null),
          ),
          new SqlArray(
            'int2',
            chunk.map((row) => partitionOf(row.key)),
          ),
        ],
      );
      for (const { ordinal } of skipped) unstored.add(chunk[ordinal - 1]!);
    };
    if (rows.length <= ROWS_PER_STATEMENT) {
      // A single statement commits atomically on its own: one round trip instead of three
      // (BEGIN, the statement, COMMIT).
      await insert(this.driver, rows);
    } else {
      await this.driver.transaction(async (sql) => {
        for (let start = 0; start < rows.length; start += ROWS_PER_STATEMENT)
          await insert(sql, rows.slice(start, start + ROWS_PER_STATEMENT));
      });
    }
    return writes.map((write) => !unstored.has(write));
  }

  async loadMap(map: string, onPage: (records: readonly StoredRecord[]) => void): Promise<void> {
    // By ranges of partitions, on the primary key (map, partition, key): no sort, and no dependence on
    // planner statistics (a keyset scan right after a bulk import may be planned as a sort
    // of the whole map for every page).
    for (let first = 0; first < PARTITION_COUNT; first += PARTITIONS_PER_PAGE) {
      const { rows } = await this.driver.query<RecordRow>(
        'SELECT key, ts, value, ttl_ms FROM topgun_records WHERE map = $1 AND partition >= $2 AND partition < $3',
        [map, first, first + PARTITIONS_PER_PAGE],
      );
      if (rows.length > 0) onPage(rows.map(toStoredRecord));
    }
  }

  async getRecords(map: string, keys: readonly string[]): Promise<StoredRecord[]> {
    if (keys.length === 0) return [];
    const { rows } = await this.driver.query<RecordRow>(
      `SELECT key, ts, value, ttl_ms FROM topgun_records
       WHERE map = $1 AND (partition, key) IN (SELECT * FROM unnest($2::smallint[], $3::text[]))`,
      [map, new SqlArray('int2', keys.map(partitionOf)), new SqlArray('text', keys)],
    );
    return rows.map(toStoredRecord);
  }

  async prune(horizon: Timestamp, now: number): Promise<number> {
    const cutoff = formatTimestamp(horizon);
    return this.driver.transaction(async (sql) => {
      const { rows } = await sql.query<{ map: string; deleted: string | number }>(
        `WITH deleted AS (
           DELETE FROM topgun_records
           WHERE (value IS NULL AND ts < $1)
              OR (ttl_ms IS NOT NULL
                  AND ('x' || lpad(substr(ts, 1, 12), 16, '0'))::bit(64)::bigint + ttl_ms < $2)
           RETURNING map)
         SELECT map, count(*) AS deleted FROM deleted GROUP BY map`,
        [cutoff, horizon.millis],
      );
      for (const row of rows) {
        await sql.query(
          `INSERT INTO topgun_prunes (map, horizon, pruned_at) VALUES ($1, $2, $3)
           ON CONFLICT (map) DO UPDATE SET horizon = EXCLUDED.horizon, pruned_at = EXCLUDED.pruned_at`,
          [row.map, cutoff, now],
        );
      }
      return rows.reduce((sum, row) => sum + Number(row.deleted), 0);
    });
  }

  async prunedAt(map: string): Promise<number | undefined> {
    const { rows } = await this.driver.query<{ pruned_at: string | number }>(
      'SELECT pruned_at FROM topgun_prunes WHERE map = $1',
      [map],
    );
    return rows[0] === undefined ? undefined : Number(rows[0].pruned_at);
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}

function toStoredRecord(row: RecordRow): StoredRecord {
  const timestamp = parseTimestamp(row.ts, `stored record ${row.key}`);
  const value: Value | null = row.value === null ? null : decodeValue(row.value);
  const record: LWWRecord<Value> =
    row.ttl_ms === null ? { value, timestamp } : { value, timestamp, ttlMs: Number(row.ttl_ms) };
  return { key: row.key, record };
}
