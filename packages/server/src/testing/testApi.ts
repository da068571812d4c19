import type { ExpectStatic, SuiteAPI, TestAPI } from 'vitest';

type Hook = (run: () => unknown, timeoutMs?: number) => void;

/**
 * The test framework functions an acceptance suite runs with: vitest's (pass `import * as
 * vitest from 'vitest'`) or any with the same shape. Types only: the suites load no framework.
 */
export interface TestApi {
  readonly describe: SuiteAPI;
  readonly it: TestAPI;
  readonly expect: ExpectStatic;
  readonly beforeAll: Hook;
  readonly afterAll: Hook;
  readonly beforeEach: Hook;
}
