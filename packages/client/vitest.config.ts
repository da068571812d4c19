import { sharedVitestConfig } from '../../vitest.shared.js';

export default sharedVitestConfig('client', {
  fileParallelism: false,
  testTimeout: 30_000,
  hookTimeout: 60_000,
});
