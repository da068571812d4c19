import { sharedVitestConfig } from '../../vitest.shared.js';

export default sharedVitestConfig('react', {
  environment: 'happy-dom',
  testTimeout: 30_000,
  typecheck: { enabled: true, include: ['test/**/*.test-d.tsx', 'test/**/*.test-d.ts'] },
});
