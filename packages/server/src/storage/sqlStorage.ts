import {
  compareRecords,
  decodeValue,
  encodeValue,
  formatTimestamp,
  type LWWRecord,
  mergeRecords,
  PARTITION_COUNT,
  parseTimestamp,
  partitionOf,
  type Timestamp,
  type Value,
} from '@topgun/core';
import { ANNOUNCEMENT_CHANNEL } from './announcementPayload.js';
import { MIGRATIONS } from './migrations.js';
import { SqlArray, type SqlDriver, type SqlExecutor } from './sqlDriver.js';
import {
  type AnnouncementChannel,
  isDataError,
  type PruneMark,
  type RecordWrite,
  type Storage,
  type StoredRecord,
  type WriteOutcome,
} from './storage.js';
import { columnsOf, type RecordColumns, recordOf, recordVersion } from './storedFields.js';

/** Partitions per query when loading a map: 17 queries, about 60 000 rows each at 1 000 000. */
const PARTITIONS_PER_PAGE = 16;
/** A map of at most this many records is loaded with one query. */
const SMALL_MAP_ROWS = 1_000;
/** Rows per INSERT statement. */
const ROWS_PER_STATEMENT = 5_000;
/** Serializes schema migrations across processes sharing one database. */
const MIGRATION_LOCK = 7_274_827;
/** Serializes claims of related node ids (one lock per first `-` segment). */
const NODE_CLAIM_LOCK = 7_274_828;

const STORED: WriteOutcome = Object.freeze({ stored: true });
const NOT_STORED: WriteOutcome = Object.freeze({ stored: false });

// Last-Write-Wins in SQL between records without field writes, exactly as `compareRecords`:
// the later timestamp (text order of the serialized form is timestamp order), then on a tie a
// tombstone, then the greater value by its bytes (bytea order is byte order, a proper prefix
// first), then the greater TTL. A stored record with field writes is never replaced here: the
// write is not stored, and `writeRecords` merges it under a row lock (`mergeUnderLock`).
const INCOMING_WINS = `r.fields IS NULL AND (r.ts < EXCLUDED.ts OR (r.ts = EXCLUDED.ts AND CASE
    WHEN EXCLUDED.value IS NULL THEN r.value IS NOT NULL
      OR coalesce(EXCLUDED.ttl_ms, -1) > coalesce(r.ttl_ms, -1)
    WHEN r.value IS NULL THEN false
    WHEN EXCLUDED.value <> r.value THEN EXCLUDED.value > r.value
    ELSE coalesce(EXCLUDED.ttl_ms, -1) > coalesce(r.ttl_ms, -1) END))`;

const INPUT = `input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[], $6::smallint[])
    WITH ORDINALITY AS input (map, key, ts, value, ttl_ms, partition, ordinal))`;

/** Bytes of one announced record at most: a larger one is announced by key, and read back. */
const ANNOUNCED_RECORD_BYTES = 3_800;

/**
 * Announces the rows of CTE `written` on the channel, in notifications under PostgreSQL's
 * 8,000-byte limit: records are packed in order into chunks of about
 * {@link ANNOUNCED_RECORD_BYTES} (a chunk ends past that, so it holds at most twice as much).
 * `NOTIFY` inside the statement is delivered only after COMMIT, in commit order.
 */
function announcing(origin: number, sentAt: number): string {
  return `, announced_items AS (
    SELECT row_number() OVER () AS n,
      CASE WHEN octet_length(full_item) <= ${ANNOUNCED_RECORD_BYTES} THEN full_item
        ELSE json_build_array(map, key, latest)::text END AS item
    FROM (SELECT map, key, greatest(ts, fields_latest) AS latest, json_build_array(map, key, ts,
        translate(encode(value, 'base64'), E'\\n', ''), ttl_ms,
        translate(encode(prior, 'base64'), E'\\n', ''),
        translate(encode(fields, 'base64'), E'\\n', ''))::text AS full_item FROM written) w
  ), announced_chunks AS (
    SELECT item, n,
      sum(octet_length(item) + 1) OVER (ORDER BY n) / ${ANNOUNCED_RECORD_BYTES} AS chunk
    FROM announced_items
  ), announced AS (
    SELECT pg_notify('${ANNOUNCEMENT_CHANNEL}',
      '{"o":"' || $${origin}::text || '","t":' || $${sentAt}::bigint || ',"r":['
        || string_agg(item, ',' ORDER BY n) || ']}')
    FROM announced_chunks GROUP BY chunk
  )`;
}

/** The columns of `written` that {@link announcing} reads. */
const ANNOUNCED_COLUMNS = 'r.ts, r.value, r.ttl_ms, r.prior, r.fields, r.fields_latest';

/** Makes sure the (otherwise unreferenced) `announced` CTE runs; adds no row. */
const RUN_ANNOUNCED = `UNION ALL
  SELECT 0 AS ordinal FROM (SELECT count(*) AS sent FROM announced) a WHERE a.sent < 0`;

/**
 * One group of writes, Last-Write-Wins only: answers with the rows it did not store, and
 * announces the ones it stored when `announce`.
 */
function plainWrite(announce: boolean): string {
  return `WITH ${INPUT}, written AS (
    INSERT INTO topgun_records AS r (map, key, ts, value, ttl_ms, partition)
    SELECT map, key, ts, value, ttl_ms, partition FROM input ORDER BY ordinal
    ON CONFLICT (map, partition, key) DO UPDATE
      SET ts = EXCLUDED.ts, value = EXCLUDED.value, ttl_ms = EXCLUDED.ttl_ms, prior = NULL
      WHERE ${INCOMING_WINS}
    RETURNING r.map, r.key${announce ? `, ${ANNOUNCED_COLUMNS}` : ''}
  )${announce ? announcing(7, 8) : ''}
  SELECT input.ordinal::integer AS ordinal FROM input
  WHERE NOT EXISTS (SELECT 1 FROM written WHERE written.map = input.map AND written.key = input.key)
  ${announce ? RUN_ANNOUNCED : ''}`;
}

/**
 * Locks the rows of some keys, in the order given (the order every writer uses, so none
 * deadlock): a row that exists is locked as it is (ON CONFLICT locks the row even when its
 * update's WHERE is false), an absent one is inserted as a placeholder (ts '', no value), which
 * holds its key. Answers with the placeholders. By the primary key, row by row: a join of
 * the input with the table may be planned as a scan of the whole table.
 */
const LOCK_ROWS = `INSERT INTO topgun_records AS r (map, key, ts, partition)
  SELECT map, key, '', partition
  FROM unnest($1::text[], $2::smallint[], $3::text[]) WITH ORDINALITY AS i (map, partition, key, ordinal)
  ORDER BY ordinal
  ON CONFLICT (map, partition, key) DO UPDATE SET ts = EXCLUDED.ts WHERE false
  RETURNING r.map, r.key`;

/** Reads the rows of some keys (locked by {@link LOCK_ROWS}), one primary-key lookup each. */
const READ_ROWS = `SELECT r.map, r.key, r.ts, r.value, r.ttl_ms, r.prior, r.fields
  FROM unnest($1::text[], $2::smallint[], $3::text[]) AS i (map, partition, key)
  CROSS JOIN LATERAL (
    SELECT * FROM topgun_records t
    WHERE t.map = i.map AND t.partition = i.partition AND t.key = i.key
  ) r`;

/** Deletes the placeholders of keys no write was stored to. */
const DELETE_ROWS = `DELETE FROM topgun_records r
  USING unnest($1::text[], $2::smallint[], $3::text[]) AS i (map, partition, key)
  WHERE r.map = i.map AND r.partition = i.partition AND r.key = i.key`;

/** Replaces rows this transaction holds by their merged records; announces them. */
function lockedWrite(announce: boolean): string {
  return `WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[],
      $6::smallint[], $7::bytea[], $8::bytea[], $9::text[])
      WITH ORDINALITY AS input (map, key, ts, value, ttl_ms, partition, prior, fields,
        fields_latest, ordinal)
  ), written AS (
    INSERT INTO topgun_records AS r (map, key, ts, value, ttl_ms, partition, prior, fields, fields_latest)
    SELECT map, key, ts, value, ttl_ms, partition, prior, fields, fields_latest
    FROM input ORDER BY ordinal
    ON CONFLICT (map, partition, key) DO UPDATE
      SET ts = EXCLUDED.ts, value = EXCLUDED.value, ttl_ms = EXCLUDED.ttl_ms,
        prior = EXCLUDED.prior, fields = EXCLUDED.fields, fields_latest = EXCLUDED.fields_latest
    RETURNING r.map, r.key${announce ? `, ${ANNOUNCED_COLUMNS}` : ''}
  )${announce ? announcing(10, 11) : ''}
  SELECT count(*)::integer AS written FROM written
  ${announce ? RUN_ANNOUNCED.replace('0 AS ordinal', '0') : ''}`;
}

/**
 * The most field writes one record may hold, and the most bytes its whole write's value and
 * field writes may take stored: an update that would take a record past either is refused,
 * so that no client can grow a record (which every later update rewrites, and every process
 * reads back) without bound. A record must also fit a frame to reach clients.
 */
export const MAX_FIELD_WRITES = 1_024;
export const MAX_RECORD_BYTES = 1024 * 1024;

/** The writes of one key that are merged under its row lock, in the order they were made. */
interface LockedKey {
  readonly map: string;
  readonly key: string;
  readonly writes: RecordWrite[];
}

interface RecordRow {
  key: string;
  ts: string;
  value: Uint8Array | null;
  ttl_ms: string | number | bigint | null;
  prior: Uint8Array | null;
  fields: Uint8Array | null;
}

/** The storage over any PostgreSQL dialect driver: the same SQL for `pg` and PGlite. */
export class SqlStorage implements Storage {
  readonly description: string;
  readonly writeConcurrency: number;

  /** Set when writes announce what they store to other processes (PostgreSQL). */
  readonly announcements: AnnouncementChannel | undefined;
  private readonly plainWrite: string;
  private readonly lockedWrite: string;
  private readonly now: () => number;

  /**
   * @param options.announcements The channel writes announce on (omit for a database only
   *   this process uses, such as embedded PGlite).
   * @param options.now The clock announcements are stamped with. Default: `Date.now`.
   */
  constructor(
    private readonly driver: SqlDriver,
    options: { readonly announcements?: AnnouncementChannel; readonly now?: () => number } = {},
  ) {
    this.description = driver.description;
    this.writeConcurrency = driver.concurrency;
    this.announcements = options.announcements;
    this.now = options.now ?? Date.now;
    const announce = this.announcements !== undefined;
    this.plainWrite = plainWrite(announce);
    this.lockedWrite = lockedWrite(announce);
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

  async writeRecords(writes: readonly RecordWrite[]): Promise<WriteOutcome[]> {
    // Whole writes go in one statement, Last-Write-Wins decided by SQL: one row per (map,
    // key), as ON CONFLICT cannot touch a row twice in one statement; the other whole writes
    // to that key in the batch lose to it and are not stored. Keys with field writes, or
    // with a write under a condition or keeping a prior value, are merged under row locks
    // instead, every write in order.
    const outcomes = new Map<RecordWrite, WriteOutcome>();
    const winners = new Map<string, Map<string, RecordWrite>>();
    const locked = new Map<string, Map<string, LockedKey>>();
    const lock = (write: RecordWrite) => {
      let byKey = locked.get(write.map);
      if (byKey === undefined) {
        byKey = new Map();
        locked.set(write.map, byKey);
      }
      const entry = byKey.get(write.key);
      if (entry === undefined)
        byKey.set(write.key, { map: write.map, key: write.key, writes: [write] });
      else entry.writes.push(write);
    };
    for (const write of writes) if (mergedUnderLock(write)) lock(write);
    for (const write of writes) {
      if (mergedUnderLock(write)) continue;
      const lockedKey = locked.get(write.map)?.get(write.key);
      if (lockedKey !== undefined) {
        lockedKey.writes.push(write);
        continue;
      }
      let byKey = winners.get(write.map);
      if (byKey === undefined) {
        byKey = new Map();
        winners.set(write.map, byKey);
      }
      const current = byKey.get(write.key);
      if (current === undefined || compareRecords(write.record, current.record) > 0) {
        byKey.set(write.key, write);
        if (current !== undefined) outcomes.set(current, NOT_STORED);
      } else {
        outcomes.set(write, NOT_STORED);
      }
    }
    const rows: RecordWrite[] = [];
    for (const byKey of winners.values()) for (const write of byKey.values()) rows.push(write);
    sortByKey(rows);
    await this.writeIsolating(rows, outcomes);
    // A whole write SQL did not store lost, or met a stored record with field writes: which of
    // the two, only a merge under the row's lock can tell.
    for (const row of rows) if (outcomes.get(row) === NOT_STORED) lock(row);
    if (locked.size > 0) {
      const keys: LockedKey[] = [];
      for (const byKey of locked.values()) for (const entry of byKey.values()) keys.push(entry);
      sortByKey(keys);
      // The writes of one key in the order they were made (field writes came first above).
      const order = new Map(writes.map((write, index) => [write, index]));
      for (const entry of keys) entry.writes.sort((a, b) => order.get(a)! - order.get(b)!);
      await this.mergeIsolating(keys, outcomes);
    }
    return writes.map((write) => outcomes.get(write) ?? STORED);
  }

  /**
   * Merges keys under row locks, a transaction per chunk; a key the database refuses for its
   * data, then each of its writes, is isolated (`isolatingDataErrors`).
   */
  private async mergeIsolating(
    keys: readonly LockedKey[],
    outcomes: Map<RecordWrite, WriteOutcome>,
  ): Promise<void> {
    for (let start = 0; start < keys.length; start += ROWS_PER_STATEMENT) {
      await isolatingDataErrors(
        keys.slice(start, start + ROWS_PER_STATEMENT),
        (chunk) => this.mergeUnderLock(chunk, outcomes),
        (entry, refusal) => {
          for (const write of entry.writes) outcomes.set(write, refusal);
        },
        (entry) => entry.writes.map((write) => ({ ...entry, writes: [write] })),
      );
    }
  }

  /**
   * Merges the writes of some keys into their stored records in one transaction: locks the
   * rows in key order (inserting placeholders for absent keys, so that the lock covers them
   * too), merges in memory exactly as replicas do (`mergeRecords`), each write only if its
   * condition holds against the record as merged so far, and writes back what changed.
   */
  private async mergeUnderLock(
    keys: readonly LockedKey[],
    outcomes: Map<RecordWrite, WriteOutcome>,
  ): Promise<void> {
    const settled = new Map<RecordWrite, WriteOutcome>();
    await this.driver.transaction(async (sql) => {
      const byKey = <Row extends { map: string; key: string }>(rows: readonly Row[]) =>
        new Map<string, Row>(rows.map((row) => [`${row.map}\u0000${row.key}`, row]));
      const keyParams = (list: readonly LockedKey[]) => [
        new SqlArray(
          'text',
          list.map((entry) => entry.map),
        ),
        new SqlArray(
          'int2',
          list.map((entry) => partitionOf(entry.key)),
        ),
        new SqlArray(
          'text',
          list.map((entry) => entry.key),
        ),
      ];
      const { rows: inserted } = await sql.query<{ map: string; key: string }>(
        LOCK_ROWS,
        keyParams(keys),
      );
      const placeholders = byKey(inserted);
      const { rows: read } = await sql.query<RecordRow & { map: string }>(
        READ_ROWS,
        keyParams(keys),
      );
      const rows = byKey(read);
      const changed: Array<{
        entry: LockedKey;
        record: LWWRecord<Value>;
        prior: Value | undefined;
        columns: RecordColumns;
      }> = [];
      const unused: LockedKey[] = [];
      for (const entry of keys) {
        const id = `${entry.map}\u0000${entry.key}`;
        const row = placeholders.has(id) ? undefined : rows.get(id);
        const before = row === undefined ? undefined : toStoredRecord(row);
        let record = before?.record;
        let prior = before?.prior;
        let columns: RecordColumns | undefined;
        const stored: RecordWrite[] = [];
        for (const write of entry.writes) {
          // The record's version is computed only for a write with a condition: with field
          // writes it is their encoding.
          if (
            write.expected !== undefined &&
            write.expected !== (record === undefined ? null : recordVersion(record))
          ) {
            settled.set(write, NOT_STORED);
            continue;
          }
          const merged = record === undefined ? write.record : mergeRecords(record, write.record);
          if (merged === record) {
            settled.set(write, NOT_STORED);
            continue;
          }
          const mergedColumns = columnsOf(merged);
          const refusal = oversized(merged, mergedColumns);
          if (refusal !== undefined) {
            settled.set(write, { stored: false, refused: refusal });
            continue;
          }
          // A tombstone may keep the value it deleted; one that still deletes keeps its own.
          if (merged.value !== null) prior = undefined;
          else if (record !== undefined && record.value !== null)
            prior = write.keepPrior === true ? record.value : undefined;
          record = merged;
          columns = mergedColumns;
          stored.push(write);
        }
        if (stored.length === 0) {
          if (placeholders.has(id)) unused.push(entry);
          continue;
        }
        // The record stored, unless it is the written record itself.
        for (const write of stored) {
          const outcome: WriteOutcome =
            record === write.record ? { stored: true } : { stored: true, record: record! };
          settled.set(write, prior === undefined ? outcome : { ...outcome, prior });
        }
        changed.push({ entry, record: record!, prior, columns: columns! });
      }
      if (unused.length > 0) await sql.query(DELETE_ROWS, keyParams(unused));
      if (changed.length === 0) return;
      const params: unknown[] = [
        new SqlArray(
          'text',
          changed.map(({ entry }) => entry.map),
        ),
        new SqlArray(
          'text',
          changed.map(({ entry }) => entry.key),
        ),
        new SqlArray(
          'text',
          changed.map(({ columns }) => columns.ts),
        ),
        new SqlArray(
          'bytea',
          changed.map(({ columns }) => columns.value),
        ),
        new SqlArray(
          'int8',
          changed.map(({ columns }) => columns.ttlMs),
        ),
        new SqlArray(
          'int2',
          changed.map(({ entry }) => partitionOf(entry.key)),
        ),
        new SqlArray(
          'bytea',
          changed.map(({ prior }) => (prior === undefined ? null : encodeValue(prior))),
        ),
        new SqlArray(
          'bytea',
          changed.map(({ columns }) => columns.fields),
        ),
        new SqlArray(
          'text',
          changed.map(({ columns }) => columns.fieldsLatest),
        ),
      ];
      if (this.announcements !== undefined) params.push(this.announcements.origin, this.now());
      await sql.query(this.lockedWrite, params);
    });
    for (const [write, outcome] of settled) outcomes.set(write, outcome);
  }

  /** Writes rows; a row the database refuses for its data is isolated (`isolatingDataErrors`). */
  private async writeIsolating(
    rows: readonly RecordWrite[],
    outcomes: Map<RecordWrite, WriteOutcome>,
  ): Promise<void> {
    await isolatingDataErrors(
      rows,
      async (part) => {
        // What an attempt records is kept only once it committed.
        const answered = new Map<RecordWrite, WriteOutcome>();
        if (part.length <= ROWS_PER_STATEMENT) {
          // A single statement commits atomically on its own: one round trip instead of three
          // (BEGIN, the statement, COMMIT).
          await this.insert(this.driver, part, answered);
        } else {
          await this.driver.transaction(async (sql) => {
            for (let start = 0; start < part.length; start += ROWS_PER_STATEMENT)
              await this.insert(sql, part.slice(start, start + ROWS_PER_STATEMENT), answered);
          });
        }
        for (const [row, outcome] of answered) outcomes.set(row, outcome);
      },
      (row, refusal) => outcomes.set(row, refusal),
    );
  }

  private async insert(
    sql: SqlExecutor,
    chunk: readonly RecordWrite[],
    outcomes: Map<RecordWrite, WriteOutcome>,
  ): Promise<void> {
    const params: unknown[] = [
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
    ];
    if (this.announcements !== undefined) params.push(this.announcements.origin, this.now());
    // The statement answers with the rows not stored (usually none), never with every row.
    const { rows } = await sql.query<{ ordinal: number }>(this.plainWrite, params);
    for (const { ordinal } of rows) outcomes.set(chunk[ordinal - 1]!, NOT_STORED);
  }

  async loadMap(map: string, onPage: (records: readonly StoredRecord[]) => void): Promise<void> {
    // By ranges of partitions, on the primary key (map, partition, key): no sort, and no dependence on
    // planner statistics (a keyset scan right after a bulk import may be planned as a sort
    // of the whole map for every page).
    // A small map (or one nobody wrote, or a name made up by a client) costs one query, not
    // 17: most maps of an app with a map per user or per document are small.
    const { rows: head } = await this.driver.query<RecordRow>(
      `SELECT key, ts, value, ttl_ms, prior, fields FROM topgun_records WHERE map = $1 LIMIT ${SMALL_MAP_ROWS + 1}`,
      [map],
    );
    if (head.length <= SMALL_MAP_ROWS) {
      if (head.length > 0) onPage(head.map(toStoredRecord));
      return;
    }
    for (let first = 0; first < PARTITION_COUNT; first += PARTITIONS_PER_PAGE) {
      const { rows } = await this.driver.query<RecordRow>(
        'SELECT key, ts, value, ttl_ms, prior, fields FROM topgun_records WHERE map = $1 AND partition >= $2 AND partition < $3',
        [map, first, first + PARTITIONS_PER_PAGE],
      );
      if (rows.length > 0) onPage(rows.map(toStoredRecord));
    }
  }

  async getRecords(map: string, keys: readonly string[]): Promise<StoredRecord[]> {
    if (keys.length === 0) return [];
    const { rows } = await this.driver.query<RecordRow>(
      `SELECT key, ts, value, ttl_ms, prior, fields FROM topgun_records
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
           WHERE (value IS NULL AND greatest(ts, fields_latest) < $1)
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

  async pruneMark(map: string): Promise<PruneMark | undefined> {
    const { rows } = await this.driver.query<{ horizon: string; pruned_at: string | number }>(
      'SELECT horizon, pruned_at FROM topgun_prunes WHERE map = $1',
      [map],
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      horizonMillis: parseTimestamp(row.horizon, 'stored prune horizon').millis,
      prunedAt: Number(row.pruned_at),
    };
  }

  async claimNodeId(nodeId: string, userId: string | null, now: number): Promise<boolean> {
    // The id and every id it extends (`a-b-c` extends `a-b` and `a`), and every id extending
    // it: a node's tabs stamp `<id>-<tab>`, so these share timestamps' node ids.
    const prefixes = nodeId
      .split('-')
      .map((_, index, parts) => parts.slice(0, index + 1).join('-'));
    return this.driver.transaction(async (sql) => {
      await sql.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
        NODE_CLAIM_LOCK,
        prefixes[0],
      ]);
      const { rows } = await sql.query<{ owned: number }>(
        `SELECT count(*)::integer AS owned FROM topgun_nodes
         WHERE (node_id = ANY($1::text[]) OR (node_id >= $2 AND node_id < $3))
           AND user_id IS DISTINCT FROM $4`,
        [prefixes, `${nodeId}-`, `${nodeId}.`, userId],
      );
      if (rows[0]!.owned > 0) return false;
      await sql.query(
        'INSERT INTO topgun_nodes (node_id, user_id, claimed_at) VALUES ($1, $2, $3) ON CONFLICT (node_id) DO NOTHING',
        [nodeId, userId, now],
      );
      return true;
    });
  }

  async close(): Promise<void> {
    await this.announcements?.close();
    await this.driver.close();
  }
}

/**
 * Whether a write is merged under its row's lock rather than by the one-statement path: it has
 * field writes, a condition (a write rule's verdict on the record it replaces), or keeps the
 * value a tombstone deletes. (The statement could check conditions only by looking up each
 * row's input again, which costs the square of the group's size.)
 */
function mergedUnderLock(write: RecordWrite): boolean {
  return (
    write.record.fields !== undefined || write.expected !== undefined || write.keepPrior === true
  );
}

/**
 * Runs `attempt` on `items` (it records what it did only once it committed); when the database
 * refuses them for their data, runs it on each half on its own, down to a single item, then on
 * the parts `split` cuts that item into, if several, so that one bad row never fails the
 * others. An item the database refuses on its own gets `refuse`d.
 */
async function isolatingDataErrors<T>(
  items: readonly T[],
  attempt: (items: readonly T[]) => Promise<void>,
  refuse: (item: T, refusal: WriteOutcome) => void,
  split: (item: T) => readonly T[] = () => [],
): Promise<void> {
  if (items.length === 0) return;
  try {
    await attempt(items);
  } catch (error) {
    if (!isDataError(error)) throw error;
    const parts =
      items.length > 1
        ? [items.slice(0, Math.ceil(items.length / 2)), items.slice(Math.ceil(items.length / 2))]
        : split(items[0]!).map((part) => [part]);
    if (parts.length > 1) {
      for (const part of parts) await isolatingDataErrors(part, attempt, refuse, split);
      return;
    }
    const refused = `the database refused the record: ${error.message}`.slice(0, 512);
    refuse(items[0]!, { stored: false, refused });
  }
}

/** Sorts rows by map, then key: every writer locks rows in this order, so none deadlock. */
function sortByKey(rows: Array<{ readonly map: string; readonly key: string }>): void {
  rows.sort((a, b) =>
    a.map === b.map ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : a.map < b.map ? -1 : 1,
  );
}

/** Why a merged record is refused for its size, if it is. */
function oversized(record: LWWRecord<Value>, columns: RecordColumns): string | undefined {
  if (record.fields !== undefined && Object.keys(record.fields).length > MAX_FIELD_WRITES)
    return `the record would hold more than ${MAX_FIELD_WRITES} field writes`;
  const bytes = (columns.value?.length ?? 0) + (columns.fields?.length ?? 0);
  if (bytes > MAX_RECORD_BYTES)
    return `the record would take ${bytes} bytes, more than ${MAX_RECORD_BYTES}`;
  return undefined;
}

function toStoredRecord(row: RecordRow): StoredRecord {
  const record = recordOf(
    row.key,
    row.ts,
    row.value,
    row.ttl_ms === null ? null : Number(row.ttl_ms),
    row.fields,
    `stored record ${row.key}`,
  );
  return row.prior === null
    ? { key: row.key, record }
    : { key: row.key, record, prior: decodeValue(row.prior) };
}
