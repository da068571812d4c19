import { sharedVitestConfig } from '../../vitest.shared.js';

export default sharedVitestConfig('core', {
  typecheck: { enabled: true, include: ['test/**/*.test-d.ts'] },
});
