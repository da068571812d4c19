/**
 * Chromium with a fresh profile on disk, for the browser bench.
 *
 * Not `browser.newContext()`: Playwright's extra contexts are off the record, and Chromium
 * keeps the IndexedDB of such a context in memory, so writes would never touch the disk.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from '@playwright/test';

/** The Chromium the bench runs: `TOPGUN_CHROMIUM`, else `/usr/bin/chromium`, else Playwright's. */
export const CHROMIUM_PATH =
  process.env['TOPGUN_CHROMIUM'] ??
  (existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : undefined);

const ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  // `gc()` in pages, so heap figures are taken after a full collection.
  '--js-flags=--expose-gc',
  // `performance.memory` otherwise rounds to coarse buckets.
  '--enable-precise-memory-info',
];

/** A browser on an empty profile (empty IndexedDB and localStorage); `close` deletes it. */
export interface FreshBrowser {
  readonly context: BrowserContext;
  /** Chromium's version. */
  readonly version: string;
  close(): Promise<void>;
}

/** Launches headless Chromium on a new, empty profile directory. */
export async function launchFreshBrowser(): Promise<FreshBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'topgun-bench-profile-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      ...(CHROMIUM_PATH === undefined ? {} : { executablePath: CHROMIUM_PATH }),
      headless: true,
      args: ARGS,
    });
    return {
      context,
      version: context.browser()?.version() ?? (await browserVersion(context)),
      async close() {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
}

async function browserVersion(context: BrowserContext): Promise<string> {
  const page = context.pages()[0] ?? (await context.newPage());
  const userAgent = await page.evaluate(() => navigator.userAgent);
  return /Chrome\/([\d.]+)/.exec(userAgent)?.[1] ?? userAgent;
}
