import { encodeValue, formatTimestamp, partitionOf, type Timestamp } from '@topgun/core';
import * as vitest from 'vitest';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../src/storage/migrations.js';
import { createPgAnnouncementChannel } from '../src/storage/pgAnnouncementChannel.js';
import { createPgDriver } from '../src/storage/pgDriver.js';
import { SqlStorage } from '../src/storage/sqlStorage.js';
import { runStorageAcceptanceTests, type StorageUnderTest } from '../src/testing/index.js';
import { createTestDatabase, postgresAvailable } from './postgres.js';

const available = await postgresAvailable();

/** A fresh database under the suite; with `announcing`, its writes also announce what they store. */
async function postgresUnderTest(announcing: boolean): Promise<StorageUnderTest> {
  const database = await createTestDatabase();
  const driver = createPgDriver({ connectionString: database.url });
  const announcements = announcing ? createPgAnnouncementChannel(database.url) : undefined;
  const others: Array<ReturnType<typeof createPgDriver>> = [];
  return {
    driver,
    ...(announcements === undefined ? {} : { announcements }),
    openAnother: async () => {
      const other = createPgDriver({ connectionString: database.url });
      others.push(other);
      return other;
    },
    dispose: async () => {
      await announcements?.close();
      await driver.close();
      for (const other of others) await other.close().catch(() => {});
      await database.drop();
    },
  };
}

describe.runIf(available)('PostgreSQL', () => {
  runStorageAcceptanceTests('PostgreSQL', () => postgresUnderTest(false), vitest);
});

describe.runIf(available)('PostgreSQL, announcing its writes', () => {
  // The same suite over the statements that also announce what they store.
  runStorageAcceptanceTests('PostgreSQL, announcing', () => postgresUnderTest(true), vitest);
});

describe.runIf(available)('PostgreSQL schema upgrade', () => {
  it('upgrades a version 1 database holding records to version 2 without losing any', async () => {
    const database = await createTestDatabase();
    const driver = createPgDriver({ connectionString: database.url });
    try {
      const [first] = MIGRATIONS;
      await driver.exec(
        `CREATE TABLE topgun_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now()); ${first!.sql}`,
      );
      await driver.query('INSERT INTO topgun_migrations (version) VALUES (1)');
      const old: Timestamp = { millis: 1_000, counter: 0, nodeId: 'n1' };
      await driver.query(
        'INSERT INTO topgun_records (map, key, ts, value, partition) VALUES ($1, $2, $3, $4, $5)',
        ['m', 'k', formatTimestamp(old), Buffer.from(encodeValue('v1')), partitionOf('k')],
      );
      const storage = new SqlStorage(driver);
      await storage.migrate();
      expect((await storage.getRecords('m', ['k']))[0]!.record).toEqual({
        value: 'v1',
        timestamp: old,
      });
      const newer: Timestamp = { millis: 2_000, counter: 0, nodeId: 'n1' };
      expect(
        await storage.writeRecords([
          { map: 'm', key: 'k', record: { value: 'v2', timestamp: newer } },
        ]),
      ).toEqual([{ stored: true }]);
      const { rows } = await driver.query<{ indexname: string }>(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'topgun_records' ORDER BY indexname",
      );
      expect(rows.map((row) => row.indexname)).toEqual([
        'topgun_records_pkey',
        'topgun_records_tombstones',
      ]);
    } finally {
      await driver.close();
      await database.drop();
    }
  });
});
