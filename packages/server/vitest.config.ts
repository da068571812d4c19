import { sharedVitestConfig } from '../../vitest.shared.js';

// Integration tests start real servers and databases: run files one at a time so that two
// cores are not shared by several PGlite instances and servers at once.
export default sharedVitestConfig('server', {
  fileParallelism: false,
  testTimeout: 30_000,
  hookTimeout: 60_000,
});
