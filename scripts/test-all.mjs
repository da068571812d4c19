#!/usr/bin/env node
// Runs every check and suite of the workspace, keeps going past failures, and ends with one
// line `N passed, N failed` summed over all of them. Lint, typecheck, build and the bundle's
// size count as one test each; a suite that produced no report counts as one failure.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const reportDir = join(root, 'reports');
rmSync(reportDir, { recursive: true, force: true });
mkdirSync(reportDir, { recursive: true });
const env = { ...process.env, TOPGUN_REPORT_DIR: reportDir, FORCE_COLOR: '0' };

function step(name, args) {
  console.log(`\n=== ${name}: pnpm ${args.join(' ')}`);
  const result = spawnSync('pnpm', args, { cwd: root, stdio: 'inherit', env });
  return result.status === 0;
}

const rows = [];
for (const [name, args] of [
  ['build', ['run', 'build']],
  ['bundle size', ['--filter', '@topgun/bench', 'run', 'bundle:size']],
  ['lint', ['run', 'lint']],
  ['typecheck', ['run', 'typecheck']],
]) {
  const ok = step(name, args);
  rows.push({ suite: name, passed: ok ? 1 : 0, failed: ok ? 0 : 1 });
}
// One package's suite at a time: the server's and the client's start several server
// processes each, and suites that bound latency (a bystander's ping under attack) must not
// share the two cores with another package's processes.
const unitOk = step('unit and integration tests', [
  'exec',
  'turbo',
  'run',
  'test',
  '--continue',
  '--concurrency=1',
]);
const e2eOk = step('end-to-end tests', ['exec', 'turbo', 'run', 'test:e2e', '--continue']);

// Which workspace packages have which suites, to notice a suite that left no report.
const expected = [];
for (const dir of ['packages', 'apps', '.', 'e2e', 'bench']) {
  const candidates = dir === '.' || dir === 'e2e' || dir === 'bench' ? [join(root, dir)] : [];
  if (dir === 'packages' || dir === 'apps') {
    const base = join(root, dir);
    if (existsSync(base)) for (const entry of readdirSync(base)) candidates.push(join(base, entry));
  }
  for (const candidate of candidates) {
    const manifest = join(candidate, 'package.json');
    if (candidate === root || !existsSync(manifest)) continue;
    const { name, scripts = {} } = JSON.parse(readFileSync(manifest, 'utf8'));
    const short = name.replace(/^@topgun\//, '');
    if (scripts.test) expected.push({ report: `vitest-${short}.json`, suite: `${short} (vitest)` });
    if (scripts['test:e2e'])
      expected.push({ report: 'playwright.json', suite: 'e2e (playwright)' });
  }
}
for (const { report, suite } of expected) {
  const file = join(reportDir, report);
  if (!existsSync(file)) {
    rows.push({ suite, passed: 0, failed: 1, note: 'no report: the suite did not run to the end' });
    continue;
  }
  const data = JSON.parse(readFileSync(file, 'utf8'));
  if (report.startsWith('vitest-')) {
    rows.push({
      suite,
      passed: data.numPassedTests ?? 0,
      failed: (data.numFailedTests ?? 0) + (data.success === false && !data.numFailedTests ? 1 : 0),
      skipped: data.numPendingTests ?? 0,
    });
  } else {
    const stats = data.stats ?? {};
    rows.push({
      suite,
      passed: (stats.expected ?? 0) + (stats.flaky ?? 0),
      failed: stats.unexpected ?? 0,
      skipped: stats.skipped ?? 0,
    });
  }
}
if (!unitOk && !rows.some((row) => row.failed > 0 && row.suite.includes('vitest'))) {
  rows.push({ suite: 'test command', passed: 0, failed: 1, note: 'exited non-zero' });
}
if (!e2eOk && !rows.some((row) => row.failed > 0 && row.suite.includes('playwright'))) {
  rows.push({ suite: 'test:e2e command', passed: 0, failed: 1, note: 'exited non-zero' });
}

console.log('\nsuite                          passed  failed  skipped');
for (const row of rows) {
  console.log(
    `${row.suite.padEnd(30)} ${String(row.passed).padStart(6)}  ${String(row.failed).padStart(6)}  ${String(row.skipped ?? 0).padStart(7)}${row.note ? `  (${row.note})` : ''}`,
  );
}
const passed = rows.reduce((sum, row) => sum + row.passed, 0);
const failed = rows.reduce((sum, row) => sum + row.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
