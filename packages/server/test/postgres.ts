import pg from 'pg';

/** The PostgreSQL server the tests use; CI provides one at 127.0.0.1:5432. */
export const TEST_DATABASE_URL =
  process.env['TOPGUN_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Whether that server answers. When it does not, PostgreSQL suites are skipped with a note,
 * unless `TOPGUN_REQUIRE_POSTGRES` is set (CI sets it), where they fail instead.
 */
export async function postgresAvailable(): Promise<boolean> {
  if (process.env['TOPGUN_REQUIRE_POSTGRES']) return true;
  const client = new pg.Client({
    connectionString: TEST_DATABASE_URL,
    connectionTimeoutMillis: 2_000,
  });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    console.warn(`PostgreSQL is not reachable at ${TEST_DATABASE_URL}: skipping its suites`);
    return false;
  }
}

/** Creates a fresh database for one test file; `drop` removes it. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `topgun_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}
