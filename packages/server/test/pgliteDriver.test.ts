import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPgliteDriver } from '../src/storage/pgliteDriver.js';

describe('the PGlite driver', () => {
  const root = mkdtempSync(join(tmpdir(), 'topgun-pglite-driver-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('creates a new data directory, with a 16 MB buffer pool, and opens it again', async () => {
    const dataDir = join(root, 'new');
    const driver = await createPgliteDriver(dataDir);
    const { rows } = await driver.query<{ shared_buffers: string }>('SHOW shared_buffers');
    expect(rows[0]?.shared_buffers).toBe('16MB');
    await driver.exec('CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)');
    await driver.close();

    const reopened = await createPgliteDriver(dataDir);
    const kept = await reopened.query<{ n: number }>('SELECT n FROM kept');
    expect(kept.rows).toEqual([{ n: 7 }]);
    await reopened.close();
  }, 60_000);

  it('says where and why a data directory could not be created', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'not a directory');
    await expect(createPgliteDriver(join(file, 'data'))).rejects.toThrow(
      /could not create a PGlite database at .*a-file\/data: .*(ENOTDIR|not a directory)/i,
    );
  }, 60_000);
});
