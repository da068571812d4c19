import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defineConfig, devices } from '@playwright/test';

// Playwright cannot download its browsers everywhere: use a system Chromium when there is
// one (TOPGUN_CHROMIUM, else Debian's /usr/bin/chromium), otherwise Playwright's own.
const chromium =
  process.env['TOPGUN_CHROMIUM'] ??
  (existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : undefined);
const reportDir = process.env['TOPGUN_REPORT_DIR'];

export default defineConfig({
  testDir: './tests',
  forbidOnly: Boolean(process.env['CI']),
  retries: process.env['CI'] ? 1 : 0,
  workers: 1,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  outputDir: './test-results',
  reporter: reportDir
    ? [['list'], ['json', { outputFile: join(reportDir, 'playwright.json') }]]
    : [['list']],
  use: {
    ...devices['Desktop Chrome'],
    trace: 'on-first-retry',
    launchOptions: {
      ...(chromium === undefined ? {} : { executablePath: chromium }),
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
  },
});
