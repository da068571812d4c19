import 'fake-indexeddb/auto';
import fc from 'fast-check';
import * as vitest from 'vitest';
import { createIndexedDbStorage, createMemoryStorage } from '../src/index.js';
import { runClientStorageTests } from '../src/testing/index.js';
import { createLegacyBucketStorage } from './legacyBucketStorage.js';

let database = 0;
const test = { ...vitest, fc };

runClientStorageTests(
  'memory',
  async () => {
    const storage = createMemoryStorage();
    return { storage, reopen: async () => storage };
  },
  test,
);

runClientStorageTests(
  'IndexedDB (fake-indexeddb)',
  async () => {
    const name = `acceptance-${database++}`;
    return {
      storage: createIndexedDbStorage(name),
      reopen: async () => createIndexedDbStorage(name),
    };
  },
  test,
);

runClientStorageTests(
  'IndexedDB compacting its record log after every commit',
  async () => {
    const name = `acceptance-${database++}`;
    // Thresholds so low that most commits lead to a merge, of the whole log or of its end.
    const options = {
      compactAfterIdleMs: Number.POSITIVE_INFINITY,
      compaction: { garbageSlack: 0, smallSegment: 4, minSmallRun: 2 },
    };
    const storage = createIndexedDbStorage(name, options);
    return {
      storage,
      reopen: async () => createIndexedDbStorage(name, options),
      compact: () => storage.compact(),
    };
  },
  test,
);

runClientStorageTests(
  'IndexedDB upgraded from the bucket layout',
  async () => {
    const name = `acceptance-${database++}`;
    const legacy = createLegacyBucketStorage(name);
    await legacy.commit({});
    await legacy.close();
    return {
      storage: createIndexedDbStorage(name),
      reopen: async () => createIndexedDbStorage(name),
    };
  },
  test,
);
