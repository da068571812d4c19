import 'fake-indexeddb/auto';
import { createIndexedDbStorage, createMemoryStorage } from '../src/index.js';
import { runClientStorageTests } from './storageAcceptance.js';

let database = 0;

runClientStorageTests('memory', async () => {
  const storage = createMemoryStorage();
  return { storage, reopen: async () => storage };
});

runClientStorageTests('IndexedDB (fake-indexeddb)', async () => {
  const name = `acceptance-${database++}`;
  return {
    storage: createIndexedDbStorage(name),
    reopen: async () => createIndexedDbStorage(name),
  };
});
