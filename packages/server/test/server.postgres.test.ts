import { describe } from 'vitest';
import { createPgDriver } from '../src/storage/pgDriver.js';
import { createTestDatabase, postgresAvailable } from './postgres.js';
import { runServerSuite } from './serverSuite.js';

const available = await postgresAvailable();

describe.runIf(available)('PostgreSQL', () => {
  runServerSuite('PostgreSQL', async () => {
    const database = await createTestDatabase();
    const driver = createPgDriver({ connectionString: database.url });
    return {
      driver,
      dispose: async () => {
        await driver.close();
        await database.drop();
      },
    };
  });
});
