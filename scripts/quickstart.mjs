#!/usr/bin/env node
// The README's two commands on a machine with only Node.js and npm: make sure the pinned
// pnpm is available, install the workspace (and, for the checks, a Chromium), then run one of
// its scripts (`dev` or `test:all`).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const script = process.argv[2];
if (!script) {
  console.error('usage: node scripts/quickstart.mjs <workspace script>');
  process.exit(2);
}
const pinned = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).packageManager.split(
  '@',
)[1];

function pnpmCommand() {
  try {
    const version = execFileSync('pnpm', ['--version'], { encoding: 'utf8' }).trim();
    if (version === pinned) return ['pnpm'];
  } catch {
    // not installed: fall through to npx
  }
  return ['npx', '--yes', `pnpm@${pinned}`];
}

function run(command) {
  const result = spawnSync(command[0], command.slice(1), { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function commandExists(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/**
 * The end-to-end suite needs a Chromium: the one `TOPGUN_CHROMIUM` names, Debian's, or
 * Playwright's own, downloaded now if need be (a no-op when it is there); where that download
 * is impossible, Debian's package when apt is available and we may use it.
 */
function ensureChromium(pnpm) {
  if (process.env.TOPGUN_CHROMIUM || existsSync('/usr/bin/chromium')) return;
  const download = spawnSync(
    pnpm[0],
    [...pnpm.slice(1), '--filter', '@topgun/e2e', 'exec', 'playwright', 'install', 'chromium'],
    { cwd: root, stdio: 'inherit' },
  );
  if (download.status === 0) return;
  if (process.getuid?.() === 0 && commandExists('apt-get')) {
    spawnSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq chromium'], {
      stdio: 'inherit',
    });
    if (existsSync('/usr/bin/chromium')) return;
  }
  console.warn(
    'quickstart: no Chromium could be found or installed, so the end-to-end suite will fail; install one and set TOPGUN_CHROMIUM to its path',
  );
}

const pnpm = pnpmCommand();
const frozen = existsSync(join(root, 'pnpm-lock.yaml')) ? ['--frozen-lockfile'] : [];
run([...pnpm, 'install', ...frozen]);
if (script === 'test:all') ensureChromium(pnpm);
run([...pnpm, 'run', script]);
