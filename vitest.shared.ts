import { join } from 'node:path';
import { defineConfig, type ViteUserConfig } from 'vitest/config';

// Vitest 5's reporter calls Map.groupBy (Node 21+) when it prints some failures; on Node 20
// it would crash instead of reporting the failure.
if (typeof (Map as { groupBy?: unknown }).groupBy !== 'function') {
  Object.defineProperty(Map, 'groupBy', {
    configurable: true,
    writable: true,
    value: <K, T>(items: Iterable<T>, keyOf: (item: T, index: number) => K): Map<K, T[]> => {
      const groups = new Map<K, T[]>();
      let index = 0;
      for (const item of items) {
        const key = keyOf(item, index++);
        const group = groups.get(key);
        if (group === undefined) groups.set(key, [item]);
        else group.push(item);
      }
      return groups;
    },
  });
}

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
