import { createPgliteDriver } from '../src/storage/pgliteDriver.js';
import { runServerSuite } from './serverSuite.js';

runServerSuite('PGlite', async () => {
  const driver = await createPgliteDriver();
  return { driver, dispose: () => driver.close() };
});
