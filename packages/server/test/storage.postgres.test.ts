import { describe } from 'vitest';
import { createPgDriver } from '../src/storage/pgDriver.js';
import { createTestDatabase, postgresAvailable } from './postgres.js';
import { runStorageAcceptanceTests } from './storageAcceptance.js';

const available = await postgresAvailable();

describe.runIf(available)('PostgreSQL', () => {
  runStorageAcceptanceTests('PostgreSQL', async () => {
    const database = await createTestDatabase();
    const driver = createPgDriver({ connectionString: database.url });
    const others: Array<ReturnType<typeof createPgDriver>> = [];
    return {
      driver,
      openAnother: async () => {
        const other = createPgDriver({ connectionString: database.url });
        others.push(other);
        return other;
      },
      dispose: async () => {
        await driver.close();
        for (const other of others) await other.close().catch(() => {});
        await database.drop();
      },
    };
  });
});
