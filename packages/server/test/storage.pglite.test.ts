import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vitest from 'vitest';
import { createPgliteDriver } from '../src/storage/pgliteDriver.js';
import type { SqlDriver } from '../src/storage/sqlDriver.js';
import { runStorageAcceptanceTests } from '../src/testing/index.js';

runStorageAcceptanceTests(
  'PGlite',
  async () => {
    // On disk, so that the data can be reopened. PGlite is single-process, so "another
    // process" is the same directory closed and opened again, behind a stable handle.
    const dataDir = mkdtempSync(join(tmpdir(), 'topgun-pglite-'));
    let current = await createPgliteDriver(dataDir);
    const handle = (closeable: boolean): SqlDriver => ({
      concurrency: 1,
      get description() {
        return current.description;
      },
      query: (text, params) => current.query(text, params),
      exec: (script) => current.exec(script),
      transaction: (work) => current.transaction(work),
      close: async () => {
        if (closeable) await current.close();
      },
    });
    return {
      driver: handle(true),
      openAnother: async () => {
        await current.close();
        current = await createPgliteDriver(dataDir);
        return handle(false);
      },
      dispose: async () => {
        await current.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
  vitest,
);
