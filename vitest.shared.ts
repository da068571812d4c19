import { join } from 'node:path';
import { defineConfig, type ViteUserConfig } from 'vitest/config';

/**
 * The vitest settings every package shares. When `TOPGUN_REPORT_DIR` is set (by
 * `scripts/test-all.mjs`), each package also writes a JSON report there, named after it,
 * which the final `N passed, N failed` line is summed from.
 */
export function sharedVitestConfig(packageName: string, test: ViteUserConfig['test'] = {}) {
  const reportDir = process.env['TOPGUN_REPORT_DIR'];
  return defineConfig({
    test: {
      include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
      isolate: true,
      reporters: reportDir
        ? ['default', ['json', { outputFile: join(reportDir, `vitest-${packageName}.json`) }]]
        : ['default'],
      ...test,
    },
  });
}
