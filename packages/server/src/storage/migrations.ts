/**
 * The schema, as numbered migrations applied in order; applied versions are recorded in
 * `topgun_migrations`. Never edit a released migration: add the next one.
 */
export const MIGRATIONS: ReadonlyArray<{ readonly version: number; readonly sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE topgun_records (
        map text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        -- serialized HLC timestamp: fixed-width hex, so C-collation order is timestamp order
        ts text COLLATE "C" NOT NULL,
        -- MessagePack of the value; NULL for a tombstone
        value bytea,
        ttl_ms bigint,
        partition smallint NOT NULL,
        PRIMARY KEY (map, key)
      );
      -- Merkle rebuilds and partition-scoped reads
      CREATE INDEX topgun_records_partition ON topgun_records (map, partition);
      -- tombstone pruning
      CREATE INDEX topgun_records_tombstones ON topgun_records (ts) WHERE value IS NULL;
      CREATE TABLE topgun_prunes (
        map text COLLATE "C" PRIMARY KEY,
        horizon text COLLATE "C" NOT NULL,
        pruned_at bigint NOT NULL
      );
    `,
  },
  {
    // One index instead of two: the primary key leads with the partition, which is a function
    // of the key, so it still identifies a record by (map, key) and it also serves loading a
    // map by partition ranges. Every write then updates one B-tree fewer.
    version: 2,
    sql: `
      ALTER TABLE topgun_records DROP CONSTRAINT topgun_records_pkey;
      ALTER TABLE topgun_records ADD PRIMARY KEY (map, partition, key);
      DROP INDEX topgun_records_partition;
    `,
  },
  {
    // Tombstones of maps with record-level read rules keep the value they deleted (only the
    // server reads it, to decide who may see the deletion); node ids belong to one user.
    version: 3,
    sql: `
      ALTER TABLE topgun_records ADD COLUMN prior bytea;
      CREATE TABLE topgun_nodes (
        node_id text COLLATE "C" PRIMARY KEY,
        -- NULL: claimed by an anonymous session
        user_id text COLLATE "C",
        claimed_at bigint NOT NULL
      );
    `,
  },
  {
    // Data model 2: field writes later than the whole write (`value` and `ts` stay the whole
    // write's; `ts` is '' for the empty write). Rows of data model 1 have none: NULL.
    version: 4,
    sql: `
      -- MessagePack of { name: [timestamp, value?] }, as on the wire
      ALTER TABLE topgun_records ADD COLUMN fields bytea;
      -- the latest field write's serialized timestamp
      ALTER TABLE topgun_records ADD COLUMN fields_latest text COLLATE "C";
    `,
  },
];
